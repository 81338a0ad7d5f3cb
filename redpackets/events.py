"""Event payloads and public shapes of red packets: plain JSON types, built here only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from core.serializers import timestamp
from redpackets.models import EMPTY, EXPIRED, OPEN, Packet, Share

RED_PACKET_CLAIMED = "red_packet.claimed"
RED_PACKET_REFUNDED = "red_packet.refunded"


def message_content(packet: Packet) -> dict[str, Any]:
    """The `red_packet` message's payload, as the contract gives it."""
    return {"red_packet": {"id": str(packet.pk), "total": packet.total, "count": packet.count, "mode": packet.mode,
                           "greeting": packet.greeting}}


def claimed(*, packet: Packet, user_id: object, amount: int, claimed_at: datetime) -> dict[str, Any]:
    """To the sender: someone opened their packet."""
    return {"red_packet_id": str(packet.pk), "conversation_id": str(packet.conversation_id),
            "user_id": str(user_id), "amount": amount, "claimed_at": timestamp(claimed_at)}


def refunded(*, packet: Packet, amount: int, refunded_at: datetime) -> dict[str, Any]:
    """To the sender: what nobody claimed went back to their wallet."""
    return {"red_packet_id": str(packet.pk), "conversation_id": str(packet.conversation_id), "amount": amount,
            "refunded_at": timestamp(refunded_at)}


def packet_public(packet: Packet, shares: Iterable[Share], *, now: datetime,
                  refunded_amount: int | None) -> dict[str, Any]:
    """The contract's packet shape plus extensions (mode, greeting, currency, conversation, times, refund).

    `best_luck_user_id` (手气最佳) is named once every share is claimed: the
    largest share, the earliest claim among equals.
    """
    claims = sorted((s for s in shares if s.claimed_by_id), key=lambda s: (s.claimed_at, s.index))
    claimed_total = sum(s.amount for s in claims)
    if len(claims) >= packet.count:
        status = EMPTY
    elif now >= packet.expires_at:
        status = EXPIRED
    else:
        status = OPEN
    best = None
    if status == EMPTY and claims:
        best = str(max(claims, key=lambda s: (s.amount, -s.claimed_at.timestamp(), -s.index)).claimed_by_id)
    return {
        "id": str(packet.pk),
        "sender_id": str(packet.sender_id),
        "conversation_id": str(packet.conversation_id),
        "total": packet.total,
        "count": packet.count,
        "mode": packet.mode,
        "greeting": packet.greeting,
        "currency": packet.currency,
        "remaining": packet.total - claimed_total,
        "remaining_count": packet.count - len(claims),
        "status": status,
        "claims": [{"user_id": str(s.claimed_by_id), "amount": s.amount, "claimed_at": timestamp(s.claimed_at)}
                   for s in claims],
        "best_luck_user_id": best,
        "refunded": refunded_amount,
        "created_at": timestamp(packet.created_at),
        "expires_at": timestamp(packet.expires_at),
    }
