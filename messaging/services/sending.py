"""Sending messages: validation, idempotency, the send rate, authorisation, seqs, and their events.

A batch of sends (the socket's group commit, or one REST send) is judged
request by request, and everything that passes is written in one transaction:
on PostgreSQL by one call of `messaging_send_batch` (migration 0004), which
checks membership, posting rights, replies, retries and the send rate under
the conversation locks, allocates seqs, inserts the messages, advances the
recipients' stream positions and appends their events, in one round trip;
under SQLite (the embedded default) by the ORM path at the end of this module.

After the commit the recipients' live sockets get the new events (`streams.hub`:
this process's at once, the others by one doorbell per batch), pushes and big
conversations' fan-out are enqueued. The socket calls `message_send_many_async`
from the event loop (the statement runs on the async pool, no thread hop);
REST and other services call `message_send_many` / `message_send` /
`message_post` on Django's connection.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg.errors
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import User
from accounts.selectors import has_push_device
from core import asyncdb, metrics, ratelimit
from core.errors import ApplicationError, Conflict, Forbidden, NotFound, RateLimited, ValidationFailed
from core.sunset import ensure_writable, ensure_writable_async
from messaging import events, integrations
from messaging.inputs import message_send_validate
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
    message_public_values,
    messages_public,
    messages_public_by_id,
)
from messaging.services.fanout import enqueue_fanout
from messaging.services.push import push_message_new, push_new_message
from streams.encoding import event_frame
from streams.hub import Events, events_for, hub, ring_now
from streams.hub import key as hub_key
from streams.services import PendingEvent, stream_append

logger = logging.getLogger(__name__)

Result = tuple[dict[str, Any], bool] | ApplicationError
SEND_RATE_SCOPE = "message_send"


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One send: who (a User or a user id), where, and the body exactly as the client sent it."""

    sender: Any
    conversation_id: object
    payload: Any
    device_id: object = None

    @property
    def sender_id(self) -> str:
        return str(getattr(self.sender, "pk", self.sender))


@dataclass(slots=True)
class _Send:
    index: int
    request: SendRequest
    data: dict[str, Any]
    conversation_id: uuid.UUID | None = None
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)
    # The ORM path's working state (SQLite).
    membership: Membership | None = None
    message: Message | None = None
    public: dict[str, Any] | None = None


@dataclass
class _AfterCommit:
    """What a written batch owes the world once it has committed."""

    events: Events = field(default_factory=dict)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    fanout_job_ids: list[int] = field(default_factory=list)
    attachment_ids: list[uuid.UUID] = field(default_factory=list)
    sent_by_sender: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def enqueue(self) -> None:
        """Pushes and fan-out jobs: inside a transaction they are sent on its commit, outside
        (the socket's autocommit batch) at once; sync, as Celery's enqueue is blocking."""
        for push in self.pushes:
            push_message_new(**push)
        if self.fanout_job_ids:
            enqueue_fanout(self.fanout_job_ids)

    def ring_sync(self) -> None:
        with metrics.SEND_RING.time():
            ring_now(events=self.events)

    async def run_async(self) -> None:
        with metrics.SEND_RING.time():
            await hub().ring(events=self.events)
        if self.pushes or self.fanout_job_ids:
            await database_sync_to_async(self.enqueue, thread_sensitive=False)()


# --- Entry points ---------------------------------------------------------------------------


def message_send(*, sender: User, conversation_id: object, payload: dict,
                 device_id: object = None) -> tuple[dict[str, Any], bool]:
    """Send one message: (public Message, created). A retry with the same
    client_id returns the original with created=False, whatever its content."""
    result = message_send_many([SendRequest(sender, conversation_id, payload, device_id)])[0]
    if isinstance(result, ApplicationError):
        raise result
    return result


def message_send_many(requests: Sequence[SendRequest | Mapping[str, Any]]) -> list[Result]:
    """Send several messages in one transaction (group commit), each judged on its own.

    Results come back in request order: (Message, created) or the error. A
    request is a SendRequest or a mapping of its fields.
    """
    requests = [r if isinstance(r, SendRequest) else SendRequest(**r) for r in requests]
    results: list[Any] = [None] * len(requests)
    try:
        ensure_writable("message.send")  # sunset mode: read-only refuses every send (403)
    except ApplicationError as refused:
        return [refused] * len(requests)
    accepted = _validate(requests, results)
    if not accepted:
        return results
    accepted = integrations.sends_screen(accepted, results)  # the spam throttle (MESSAGING_SEND_SCREEN)
    if connection.vendor != "postgresql":
        _send_orm(accepted, results)
        _count_sent(results)
        return results
    for batch in _rounds(accepted, results):
        allowances, retry_after = _allowances(batch)
        with metrics.SEND_COMMIT.time():
            after = _write_pg(batch, results, allowances=allowances, retry_after=retry_after)
        if after is not None:
            _spend(after.sent_by_sender)
            metrics.MESSAGES_SENT.inc(sum(after.sent_by_sender.values()))
    return results


