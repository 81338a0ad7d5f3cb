"""Firebase Cloud Messaging, HTTP v1 API, authorised by a service account.

The OAuth2 exchange is the JWT-bearer grant (RFC 7523) that google-auth
performs: an RS256-signed assertion POSTed to the service account's
`token_uri`. It is done here with PyJWT and httpx (both already installed)
instead of adding google-auth and its `requests` transport, so one client
with one timeout policy serves both calls and both URLs are settings that the
tests point at a local server.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from notifications.providers.base import (
    Failed,
    Outcome,
    PushMessage,
    Retry,
    Sent,
    TokenGone,
    retry_for_status,
)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# FCM's error codes for a token that will never work again.
GONE_CODES = {"UNREGISTERED", "SENDER_ID_MISMATCH"}


def load_service_account() -> dict[str, Any]:
    """The service-account JSON from PUSH_FCM_CREDENTIALS_JSON or PUSH_FCM_CREDENTIALS_FILE."""
    raw = settings.PUSH_FCM_CREDENTIALS_JSON
    if not raw and settings.PUSH_FCM_CREDENTIALS_FILE:
        try:
            raw = Path(settings.PUSH_FCM_CREDENTIALS_FILE).read_text(encoding="utf-8")
        except OSError as exc:
            raise ImproperlyConfigured(f"PUSH_FCM_CREDENTIALS_FILE cannot be read: {exc.strerror}") from exc
    if not raw:
        raise ImproperlyConfigured("FCM needs PUSH_FCM_CREDENTIALS_FILE or PUSH_FCM_CREDENTIALS_JSON")
    try:
        info = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured("FCM service-account credentials are not JSON") from exc
    missing = [k for k in ("project_id", "client_email", "private_key") if not isinstance(info.get(k), str)]
    if missing:
        raise ImproperlyConfigured(f"FCM service-account JSON lacks {', '.join(missing)}")
    if not (settings.PUSH_FCM_TOKEN_URI or info.get("token_uri")):
        raise ImproperlyConfigured("FCM service-account JSON lacks token_uri")
    try:
        jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).prepare_key(info["private_key"])
    except Exception as exc:
        raise ImproperlyConfigured("FCM service-account private_key is not an RSA PEM key") from exc
    return info


class FcmProvider:
    def __init__(self, *, client: httpx.Client | None = None) -> None:
        self.account = load_service_account()
        self.token_uri = settings.PUSH_FCM_TOKEN_URI or self.account["token_uri"]
        self.send_url = (
            f"{settings.PUSH_FCM_ENDPOINT.rstrip('/')}/v1/projects/{self.account['project_id']}/messages:send"
        )
        self.client = client or httpx.Client(timeout=settings.PUSH_HTTP_TIMEOUT_SECONDS)
        self._lock = threading.Lock()
        self._access_token = ""
        self._expires_at = 0.0

    # --- OAuth2 -------------------------------------------------------------------

    def _fetch_access_token(self) -> str:
        now = int(time.time())
        assertion = jwt.encode(
            {"iss": self.account["client_email"], "scope": SCOPE, "aud": self.token_uri,
             "iat": now, "exp": now + 3600},
            self.account["private_key"],
            algorithm="RS256",
            headers={"kid": self.account.get("private_key_id", "")} if self.account.get("private_key_id") else None,
        )
        response = self.client.post(
            self.token_uri,
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
        )
        response.raise_for_status()
        body = response.json()
        self._access_token = body["access_token"]
        # Refresh a minute early so a token never expires in flight.
        self._expires_at = time.monotonic() + int(body.get("expires_in", 3600)) - 60
        return self._access_token

    def access_token(self) -> str:
        with self._lock:
            if self._access_token and time.monotonic() < self._expires_at:
                return self._access_token
            return self._fetch_access_token()

    def _forget_access_token(self) -> None:
        with self._lock:
            self._access_token = ""

    # --- Sending --------------------------------------------------------------------

    def payload(self, message: PushMessage) -> dict[str, Any]:
        android: dict[str, Any] = {
            "priority": "high" if (message.urgent or not message.silent) else "normal",
            "ttl": f"{message.ttl}s",
        }
        body: dict[str, Any] = {"token": message.token, "data": message.data_strings(), "android": android}
        collapse = message.short_collapse_id()
        if collapse:
            android["collapse_key"] = collapse
        if not message.silent and not message.voip:
            # A ring is data-only: the app shows its own incoming-call screen.
            body["notification"] = {"title": message.title, "body": message.body}
            android["notification"] = {"notification_count": message.badge}
            if message.conversation_id:
                # One tray entry per conversation: a newer push replaces the older one.
                android["notification"]["tag"] = message.conversation_id
        return {"message": body}

    def send(self, message: PushMessage) -> Outcome:
        try:
            token = self.access_token()
        except httpx.HTTPStatusError as exc:
            transient = retry_for_status(exc.response.status_code, exc.response.headers.get("Retry-After"), "token")
            return transient or Failed(reason=f"oauth token refused: {exc.response.status_code}")
        except (httpx.TransportError, KeyError, ValueError) as exc:
            return Retry(reason=f"oauth token: {type(exc).__name__}")
        try:
            response = self.client.post(
                self.send_url, json=self.payload(message), headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as exc:
            return Retry(reason=type(exc).__name__)
        return self.outcome(response)

    def outcome(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        if status == 200:
            try:
                return Sent(provider_id=str(response.json().get("name", "")))
            except ValueError:
                return Sent()
        error = _error(response)
        codes = {error.get("status", "")} | {
            detail.get("errorCode", "") for detail in error.get("details", []) if isinstance(detail, dict)
        }
        if codes & GONE_CODES:
            return TokenGone(reason=sorted(codes & GONE_CODES)[0])
        if status == 400 and "INVALID_ARGUMENT" in codes and "token" in str(error.get("message", "")).lower():
            return TokenGone(reason="INVALID_ARGUMENT token")
        if status == 401:
            # The access token expired or was revoked early: fetch a new one on the retry.
            self._forget_access_token()
            return Retry(reason="401 UNAUTHENTICATED")
        transient = retry_for_status(status, response.headers.get("Retry-After"), error.get("status", ""))
        return transient or Failed(reason=f"{status} {error.get('status', '')}".strip())


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}
