"""Read and delivered pointers (receipts), and the device's ack of its stream.

On PostgreSQL a device's ack is one call of `messaging_ack_batch` (migration 0011),
for one device (`device_ack`, REST's GET /sync) or for every ack a server process
gathered meanwhile (`device_acks_async`, the sockets' ack batch); under SQLite the
ORM path below does the same."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, IntegerField, Subquery, When
from django.db.models.functions import Coalesce, Greatest, Now

from accounts.models import User
from core import asyncdb, metrics
from core.errors import NotFound, ValidationFailed
from messaging import events, integrations
from messaging.models import (
    Conversation,
    DeviceCursor,
    Membership,
    Message,
    MessageHidden,
)
from messaging.selectors import (
    _unread_subquery,
    conversation_get_for_member,
    is_small,
    message_get_for_member,
)
from messaging.services.receipt_counts import counted, note_moved
from streams.cursors import cursor_decode
from streams.encoding import event_frame, json_text
from streams.hub import Events, events_for, hub, ring_now
from streams.hub import key as hub_key
from streams.models import Event
from streams.selectors import stream_head
from streams.services import PendingEvent, stream_append

# --- Read and delivered pointers (receipts) -------------------------------------------------


def conversation_read(*, user: User, conversation_id: object, seq: int) -> None:
    """Move the read pointer forward (never back). Other members of a small
    conversation get `receipt.read` unless the reader turned read receipts off;
    the reader's own devices get `conversation.updated` with the new pointer."""
    with transaction.atomic():
        membership = conversation_get_for_member(user_id=user.pk, conversation_id=conversation_id)
        conversation = membership.conversation
        if seq > conversation.last_seq:
            raise ValidationFailed(details={"seq": [f"Beyond the last message ({conversation.last_seq})."]})
        moved = Membership.objects.filter(pk=membership.pk, read_seq__lt=seq).update(
            read_seq=seq, read_at=Now(), delivered_seq=Greatest(F("delivered_seq"), seq),
            delivered_at=Case(When(delivered_seq__lt=seq, then=Now()), default=F("delivered_at")))
        if not moved:
            return
        old_read, old_delivered = membership.read_seq, membership.delivered_seq
        membership.read_seq = seq
        unread = (Membership.objects.filter(pk=membership.pk)
                  .annotate(n=Coalesce(Subquery(_unread_subquery(user.pk), output_field=IntegerField()), 0))
                  .values_list("n", flat=True).first())
        pending = [PendingEvent(user.pk, events.CONVERSATION_UPDATED, events.conversation_updated(
            conversation_id=str(conversation.pk), read_seq=seq, unread_count=unread))]
        if counted(conversation):  # big groups: coalesced counts to the senders, later (receipt_counts)
            if user.read_receipts:
                note_moved(conversation_id=str(conversation.pk), kind="read", after=old_read, upto=seq)
            note_moved(conversation_id=str(conversation.pk), kind="delivered", after=old_delivered, upto=seq)
        if user.read_receipts and is_small(conversation):
            others = [str(u) for u in Membership.objects.filter(conversation=conversation, left_at__isnull=True)
                      .exclude(user=user).values_list("user_id", flat=True)]
            hidden = integrations.blocked_either_way(user_id=user.pk, other_ids=others)
            data = events.receipt(conversation_id=str(conversation.pk), user_id=str(user.pk), seq=seq)
            pending += [PendingEvent(u, events.RECEIPT_READ, data) for u in others if u not in hidden]
        stream_append(pending)


@dataclass(frozen=True, slots=True)
class DeviceAck:
    """A device has stored its user's stream up to `position` (the socket's `ack`)."""

    user_id: str
    device_id: str
    position: int


def device_ack(*, user: User | str, device_id: object, cursor: str) -> None:
    """The device has stored its user's stream up to `cursor`.

    The device's cursor only moves forward (and never past the stream head).
    Every `message.new` newly covered marks the user's membership delivered up
    to that seq, and each sender in a small conversation gets one
    `receipt.delivered` per conversation with the new delivered pointer.
    """
    user_id = str(getattr(user, "pk", user))  # the socket passes the id it holds
    position = cursor_decode(cursor)
    if position <= 0:
        return
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as db:
                db.execute(_ACK_SQL, _ack_params([DeviceAck(user_id, str(device_id), position)]))
                output = db.fetchone()[0]
            acked = _acked(orjson.loads(output) if isinstance(output, (str, bytes)) else output)
            _note_counted(acked.counted)  # written on commit
            if acked.events:
                transaction.on_commit(lambda: ring_now(events=acked.events))
        return
    with transaction.atomic():  # SQLite (the embedded default): the ORM
        position = min(position, stream_head(user_id=user_id))
        row, _ = DeviceCursor.objects.select_for_update().get_or_create(device_id=device_id)
        if position <= row.position:
            return
        old, row.position = row.position, position
        row.save(update_fields=["position"])
        _mark_delivered(user_id=user_id, after=old, upto=position)


async def device_acks_async(acks: list[DeviceAck]) -> list[None]:
    """Many devices' acks from the event loop (the socket's ack batch, PostgreSQL only): one
    `messaging_ack_batch` statement on the async pool, in autocommit; then the receipts reach
    live sockets, and big groups' moves are noted for the coalesced counts."""
    latest: dict[str, DeviceAck] = {}
    for ack in acks:  # one entry per device: its highest position
        if ack.position > 0 and (ack.device_id not in latest or ack.position > latest[ack.device_id].position):
            latest[ack.device_id] = ack
    if latest:
        async with (await asyncdb.pool()).connection() as db:
            cursor = await db.execute(_ACK_SQL, _ack_params(list(latest.values())))
            acked = _acked((await cursor.fetchone())[0])
        if acked.events:
            await hub().ring(events=acked.events)
        if acked.counted:
            await database_sync_to_async(_note_counted, thread_sensitive=False)(acked.counted)
    return [None] * len(acks)