async def message_send_many_async(requests: list[SendRequest]) -> list[Result]:
    """`message_send_many` from the event loop (the socket's group commit).

    On PostgreSQL the batch is one statement on the loop's async pool (no thread
    hop) in autocommit; its events reach this process's sockets before this
    returns. Sends that carry an attachment (whose checks belong to the media
    app) go through `message_send_many` on a thread, concurrently.
    """
    results: list[Any] = [None] * len(requests)
    try:
        await ensure_writable_async("message.send")
    except ApplicationError as refused:
        return [refused] * len(requests)
    if not asyncdb.available():
        # SQLite: one writer at a time, on the thread that owns Django's connection.
        return await database_sync_to_async(message_send_many)(requests)
    accepted = await integrations.sends_screen_async(_validate(requests, results), results)
    with_attachment = [item for item in accepted if item.data.get("attachment_id")]
    if with_attachment:
        accepted = [item for item in accepted if not item.data.get("attachment_id")]
        media_results = await database_sync_to_async(message_send_many, thread_sensitive=False)(
            [item.request for item in with_attachment])
        for item, result in zip(with_attachment, media_results, strict=True):
            results[item.index] = result
    for batch in _rounds(accepted, results):
        allowances, retry_after = await _allowances_async(batch)
        with metrics.SEND_COMMIT.time():
            output = await _call_async(batch, allowances)
        after, dups = _apply(output, batch, results, retry_after=retry_after)
        metrics.MESSAGES_SENT.inc(sum(after.sent_by_sender.values()))
        if dups:
            await database_sync_to_async(_render_dups, thread_sensitive=False)(dups, results)
        await after.run_async()
        await _spend_async(after.sent_by_sender)
    return results


def message_post(*, sender_id: object, conversation_id: object, type: str, content: dict[str, Any],
                 client_id: uuid.UUID, text: str = "") -> tuple[dict[str, Any], bool]:
    """Post a server-made message (`call`, `red_packet`) as `sender_id`: (public Message, created).

    Runs inside the caller's transaction when there is one, so the message, its
    seq and its events commit together with the caller's change (a packet's
    debit, a call's end) or not at all. `content` is the payload under its own
    key, e.g. {"call": {...}}. Idempotent by (sender, client_id): posting again
    returns the first message. The sender must be a current member (NotFound), an
    admin in a broadcast (Forbidden); the client's validation and send rate do not apply.
    """
    if type not in SERVER_MESSAGE_TYPES:
        raise ValueError(f"{type!r} is not a server-made message type")
    if as_uuid(conversation_id) is None:
        raise NotFound()
    item = _Send(0, SendRequest(str(sender_id), conversation_id, None),
                 {"client_id": client_id, "type": type, "text": text, "content": content}, as_uuid(conversation_id))
    results: list[Any] = [None]
    if connection.vendor != "postgresql":
        _send_orm([item], results, limit_rate=False)
    else:
        _write_pg([item], results, allowances={}, retry_after=0)
    result = results[0]
    if isinstance(result, ApplicationError):
        raise result
    return result


# --- Judging requests -----------------------------------------------------------------------


def _count_sent(results: list[Any]) -> None:
    metrics.MESSAGES_SENT.inc(sum(1 for r in results if isinstance(r, tuple) and r[1]))


def _validate(requests: list[SendRequest], results: list[Any]) -> list[_Send]:
    """Payload checks (no database): failures go straight into `results`."""
    accepted = []
    for index, request in enumerate(requests):
        try:
            data = message_send_validate(request.payload)
        except ApplicationError as error:
            results[index] = error
            continue
        conversation_id = as_uuid(request.conversation_id)
        if conversation_id is None:
            results[index] = NotFound()
            continue
        accepted.append(_Send(index, request, data, conversation_id))
    return accepted


def _rounds(items: list[_Send], results: list[Any]) -> list[list[_Send]]:
    """The batch, then repeats of a (sender, client_id) already in it: a repeat is judged
    after the first is written, so it comes back as that message (or on its own merits)."""
    rounds: list[list[_Send]] = []
    keys: list[set[tuple[str, Any]]] = []
    for item in items:
        key = (item.request.sender_id, item.data["client_id"])
        for batch, batch_keys in zip(rounds, keys, strict=True):
            if key not in batch_keys:
                batch.append(item)
                batch_keys.add(key)
                break
        else:
            rounds.append([item])
            keys.append({key})
    return rounds


