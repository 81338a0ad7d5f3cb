"""The socket's handler table: one async handler per client frame `type`.

This is the one module of `realtime` that may import `messaging` (the layer
above it): each handler validates its frame, awaits one service (through a
single thread hop, or the group-commit batcher for sends) and replies. The
sync functions here are what those hops run; they are plain callers of the
services and selectors of accounts, contacts and messaging.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings

from accounts.models import User
from accounts.selectors import device_is_active, last_seen_visible_to
from accounts.services import user_mark_seen
from calls import sockets as call_sockets
from core.errors import ApplicationError, ValidationFailed
from core.serializers import timestamp
from messaging import services as messaging_services
from messaging.integrations import blocked_either_way, blockers_of
from messaging.selectors import conversation_member_ids, device_cursor_position, presence_audience
from messaging.services import SendRequest
from realtime import presence
from realtime.batching import batcher_for
from realtime.frames import frame_ref, require_dict, require_str
from streams.cursors import cursor_decode
from streams.selectors import stream_head

if TYPE_CHECKING:
    from realtime.consumers import StreamConsumer

Handler = Callable[["StreamConsumer", dict[str, Any]], Awaitable[None]]

TYPING_STATES = ("start", "stop")


# --- Sync work, run through one thread hop each ------------------------------------------


def presence_viewers(*, user: User) -> list[str]:
    """Peers who may see `user`'s presence: conversation peers, minus blocks either way,
    filtered by `user`'s last_seen privacy."""
    audience = [str(u) for u in presence_audience(user_id=user.pk) if str(u) != str(user.pk)]
    if not audience:
        return []
    blocked = blocked_either_way(user_id=user.pk, other_ids=audience)
    return [v for v in audience if v not in blocked and last_seen_visible_to(target=user, viewer_id=v)]


def socket_heartbeat(*, user: User, device_id: str, connection_id: str) -> tuple[bool, list[str]]:
    """Run once the socket has joined its groups, then every heartbeat: (device still
    active, viewers to tell "online" when the user just came online, or its presence
    key had expired)."""
    if not device_is_active(device_id=device_id):
        return False, []
    came_online = presence.device_online(user_id=user.pk, device_id=device_id, connection_id=connection_id,
                                         ttl=settings.WS_PRESENCE_TTL)
    if not came_online:
        return True, []
    user.refresh_from_db()  # the privacy settings may have changed since connect
    return True, presence_viewers(user=user)


def socket_closed(*, user: User, device_id: str, connection_id: str) -> tuple[list[str], str | None]:
    """Forget the socket; when it was the user's last, record last_seen and return who to tell."""
    went_offline = presence.device_offline(user_id=user.pk, device_id=device_id, connection_id=connection_id)
    if not went_offline:
        return [], None
    user_mark_seen(user_id=user.pk)
    user.refresh_from_db()  # also the privacy settings, which may have changed since connect
    return presence_viewers(user=user), timestamp(user.last_seen_at) if user.last_seen_at else None


def presence_snapshot(*, user: User) -> list[dict[str, Any]]:
    """Presence frames for the peers whose presence `user` may see (sent after hello)."""
    peer_ids = [str(u) for u in presence_audience(user_id=user.pk) if str(u) != str(user.pk)]
    peer_ids = peer_ids[: settings.WS_PRESENCE_SNAPSHOT_MAX]
    if not peer_ids:
        return []
    blocked = blocked_either_way(user_id=user.pk, other_ids=peer_ids)
    peers = [p for p in User.objects.filter(pk__in=[p for p in peer_ids if p not in blocked], is_active=True)
             if last_seen_visible_to(target=p, viewer_id=user.pk)]
    online = presence.user_ids_online([p.pk for p in peers])
    return [
        {"type": "presence", "user_id": str(p.pk), "state": "online" if str(p.pk) in online else "offline",
         "last_seen": None if str(p.pk) in online or not p.last_seen_at else timestamp(p.last_seen_at)}
        for p in peers
    ]


def typing_recipients(*, user_id: str, conversation_id: str) -> list[str]:
    """The other current members who did not block the typer (NotFound for a non-member);
    nobody in conversations with more than WS_TYPING_MAX_RECIPIENTS other members."""
    members = [str(m) for m in conversation_member_ids(user_id=user_id, conversation_id=conversation_id)
               if str(m) != user_id]
    if not members or len(members) > settings.WS_TYPING_MAX_RECIPIENTS:
        return []  # in a crowd "someone is typing" is noise, and a relay to each would be a storm
    blockers = blockers_of(user_id=user_id, candidate_ids=members)
    return [m for m in members if m not in blockers]


