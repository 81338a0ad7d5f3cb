"""The one shape every payment provider speaks.

A provider is asked to collect a top-up (`payment_create`), asked later how a
payment stands (`payment_fetch`, for the reconcile sweep when a webhook was
lost), and tells us about payments through signed webhooks
(`webhook_verify`). Adapters never touch the database: the services decide
what an answer does to a top-up and to the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

PaymentStatus = Literal["pending", "succeeded", "failed"]


@dataclass(frozen=True)
class PaymentRequest:
    topup_id: str
    amount: int
    currency: str
    # What the user's statement at the provider says.
    description: str = "Wallet top-up"


@dataclass(frozen=True)
class PaymentState:
    """How the provider sees a payment."""

    reference: str
    status: PaymentStatus
    amount: int
    currency: str
    # What the client does next to pay (checkout URL, client secret); None when nothing.
    next_action: dict[str, Any] | None = None
    failure_reason: str = ""


@dataclass(frozen=True)
class WebhookEvent:
    """A verified notification from the provider about one payment."""

    event_id: str
    type: str
    payment: PaymentState
    # Our top-up id as the provider echoes it back (set at creation).
    topup_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered with a transient error; try again later."""


class InvalidWebhook(Exception):
    """A webhook whose signature, timestamp or body does not check out."""


class PaymentProvider(Protocol):
    name: str

    def payment_create(self, request: PaymentRequest) -> PaymentState:
        """Ask the provider to collect `request`; idempotent by `request.topup_id`
        (a repeat returns the same payment). Raises ProviderUnavailable."""
        ...

    def payment_fetch(self, *, reference: str | None, topup_id: str) -> PaymentState | None:
        """The provider's view of a payment (None: it has never heard of it). Raises ProviderUnavailable."""
        ...

    def webhook_verify(self, *, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Check the signature and parse the event. Raises InvalidWebhook."""
        ...
