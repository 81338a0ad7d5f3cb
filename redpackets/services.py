"""Writes for red packets: send, claim, refund.

Money moves only through `payments.services.ledger_post`, inside the same
transaction as the packet change it pays for, with the change's events.

Claims under contention. The shares are drawn at send time and stored; a
claim takes the open share with the lowest index using
`SELECT ... FOR UPDATE SKIP LOCKED`, so a thousand concurrent claimers each
lock a different row (or none) and nobody queues behind a packet-wide lock or
retries. When that finds nothing, every open share is held by a claim in
flight: the claim looks once more *with* waiting, passes over the shares
whose claims commit, and takes one whose claim rolls back (the same user's
other device, a crash), so nobody is told "empty" while a share is still to
be had. Nobody claims twice: (packet, claimed_by) is unique, so of
two devices of one user claiming at once, the second waits for the first and
then returns the first's amount.

Lock order, the same in every transaction: share rows (packet row first for a
refund), then wallet rows (by user id, in ledger_post), then the conversation
row (message_post), then stream counters (by user id, in one stream_append).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from redis.exceptions import RedisError

from accounts.models import Device, User
from core.errors import ApplicationError, Conflict, Forbidden, NotFound, ValidationFailed
from core.sunset import ensure_writable
from messaging.models import ConversationType, Role
from messaging.selectors import conversation_get_for_member
from messaging.services import message_post
from payments.models import AccountKind, TransactionKind
from payments.services import Leg, ledger_post
from redpackets import events
from redpackets.models import Packet, PacketMode, Refund, Share
from redpackets.selectors import packet_detail, packet_for_claim
from redpackets.split import split_fixed, split_random
from streams.services import PendingEvent, stream_append

logger = logging.getLogger(__name__)


class RedPacketEmpty(ApplicationError):
    status = 410
    code = "red_packet_empty"
    default_message = "Every share of this red packet has been claimed."


class RedPacketExpired(ApplicationError):
    status = 410
    code = "red_packet_expired"
    default_message = "This red packet has expired; what was left went back to its sender."


# --- Sending -------------------------------------------------------------------------------------


def _check_limits(*, total: int, count: int, mode: str, greeting: str) -> None:
    errors: dict[str, list[str]] = {}
    if total > settings.RED_PACKET_MAX_TOTAL:
        errors["total"] = [f"At most {settings.RED_PACKET_MAX_TOTAL} cents per red packet."]
    elif total < count:
        errors["total"] = ["Every share needs at least 1 cent: the total must be at least the count."]
    elif mode == PacketMode.FIXED and total % count:
        errors["total"] = ["A fixed red packet's total must be a multiple of its count (equal shares)."]
    if count > settings.RED_PACKET_MAX_COUNT:
        errors["count"] = [f"At most {settings.RED_PACKET_MAX_COUNT} shares."]
    if len(greeting) > settings.RED_PACKET_GREETING_MAX:
        errors["greeting"] = [f"At most {settings.RED_PACKET_GREETING_MAX} characters."]
    if errors:
        raise ValidationFailed(details=errors)


def packet_send(*, sender: User, conversation_id: object, client_id: uuid.UUID, total: int, count: int,
                mode: str, greeting: str = "") -> tuple[dict[str, Any], bool]:
    """Send a red packet: (packet, created).

    In one transaction: the packet and its shares, the debit of the sender's
    wallet into "packets in flight" (409 `insufficient_funds` and nothing
    written when the balance is short), the `red_packet` message in the
    conversation, and `wallet.updated`. A retry with the same client_id
    returns the first packet, whatever the body says.
    """
    ensure_writable("red_packet.send")
    existing = Packet.objects.filter(sender=sender, client_id=client_id).first()
    if existing is not None:
        return packet_detail(packet=existing), False
    _check_limits(total=total, count=count, mode=mode, greeting=greeting)
    membership = conversation_get_for_member(user_id=sender.pk, conversation_id=conversation_id)
    conversation = membership.conversation
    if conversation.type == ConversationType.DIRECT and count != 1:
        raise ValidationFailed(details={"count": ["A red packet in a direct conversation has exactly 1 share."]})
    if conversation.type == ConversationType.BROADCAST and membership.role not in (Role.OWNER, Role.ADMIN):
        raise Forbidden("Only admins post in a broadcast.")
    if conversation.type != ConversationType.DIRECT and count > conversation.member_count:
        raise ValidationFailed(details={"count": [f"At most one share per member ({conversation.member_count})."]})
    amounts = split_fixed(total, count) if mode == PacketMode.FIXED else split_random(total, count)
    now = timezone.now()
    packet = Packet(sender=sender, conversation_id=conversation.pk, client_id=client_id, mode=mode, total=total,
                    count=count, greeting=greeting, currency=settings.PAYMENTS_CURRENCY, created_at=now,
                    expires_at=now + settings.RED_PACKET_EXPIRY)
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    packet.save(force_insert=True)
            except IntegrityError:
                raise _Raced() from None
            posting = ledger_post(
                kind=TransactionKind.RED_PACKET_SEND, key=f"red_packet:{packet.pk}:send", red_packet_id=packet.pk,
                now=now, legs=[Leg.wallet(sender.pk, -total), Leg.account(AccountKind.PACKETS_IN_FLIGHT, total)],
            )
            Share.objects.bulk_create([Share(packet=packet, index=i, amount=a) for i, a in enumerate(amounts)])
            _, posted = message_post(sender_id=sender.pk, conversation_id=conversation.pk, type="red_packet",
                                     content=events.message_content(packet), client_id=client_id)
            if not posted:
                raise Conflict("This client_id was already used for another message.",
                               details={"client_id": ["Already used for another message."]})
            # After message_post: it locked the members' stream counters (the sender's among them) in order.
            stream_append(posting.wallet_events())
    except _Raced:
        # A concurrent send of the same client_id committed first: answer with it.
        return packet_detail(packet=Packet.objects.get(sender=sender, client_id=client_id)), False
    return packet_detail(packet=packet), True


class _Raced(Exception):
    pass


# --- Claiming ------------------------------------------------------------------------------------


_OPEN_SHARES = "FROM redpackets_share WHERE packet_id = %s AND claimed_by_id IS NULL AND refunded_at IS NULL"
_FREE_SHARE = f"SELECT id, amount {_OPEN_SHARES} ORDER BY index LIMIT 1 FOR UPDATE SKIP LOCKED"
_BUSY_SHARE = f"SELECT id {_OPEN_SHARES} ORDER BY index LIMIT 1"
_STILL_OPEN = ("SELECT id, amount FROM redpackets_share WHERE id = %s AND claimed_by_id IS NULL "
               "AND refunded_at IS NULL FOR UPDATE")


def _take_share(packet_id: uuid.UUID) -> tuple[int, int] | None:
    """Lock an open share: (id, amount), or None when none is left.

    First without waiting (SKIP LOCKED: each concurrent claimer gets its own
    row). If every open share is locked by a claim in flight, wait for one of
    those claims to end and look again: when it commits the row is no longer
    open; when it rolls back (a duplicate device, a crash) the share is ours.
    The wait locks one row by its id inside a savepoint that is rolled back when
    the row turns out claimed: a waiter never holds the lock of a share it did
    not get. (One `ORDER BY ... LIMIT 1 FOR UPDATE` that waits keeps its locks on
    the rows it passed over, and a crowd of such waiters deadlocked each other.)
    """
    packet_id = Packet._meta.pk.get_db_prep_value(packet_id, connection)
    if not connection.features.has_select_for_update:
        # SQLite (make run): write transactions are serialised whole, so the first open share is ours.
        row = (Share.objects.filter(packet_id=packet_id, claimed_by__isnull=True, refunded_at__isnull=True)
               .order_by("index").values_list("id", "amount").first())
        return (row[0], row[1]) if row else None
    with connection.cursor() as cursor:
        while True:
            cursor.execute(_FREE_SHARE, [packet_id])
            if row := cursor.fetchone():
                return row[0], row[1]
            cursor.execute(_BUSY_SHARE, [packet_id])
            if (busy := cursor.fetchone()) is None:
                return None  # every share is claimed (or refunded)
            with transaction.atomic():  # a savepoint
                cursor.execute(_STILL_OPEN, [busy[0]])
                if row := cursor.fetchone():
                    return row[0], row[1]  # its claim rolled back: ours, locked
                transaction.set_rollback(True)  # claimed meanwhile: let go of the row's lock, look again


def _claimed_amount(packet_id: uuid.UUID, user_id: object) -> int | None:
    return Share.objects.filter(packet_id=packet_id, claimed_by_id=user_id).values_list("amount", flat=True).first()


# Once a claim has seen every share claimed (after waiting for the claims in flight), the
# packet is empty for good: later claimers are told so from the cache, without a transaction.
# PostgreSQL stays the truth: the flag is only ever set from its answer, and a missing flag
# (evicted, Redis down) only costs the database round trips it saves.
def _empty_key(packet_id: object) -> str:
    return f"redpackets:empty:{packet_id}"


def _known_empty(packet_id: object) -> bool:
    try:
        return bool(cache.get(_empty_key(packet_id)))
    except RedisError:
        return False


def _remember_empty(packet: Packet) -> None:
    ttl = int((packet.expires_at - timezone.now()).total_seconds()) + 3600
    try:
        cache.set(_empty_key(packet.pk), 1, timeout=max(ttl, 60))
    except RedisError:
        logger.warning("could not remember that red packet %s is empty (cache down)", packet.pk)


def packet_claim(*, user: User, packet_id: object) -> tuple[int, bool]:
    """Claim a share: (amount, claimed now). The same amount again on every later call.

    410 `red_packet_expired` after expiry, 410 `red_packet_empty` when every
    share is taken; 404 for anyone but a current member; 403 for the sender of
    a direct conversation's packet. The claim, the credit to the claimer's
    wallet, `red_packet.claimed` (to the sender) and `wallet.updated` (to the
    claimer) commit together or not at all.
    """
    ensure_writable("red_packet.claim")
    packet = packet_for_claim(user_id=user.pk, packet_id=packet_id)  # one query: packet, membership, own claim
    if not packet.is_member:
        raise NotFound()  # a sender who left the group still sees the packet, but claims no share
    if packet.sender_id == user.pk and packet.conversation_type == ConversationType.DIRECT:
        raise Forbidden("The sender of a red packet in a direct conversation cannot claim it.")
    if packet.claimed_amount is not None:
        return packet.claimed_amount, False
    if timezone.now() >= packet.expires_at:
        raise _finished_error(packet)
    if _known_empty(packet.pk):
        raise RedPacketEmpty()
    with transaction.atomic():
        taken = _take_share(packet.pk)
        if taken is None:
            amount = _claimed_amount(packet.pk, user.pk)  # our other device may have won meanwhile
            if amount is not None:
                return amount, False
            error = _finished_error(packet)
            if isinstance(error, RedPacketEmpty):
                _remember_empty(packet)
            raise error
        share_id, amount = taken
        claimed_at = timezone.now()
        if claimed_at >= packet.expires_at:
            raise RedPacketExpired()
        try:
            with transaction.atomic():
                Share.objects.filter(pk=share_id).update(claimed_by=user, claimed_at=claimed_at)
        except IntegrityError:
            # Our other device claimed first (we waited for it to commit): its amount is the answer.
            return _claimed_amount(packet.pk, user.pk), False
        posting = ledger_post(
            kind=TransactionKind.RED_PACKET_CLAIM, key=f"red_packet_share:{share_id}:claim", red_packet_id=packet.pk,
            now=claimed_at, legs=[Leg.account(AccountKind.PACKETS_IN_FLIGHT, -amount), Leg.wallet(user.pk, amount)],
        )
        stream_append([
            PendingEvent(packet.sender_id, events.RED_PACKET_CLAIMED,
                         events.claimed(packet=packet, user_id=user.pk, amount=amount, claimed_at=claimed_at)),
            *posting.wallet_events(),
        ])
        if packet.sender_id != user.pk and packet.sender_pushable:
            _push(user_id=packet.sender_id, kind=events.RED_PACKET_CLAIMED, packet=packet,
                  body=f"{user.display_name or 'Someone'} opened your red packet",
                  dedupe_key=f"{events.RED_PACKET_CLAIMED}:{share_id}", checked=True)
    return amount, True


def _finished_error(packet: Packet) -> ApplicationError:
    """Expired while shares were open (or refunded), else empty."""
    if timezone.now() >= packet.expires_at and Share.objects.filter(packet=packet, claimed_by__isnull=True).exists():
        return RedPacketExpired()
    return RedPacketEmpty()


def _push(*, user_id: object, kind: str, packet: Packet, body: str, dedupe_key: str, checked: bool = False) -> None:
    """Push to the sender's offline devices after commit (only if they have a push device at all;
    `checked`: the caller knows they do)."""
    if not settings.RED_PACKET_PUSH:
        return
    if not checked and not (Device.objects.filter(user_id=user_id, revoked_at__isnull=True)
                            .exclude(push_token="").exists()):
        return
    import_string(settings.RED_PACKET_PUSH)(
        user_id=str(user_id), kind=kind, title="Red packet", body=body, conversation_id=str(packet.conversation_id),
        collapse_key=f"red_packet:{packet.pk}", data={"red_packet_id": str(packet.pk)}, dedupe_key=dedupe_key,
    )


# --- Expiry and refund ---------------------------------------------------------------------------


def _money(amount: int, currency: str) -> str:
    return f"{amount // 100}.{amount % 100:02d} {currency}"


def packet_refund(*, packet_id: object, now: datetime | None = None) -> int | None:
    """Settle an expired packet: what nobody claimed goes back to the sender, once.

    Returns the amount refunded (0 when everything was claimed), or None when
    there is nothing to do (not expired yet, or settled before). Safe to run
    any number of times, concurrently too: the packet row lock serialises
    runs, the settled mark and the unique refund row make later runs no-ops,
    and the share row locks exclude claims still in flight.
    """
    now = now or timezone.now()
    with transaction.atomic():
        packet = Packet.objects.select_for_update(of=("self",)).filter(pk=packet_id).first()
        if packet is None or packet.settled_at is not None or now < packet.expires_at:
            return None
        open_shares = list(Share.objects.select_for_update()
                           .filter(packet=packet, claimed_by__isnull=True, refunded_at__isnull=True)
                           .order_by("index").values_list("id", "amount"))
        packet.settled_at = now
        packet.save(update_fields=["settled_at"])
        amount = sum(row[1] for row in open_shares)
        if not amount:
            return 0
        Share.objects.filter(pk__in=[row[0] for row in open_shares]).update(refunded_at=now)
        Refund.objects.create(packet=packet, amount=amount, created_at=now)
        posting = ledger_post(
            kind=TransactionKind.RED_PACKET_REFUND, key=f"red_packet:{packet.pk}:refund", red_packet_id=packet.pk,
            now=now, legs=[Leg.account(AccountKind.PACKETS_IN_FLIGHT, -amount), Leg.wallet(packet.sender_id, amount)],
        )
        stream_append([
            PendingEvent(packet.sender_id, events.RED_PACKET_REFUNDED,
                         events.refunded(packet=packet, amount=amount, refunded_at=now)),
            *posting.wallet_events(),
        ])
        _push(user_id=packet.sender_id, kind=events.RED_PACKET_REFUNDED, packet=packet,
              body=f"{_money(amount, packet.currency)} nobody claimed went back to your wallet",
              dedupe_key=f"{events.RED_PACKET_REFUNDED}:{packet.pk}")
    return amount


def packets_refund_due(*, now: datetime | None = None, limit: int = 500) -> list[str]:
    """Expired, unsettled packets whose refund is not already queued (or whose lease ran out).

    Marks them queued now; the caller enqueues one refund task each. A task
    lost on the way is enqueued again once RED_PACKET_REFUND_LEASE_SECONDS pass.
    """
    now = now or timezone.now()
    lease = now - timedelta(seconds=settings.RED_PACKET_REFUND_LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            Packet.objects.select_for_update(skip_locked=True)
            .filter(settled_at__isnull=True, expires_at__lte=now)
            .filter(Q(refund_enqueued_at__isnull=True) | Q(refund_enqueued_at__lt=lease))
            .order_by("expires_at").values_list("pk", flat=True)[:limit]
        )
        Packet.objects.filter(pk__in=ids).update(refund_enqueued_at=now)
    return [str(pk) for pk in ids]
