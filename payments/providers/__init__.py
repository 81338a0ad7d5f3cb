"""The payment provider chosen by PAYMENTS_BACKEND: `test`, `http`, or none (top-ups off)."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from payments.providers.base import PaymentProvider

BACKEND_NAMES = ("test", "http")

_provider: PaymentProvider | None = None
_lock = threading.Lock()


def build_provider(name: str) -> PaymentProvider:
    if name == "test":
        from payments.providers.test import TestProvider

        return TestProvider()
    if name == "http":
        from payments.providers.http import HttpProvider

        return HttpProvider()
    raise ImproperlyConfigured(f"Unknown PAYMENTS_BACKEND {name!r}; use one of {', '.join(BACKEND_NAMES)}")


def get_provider() -> PaymentProvider | None:
    """The configured provider (one per process, so its HTTP connections are reused); None when off."""
    global _provider
    if not settings.PAYMENTS_BACKEND:
        return None
    with _lock:
        if _provider is None or _provider.name != settings.PAYMENTS_BACKEND:
            _provider = build_provider(settings.PAYMENTS_BACKEND)
        return _provider


@receiver(setting_changed)
def _reset_provider(*, setting: str, **kwargs: Any) -> None:
    global _provider
    if setting.startswith("PAYMENTS_"):
        with _lock:
            _provider = None
