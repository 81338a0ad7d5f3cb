"""Reads for red packets: a packet as its viewers see it, exports, and the ledger reconciliation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from core.errors import NotFound
from core.serializers import timestamp
from messaging.models import Membership
from payments.models import AccountKind, TransactionKind
from payments.selectors import system_balance
from redpackets import events
from redpackets.models import Packet, Refund, Share


def _as_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def is_current_member(*, user_id: object, conversation_id: object) -> bool:
    return Membership.objects.filter(conversation_id=conversation_id, user_id=user_id, left_at__isnull=True).exists()


def packet_get_for_viewer(*, user_id: object, packet_id: object) -> Packet:
    """The packet, for its sender or a current member of its conversation; NotFound for anyone else."""
    pk = _as_uuid(packet_id)
    packet = Packet.objects.select_related("conversation").filter(pk=pk).first() if pk else None
    if packet is None:
        raise NotFound()
    if packet.sender_id != user_id and not is_current_member(user_id=user_id, conversation_id=packet.conversation_id):
        raise NotFound()
    return packet


# Raw SQL: the claim path runs this once per press, and compiling the equivalent ORM query
# (three correlated subqueries) cost several times its execution.
_FOR_CLAIM = (
    "SELECT p.id, p.sender_id, p.conversation_id, p.total, p.count, p.mode, p.currency, p.expires_at, "
    "c.type AS conversation_type, "
    "EXISTS (SELECT 1 FROM messaging_membership m WHERE m.conversation_id = p.conversation_id "
    "AND m.user_id = %s AND m.left_at IS NULL) AS is_member, "
    "(SELECT s.amount FROM redpackets_share s WHERE s.packet_id = p.id AND s.claimed_by_id = %s) AS claimed_amount, "
    "EXISTS (SELECT 1 FROM accounts_device d WHERE d.user_id = p.sender_id AND d.revoked_at IS NULL "
    "AND d.push_token <> '') AS sender_pushable "
    "FROM redpackets_packet p JOIN messaging_conversation c ON c.id = p.conversation_id WHERE p.id = %s"
)


def packet_for_claim(*, user_id: object, packet_id: object) -> Packet:
    """The packet for a claim, in one query, with `conversation_type`, `is_member` (the claimer is
    a current member), `claimed_amount` (their share, if any) and `sender_pushable`; NotFound for
    anyone but its sender or a current member."""
    pk = _as_uuid(packet_id)
    packet = None
    if pk is not None:
        user = Packet._meta.get_field("sender").get_db_prep_value(user_id, connection)
        packet = next(iter(Packet.objects.raw(
            _FOR_CLAIM, [user, user, Packet._meta.pk.get_db_prep_value(pk, connection)])), None)
    if packet is None or (packet.sender_id != user_id and not packet.is_member):
        raise NotFound()
    return packet


def packet_detail(*, packet: Packet) -> dict[str, Any]:
    """The packet with its claims (two queries: shares, refund)."""
    shares = list(Share.objects.filter(packet=packet).order_by("index"))
    refunded = Refund.objects.filter(packet=packet).values_list("amount", flat=True).first()
    return events.packet_public(packet, shares, now=timezone.now(), refunded_amount=refunded)


def packet_detail_for_viewer(*, user_id: object, packet_id: object) -> dict[str, Any]:
    return packet_detail(packet=packet_get_for_viewer(user_id=user_id, packet_id=packet_id))


# --- Export ---------------------------------------------------------------------------------------


def packets_sent(*, user_id: object, chunk_size: int = 500) -> Iterator[dict[str, Any]]:
    """Every packet the user sent, oldest first, with its claims (who got how much) and refund."""
    now = timezone.now()
    packets = Packet.objects.filter(sender_id=user_id).order_by("created_at", "pk")
    for packet in packets.iterator(chunk_size=chunk_size):
        shares = list(Share.objects.filter(packet=packet).order_by("index"))
        refunded = Refund.objects.filter(packet=packet).values_list("amount", flat=True).first()
        yield events.packet_public(packet, shares, now=now, refunded_amount=refunded)


def packets_claimed(*, user_id: object, chunk_size: int = 2000) -> Iterator[dict[str, Any]]:
    """Every share the user claimed, oldest first: {red_packet_id, sender_id, conversation_id, amount, claimed_at}."""
    rows = (Share.objects.filter(claimed_by_id=user_id).select_related("packet").order_by("claimed_at", "pk")
            .iterator(chunk_size=chunk_size))
    for share in rows:
        yield {"red_packet_id": str(share.packet_id), "sender_id": str(share.packet.sender_id),
               "conversation_id": str(share.packet.conversation_id), "amount": share.amount,
               "currency": share.packet.currency, "greeting": share.packet.greeting,
               "claimed_at": timestamp(share.claimed_at)}


# --- Reconciliation with the ledger (PAYMENTS_LEDGER_CHECKS) ---------------------------------------


def _in_flight_by_kind(currency: str) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.kind, SUM(e.amount) FROM payments_entry e "
            "JOIN payments_account a ON a.id = e.account_id JOIN payments_transaction t ON t.id = e.transaction_id "
            "WHERE a.kind = %s AND a.currency = %s AND a.user_id IS NULL GROUP BY t.kind",
            [AccountKind.PACKETS_IN_FLIGHT, currency],
        )
        return {kind: int(total) for kind, total in cursor.fetchall()}


def ledger_reconcile() -> list[str]:
    """The packets agree with the ledger: problems as text (ids only), [] when they do.

    - each packet's shares are `count` shares summing to its total, each claimed or refunded at most once;
    - money into "packets in flight" equals the packets sent; out of it, the shares claimed and refunded;
    - what is in flight now equals the open (unclaimed, unrefunded) shares.
    """
    problems: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id FROM redpackets_packet p LEFT JOIN redpackets_share s ON s.packet_id = p.id "
            "GROUP BY p.id HAVING COALESCE(SUM(s.amount), 0) <> p.total OR count(s.id) <> p.count LIMIT 50"
        )
        problems += [f"red packet {row[0]}: its shares do not add up to its total and count"
                     for row in cursor.fetchall()]
        cursor.execute(
            "SELECT r.packet_id FROM redpackets_refund r JOIN redpackets_share s ON s.packet_id = r.packet_id "
            "AND s.refunded_at IS NOT NULL GROUP BY r.packet_id, r.amount HAVING SUM(s.amount) <> r.amount LIMIT 50"
        )
        problems += [f"red packet {row[0]}: its refund differs from its refunded shares" for row in cursor.fetchall()]
    currency = settings.PAYMENTS_CURRENCY
    flows = _in_flight_by_kind(currency)
    packets = Packet.objects.filter(currency=currency)
    shares = Share.objects.filter(packet__currency=currency)
    sent = packets.aggregate(total=Sum("total"))["total"] or 0
    claimed = shares.filter(claimed_by__isnull=False).aggregate(total=Sum("amount"))["total"] or 0
    refunded = shares.filter(refunded_at__isnull=False).aggregate(total=Sum("amount"))["total"] or 0
    open_now = shares.filter(claimed_by__isnull=True, refunded_at__isnull=True).aggregate(total=Sum("amount"))["total"]
    expected = {TransactionKind.RED_PACKET_SEND: sent, TransactionKind.RED_PACKET_CLAIM: -claimed,
                TransactionKind.RED_PACKET_REFUND: -refunded}
    for kind, amount in expected.items():
        if flows.get(kind, 0) != amount:
            problems.append(f"packets in flight ({currency}): {kind} entries sum to {flows.get(kind, 0)}, "
                            f"the packets say {amount}")
    in_flight = system_balance(kind=AccountKind.PACKETS_IN_FLIGHT, currency=currency)
    if in_flight != (open_now or 0):
        problems.append(f"packets in flight ({currency}) holds {in_flight}, open shares sum to {open_now or 0}")
    return problems
