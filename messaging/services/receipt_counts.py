"""Coalesced receipts for groups too big for per-member ones (issue 19, item 2b).

Groups above MESSAGING_INLINE_FANOUT_MAX (and up to MESSAGING_GROUP_MAX_MEMBERS) get no
per-member `receipt.*` events: one read there would mean an event per member. Instead the
ack/read path (never the send path) notes in Redis which seq range of which conversation
moved (`note_moved`), and the first note of a window schedules `messaging.receipt_counts`
after MESSAGING_RECEIPT_COUNTS_WINDOW seconds. The task sends each sender of a message in
the range one `receipt.delivered` and/or one `receipt.read` with counts:
`{"conversation_id", "message_id", "seq", "delivered_count", "read_count"}` (no `user_id`),
however many members moved in the window. At most the newest
MESSAGING_RECEIPT_COUNTS_MAX_MESSAGES messages of a range get one. Redis down: the counts
of that window are lost (GET /messages/{id}/receipts still answers), never the ack/read.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q

from messaging import events
from messaging.models import Conversation, ConversationType, Membership, Message
from streams.services import PendingEvent, stream_append

log = logging.getLogger(__name__)

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return _client


def counted(conversation: Conversation) -> bool:
    """Groups that get coalesced counts instead of per-member receipts."""
    return (conversation.type == ConversationType.GROUP
            and settings.MESSAGING_INLINE_FANOUT_MAX < conversation.member_count
            <= settings.MESSAGING_GROUP_MAX_MEMBERS)


def note_moved(*, conversation_id: str, kind: str, after: int, upto: int) -> None:
    """A member's `kind` ("delivered"/"read") pointer moved from `after` to `upto`. Call inside
    the transaction that moved it; the note is written after commit."""
    if not settings.REDIS_URL or upto <= after:
        return

    def write() -> None:
        key = f"rcpt:{conversation_id}:{kind}"
        try:
            pipe = _redis().pipeline()
            pipe.zadd(key, {f"{after}:{upto}": upto})
            pipe.expire(key, 3600)
            pipe.set(f"rcpt:{conversation_id}:scheduled", 1, nx=True, ex=settings.MESSAGING_RECEIPT_COUNTS_WINDOW)
            first = pipe.execute()[2]
        except redis.RedisError:
            log.warning("receipt counts: Redis unavailable, this window's counts are skipped")
            return
        if first:
            from messaging.tasks import receipt_counts

            receipt_counts.apply_async((conversation_id,), countdown=settings.MESSAGING_RECEIPT_COUNTS_WINDOW)

    transaction.on_commit(write)


def _take(conversation_id: str, kind: str) -> tuple[int, int] | None:
    key = f"rcpt:{conversation_id}:{kind}"
    pipe = _redis().pipeline()  # MULTI: read and clear at once, so no note is lost or counted twice
    pipe.zrange(key, 0, -1)
    pipe.delete(key)
    ranges = [tuple(int(x) for x in raw.decode().split(":")) for raw in pipe.execute()[0]]
    if not ranges:
        return None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def receipt_counts_flush(*, conversation_id: str) -> int:
    """Send the window's coalesced receipts of one conversation; returns how many events.
    Best effort: the notes are taken from Redis before the events are appended, so a crash
    in between loses that window's counts (the next movement sends fresh ones)."""
    if not settings.REDIS_URL:
        return 0
    _redis().delete(f"rcpt:{conversation_id}:scheduled")  # notes from now on open a new window
    moved = {kind: _take(conversation_id, kind) for kind in ("delivered", "read")}
    moved = {kind: r for kind, r in moved.items() if r}
    if not moved:
        return 0
    lo, hi = min(r[0] for r in moved.values()), max(r[1] for r in moved.values())
    lo = max(lo, hi - settings.MESSAGING_RECEIPT_COUNTS_MAX_MESSAGES)
    messages = list(Message.objects.filter(conversation_id=conversation_id, seq__gt=lo, seq__lte=hi,
                                           deleted_at__isnull=True)
                    .values_list("pk", "seq", "sender_id", "created_at"))
    pending = []
    for message_id, seq, sender_id, created_at in messages:
        counts = (Membership.objects.filter(conversation_id=conversation_id, joined_at__lte=created_at)
                  .filter(Q(left_seq__isnull=True) | Q(left_seq__gte=seq)).exclude(user_id=sender_id)
                  .aggregate(delivered=Count("pk", filter=Q(delivered_seq__gte=seq)),
                             read=Count("pk", filter=Q(read_seq__gte=seq, user__read_receipts=True))))
        data = {"conversation_id": conversation_id, "message_id": str(message_id), "seq": seq,
                "delivered_count": counts["delivered"], "read_count": counts["read"]}
        for kind, event_type in (("delivered", events.RECEIPT_DELIVERED), ("read", events.RECEIPT_READ)):
            if kind in moved and moved[kind][0] < seq <= moved[kind][1]:
                pending.append(PendingEvent(str(sender_id), event_type, data))
    with transaction.atomic():
        stream_append(pending)
    return len(pending)
