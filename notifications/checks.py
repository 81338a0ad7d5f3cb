"""Start-up check: a misconfigured push backend fails loudly when a process starts."""

from __future__ import annotations

from django.conf import settings


def ensure_push_configured() -> None:
    """Raise ImproperlyConfigured when PUSH_BACKEND is unknown, or `real` lacks a provider's credentials.

    Building the backend loads and parses every enabled provider's credentials
    (service-account JSON, APNs .p8 key, VAPID key).
    """
    from notifications.backends import build_push_backend

    if settings.PUSH_BACKEND == "real" or settings.PUSH_BACKEND not in ("log", "file"):
        build_push_backend()
