"""The one shape every push provider speaks: a message in, an outcome out.

Adapters never raise for a provider's answer: they map it to `Sent`,
`Retry(after)` (transient: 429, 5xx, timeouts), `TokenGone` (the token is
unregistered or invalid and must be removed) or `Failed` (permanent, for this
push only). The delivery service decides what each outcome does to the row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from django.utils import timezone


@dataclass(frozen=True)
class PushMessage:
    device_id: str
    provider: str
    token: str
    kind: str
    conversation_id: str | None
    message_id: str | None
    badge: int
    title: str
    body: str
    # A silent push (muted conversation) carries data and badge, never an alert.
    silent: bool = False
    # How many events this one notification stands for (collapsed window).
    count: int = 1
    collapse_key: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # Calls must ring now; everything else may be delivered at the provider's pace.
    urgent: bool = False
    # An incoming call: APNs VoIP push on the VoIP topic (CallKit), FCM data-only at high
    # priority (the app shows its own full-screen call UI), Web Push urgency high.
    voip: bool = False
    # Seconds the provider may hold the push for a device that is off.
    ttl: int = 86400

    def short_collapse_id(self, limit: int = 64) -> str | None:
        """Providers cap collapse identifiers (APNs 64 bytes, Web Push Topic 32 chars)."""
        if not self.collapse_key:
            return None
        if len(self.collapse_key.encode()) <= limit and self.collapse_key.isascii():
            return self.collapse_key
        return hashlib.sha256(self.collapse_key.encode()).hexdigest()[:limit]

    def data_strings(self) -> dict[str, str]:
        """The data every provider carries, as strings (FCM accepts only string values)."""
        values: dict[str, Any] = {
            **self.data,
            "kind": self.kind,
            "badge": self.badge,
            "count": self.count,
        }
        if self.conversation_id:
            values["conversation_id"] = self.conversation_id
        if self.message_id:
            values["message_id"] = self.message_id
        if self.voip:
            # A ring has no system alert: the app builds its call screen from the data.
            values.update({"title": self.title, "body": self.body})
        return {str(key): str(value) for key, value in values.items()}


@dataclass(frozen=True)
class Sent:
    provider_id: str = ""


@dataclass(frozen=True)
class Retry:
    """Transient failure; `after` is the provider's Retry-After in seconds, when it gave one."""

    reason: str
    after: float | None = None


@dataclass(frozen=True)
class TokenGone:
    reason: str


@dataclass(frozen=True)
class Failed:
    reason: str


Outcome = Sent | Retry | TokenGone | Failed


class PushProviderAdapter(Protocol):
    def send(self, message: PushMessage) -> Outcome: ...


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def retry_for_status(status: int, retry_after: str | None, reason: str) -> Retry | None:
    """The transient HTTP answers every provider shares: 429 and 5xx."""
    if status == 429 or status >= 500:
        return Retry(reason=f"{status} {reason}".strip(), after=parse_retry_after(retry_after))
    return None
