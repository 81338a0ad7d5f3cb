"""SMS delivery backends, chosen by SMS_BACKEND: console, file, http (a real provider)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


class SmsBackend(Protocol):
    def send(self, *, to: str, body: str) -> None: ...


class ConsoleSmsBackend:
    """Development only: prints the text (the code) but never the number."""

    def send(self, *, to: str, body: str) -> None:
        print(f"[sms] to=***{to[-2:]} body={body!r}", flush=True)  # noqa: T201


class FileSmsBackend:
    """One JSON line per SMS, for tests and local tooling."""

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path or settings.SMS_FILE_PATH)

    def send(self, *, to: str, body: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"to": to, "body": body, "sent_at": datetime.now(UTC).isoformat()})
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


class HttpSmsBackend:
    """Adapter shape for a real provider: a JSON POST with a bearer token.

    Providers differ in field names; subclass and override `payload` (for
    example for Twilio's form fields) and keep the rest.
    """

    timeout = 5.0

    def __init__(self) -> None:
        if not settings.SMS_HTTP_URL or not settings.SMS_HTTP_TOKEN:
            raise ImproperlyConfigured("SMS_BACKEND=http needs SMS_HTTP_URL and SMS_HTTP_TOKEN")

    def payload(self, *, to: str, body: str) -> dict[str, str]:
        return {"to": to, "from": settings.SMS_HTTP_SENDER, "text": body}

    def send(self, *, to: str, body: str) -> None:
        response = httpx.post(
            settings.SMS_HTTP_URL,
            json=self.payload(to=to, body=body),
            headers={"Authorization": f"Bearer {settings.SMS_HTTP_TOKEN}"},
            timeout=self.timeout,
        )
        response.raise_for_status()


BACKENDS: dict[str, type] = {"console": ConsoleSmsBackend, "file": FileSmsBackend, "http": HttpSmsBackend}


def get_sms_backend() -> SmsBackend:
    try:
        return BACKENDS[settings.SMS_BACKEND]()
    except KeyError as exc:
        raise ImproperlyConfigured(f"Unknown SMS_BACKEND {settings.SMS_BACKEND!r}") from exc
