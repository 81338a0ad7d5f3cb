"""PAYMENTS_BACKEND=http: the adapter a real provider (Stripe, Alipay, WeChat Pay) plugs into.

It speaks the common shape of those APIs (docs/payments.md has the wire format):

- `POST {PAYMENTS_HTTP_URL}/v1/payments` with `Authorization: Bearer <key>` and
  `Idempotency-Key: <top-up id>`, body `{"amount", "currency", "reference",
  "description"}` -> `{"id", "status": "pending|succeeded|failed", "amount",
  "currency", "next_action"?, "failure_reason"?}`. A repeat with the same key
  returns the same payment, so a timeout is retried safely.
- `GET {PAYMENTS_HTTP_URL}/v1/payments?reference=<top-up id>` or `/v1/payments/{id}`: the same shape.
- Webhooks: `POST /api/v1/payments/webhooks/http` with
  `Payments-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`
  (several `v1` while a secret rotates), body `{"id": "<event id>", "type":
  "payment.succeeded|payment.failed", "data": <payment>}`. Signatures older
  than PAYMENTS_WEBHOOK_TOLERANCE_SECONDS are refused (replays).

A vendor whose API differs gets its own adapter with these three methods.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from payments.providers.base import (
    InvalidWebhook,
    PaymentRequest,
    PaymentState,
    ProviderUnavailable,
    WebhookEvent,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "payments-signature"
STATUSES = {"pending", "succeeded", "failed"}
EVENT_TYPES = {"payment.succeeded": "succeeded", "payment.failed": "failed"}


def signature_header(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    """`t=<unix>,v1=<hex>`: what the provider sends (and what tests and stand-ins sign with)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def _strict_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _payment_state(data: Any) -> PaymentState:
    """The provider's payment JSON -> PaymentState; ValueError when it is not that shape."""
    if not isinstance(data, dict):
        raise ValueError("payment is not an object")
    reference, status = data.get("id"), data.get("status")
    amount, currency = _strict_int(data.get("amount")), data.get("currency")
    if not isinstance(reference, str) or not reference or len(reference) > 128:
        raise ValueError("payment id missing")
    if status not in STATUSES or amount is None or not isinstance(currency, str):
        raise ValueError("payment status, amount or currency missing")
    next_action = data.get("next_action")
    failure = data.get("failure_reason")
    return PaymentState(reference=reference, status=status, amount=amount, currency=currency.upper(),
                        next_action=next_action if isinstance(next_action, dict) else None,
                        failure_reason=failure[:200] if isinstance(failure, str) else "")


class HttpProvider:
    name = "http"

    def __init__(self) -> None:
        self.url = settings.PAYMENTS_HTTP_URL.rstrip("/")
        self.api_key = settings.PAYMENTS_HTTP_API_KEY
        self.secrets = [s for s in settings.PAYMENTS_HTTP_WEBHOOK_SECRETS if s]
        if not self.url or not self.api_key or not self.secrets:
            raise ImproperlyConfigured("PAYMENTS_BACKEND=http needs PAYMENTS_HTTP_URL, PAYMENTS_HTTP_API_KEY "
                                       "and PAYMENTS_HTTP_WEBHOOK_SECRETS")
        self.client = httpx.Client(timeout=settings.PAYMENTS_HTTP_TIMEOUT_SECONDS,
                                   headers={"Authorization": f"Bearer {self.api_key}"})

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, f"{self.url}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderUnavailable(f"provider answered {response.status_code}")
        if response.status_code in (401, 403):
            # Our credentials are wrong: loud in the logs, and nothing a user can fix by retrying now.
            logger.error("payment provider refused our credentials (%s)", response.status_code)
            raise ProviderUnavailable("provider refused our credentials")
        return response

    def payment_create(self, request: PaymentRequest) -> PaymentState:
        body = {"amount": request.amount, "currency": request.currency, "reference": request.topup_id,
                "description": request.description}
        response = self._call("POST", "/v1/payments", json=body, headers={"Idempotency-Key": request.topup_id})
        if response.status_code >= 400:
            # A refusal of this payment (amount, currency): final for this top-up.
            reason = _error_reason(response)
            return PaymentState(reference=f"refused:{request.topup_id}", status="failed", amount=request.amount,
                                currency=request.currency, failure_reason=reason)
        try:
            return _payment_state(response.json())
        except ValueError as exc:
            raise ProviderUnavailable(f"unexpected answer: {exc}") from exc

    def payment_fetch(self, *, reference: str | None, topup_id: str) -> PaymentState | None:
        if reference:
            response = self._call("GET", f"/v1/payments/{reference}")
        else:
            response = self._call("GET", "/v1/payments", params={"reference": topup_id})
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ProviderUnavailable(f"provider answered {response.status_code}")
        try:
            return _payment_state(response.json())
        except ValueError as exc:
            raise ProviderUnavailable(f"unexpected answer: {exc}") from exc

    def webhook_verify(self, *, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        header = {k.lower(): v for k, v in headers.items()}.get(SIGNATURE_HEADER, "")
        stamp, signatures = None, []
        for part in header.split(",")[:10]:
            name, _, value = part.strip().partition("=")
            if name == "t" and value.isdigit() and len(value) <= 12:
                stamp = int(value)
            elif name == "v1" and len(value) == 64:
                signatures.append(value)
        if stamp is None or not signatures:
            raise InvalidWebhook("missing or malformed signature header")
        if abs(time.time() - stamp) > settings.PAYMENTS_WEBHOOK_TOLERANCE_SECONDS:
            raise InvalidWebhook("signature timestamp outside the tolerance")
        signed = f"{stamp}.".encode() + body
        expected = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in self.secrets]
        if not any(hmac.compare_digest(e, s) for e in expected for s in signatures):
            raise InvalidWebhook("signature does not match")
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidWebhook("body is not JSON") from exc
        if not isinstance(event, dict):
            raise InvalidWebhook("body is not an object")
        event_id, event_type, data = event.get("id"), event.get("type"), event.get("data")
        if not isinstance(event_id, str) or not event_id or len(event_id) > 128 or not isinstance(event_type, str):
            raise InvalidWebhook("event id or type missing")
        try:
            payment = _payment_state(data)
        except ValueError as exc:
            raise InvalidWebhook(str(exc)) from exc
        topup_id = data.get("reference") if isinstance(data.get("reference"), str) else None
        return WebhookEvent(event_id=event_id, type=event_type[:64], payment=payment, topup_id=topup_id)


def _error_reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"refused ({response.status_code})"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:200]
    return f"refused ({response.status_code})"
