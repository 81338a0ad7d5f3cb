"""Writes for messaging: conversations, members, messages, receipts.

Every change and the events it owes users commit in one transaction
(`streams.services.stream_append`), so a crash can never leave a message
without its events. Locks are taken in one order everywhere: conversation
rows (by id), then membership rows, then stream counters (by user id, inside
stream_append), so concurrent writers cannot deadlock.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, IntegerField, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import User
from accounts.selectors import has_push_device
from core import metrics, ratelimit
from core.errors import ApplicationError, Conflict, Forbidden, NotFound, RateLimited, ValidationFailed
from core.serializers import timestamp
from core.sunset import ensure_writable
from messaging import events, integrations
from messaging.inputs import MessageSendInput, validated
from messaging.models import (
    SERVER_MESSAGE_TYPES,
    Conversation,
    ConversationType,
    DeviceCursor,
    FanoutJob,
    Membership,
    Message,
    MessageHidden,
    Role,
)
from messaging.selectors import (
    _unread_subquery,
    as_uuid,
    conversation_detail,
    conversation_get_for_member,
    is_inline,
    is_small,
    message_get_for_member,
    message_public,
    messages_public,
)
from streams.cursors import cursor_decode
from streams.models import Event
from streams.selectors import stream_head
from streams.services import PendingEvent, stream_append

logger = logging.getLogger(__name__)

ADMIN_ROLES = {Role.OWNER, Role.ADMIN}


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


@metrics.SEND_COMMIT.time()  # ops: validate, write and commit a batch
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
    pending = integrations.sends_screen(pending, results)  # moderation: the spam throttle (MESSAGING_SEND_SCREEN)
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
    metrics.MESSAGES_SENT.inc(sum(1 for item in pending if item.index not in lost and item.public is not None))  # ops
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
            pending.append(PendingEvent(sender_id, events.MESSAGE_NEW, events.message_new(public)))
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
            pending.append(PendingEvent(user_id, events.MESSAGE_NEW, events.message_new(public)))
            if user_id != sender_id and user_id in pushable:
                recipients.append((user_id, muted_until))
        _push_new_message(message, recipients)
    if hidden:
        MessageHidden.objects.bulk_create(hidden, ignore_conflicts=True)
    stream_append(pending)
    if jobs:
        FanoutJob.objects.bulk_create(jobs)
        _enqueue_fanout([job.pk for job in jobs])


# What a push says for a message without text (the push app drops it when previews are off).
_PUSH_LABELS = {"image": "Photo", "voice": "Voice message", "video": "Video", "file": "File",
                "location": "Location", "sticker": "Sticker", "call": "Call", "red_packet": "Red packet"}


def _push_new_message(message: Message, recipients: Iterable[tuple[str, datetime | None]]) -> None:
    if not settings.MESSAGING_PUSH_NOTIFY:
        return
    now = timezone.now()
    for user_id, muted_until in recipients:
        integrations.push_notify(
            user_id=user_id, kind=events.MESSAGE_NEW, title=message.sender.display_name,
            body=message.text[:200] or _PUSH_LABELS.get(message.type, ""), conversation_id=str(message.conversation_id),
            message_id=str(message.pk), muted=bool(muted_until and muted_until > now),
            collapse_key=str(message.conversation_id),
        )


# --- Fan-out for big conversations ---------------------------------------------------------


def _enqueue_fanout(job_ids: list[int]) -> None:
    from messaging.tasks import fanout

    def enqueue() -> None:
        for job_id in job_ids:
            try:
                fanout.delay(job_id)
            except Exception:  # The sweep re-enqueues unfinished jobs.
                logger.warning("could not enqueue fan-out job %s", job_id, exc_info=True)

    transaction.on_commit(enqueue)


def _fan_out(*, conversation: Conversation, type: str, data: dict[str, Any], message: Message | None = None,
             inline_user_ids: Iterable[str] = ()) -> list[PendingEvent]:
    """Promise an event to every current member of a big conversation, appended
    in Celery batches; returns the events `inline_user_ids` get now (the actor,
    for their other devices)."""
    inline = [str(u) for u in inline_user_ids]
    job = FanoutJob.objects.create(conversation=conversation, message=message, event_type=type, data=data,
                                   exclude_user_ids=inline, cutoff=timezone.now())
    _enqueue_fanout([job.pk])
    return [PendingEvent(u, type, data) for u in inline]


def fanout_job_run(*, job_id: int, batch_size: int | None = None, max_batches: int = 100_000) -> int:
    """Run a fan-out job to completion (safe to run twice; returns events appended).

    Jobs of one conversation run strictly in creation order, so every member
    sees that conversation's events in order, even with several workers.
    """
    batch_size = batch_size or settings.MESSAGING_FANOUT_BATCH
    conversation_id = FanoutJob.objects.filter(pk=job_id).values_list("conversation_id", flat=True).first()
    appended = 0
    for _ in range(max_batches):
        with transaction.atomic():
            job = (FanoutJob.objects.select_for_update(of=("self",)).select_related("message__sender")
                   .filter(conversation_id=conversation_id, finished_at__isnull=True).order_by("pk").first())
            if job is None:
                return appended
            appended += _fanout_batch(job, batch_size)
            if job.pk == job_id and job.finished_at is not None:
                return appended
    return appended


def _fanout_batch(job: FanoutJob, batch_size: int) -> int:
    """One batch of members after the job's cursor; call holding the job row lock."""
    qs = Membership.objects.filter(conversation_id=job.conversation_id, left_at__isnull=True,
                                   joined_at__lte=job.cutoff).exclude(user_id__in=job.exclude_user_ids)
    if job.after_user_id:
        qs = qs.filter(user_id__gt=job.after_user_id)
    rows = list(qs.order_by("user_id").annotate(has_push=has_push_device())
                .values_list("user_id", "muted_until", "has_push")[:batch_size])
    if not rows:
        job.finished_at = timezone.now()
        job.save(update_fields=["finished_at"])
        return 0
    user_ids = [str(u) for u, _, _ in rows]
    skip: set[str] = set()
    if job.message_id:
        if job.event_type == events.MESSAGE_NEW:
            skip = integrations.blockers_of(user_id=job.message.sender_id, candidate_ids=user_ids)
            MessageHidden.objects.bulk_create([MessageHidden(message_id=job.message_id, user_id=u) for u in skip],
                                              ignore_conflicts=True)
        skip |= {str(u) for u in MessageHidden.objects.filter(message_id=job.message_id, user_id__in=user_ids)
                 .values_list("user_id", flat=True)}
    recipients = [(str(u), muted, has_push) for u, muted, has_push in rows if str(u) not in skip]
    stream_append([PendingEvent(u, job.event_type, job.data) for u, _, _ in recipients])
    if job.event_type == events.MESSAGE_NEW and job.message_id:
        _push_new_message(job.message, [(u, muted) for u, muted, has_push in recipients if has_push])
    job.after_user_id = rows[-1][0]
    job.save(update_fields=["after_user_id"])
    return len(recipients)