_ACK_SQL = "SELECT messaging_ack_batch(%s::jsonb, %s, %s)"


@dataclass(frozen=True, slots=True)
class _Acked:
    events: Events  # receipt.delivered frames for the senders' live sockets
    counted: list[tuple[str, int, int]]  # (conversation, after, upto) moves in big groups


def _ack_params(acks: list[DeviceAck]) -> list[Any]:
    batch = orjson.dumps([{"d": ack.device_id, "u": ack.user_id, "p": ack.position} for ack in acks]).decode()
    return [batch, settings.MESSAGING_INLINE_FANOUT_MAX, settings.MESSAGING_GROUP_MAX_MEMBERS]


def _acked(output: dict[str, Any]) -> _Acked:
    now = output["now"]
    rings = [(hub_key(recipient), position, event_frame(
        position=position, type=events.RECEIPT_DELIVERED, created_at=now,
        data_json=json_text(events.receipt(conversation_id=conversation_id, user_id=reader, seq=seq))))
        for recipient, position, conversation_id, reader, seq in output["receipts"]]
    if rings:
        metrics.STREAM_APPEND_EVENTS.observe(len(rings))
    return _Acked(events_for(rings), [(c, after, upto) for c, after, upto in output["counted"]])


def _note_counted(counted: list[tuple[str, int, int]]) -> None:
    for conversation_id, after, upto in counted:
        note_moved(conversation_id=conversation_id, kind="delivered", after=after, upto=upto)


def _mark_delivered(*, user_id: str, after: int, upto: int) -> None:
    newest: dict[str, int] = {}
    oldest: dict[str, int] = {}
    senders: dict[str, set[str]] = defaultdict(set)
    covered = Event.objects.filter(user_id=user_id, type=events.MESSAGE_NEW, position__gt=after,
                                   position__lte=upto).values("ref_id")
    for conversation_id, seq, sender_id in (
        Message.objects.filter(pk__in=Subquery(covered)).exclude(sender_id=user_id)
        .values_list("conversation_id", "seq", "sender_id")
    ):
        conversation_id = str(conversation_id)
        if seq > newest.get(conversation_id, 0):
            newest[conversation_id] = seq
        oldest[conversation_id] = min(seq, oldest.get(conversation_id, seq))
        senders[conversation_id].add(str(sender_id))
    if not newest:
        return
    conversations = list(Conversation.objects.filter(pk__in=list(newest)))
    small = {str(c.pk) for c in conversations if is_small(c)}
    big = {str(c.pk) for c in conversations if counted(c)}
    pending = []
    for conversation_id in sorted(newest):
        seq = newest[conversation_id]
        moved = Membership.objects.filter(conversation_id=conversation_id, user_id=user_id, delivered_seq__lt=seq,
                                          left_at__isnull=True).update(delivered_seq=seq, delivered_at=Now())
        if moved and conversation_id in big:
            note_moved(conversation_id=conversation_id, kind="delivered", after=oldest[conversation_id] - 1, upto=seq)
        if moved and conversation_id in small:
            data = events.receipt(conversation_id=conversation_id, user_id=user_id, seq=seq)
            pending += [PendingEvent(s, events.RECEIPT_DELIVERED, data) for s in sorted(senders[conversation_id])]
    stream_append(pending)


def sync_read(*, user: User, device_id: object, cursor: str | None, limit: int) -> dict[str, Any]:
    """GET /sync: the device proved it stored everything up to `cursor`, so that
    counts as its ack; then the next page after it."""
    from streams.cursors import cursor_encode
    from streams.selectors import stream_read

    after = cursor_decode(cursor)
    if after and device_id is not None:
        device_ack(user=user, device_id=device_id, cursor=cursor)
    page, has_more = stream_read(user_id=user.pk, after=after, limit=limit)
    return {
        "events": [{k: e[k] for k in ("cursor", "type", "data", "created_at")} for e in page],
        "cursor": page[-1]["cursor"] if page else cursor_encode(after),
        "has_more": has_more,
    }


# --- Voice notes played -------------------------------------------------------------------


def message_played(*, user: User, message_id: object) -> None:
    """The user played a voice note (POST /messages/{id}/played). Idempotent.

    The sender gets `receipt.played` unless the listener turned `read_receipts` off (as
    for `receipt.read`) or either blocked the other; the listener's own devices get it
    always, so each marks the note played. Playing one's own note records nothing.
    """
    from messaging.models import VoicePlayed

    with transaction.atomic():
        message = message_get_for_member(user_id=user.pk, message_id=message_id)
        if MessageHidden.objects.filter(message=message, user=user).exists():
            raise NotFound()
        if message.type != "voice" or message.deleted_at is not None:
            raise ValidationFailed(details={"message_id": ["Only a voice note can be played."]})
        if message.sender_id == user.pk:
            return
        _, created = VoicePlayed.objects.get_or_create(message=message, user=user)
        if not created:
            return
        data = events.receipt_played(conversation_id=str(message.conversation_id), message_id=str(message.pk),
                                     seq=message.seq, user_id=str(user.pk))
        audience = [str(user.pk)]
        sender = str(message.sender_id)
        if user.read_receipts and not integrations.blocked_either_way(user_id=user.pk, other_ids=[sender]):
            audience.append(sender)
        stream_append([PendingEvent(u, events.RECEIPT_PLAYED, data) for u in audience])
