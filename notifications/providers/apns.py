"""Apple Push Notification service: token-based (ES256 JWT) over HTTP/2.

httpx with its `h2` extra speaks HTTP/2 to Apple and keeps the connection
open between pushes. aioapns (the field's asyncio client) is not used: it
hard-codes Apple's hosts, so it cannot be pointed at a local test server, and
it needs an event loop inside a synchronous Celery task.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from notifications.providers.base import Failed, Outcome, PushMessage, Retry, Sent, TokenGone, retry_for_status

# Apple's reasons that mean "this token will never work for this app again".
GONE_REASONS = {"Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic"}
# A provider token is valid for an hour; Apple refuses refreshes more often than every 20 minutes.
TOKEN_LIFETIME_SECONDS = 50 * 60


def load_signing_key() -> str:
    key = settings.PUSH_APNS_KEY
    if not key and settings.PUSH_APNS_KEY_FILE:
        try:
            key = Path(settings.PUSH_APNS_KEY_FILE).read_text(encoding="utf-8")
        except OSError as exc:
            raise ImproperlyConfigured(f"PUSH_APNS_KEY_FILE cannot be read: {exc.strerror}") from exc
    missing = [
        name for name, value in (
            ("PUSH_APNS_KEY or PUSH_APNS_KEY_FILE", key),
            ("PUSH_APNS_KEY_ID", settings.PUSH_APNS_KEY_ID),
            ("PUSH_APNS_TEAM_ID", settings.PUSH_APNS_TEAM_ID),
            ("PUSH_APNS_TOPIC", settings.PUSH_APNS_TOPIC),
        ) if not value
    ]
    if missing:
        raise ImproperlyConfigured(f"APNs needs {', '.join(missing)}")
    try:
        jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256).prepare_key(key)
    except Exception as exc:
        raise ImproperlyConfigured("The APNs key is not an EC (.p8) private key") from exc
    return key


def voip_topic() -> str:
    return settings.PUSH_APNS_VOIP_TOPIC or f"{settings.PUSH_APNS_TOPIC}.voip"


class ApnsProvider:
    def __init__(self, *, client: httpx.Client | None = None) -> None:
        self.key = load_signing_key()
        self.endpoint = settings.PUSH_APNS_ENDPOINT.rstrip("/")
        # http1=False: HTTP/2 only (ALPN over TLS; prior knowledge over a local cleartext test server).
        self.client = client or httpx.Client(http1=False, http2=True, timeout=settings.PUSH_HTTP_TIMEOUT_SECONDS)
        self._lock = threading.Lock()
        self._jwt = ""
        self._jwt_issued = 0.0

    def provider_token(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or not self._jwt or time.monotonic() - self._jwt_issued > TOKEN_LIFETIME_SECONDS:
                self._jwt = jwt.encode(
                    {"iss": settings.PUSH_APNS_TEAM_ID, "iat": int(time.time())},
                    self.key,
                    algorithm="ES256",
                    headers={"kid": settings.PUSH_APNS_KEY_ID},
                )
                self._jwt_issued = time.monotonic()
            return self._jwt

    def payload(self, message: PushMessage) -> dict[str, Any]:
        if message.voip:
            # PushKit hands the payload to the app, which must report the call to CallKit: no alert.
            return {"aps": {}, **message.data_strings()}
        aps: dict[str, Any] = {"badge": message.badge}
        if message.conversation_id:
            aps["thread-id"] = message.conversation_id
        if message.silent:
            aps["content-available"] = 1
        else:
            aps["alert"] = {"title": message.title, "body": message.body}
            aps["sound"] = "default"
        return {"aps": aps, **message.data_strings()}

    def headers(self, message: PushMessage) -> dict[str, str]:
        headers = {
            "authorization": f"bearer {self.provider_token()}",
            "apns-topic": settings.PUSH_APNS_TOPIC,
            # Apple requires background pushes at priority 5 and allows 10 for alerts.
            "apns-push-type": "background" if message.silent else "alert",
            "apns-priority": "5" if message.silent else "10",
            "apns-expiration": str(int(time.time()) + message.ttl),
        }
        if message.voip:
            # Incoming calls: a VoIP push, on the app's VoIP topic, delivered at once.
            headers["apns-topic"] = voip_topic()
            headers["apns-push-type"] = "voip"
            headers["apns-priority"] = "10"
        collapse = message.short_collapse_id(64)
        if collapse:
            headers["apns-collapse-id"] = collapse
        return headers

    def send(self, message: PushMessage) -> Outcome:
        url = f"{self.endpoint}/3/device/{message.token}"
        try:
            response = self.client.post(url, json=self.payload(message), headers=self.headers(message))
        except httpx.TransportError as exc:
            return Retry(reason=type(exc).__name__)
        return self.outcome(response)

    def outcome(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        if status == 200:
            return Sent(provider_id=response.headers.get("apns-id", ""))
        try:
            reason = str(response.json().get("reason", ""))
        except (ValueError, AttributeError):
            reason = ""
        if status == 410 or reason in GONE_REASONS:
            return TokenGone(reason=reason or "Unregistered")
        if status == 403 and reason == "ExpiredProviderToken":
            self.provider_token(renew=True)
            return Retry(reason=reason)
        transient = retry_for_status(status, response.headers.get("Retry-After"), reason)
        return transient or Failed(reason=f"{status} {reason}".strip())