def _allowances(items: list[_Send]) -> tuple[dict[str, int], int]:
    """How many new messages each sender may still send in the window. Fails open when
    the cache is down: a broken limiter must not stop sending."""
    allowed, window = settings.MESSAGING_SEND_LIMIT
    if allowed <= 0:
        return {}, 0
    try:
        return ratelimit.remaining_many(SEND_RATE_SCOPE, sorted({i.request.sender_id for i in items}),
                                        (allowed, window))
    except (RedisError, OSError):
        logger.warning("send rate limit unavailable (cache down); allowing")
        return {}, 0


async def _allowances_async(items: list[_Send]) -> tuple[dict[str, int], int]:
    allowed, window = settings.MESSAGING_SEND_LIMIT
    if allowed <= 0:
        return {}, 0
    try:
        return await ratelimit.remaining_many_async(
            SEND_RATE_SCOPE, sorted({i.request.sender_id for i in items}), (allowed, window))
    except (RedisError, OSError):
        logger.warning("send rate limit unavailable (cache down); allowing")
        return {}, 0


def _spend(sent_by_sender: dict[str, int]) -> None:
    if settings.MESSAGING_SEND_LIMIT[0] > 0 and sent_by_sender:
        try:
            ratelimit.spend_many(SEND_RATE_SCOPE, dict(sent_by_sender), settings.MESSAGING_SEND_LIMIT)
        except (RedisError, OSError):
            logger.warning("send rate limit unavailable (cache down); not counted")


async def _spend_async(sent_by_sender: dict[str, int]) -> None:
    if settings.MESSAGING_SEND_LIMIT[0] > 0 and sent_by_sender:
        try:
            await ratelimit.spend_many_async(SEND_RATE_SCOPE, dict(sent_by_sender), settings.MESSAGING_SEND_LIMIT)
        except (RedisError, OSError):
            logger.warning("send rate limit unavailable (cache down); not counted")


# --- PostgreSQL: one statement per batch ------------------------------------------------------

_SEND_SQL = "SELECT messaging_send_batch(%s::jsonb, %s)"


def _batch_json(items: list[_Send], allowances: dict[str, int]) -> str:
    return orjson.dumps([{
        "i": item.index, "m": str(item.message_id), "s": item.request.sender_id,
        "c": str(item.conversation_id), "k": str(item.data["client_id"]),
        "t": item.data["type"], "x": item.data.get("text") or "",
        "r": str(item.data["reply_to"]) if item.data.get("reply_to") else None,
        "l": item.data.get("location"), "o": item.data.get("content"),
        "a": str(item.data["attachment_id"]) if item.data.get("attachment_id") else None,
        "q": allowances.get(item.request.sender_id),
    } for item in items]).decode()


def _write_pg(items: list[_Send], results: list[Any], *, allowances: dict[str, int],
              retry_after: int) -> _AfterCommit | None:
    """The batch through Django's connection: attachments locked and checked first (media
    owns them), then the statement; retried once when a concurrent batch raced a client_id."""
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                batch = _lock_attachments(items, results)
                if not batch:
                    return None
                with connection.cursor() as cursor:
                    cursor.execute(_SEND_SQL, [_batch_json(batch, allowances), settings.MESSAGING_INLINE_FANOUT_MAX])
                    output = cursor.fetchone()[0]
                output = orjson.loads(output) if isinstance(output, (str, bytes)) else output
                after, dups = _apply(output, batch, results, retry_after=retry_after)
                _render_dups(dups, results)
                for attachment_id in after.attachment_ids:
                    integrations.attachment_mark_used(attachment_id=attachment_id)
                after.enqueue()  # push and fan-out enqueue themselves on commit
                transaction.on_commit(after.ring_sync)
                return after
        except IntegrityError:
            if attempt == 2:
                raise
    return None


async def _call_async(items: list[_Send], allowances: dict[str, int]) -> dict[str, Any]:
    payload = _batch_json(items, allowances)
    for attempt in (1, 2):
        try:
            async with (await asyncdb.pool()).connection() as db:
                cursor = await db.execute(_SEND_SQL, [payload, settings.MESSAGING_INLINE_FANOUT_MAX])
                return (await cursor.fetchone())[0]
        except psycopg.errors.UniqueViolation:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _lock_attachments(items: list[_Send], results: list[Any]) -> list[_Send]:
    """The sender's own attachment of the message's kind, row locked until commit."""
    batch = []
    for item in items:
        attachment_id = item.data.get("attachment_id")
        if attachment_id:
            kind = "image" if item.data["type"] == "sticker" else item.data["type"]
            try:
                integrations.attachment_validate(attachment_id=attachment_id, sender_id=item.request.sender_id,
                                                 kind=kind)
            except ApplicationError as error:
                results[item.index] = error
                continue
        batch.append(item)
    return batch


