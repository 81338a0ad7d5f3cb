"""PAYMENTS_BACKEND=test: approves every top-up at once, collects no money.

For development, tests and benchmarks only, like OTP test numbers: it is off
unless the setting names it, and the system check `payments.W001` warns when
it is on outside DEBUG.
"""

from __future__ import annotations

from collections.abc import Mapping

from payments.providers.base import InvalidWebhook, PaymentRequest, PaymentState, WebhookEvent


class TestProvider:
    name = "test"

    def payment_create(self, request: PaymentRequest) -> PaymentState:
        return PaymentState(reference=f"test_{request.topup_id}", status="succeeded", amount=request.amount,
                            currency=request.currency)

    def payment_fetch(self, *, reference: str | None, topup_id: str) -> PaymentState | None:
        return None  # every test payment succeeded when it was created

    def webhook_verify(self, *, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise InvalidWebhook("the test provider sends no webhooks")
