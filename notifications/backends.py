"""Where pushes go, chosen by PUSH_BACKEND: `real` providers, `log`, or a JSON-lines `file`.

`real` sends each device's push through its own provider (FCM, APNs, Web
Push). `log` and `file` are for development and tests: they accept every
push and record it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from core.crypto import keyed_hash
from core.serializers import timestamp
from notifications.providers.base import Failed, Outcome, PushMessage, PushProviderAdapter, Sent

logger = logging.getLogger(__name__)

BACKEND_NAMES = ("real", "log", "file")


def _provider_factories() -> dict[str, Callable[[], PushProviderAdapter]]:
    from notifications.providers.apns import ApnsProvider
    from notifications.providers.fcm import FcmProvider
    from notifications.providers.webpush import WebPushProvider

    return {"fcm": FcmProvider, "apns": ApnsProvider, "webpush": WebPushProvider}


class LogPushBackend:
    """Development: one log line per push. The token is never logged, only its fingerprint;
    the text only when DEBUG, so a production left on the default backend leaks no message text."""

    def send(self, message: PushMessage) -> Outcome:
        text = (
            f"title={message.title!r} body={message.body!r}"
            if settings.DEBUG
            else f"title_len={len(message.title)} body_len={len(message.body)}"
        )
        logger.info(
            "push kind=%s device=%s provider=%s token=%s badge=%s silent=%s count=%s %s",
            message.kind, message.device_id, message.provider,
            keyed_hash("push-token", message.token)[:12], message.badge, message.silent, message.count, text,
        )
        return Sent()


class FilePushBackend:
    """One JSON line per push in PUSH_FILE_PATH (the contract's fields, then ours)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path or settings.PUSH_FILE_PATH)

    def line(self, message: PushMessage, sent_at: str) -> dict[str, Any]:
        return {
            "device_id": message.device_id,
            "provider": message.provider,
            "token": message.token,
            "kind": message.kind,
            "conversation_id": message.conversation_id,
            "message_id": message.message_id,
            "badge": message.badge,
            "title": message.title,
            "body": message.body,
            "sent_at": sent_at,
            # Extensions (docs/push.md): silent data push, collapsed count, collapse key, data.
            "silent": message.silent,
            "count": message.count,
            "collapse_key": message.collapse_key,
            "data": message.data_strings(),
        }

    def send(self, message: PushMessage) -> Outcome:
        from django.utils import timezone

        self.path.parent.mkdir(parents=True, exist_ok=True)
        encoded = json.dumps(self.line(message, timestamp(timezone.now()) or ""), ensure_ascii=False) + "\n"
        # One write of one line in append mode: concurrent workers never interleave lines.
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(encoded)
        return Sent()


class RealPushBackend:
    """Dispatches by the device's provider. Providers are built at start (credentials checked then)."""

    def __init__(self) -> None:
        factories = _provider_factories()
        unknown = sorted(set(settings.PUSH_PROVIDERS) - set(factories))
        if unknown:
            raise ImproperlyConfigured(f"Unknown PUSH_PROVIDERS entries: {', '.join(unknown)}")
        if not settings.PUSH_PROVIDERS:
            raise ImproperlyConfigured("PUSH_BACKEND=real needs at least one provider in PUSH_PROVIDERS")
        self.providers: dict[str, PushProviderAdapter] = {
            name: factories[name]() for name in settings.PUSH_PROVIDERS
        }

    def send(self, message: PushMessage) -> Outcome:
        provider = self.providers.get(message.provider)
        if provider is None:
            return Failed(reason=f"provider {message.provider!r} not enabled")
        return provider.send(message)


_backend: Any = None
_backend_lock = threading.Lock()


def build_push_backend() -> LogPushBackend | FilePushBackend | RealPushBackend:
    name = settings.PUSH_BACKEND
    if name == "log":
        return LogPushBackend()
    if name == "file":
        return FilePushBackend()
    if name == "real":
        return RealPushBackend()
    raise ImproperlyConfigured(f"Unknown PUSH_BACKEND {name!r}; use one of {', '.join(BACKEND_NAMES)}")


def get_push_backend() -> LogPushBackend | FilePushBackend | RealPushBackend:
    """One backend per process, so HTTP/2 connections and OAuth tokens are reused between pushes."""
    global _backend
    with _backend_lock:
        if _backend is None:
            _backend = build_push_backend()
        return _backend


@receiver(setting_changed)
def _reset_backend(*, setting: str, **kwargs: Any) -> None:
    global _backend
    if setting.startswith("PUSH_"):
        with _backend_lock:
            _backend = None