_REFUSALS = {
    "not_found": lambda: NotFound(),
    "forbidden": lambda: Forbidden("Only admins post in a broadcast."),
    "bad_reply": lambda: ValidationFailed(details={"reply_to": ["No such message in this conversation."]}),
}


def _apply(output: dict[str, Any], items: list[_Send], results: list[Any], *,
           retry_after: int) -> tuple[_AfterCommit, list[tuple[int, str]]]:
    """Turn the statement's answer into results and what is owed after commit; returns the
    retries (index, stored message id) still to render."""
    by_index = {item.index: item for item in items}
    now = output["now"]
    after = _AfterCommit()
    rings: list[tuple[str, int, str]] = []
    dups: list[tuple[int, str]] = []
    attachments = integrations.attachments_public(i.data["attachment_id"] for i in items
                                                  if i.data.get("attachment_id"))
    for entry in output["items"]:
        item = by_index[entry["i"]]
        status = entry["s"]
        if status == "dup":
            dups.append((item.index, entry["d"]["id"]))
            continue
        if status == "rate_limited":
            results[item.index] = RateLimited("Too many messages; retry later.", retry_after=retry_after)
            continue
        if status != "ok":
            results[item.index] = _REFUSALS[status]()
            continue
        data = item.data
        attachment_id = data.get("attachment_id")
        public = message_public_values(
            id=item.message_id, conversation_id=item.conversation_id, seq=entry["seq"],
            sender_id=item.request.sender_id, client_id=data["client_id"], type=data["type"],
            text=data.get("text") or "", attachment=attachments.get(str(attachment_id)) if attachment_id else None,
            location=data.get("location"), reply_to=data.get("reply_to"), created_at=now, edited_at=None,
            deleted=False, content=data.get("content"))
        results[item.index] = (public, True)
        message_json = orjson.dumps(public).decode()
        for user_id, position in entry.get("r", ()):
            rings.append((hub_key(user_id), position, event_frame(
                position=position, type=events.MESSAGE_NEW, data_json=message_json, created_at=now)))
        for user_id, muted in entry.get("p", ()):
            after.pushes.append({"user_id": user_id, "sender_name": entry.get("n") or "",
                                 "conversation_title": entry.get("t") or "", "message": public, "muted": muted})
        if "f" in entry:
            after.fanout_job_ids.append(entry["f"])
        if attachment_id:
            after.attachment_ids.append(attachment_id)
        after.sent_by_sender[item.request.sender_id] += 1
    after.events = events_for(rings)
    if rings:
        metrics.STREAM_APPEND_EVENTS.observe(len(rings))  # the statement appended them, one batch
    return after, dups


def _render_dups(dups: list[tuple[int, str]], results: list[Any]) -> None:
    """Retries get the stored message back, as it stands now."""
    if dups:
        rendered = messages_public_by_id([message_id for _, message_id in dups])
        for index, message_id in dups:
            results[index] = (rendered[message_id], False)


# --- SQLite (the embedded default): the same rules through the ORM ------------------------------


def _send_orm(pending: list[_Send], results: list[Any], *, limit_rate: bool = True) -> None:
    """Replays, the send rate, authorisation, then one transaction for the rest."""
    pending = _drop_replays(pending, results)
    if limit_rate:
        pending = _limit_send_rate(pending, results)
    with transaction.atomic():
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
        original = Message.objects.filter(sender_id=item.request.sender_id, client_id=item.data["client_id"]).first()
        results[item.index] = (message_public(original), False) if original else Conflict()


def _drop_replays(pending: list[_Send], results: list[Any]) -> list[_Send]:
    """Retries of already stored messages get the original back (one query)."""
    if not pending:
        return pending
    keys = {(p.request.sender_id, p.data["client_id"]) for p in pending}
    existing = {
        (str(m.sender_id), m.client_id): m
        for m in Message.objects.filter(sender_id__in={k[0] for k in keys}, client_id__in={k[1] for k in keys})
    }
    fresh = []
    for item in pending:
        original = existing.get((item.request.sender_id, item.data["client_id"]))
        if original is not None:
            results[item.index] = (message_public(original), False)
        else:
            fresh.append(item)
    return fresh