def fanout_jobs_prune(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Forget finished jobs; their events live in the streams."""
    deleted, _ = FanoutJob.objects.filter(finished_at__lt=timezone.now() - older_than).delete()
    return deleted


def fanout_jobs_stalled(*, older_than_seconds: int = 60) -> list[int]:
    """Unfinished jobs whose task may have been lost (process died before enqueueing)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(FanoutJob.objects.filter(finished_at__isnull=True, created_at__lt=cutoff)
                .order_by("pk").values_list("pk", flat=True)[:1000])


def _emit_to_members(*, conversation: Conversation, type: str, data: dict[str, Any],
                     message: Message | None = None, actor_id: object = None,
                     extra_user_ids: Iterable[str] = ()) -> list[PendingEvent]:
    """One event for every current member (minus those who hid `message`), plus
    `extra_user_ids` (e.g. a member who just left). Big conversations fan out.

    Returns the events to append now: each transaction appends once, so its
    stream-counter locks are taken in one sorted batch (no deadlock between
    transactions appending to overlapping users)."""
    extra = {str(u) for u in extra_user_ids}
    if not is_inline(conversation):
        inline = extra | ({str(actor_id)} if actor_id else set())
        return _fan_out(conversation=conversation, type=type, data=data, message=message,
                        inline_user_ids=sorted(inline))
    qs = Membership.objects.filter(conversation=conversation, left_at__isnull=True)
    if message is not None:
        qs = qs.exclude(user_id__in=MessageHidden.objects.filter(message=message).values("user_id"))
    user_ids = [str(u) for u in qs.order_by("joined_at", "pk").values_list("user_id", flat=True)]
    user_ids += sorted(extra - set(user_ids))
    return [PendingEvent(u, type, data) for u in user_ids]


# --- Conversations ---------------------------------------------------------------------


def _snapshot(conversation: Conversation) -> dict[str, Any]:
    """The Conversation shape as a member who just joined sees it."""
    from messaging.selectors import _listed_members_filter

    members = [
        {"user_id": str(u), "role": r}
        for u, r in Membership.objects.filter(_listed_members_filter(), conversation=conversation)
        .order_by("joined_at", "pk").values_list("user_id", "role")
    ]
    return {
        "id": str(conversation.pk), "type": conversation.type, "title": conversation.title,
        "members": members, "member_count": conversation.member_count, "last_seq": conversation.last_seq,
        "last_message": None, "unread_count": 0, "read_seq": conversation.last_seq, "muted_until": None,
        "created_at": timestamp(conversation.created_at), "updated_at": timestamp(conversation.updated_at),
    }


def _users_active(user_ids: Iterable[object], *, field: str) -> list[str]:
    ids = {str(u) for u in user_ids}
    found = {str(u) for u in User.objects.filter(pk__in=ids, is_active=True).values_list("pk", flat=True)}
    if found != ids:
        raise ValidationFailed(details={field: ["One or more users do not exist."]})
    return sorted(found)


def conversation_create(*, creator: User, type: str, user_id: object = None, title: str = "",
                        member_ids: Iterable[object] = ()) -> tuple[dict[str, Any], bool]:
    """Create a conversation; (Conversation for the creator, created).

    Direct conversations are one per pair: the unique `direct_key` turns a
    concurrent second creation into an IntegrityError, answered with the first.
    """
    if type == ConversationType.DIRECT:
        return _direct_get_or_create(creator=creator, other_id=user_id)
    limit = (settings.MESSAGING_BROADCAST_MAX_MEMBERS if type == ConversationType.BROADCAST
             else settings.MESSAGING_GROUP_MAX_MEMBERS)
    others = [u for u in _users_active(member_ids, field="member_ids") if u != str(creator.pk)]
    if len(others) + 1 > limit:
        raise ValidationFailed(details={"member_ids": [f"At most {limit} members."]})
    with transaction.atomic():
        conversation = Conversation.objects.create(type=type, title=title.strip(), created_by=creator,
                                                   member_count=len(others) + 1)
        Membership.objects.bulk_create(
            [Membership(conversation=conversation, user=creator, role=Role.OWNER)]
            + [Membership(conversation=conversation, user_id=u, role=Role.MEMBER) for u in others]
        )
        stream_append(_emit_to_members(conversation=conversation, type=events.CONVERSATION_CREATED,
                                       data=events.conversation_created(_snapshot(conversation)),
                                       actor_id=creator.pk))
    return conversation_detail(user_id=creator.pk, conversation_id=conversation.pk), True


def _direct_get_or_create(*, creator: User, other_id: object) -> tuple[dict[str, Any], bool]:
    other = _users_active([other_id], field="user_id")[0]
    if other == str(creator.pk):
        raise ValidationFailed(details={"user_id": ["A direct conversation needs another user."]})
    key = ":".join(sorted([str(creator.pk), other]))
    existing = Conversation.objects.filter(direct_key=key).values_list("pk", flat=True).first()
    if existing:
        return conversation_detail(user_id=creator.pk, conversation_id=existing), False
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(type=ConversationType.DIRECT, direct_key=key,
                                                       created_by=creator, member_count=2)
            Membership.objects.bulk_create([Membership(conversation=conversation, user_id=u, role=Role.MEMBER)
                                            for u in sorted([str(creator.pk), other])])
            # Someone who blocked the creator is not told; the conversation
            # simply exists for them, empty of the creator's messages.
            audience = [str(creator.pk)]
            if not integrations.blockers_of(user_id=creator.pk, candidate_ids=[other]):
                audience.append(other)
            snapshot = events.conversation_created(_snapshot(conversation))
            stream_append([PendingEvent(u, events.CONVERSATION_CREATED, snapshot) for u in audience])
    except IntegrityError:
        existing = Conversation.objects.filter(direct_key=key).values_list("pk", flat=True).first()
        if existing is None:
            raise
        return conversation_detail(user_id=creator.pk, conversation_id=existing), False
    return conversation_detail(user_id=creator.pk, conversation_id=conversation.pk), True


def _locked_for_admin(*, actor: User, conversation_id: object) -> tuple[Conversation, Membership]:
    """The conversation row, locked, and the actor's membership; 404 for non-members,
    403 for members who are not admins, 400 for direct conversations."""
    membership = conversation_get_for_member(user_id=actor.pk, conversation_id=conversation_id)
    conversation = Conversation.objects.select_for_update().get(pk=membership.conversation_id)
    if conversation.type == ConversationType.DIRECT:
        raise ValidationFailed("A direct conversation has exactly two members and no title.",
                               details={"conversation_id": ["Not allowed for a direct conversation."]})
    membership.refresh_from_db(fields=["role", "left_at"])
    if membership.left_at is not None:
        raise NotFound()
    if membership.role not in ADMIN_ROLES:
        raise Forbidden("Only the conversation's admins may do this.")
    return conversation, membership


def conversation_update(*, actor: User, conversation_id: object, title: str) -> dict[str, Any]:
    if not title.strip():
        raise ValidationFailed(details={"title": ["This field may not be blank."]})
    with transaction.atomic():
        conversation, _ = _locked_for_admin(actor=actor, conversation_id=conversation_id)
        conversation.title = title.strip()
        conversation.updated_at = timezone.now()
        conversation.save(update_fields=["title", "updated_at"])
        stream_append(_emit_to_members(
            conversation=conversation, type=events.CONVERSATION_UPDATED, actor_id=actor.pk,
            data=events.conversation_updated(conversation_id=str(conversation.pk), title=conversation.title)))
    return conversation_detail(user_id=actor.pk, conversation_id=conversation.pk)


def members_add(*, actor: User, conversation_id: object, user_ids: Iterable[object]) -> dict[str, Any]:
    """Add (or re-add) users; they start with nothing unread."""
    with transaction.atomic():
        conversation, _ = _locked_for_admin(actor=actor, conversation_id=conversation_id)
        wanted = _users_active(user_ids, field="user_ids")
        rows = {str(m.user_id): m for m in Membership.objects.filter(conversation=conversation, user_id__in=wanted)}
        now = timezone.now()
        added: list[str] = []
        for user_id in wanted:
            row = rows.get(user_id)
            if row is not None and row.left_at is None:
                continue
            if row is None:
                row = Membership(conversation=conversation, user_id=user_id)
            row.role, row.left_at, row.left_seq, row.joined_at = Role.MEMBER, None, None, now
            row.read_seq = row.delivered_seq = conversation.last_seq
            row.save()
            added.append(user_id)
        limit = (settings.MESSAGING_BROADCAST_MAX_MEMBERS if conversation.type == ConversationType.BROADCAST
                 else settings.MESSAGING_GROUP_MAX_MEMBERS)
        if conversation.member_count + len(added) > limit:
            raise ValidationFailed(details={"user_ids": [f"At most {limit} members."]})
        if added:
            conversation.member_count += len(added)
            conversation.updated_at = now
            conversation.save(update_fields=["member_count", "updated_at"])
            snapshot = events.conversation_created(_snapshot(conversation))
            pending = [PendingEvent(u, events.CONVERSATION_CREATED, snapshot) for u in added]
            for user_id in added:
                pending += _emit_member_change(
                    conversation=conversation, type=events.MEMBER_ADDED, actor_id=actor.pk, affected=user_id,
                    data=events.member_added(conversation_id=str(conversation.pk), user_id=user_id,
                                             role=Role.MEMBER, by=str(actor.pk)))
            stream_append(pending)
    return conversation_detail(user_id=actor.pk, conversation_id=conversation.pk)


def _emit_member_change(*, conversation: Conversation, type: str, data: dict[str, Any], actor_id: object,
                        affected: str) -> list[PendingEvent]:
    """Member changes go to all members, except in broadcasts: there only to the
    admins and the affected user (the audience does not see each other)."""
    if conversation.type != ConversationType.BROADCAST:
        return _emit_to_members(conversation=conversation, type=type, data=data, actor_id=actor_id,
                                extra_user_ids=[affected])
    admins = {str(u) for u in Membership.objects.filter(conversation=conversation, left_at__isnull=True,
                                                        role__in=ADMIN_ROLES).values_list("user_id", flat=True)}
    return [PendingEvent(u, type, data) for u in sorted(admins | {affected})]


def member_remove(*, actor: User, conversation_id: object, user_id: object) -> None:
    """Admins remove members (only the owner removes admins); anyone may leave."""
    with transaction.atomic():
        own = conversation_get_for_member(user_id=actor.pk, conversation_id=conversation_id)
        target_id = as_uuid(user_id) if not isinstance(user_id, uuid.UUID) else user_id
        if target_id is None:
            raise NotFound()
        if target_id == actor.pk:
            conversation = Conversation.objects.select_for_update().get(pk=own.conversation_id)
            if conversation.type == ConversationType.DIRECT:
                raise ValidationFailed("You cannot leave a direct conversation.",
                                       details={"user_id": ["Not allowed for a direct conversation."]})
            own.refresh_from_db()
            stream_append(_member_leave(conversation=conversation, membership=own, by=None))
            return
        conversation, actor_membership = _locked_for_admin(actor=actor, conversation_id=conversation_id)
        target = Membership.objects.filter(conversation=conversation, user_id=target_id, left_at__isnull=True).first()
        if target is None:
            raise NotFound()
        if target.role == Role.OWNER or (target.role == Role.ADMIN and actor_membership.role != Role.OWNER):
            raise Forbidden("Only the owner removes admins, and nobody removes the owner.")
        stream_append(_member_leave(conversation=conversation, membership=target, by=str(actor.pk)))


def _member_leave(*, conversation: Conversation, membership: Membership, by: str | None) -> list[PendingEvent]:
    """Call holding the conversation row lock. An owner who leaves hands over to
    the longest-standing admin, else the longest-standing member."""
    now = timezone.now()
    membership.left_at, membership.left_seq = now, conversation.last_seq
    was_owner = membership.role == Role.OWNER
    membership.save(update_fields=["left_at", "left_seq"])
    conversation.member_count = max(0, conversation.member_count - 1)
    conversation.updated_at = now
    conversation.save(update_fields=["member_count", "updated_at"])
    user_id = str(membership.user_id)
    pending = _emit_member_change(
        conversation=conversation, type=events.MEMBER_REMOVED, actor_id=by, affected=user_id,
        data=events.member_removed(conversation_id=str(conversation.pk), user_id=user_id, by=by))
    if was_owner:
        heir = (Membership.objects.filter(conversation=conversation, left_at__isnull=True)
                .order_by("role", "joined_at", "pk").first())  # "admin" sorts before "member"
        if heir is not None:
            heir.role = Role.OWNER
            heir.save(update_fields=["role"])
            data = events.conversation_updated(conversation_id=str(conversation.pk),
                                               member={"user_id": str(heir.user_id), "role": Role.OWNER})
            pending += _emit_to_members(conversation=conversation, type=events.CONVERSATION_UPDATED, data=data)
    return pending


def member_role_set(*, actor: User, conversation_id: object, user_id: object, role: str) -> dict[str, Any]:
    """The owner makes members admins and back."""
    with transaction.atomic():
        conversation, actor_membership = _locked_for_admin(actor=actor, conversation_id=conversation_id)
        target_id = as_uuid(str(user_id))
        target = (Membership.objects.filter(conversation=conversation, user_id=target_id, left_at__isnull=True).first()
                  if target_id else None)
        if target is None:
            raise NotFound()
        if actor_membership.role != Role.OWNER or target.role == Role.OWNER:
            raise Forbidden("Only the owner changes roles, and the owner's own role is fixed.")
        if target.role != role:
            target.role = role
            target.save(update_fields=["role"])
            stream_append(_emit_to_members(
                conversation=conversation, type=events.CONVERSATION_UPDATED, actor_id=actor.pk,
                data=events.conversation_updated(conversation_id=str(conversation.pk),
                                                 member={"user_id": str(target_id), "role": role})))
    return conversation_detail(user_id=actor.pk, conversation_id=conversation.pk)


def conversation_mute(*, user: User, conversation_id: object, until: datetime | None) -> dict[str, Any]:
    with transaction.atomic():
        membership = conversation_get_for_member(user_id=user.pk, conversation_id=conversation_id)
        Membership.objects.filter(pk=membership.pk).update(muted_until=until)
        stream_append([PendingEvent(user.pk, events.CONVERSATION_UPDATED, events.conversation_updated(
            conversation_id=str(membership.conversation_id), muted_until=timestamp(until)))])
    return conversation_detail(user_id=user.pk, conversation_id=membership.conversation_id)


# --- Editing, recalling, hiding ---------------------------------------------------------------


def message_edit(*, user: User, message_id: object, text: str) -> dict[str, Any]:
    """The sender edits within MESSAGING_EDIT_WINDOW."""
    with transaction.atomic():
        message = message_get_for_member(user_id=user.pk, message_id=message_id, for_update=True)
        if message.sender_id != user.pk:
            raise Forbidden("Only the sender edits a message.")
        if message.deleted_at is not None:
            raise Conflict("The message was recalled.")
        if timezone.now() - message.created_at > settings.MESSAGING_EDIT_WINDOW:
            raise Forbidden("The edit window has passed.")
        if message.type in {"location", "sticker"}:
            raise ValidationFailed(details={"text": [f"A {message.type} message has no text to edit."]})
        if message.type == "text" and not text.strip():
            raise ValidationFailed(details={"text": ["A text message needs text."]})
        message.text = text
        message.edited_at = timezone.now()
        message.save(update_fields=["text", "edited_at"])
        public = message_public(message)
        stream_append(_emit_to_members(conversation=message.conversation, type=events.MESSAGE_EDITED,
                                       actor_id=user.pk, data=events.message_edited(public), message=message))
    return public


def message_delete(*, user: User, message_id: object, scope: str) -> None:
    """`everyone`: recall (sender within MESSAGING_RECALL_WINDOW, or a group admin
    at any time); `me`: hide it on the user's own devices. Repeats are no-ops."""
    if scope not in {"everyone", "me"}:
        raise ValidationFailed(details={"for": ["Expected everyone or me."]})
    with transaction.atomic():
        message = message_get_for_member(user_id=user.pk, message_id=message_id, for_update=scope == "everyone")
        data = events.message_deleted(conversation_id=str(message.conversation_id), message_id=str(message.pk),
                                      seq=message.seq, scope=scope)
        if scope == "me":
            _, created = MessageHidden.objects.get_or_create(message=message, user=user)
            if created:
                stream_append([PendingEvent(user.pk, events.MESSAGE_DELETED, data)])
            return
        if message.deleted_at is not None:
            return
        role = Membership.objects.filter(conversation_id=message.conversation_id, user=user).values_list(
            "role", flat=True).first()
        is_admin = role in ADMIN_ROLES and message.conversation.type != ConversationType.DIRECT
        in_window = timezone.now() - message.created_at <= settings.MESSAGING_RECALL_WINDOW
        if not (is_admin or (message.sender_id == user.pk and in_window)):
            raise Forbidden("Only the sender within the recall window, or an admin, recalls a message.")
        message.deleted_at = timezone.now()
        message.text, message.attachment_id, message.location = "", None, None
        message.save(update_fields=["deleted_at", "text", "attachment_id", "location"])
        stream_append(_emit_to_members(conversation=message.conversation, type=events.MESSAGE_DELETED,
                                       actor_id=user.pk, data=data, message=message))


def message_remove(*, message_id: object) -> bool:
    """Staff removal (moderation): the message becomes deleted for everyone, as a recall does,
    whoever sent it and however old it is; its members get `message.deleted`. False when it
    was already deleted (nothing emitted). NotFound for an unknown id."""
    with transaction.atomic():
        message = (Message.objects.select_for_update(of=("self",)).select_related("conversation")
                   .filter(pk=as_uuid(str(message_id))).first())
        if message is None:
            raise NotFound()
        if message.deleted_at is not None:
            return False
        data = events.message_deleted(conversation_id=str(message.conversation_id), message_id=str(message.pk),
                                      seq=message.seq, scope="everyone")
        message.deleted_at = timezone.now()
        message.text, message.attachment_id, message.location = "", None, None
        message.save(update_fields=["deleted_at", "text", "attachment_id", "location"])
        stream_append(_emit_to_members(conversation=message.conversation, type=events.MESSAGE_DELETED,
                                       actor_id=None, data=data, message=message))
    return True


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
            read_seq=seq, delivered_seq=Greatest(F("delivered_seq"), seq))
        if not moved:
            return
        membership.read_seq = seq
        unread = (Membership.objects.filter(pk=membership.pk)
                  .annotate(n=Coalesce(Subquery(_unread_subquery(user.pk), output_field=IntegerField()), 0))
                  .values_list("n", flat=True).first())
        pending = [PendingEvent(user.pk, events.CONVERSATION_UPDATED, events.conversation_updated(
            conversation_id=str(conversation.pk), read_seq=seq, unread_count=unread))]
        if user.read_receipts and is_small(conversation):
            others = [str(u) for u in Membership.objects.filter(conversation=conversation, left_at__isnull=True)
                      .exclude(user=user).values_list("user_id", flat=True)]
            hidden = integrations.blocked_either_way(user_id=user.pk, other_ids=others)
            data = events.receipt(conversation_id=str(conversation.pk), user_id=str(user.pk), seq=seq)
            pending += [PendingEvent(u, events.RECEIPT_READ, data) for u in others if u not in hidden]
        stream_append(pending)


