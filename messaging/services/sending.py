"""Sending messages: validation, idempotency, the send rate, authorisation, seqs, and their events.

A batch of sends (the socket's group commit, or one REST send) is judged
request by request before any write, then written in one transaction: seqs
per conversation from one `UPDATE ... RETURNING` under the conversation row
locks, the rows in one INSERT, and every event in one stream append.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import User
from accounts.selectors import has_push_device
from core import ratelimit
from core.errors import ApplicationError, Conflict, Forbidden, NotFound, RateLimited, ValidationFailed
from core.sunset import ensure_writable
from messaging import events, integrations
from messaging.inputs import MessageSendInput, validated
from messaging.models import (
    ADMIN_ROLES,
    SERVER_MESSAGE_TYPES,
    Conversation,
    ConversationType,
    FanoutJob,
    Membership,
    Message,
    MessageHidden,
)
from messaging.selectors import (
    as_uuid,
    is_inline,
    message_public,
    messages_public,
)
from messaging.services.fanout import enqueue_fanout
from messaging.services.push import push_new_message
from streams.services import PendingEvent, stream_append

logger = logging.getLogger(__name__)


# --- Sending ------------------------------------------------------------------------


@dataclass(frozen=True)
class SendRequest:
    sender: User
    conversation_id: object
    payload: Any
    device_id: object = None


@dataclass
class _Send:
    index: int
    request: SendRequest
    data: dict[str, Any]
    membership: Membership | None = None
    message: Message | None = None
    public: dict[str, Any] | None = None


def message_send(*, sender: User, conversation_id: object, payload: dict,
                 device_id: object = None) -> tuple[dict[str, Any], bool]:
    """Send one message: (public Message, created). A retry with the same
    client_id returns the original with created=False, whatever its content."""
    result = message_send_many([SendRequest(sender, conversation_id, payload, device_id)])[0]
    if isinstance(result, ApplicationError):
        raise result
    return result


def message_post(*, sender_id: object, conversation_id: object, type: str, content: dict[str, Any],
                 client_id: uuid.UUID, text: str = "") -> tuple[dict[str, Any], bool]:
    """Post a server-made message (`call`, `red_packet`) as `sender_id`: (public Message, created).

    Runs inside the caller's transaction when there is one, so the message, its
    seq and its events commit together with the caller's change (a packet's
    debit, a call's end) or not at all. `content` is the payload under its own
    key, e.g. {"call": {...}}. Idempotent by (sender, client_id): posting again
    returns the first message. The sender must be a current member (NotFound);
    client-side rules (validation, send rate, broadcast posting rights) do not apply.
    """
    if type not in SERVER_MESSAGE_TYPES:
        raise ValueError(f"{type!r} is not a server-made message type")
    with transaction.atomic():
        existing = Message.objects.filter(sender_id=sender_id, client_id=client_id).first()
        if existing is not None:
            return message_public(existing), False
        membership = (Membership.objects.select_related("conversation", "user")
                      .filter(conversation_id=as_uuid(str(conversation_id)), user_id=sender_id, left_at__isnull=True)
                      .first())
        if membership is None:
            raise NotFound()
        item = _Send(0, SendRequest(membership.user, conversation_id, None),
                     {"client_id": client_id, "type": type, "text": text, "content": content}, membership=membership)
        try:
            _write_sends([item])
        except IntegrityError:  # a concurrent post of the same client_id won
            original = Message.objects.get(sender_id=sender_id, client_id=client_id)
            return message_public(original), False
    return item.public, True


def message_send_many(
    requests: Sequence[SendRequest | Mapping[str, Any]],
) -> list[tuple[dict[str, Any], bool] | ApplicationError]:
    """Send several messages in one transaction (group commit), each judged on its own.

    Checks run before any write, so one bad request fails only itself; the
    messages of each conversation get their seqs from one `UPDATE ... RETURNING`
    and all rows go in one INSERT; all their events go in one stream append.
    Results come back in request order: (Message, created) or the error.
    A request is a SendRequest or a mapping of its fields.
    """
    requests = [r if isinstance(r, SendRequest) else SendRequest(**r) for r in requests]
    try:
        ensure_writable("message.send")  # sunset mode: read-only refuses every send (403)
    except ApplicationError as refused:
        return [refused] * len(requests)
    results: list[Any] = [None] * len(requests)
    pending: list[_Send] = []
    for index, (request, data) in enumerate(zip(requests, _validate_payloads(requests), strict=True)):
        if isinstance(data, ApplicationError):
            results[index] = data
        else:
            pending.append(_Send(index, request, data))
    pending = _drop_replays(pending, results)
    pending = _limit_send_rate(pending, results)
    pending = _authorise_sends(pending, results)
    raced: list[_Send] = []
    if pending:
        try:
            raced = _write_sends(pending)
        except IntegrityError:
            if len(pending) != 1:
                raise
            raced = pending  # The one send lost a client_id race (or a reply_to vanished).
    lost = {item.index for item in raced}
    for item in pending:
        if item.index not in lost and item.public is not None:
            results[item.index] = (item.public, True)
    for item in raced:
        original = Message.objects.filter(sender=item.request.sender, client_id=item.data["client_id"]).first()
        results[item.index] = (message_public(original), False) if original else Conflict()
    return results


def _validate_payloads(requests: list[SendRequest]) -> list[dict[str, Any] | ApplicationError]:
    """Validate every payload; a whole valid batch shares one serializer
    (building one per message costs more than the message's SQL)."""
    payloads = [r.payload for r in requests]
    if len(payloads) > 1 and all(isinstance(p, dict) for p in payloads):
        batch = MessageSendInput(data=payloads, many=True)
        if batch.is_valid():
            return [dict(data) for data in batch.validated_data]
    out: list[dict[str, Any] | ApplicationError] = []
    for payload in payloads:
        try:
            out.append(validated(MessageSendInput, payload))
        except ApplicationError as error:
            out.append(error)
    return out


def _drop_replays(pending: list[_Send], results: list[Any]) -> list[_Send]:
    """Retries of already stored messages get the original back (one query)."""
    if not pending:
        return pending
    keys = {(str(p.request.sender.pk), p.data["client_id"]) for p in pending}
    existing = {
        (str(m.sender_id), m.client_id): m
        for m in Message.objects.filter(sender_id__in={k[0] for k in keys}, client_id__in={k[1] for k in keys})
    }
    fresh = []
    for item in pending:
        original = existing.get((str(item.request.sender.pk), item.data["client_id"]))
        if original is not None:
            results[item.index] = (message_public(original), False)
        else:
            fresh.append(item)
    return fresh


def _limit_send_rate(pending: list[_Send], results: list[Any]) -> list[_Send]:
    """At most MESSAGING_SEND_LIMIT new messages per sender per window (retries of stored
    messages are free: they were dropped before). One counter hit per sender and batch.
    Fails open when the cache is down: a broken limiter must not stop sending."""
    allowed, window = settings.MESSAGING_SEND_LIMIT
    if not pending or allowed <= 0:
        return pending
    by_sender: dict[str, list[_Send]] = defaultdict(list)
    for item in pending:
        by_sender[str(item.request.sender.pk)].append(item)
    refused: set[int] = set()
    for sender_id, items in by_sender.items():
        try:
            ratelimit.hit("message_send", sender_id, (allowed, window), cost=len(items))
        except RateLimited as error:
            used = ratelimit.count("message_send", sender_id, (allowed, window))
            fits = max(0, allowed - (used - len(items)))
            for item in items[fits:]:
                refused.add(item.index)
                results[item.index] = RateLimited("Too many messages; retry later.", retry_after=error.retry_after)
        except RedisError:
            logger.warning("send rate limit unavailable (cache down); allowing")
    return [item for item in pending if item.index not in refused]


def _authorise_sends(pending: list[_Send], results: list[Any]) -> list[_Send]:
    """Membership, posting rights, reply_to and attachment checks; no writes."""
    if not pending:
        return pending
    wanted = {(str(p.request.sender.pk), as_uuid(p.request.conversation_id)) for p in pending}
    memberships = {
        (str(m.user_id), m.conversation_id): m
        for m in Membership.objects.select_related("conversation").filter(
            user_id__in={w[0] for w in wanted}, conversation_id__in={w[1] for w in wanted if w[1]},
            left_at__isnull=True,
        )
    }
    reply_ids = {p.data["reply_to"] for p in pending if p.data.get("reply_to")}
    replies = dict(Message.objects.filter(pk__in=reply_ids).values_list("pk", "conversation_id")) if reply_ids else {}
    ok = []
    for item in pending:
        try:
            membership = memberships.get((str(item.request.sender.pk), as_uuid(item.request.conversation_id)))
            if membership is None:
                raise NotFound()
            if (membership.conversation.type == ConversationType.BROADCAST
                    and membership.role not in ADMIN_ROLES):
                raise Forbidden("Only admins post in a broadcast.")
            reply_to = item.data.get("reply_to")
            if reply_to and replies.get(reply_to) != membership.conversation_id:
                raise ValidationFailed(details={"reply_to": ["No such message in this conversation."]})
            if item.data.get("attachment_id"):
                kind = "image" if item.data["type"] == "sticker" else item.data["type"]
                integrations.attachment_validate(attachment_id=item.data["attachment_id"],
                                                 sender_id=item.request.sender.pk, kind=kind)
            item.membership = membership
            ok.append(item)
        except ApplicationError as error:
            results[item.index] = error
    return ok


def _write_sends(pending: list[_Send]) -> list[_Send]:
    """Insert the messages and their events; returns the sends that lost a client_id race."""
    raced: list[_Send] = []
    with transaction.atomic():
        if len(pending) == 1:
            _insert_messages(pending)  # An IntegrityError here aborts the whole (single) send.
            written = pending
        else:
            try:
                with transaction.atomic():
                    _insert_messages(pending)
                written = pending
            except IntegrityError:
                # Someone raced one of these client_ids: redo them one by one.
                written = []
                for item in pending:
                    try:
                        with transaction.atomic():
                            _insert_messages([item])
                        written.append(item)
                    except IntegrityError:
                        item.message = None
                        raced.append(item)
        written = [item for item in written if item.message is not None]
        for item, public in zip(written, messages_public(item.message for item in written), strict=True):
            item.public = public
        _emit_new_messages([(item.message, item.public) for item in written])
    return raced


def _insert_messages(items: list[_Send]) -> None:
    """Allocate seqs per conversation (its row lock orders concurrent senders)
    and insert every message in one statement."""
    by_conversation: dict[uuid.UUID, list[_Send]] = defaultdict(list)
    for item in items:
        by_conversation[item.membership.conversation_id].append(item)
    now = timezone.now()
    messages = []
    message_ids = {cid: [uuid.uuid4() for _ in group] for cid, group in by_conversation.items()}
    last_seqs = _allocate_seqs(
        {cid: (len(group), message_ids[cid][-1]) for cid, group in by_conversation.items()}, now=now
    )
    for conversation_id in sorted(by_conversation, key=str):
        group = by_conversation[conversation_id]
        last_seq = last_seqs[conversation_id]
        first_seq = last_seq - len(group) + 1
        for offset, (item, message_id) in enumerate(zip(group, message_ids[conversation_id], strict=True)):
            data = item.data
            item.message = Message(
                id=message_id, conversation_id=conversation_id, seq=first_seq + offset,
                sender=item.request.sender, client_id=data["client_id"], type=data["type"],
                text=data.get("text") or "", content=data.get("content"), attachment_id=data.get("attachment_id"),
                reply_to_id=data.get("reply_to"), location=data.get("location"), created_at=now,
            )
            item.message.conversation = item.membership.conversation
            item.membership.conversation.last_seq = last_seq
            messages.append(item.message)
    Message.objects.bulk_create(messages)


def _allocate_seqs(counts: dict[uuid.UUID, tuple[int, uuid.UUID]], *, now: datetime) -> dict[uuid.UUID, int]:
    """Reserve seqs for several conversations: {id: (count, last message id)} -> {id: new last_seq}.

    Holds each conversation's row lock until commit, so seqs commit in order and
    without gaps. The locks are taken in id order first, so concurrent batches
    over overlapping conversations cannot deadlock; then one UPDATE moves them all.
    """
    if connection.vendor != "postgresql" or len(counts) == 1:  # one row: its UPDATE is the lock
        return {cid: _allocate_seqs_one(cid, count, last_id, now) for cid, (count, last_id) in sorted(
            counts.items(), key=lambda item: str(item[0]))}
    ids = sorted(counts, key=str)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM messaging_conversation WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [ids])
        cursor.fetchall()
        cursor.execute(
            "UPDATE messaging_conversation AS c SET last_seq = c.last_seq + v.n, updated_at = %s, "
            "last_message_id = v.last_id FROM unnest(%s::uuid[], %s::int[], %s::uuid[]) AS v(id, n, last_id) "
            "WHERE c.id = v.id RETURNING c.id, c.last_seq",
            [now, ids, [counts[cid][0] for cid in ids], [counts[cid][1] for cid in ids]],
        )
        return {uuid.UUID(str(cid)): last_seq for cid, last_seq in cursor.fetchall()}