def _limit_send_rate(pending: list[_Send], results: list[Any]) -> list[_Send]:
    """At most MESSAGING_SEND_LIMIT new messages per sender per window (retries of stored
    messages are free: they were dropped before)."""
    if not pending:
        return pending
    allowances, retry_after = _allowances(pending)
    if not allowances:
        return pending
    kept: list[_Send] = []
    spent: dict[str, int] = defaultdict(int)
    for item in pending:
        sender_id = item.request.sender_id
        if spent[sender_id] >= allowances.get(sender_id, 0):
            results[item.index] = RateLimited("Too many messages; retry later.", retry_after=retry_after)
            continue
        spent[sender_id] += 1
        kept.append(item)
    _spend(spent)
    return kept


def _authorise_sends(pending: list[_Send], results: list[Any]) -> list[_Send]:
    """Membership (under the conversation lock), posting rights, reply_to and attachments."""
    if not pending:
        return pending
    conversation_ids = sorted({as_uuid(p.request.conversation_id) for p in pending}, key=str)
    list(Conversation.objects.select_for_update().filter(pk__in=conversation_ids).order_by("pk"))
    wanted = {(p.request.sender_id, as_uuid(p.request.conversation_id)) for p in pending}
    memberships = {
        (str(m.user_id), m.conversation_id): m
        for m in Membership.objects.select_related("conversation").filter(
            user_id__in={w[0] for w in wanted}, conversation_id__in=conversation_ids, left_at__isnull=True)
    }
    reply_ids = {p.data["reply_to"] for p in pending if p.data.get("reply_to")}
    replies = dict(Message.objects.filter(pk__in=reply_ids).values_list("pk", "conversation_id")) if reply_ids else {}
    ok = []
    for item in pending:
        try:
            membership = memberships.get((item.request.sender_id, as_uuid(item.request.conversation_id)))
            if membership is None:
                raise NotFound()
            if membership.conversation.type == ConversationType.BROADCAST and membership.role not in ADMIN_ROLES:
                raise Forbidden("Only admins post in a broadcast.")
            reply_to = item.data.get("reply_to")
            if reply_to and replies.get(reply_to) != membership.conversation_id:
                raise ValidationFailed(details={"reply_to": ["No such message in this conversation."]})
            if item.data.get("attachment_id"):
                kind = "image" if item.data["type"] == "sticker" else item.data["type"]
                integrations.attachment_validate(attachment_id=item.data["attachment_id"],
                                                 sender_id=item.request.sender_id, kind=kind)
            item.membership = membership
            ok.append(item)
        except ApplicationError as error:
            results[item.index] = error
    return ok


def _write_sends(pending: list[_Send]) -> list[_Send]:
    """Insert the messages and their events; returns the sends that lost a client_id race."""
    raced: list[_Send] = []
    with transaction.atomic():
        try:
            with transaction.atomic():
                _insert_messages(pending)
            written = pending
        except IntegrityError:
            if len(pending) == 1:
                raise
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
    """Allocate seqs per conversation (its row lock orders concurrent senders) and insert
    every message in one statement."""
    by_conversation: dict[uuid.UUID, list[_Send]] = defaultdict(list)
    for item in items:
        by_conversation[item.membership.conversation_id].append(item)
    now = timezone.now()
    messages = []
    for conversation_id in sorted(by_conversation, key=str):
        group = by_conversation[conversation_id]
        last_seq = _allocate_seqs(conversation_id, len(group), group[-1].message_id, now)
        first_seq = last_seq - len(group) + 1
        for offset, item in enumerate(group):
            data = item.data
            item.message = Message(
                id=item.message_id, conversation_id=conversation_id, seq=first_seq + offset,
                sender_id=item.request.sender_id, client_id=data["client_id"], type=data["type"],
                text=data.get("text") or "", content=data.get("content"), attachment_id=data.get("attachment_id"),
                reply_to_id=data.get("reply_to"), location=data.get("location"), created_at=now,
            )
            item.message.conversation = item.membership.conversation
            item.membership.conversation.last_seq = last_seq
            messages.append(item.message)
    Message.objects.bulk_create(messages)


def _allocate_seqs(conversation_id: uuid.UUID, count: int, last_message_id: uuid.UUID, now: datetime) -> int:
    """Reserve `count` seqs; the row's UPDATE holds its lock until commit, so seqs commit in order."""
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
                                  event_type=events.MESSAGE_NEW, data={}, exclude_user_ids=[sender_id],
                                  cutoff=message.created_at))
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