def device_ack(*, user: User, device_id: object, cursor: str) -> None:
    """The device has stored its user's stream up to `cursor`.

    The device's cursor only moves forward (and never past the stream head).
    Every `message.new` newly covered marks the user's membership delivered up
    to that seq, and each sender in a small conversation gets one
    `receipt.delivered` per conversation with the new delivered pointer.
    """
    position = cursor_decode(cursor)
    if position <= 0:
        return
    with transaction.atomic():
        position = min(position, stream_head(user_id=user.pk))
        row, _ = DeviceCursor.objects.select_for_update().get_or_create(device_id=device_id)
        if position <= row.position:
            return
        old, row.position = row.position, position
        row.save(update_fields=["position"])
        _mark_delivered(user=user, after=old, upto=position)


def _mark_delivered(*, user: User, after: int, upto: int) -> None:
    newest: dict[str, int] = {}
    senders: dict[str, set[str]] = defaultdict(set)
    for conversation_id, seq, sender_id in (
        Event.objects.filter(user_id=user.pk, type=events.MESSAGE_NEW, position__gt=after, position__lte=upto)
        .exclude(data__sender_id=str(user.pk))
        .values_list("data__conversation_id", "data__seq", "data__sender_id")
    ):
        if isinstance(seq, int) and seq > newest.get(conversation_id, 0):
            newest[conversation_id] = seq
        senders[conversation_id].add(str(sender_id))
    if not newest:
        return
    small = {str(c.pk) for c in Conversation.objects.filter(pk__in=list(newest)) if is_small(c)}
    pending = []
    for conversation_id in sorted(newest):
        seq = newest[conversation_id]
        moved = Membership.objects.filter(conversation_id=conversation_id, user=user, delivered_seq__lt=seq,
                                          left_at__isnull=True).update(delivered_seq=seq)
        if moved and conversation_id in small:
            data = events.receipt(conversation_id=conversation_id, user_id=str(user.pk), seq=seq)
            pending += [PendingEvent(s, events.RECEIPT_DELIVERED, data) for s in sorted(senders[conversation_id])]
    stream_append(pending)


# --- Account deletion ----------------------------------------------------------------


def user_messages_erase(*, user_id: object) -> None:
    """ACCOUNT_DELETION_STEPS: the user's messages become deleted for everyone
    (content erased) and they leave every conversation."""
    now = timezone.now()
    Message.objects.filter(sender_id=user_id, deleted_at__isnull=True).update(
        deleted_at=now, text="", attachment_id=None, location=None)
    conversation_ids = sorted(Membership.objects.filter(user_id=user_id, left_at__isnull=True)
                              .values_list("conversation_id", flat=True), key=str)
    pending: list[PendingEvent] = []
    for conversation_id in conversation_ids:
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        membership = Membership.objects.get(conversation=conversation, user_id=user_id)
        pending += _member_leave(conversation=conversation, membership=membership, by=None)
    stream_append(pending)
    DeviceCursor.objects.filter(device__user_id=user_id).delete()


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