def hello_position(*, user_id: str, device_id: str, cursor: str | None) -> int:
    """Where a hello's replay starts: after `cursor`, or after the device's last ack when
    there is none. Clamped to the stream head: a cursor from the future (another
    server's, a restored database's) would otherwise hide every new event."""
    after = device_cursor_position(device_id=device_id) if cursor in (None, "") else cursor_decode(cursor)
    return min(after, stream_head(user_id=user_id)) if after else 0


def device_ack(*, user: User, device_id: str, cursor: str) -> None:
    messaging_services.device_ack(user=user, device_id=device_id, cursor=cursor)


def messages_send(requests: list[SendRequest]) -> list[dict[str, Any] | ApplicationError]:
    """Send a batch in one transaction: the public Message or the ApplicationError per request, in order."""
    return [result if isinstance(result, ApplicationError) else result[0]
            for result in messaging_services.message_send_many(requests)]


def _run_send_batch(requests: list[SendRequest]) -> list[dict[str, Any] | ApplicationError]:
    return messages_send(requests)  # looked up at call time, so tests can wrap it


# --- Frame handlers -------------------------------------------------------------------------


async def handle_ping(consumer: StreamConsumer, frame: dict[str, Any]) -> None:
    await consumer.send_frame({"type": "pong"})


async def handle_hello(consumer: StreamConsumer, frame: dict[str, Any]) -> None:
    cursor = frame.get("cursor")
    cursor_decode(cursor)  # a bad cursor is the client's error, before any hop
    after = await database_sync_to_async(hello_position)(user_id=consumer.user_id, device_id=consumer.device_id,
                                                         cursor=cursor)
    await consumer.start_replay(after)
    if settings.WS_PRESENCE_SNAPSHOT:
        for presence_frame in await database_sync_to_async(presence_snapshot)(user=consumer.user):
            await consumer.send_frame(presence_frame)


async def handle_ack(consumer: StreamConsumer, frame: dict[str, Any]) -> None:
    consumer.ack(cursor_decode(require_str(frame, "cursor", max_length=32)))


async def handle_message_send(consumer: StreamConsumer, frame: dict[str, Any]) -> None:
    if frame_ref(frame) is None:
        raise ValidationFailed("`ref` is required.", details={"ref": ["A string (<= 64 chars) or an integer."]})
    conversation_id = require_str(frame, "conversation_id", max_length=64)
    payload = require_dict(frame, "message")
    request = SendRequest(sender=consumer.user, conversation_id=conversation_id, payload=payload,
                          device_id=consumer.device_id)
    # The reply waits for the batch's commit; the socket keeps reading frames meanwhile.
    consumer.spawn(_send_and_reply(consumer, frame_ref(frame), request))


async def _send_and_reply(consumer: StreamConsumer, ref: str | int | None, request: SendRequest) -> None:
    batcher = batcher_for("message.send", _run_send_batch, max_batch=settings.WS_SEND_BATCH_MAX)
    try:
        message = await batcher.submit(request)
    except ApplicationError as error:
        await consumer.send_error(error, ref=ref)
        return
    await consumer.send_frame({"type": "message.sent", "ref": ref, "message": message})


async def handle_typing(consumer: StreamConsumer, frame: dict[str, Any]) -> None:
    conversation_id = require_str(frame, "conversation_id", max_length=64)
    state = frame.get("state")
    if state not in TYPING_STATES:
        raise ValidationFailed("`state` must be start or stop.", details={"state": ["One of: start, stop."]})
    now = time.monotonic()
    last = consumer.typing_sent.get(conversation_id)
    if state == "start" and last is not None and now - last < settings.WS_TYPING_THROTTLE_SECONDS:
        return  # throttled: the relay from moments ago still shows "typing"
    recipients = await database_sync_to_async(typing_recipients)(user_id=consumer.user_id,
                                                                 conversation_id=conversation_id)
    if state == "start":
        consumer.typing_sent[conversation_id] = now
    else:
        consumer.typing_sent.pop(conversation_id, None)
    await consumer.relay_to_users(recipients, {"type": "typing.relay", "conversation_id": conversation_id,
                                               "user_id": consumer.user_id, "state": state})


HANDLERS: dict[str, Handler] = {
    "hello": handle_hello,
    "ack": handle_ack,
    "message.send": handle_message_send,
    "typing": handle_typing,
    "ping": handle_ping,
    # Call signalling (calls/sockets.py): each replies call.ok or error by ref.
    "call.offer": call_sockets.handle_offer,
    "call.answer": call_sockets.handle_answer,
    "call.ice": call_sockets.handle_ice,
    "call.update": call_sockets.handle_update,
    "call.reject": call_sockets.handle_reject,
    "call.hangup": call_sockets.handle_hangup,
}