def _allocate_seqs_one(conversation_id: uuid.UUID, count: int, last_message_id: uuid.UUID, now: datetime) -> int:
    pk_field = Conversation._meta.pk
    params = [
        count,
        Conversation._meta.get_field("updated_at").get_db_prep_value(now, connection),
        pk_field.get_db_prep_value(last_message_id, connection),
        pk_field.get_db_prep_value(conversation_id, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE messaging_conversation SET last_seq = last_seq + %s, updated_at = %s, last_message_id = %s "
            "WHERE id = %s RETURNING last_seq",
            params,
        )
        return cursor.fetchone()[0]


def _emit_new_messages(sent: list[tuple[Message, dict[str, Any]]]) -> None:
    """message.new to every current member (the sender included, for their other
    devices) except those who blocked the sender; big conversations fan out in Celery."""
    if not sent:
        return
    messages = [message for message, _ in sent]
    small_ids = {m.conversation_id for m in messages if is_inline(m.conversation)}
    members: dict[uuid.UUID, list[tuple[str, datetime | None]]] = defaultdict(list)
    pushable: set[str] = set()
    if small_ids:
        for cid, user_id, muted_until, has_push in Membership.objects.filter(
            conversation_id__in=small_ids, left_at__isnull=True
        ).annotate(has_push=has_push_device()).values_list("conversation_id", "user_id", "muted_until", "has_push"):
            members[cid].append((str(user_id), muted_until))
            if has_push:
                pushable.add(str(user_id))
    # One query for every sender of the batch: who among the recipients blocked whom.
    blockers = integrations.blockers_of_many(
        user_ids={str(m.sender_id) for m in messages if m.conversation_id in small_ids},
        candidate_ids={u for rows in members.values() for u, _ in rows},
    )
    pending: list[PendingEvent] = []
    hidden: list[MessageHidden] = []
    jobs: list[FanoutJob] = []
    for message, public in sent:
        sender_id = str(message.sender_id)
        if message.attachment_id:
            integrations.attachment_mark_used(attachment_id=message.attachment_id)
        if message.conversation_id not in small_ids:
            pending.append(PendingEvent(sender_id, events.MESSAGE_NEW, events.message_new(public), ref_id=message.pk))
            jobs.append(FanoutJob(conversation_id=message.conversation_id, message=message,
                                  event_type=events.MESSAGE_NEW, data=events.message_new(public),
                                  exclude_user_ids=[sender_id], cutoff=message.created_at))
            continue
        blocked_by = blockers.get(sender_id, set())
        recipients = []
        for user_id, muted_until in members[message.conversation_id]:
            if user_id in blocked_by:
                hidden.append(MessageHidden(message=message, user_id=user_id))
                continue
            pending.append(PendingEvent(user_id, events.MESSAGE_NEW, events.message_new(public), ref_id=message.pk))
            if user_id != sender_id and user_id in pushable:
                recipients.append((user_id, muted_until))
        push_new_message(message, recipients)
    if hidden:
        MessageHidden.objects.bulk_create(hidden, ignore_conflicts=True)
    stream_append(pending)
    if jobs:
        FanoutJob.objects.bulk_create(jobs)
        enqueue_fanout([job.pk for job in jobs])


# What a push says for a message without text (the push app drops it when previews are off).
