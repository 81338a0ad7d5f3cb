"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291), via pywebpush.

The device's push token is the browser's PushSubscription as JSON
(`{"endpoint", "keys": {"p256dh", "auth"}}`). Its endpoint comes from the
client, so it is checked against PUSH_WEBPUSH_ALLOWED_HOSTS before any request
is made: the server must not be turned into a proxy to arbitrary URLs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from notifications.providers.base import Failed, Outcome, PushMessage, Retry, Sent, TokenGone, retry_for_status


def load_vapid() -> Vapid:
    key = settings.PUSH_WEBPUSH_VAPID_PRIVATE_KEY
    if not key or not settings.PUSH_WEBPUSH_VAPID_SUBJECT:
        raise ImproperlyConfigured("Web Push needs PUSH_WEBPUSH_VAPID_PRIVATE_KEY and PUSH_WEBPUSH_VAPID_SUBJECT")
    if not settings.PUSH_WEBPUSH_VAPID_SUBJECT.startswith(("mailto:", "https://")):
        raise ImproperlyConfigured("PUSH_WEBPUSH_VAPID_SUBJECT must be a mailto: or https: URL")
    try:
        if key.lstrip().startswith("-----BEGIN"):
            return Vapid.from_pem(key.encode())
        return Vapid.from_string(private_key=key)
    except Exception as exc:
        raise ImproperlyConfigured("PUSH_WEBPUSH_VAPID_PRIVATE_KEY is not a P-256 private key") from exc


def endpoint_allowed(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    if parts.scheme != "https" and (settings.PUSH_WEBPUSH_REQUIRE_HTTPS or parts.scheme != "http"):
        return False
    host = (parts.hostname or "").lower()
    return any(host == allowed or host.endswith("." + allowed) for allowed in settings.PUSH_WEBPUSH_ALLOWED_HOSTS)


def parse_subscription(token: str) -> dict[str, Any] | None:
    try:
        subscription = json.loads(token)
    except ValueError:
        return None
    if not isinstance(subscription, dict) or not isinstance(subscription.get("endpoint"), str):
        return None
    keys = subscription.get("keys")
    if not isinstance(keys, dict) or not all(isinstance(keys.get(k), str) for k in ("p256dh", "auth")):
        return None
    return {"endpoint": subscription["endpoint"], "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}}


class WebPushProvider:
    def __init__(self) -> None:
        self.vapid = load_vapid()
        self.session = requests.Session()
        # Only the configured push services are ever contacted; never through a proxy from the environment.
        self.session.trust_env = False

    def payload(self, message: PushMessage) -> dict[str, Any]:
        body: dict[str, Any] = {"data": message.data_strings(), "badge": message.badge}
        if not message.silent:
            body["notification"] = {"title": message.title, "body": message.body}
            if message.conversation_id:
                body["notification"]["tag"] = message.conversation_id
        return body

    def send(self, message: PushMessage) -> Outcome:
        subscription = parse_subscription(message.token)
        if subscription is None:
            return TokenGone(reason="not a PushSubscription")
        if not endpoint_allowed(subscription["endpoint"]):
            return TokenGone(reason="endpoint host not allowed")
        headers = {"Urgency": "high" if (message.urgent or not message.silent) else "low"}
        if message.collapse_key:
            # A push service replaces a still-undelivered message with the same Topic (RFC 8030 5.4);
            # a Topic is at most 32 characters of the URL-safe base64 alphabet.
            headers["Topic"] = hashlib.sha256(message.collapse_key.encode()).hexdigest()[:32]
        try:
            webpush(
                subscription_info=subscription,
                data=json.dumps(self.payload(message)),
                vapid_private_key=self.vapid,
                vapid_claims={"sub": settings.PUSH_WEBPUSH_VAPID_SUBJECT},
                ttl=message.ttl,
                headers=headers,
                timeout=settings.PUSH_HTTP_TIMEOUT_SECONDS,
                requests_session=self.session,
            )
        except WebPushException as exc:
            status = exc.status_code
            if status is None:
                return Failed(reason=str(exc.message)[:200])
            return self.outcome(status, exc.retry_after)
        except (requests.ConnectionError, requests.Timeout) as exc:
            return Retry(reason=type(exc).__name__)
        return Sent()

    def outcome(self, status: int, retry_after: str | None) -> Outcome:
        if status in (404, 410):
            # The subscription expired or the user revoked permission.
            return TokenGone(reason=str(status))
        transient = retry_for_status(status, retry_after, "")
        return transient or Failed(reason=str(status))
