"""The socket's handler table: one async handler per client frame `type`.

This is the one module of `realtime` that may import `messaging` (the layer
above it): each handler validates its frame and calls one service, then
replies. `message.send` joins the process's group commit (realtime.batching)
and is answered when its batch committed, without holding up the socket's
other frames. The sync functions here are what the thread hops run; they are
plain callers of the services and selectors of accounts, contacts and messaging.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings

from accounts.models import Device, User
from accounts.selectors import device_is_active
from accounts.services import user_mark_seen
from calls import sockets as call_sockets
from core import asyncdb
from core.errors import ApplicationError, ValidationFailed
from core.serializers import timestamp
from messaging import services as messaging_services
from messaging.integrations import blockers_of
from messaging.selectors import (
    conversation_member_ids,
    device_cursor_position,
    presence_viewers,
    presence_visible_peers,
)
from messaging.services import DeviceAck, SendRequest
from realtime.batching import batcher
from realtime.frames import frame_encode, frame_ref, require_dict, require_str
from streams import presence
from streams.cursors import cursor_decode, cursor_encode
from streams.encoding import event_frame, json_text
from streams.groups import relay
from streams.selectors import stream_head, stream_heads, stream_read

if TYPE_CHECKING:
    from realtime.socket import Socket

Handler = Callable[["Socket", dict[str, Any]], Awaitable[None]]

TYPING_STATES = ("start", "stop")


# --- Sync work, run through one thread hop each ------------------------------------------


def socket_opened(*, user_id: str, device_id: str, connection_id: str) -> tuple[bool, list[str]]:
    """Once the socket is in the hub: (device still active, viewers to tell "online" when
    the user just came online)."""
    if not device_is_active(device_id=device_id):
        return False, []
    came_online = presence.device_online(user_id=user_id, device_id=device_id, connection_id=connection_id,
                                         ttl=settings.WS_PRESENCE_TTL)
    if not came_online:
        return True, []
    return True, presence_viewers(user_id=user_id)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    revoked: set[str]  # device ids no longer active
    came_online: list[tuple[str, list[str]]]  # (user, viewers) whose presence had expired: announce again
    heads: dict[str, int]  # user id -> last committed stream position


def sockets_heartbeat(sockets: list[tuple[str, str, str]]) -> Heartbeat:
    """The housekeeper's sweep over every socket of the process, (user, device, connection):
    one query for the devices still active, one for the users' stream heads, one cache pipeline
    to keep their presence alive."""
    device_ids = {device_id for _, device_id, _ in sockets}
    active = {str(pk) for pk in Device.objects.filter(pk__in=device_ids, revoked_at__isnull=True,
                                                      user__is_active=True).values_list("pk", flat=True)}
    live = [entry for entry in sockets if entry[1] in active]
    heads = stream_heads(user_ids=sorted({user_id for user_id, _, _ in live}))
    came_online = presence.refresh_many(live, ttl=settings.WS_PRESENCE_TTL)
    announcements = [(user_id, presence_viewers(user_id=user_id)) for user_id in sorted(came_online)]
    return Heartbeat(revoked=device_ids - active, came_online=announcements, heads=heads)


def socket_closed(*, user_id: str, device_id: str, connection_id: str) -> tuple[list[str], str | None]:
    """Forget the socket; when it was the user's last, record last_seen and return who to tell."""
    went_offline = presence.device_offline(user_id=user_id, device_id=device_id, connection_id=connection_id)
    if not went_offline:
        return [], None
    user_mark_seen(user_id=user_id)
    last_seen = User.objects.filter(pk=user_id).values_list("last_seen_at", flat=True).first()
    # the viewers by the privacy settings as they stand now, which may have changed since connect
    return presence_viewers(user_id=user_id), timestamp(last_seen) if last_seen else None


def presence_snapshot(*, user_id: str) -> list[dict[str, Any]]:
    """Presence frames for the peers whose presence the user may see (sent after hello):
    one query, one cache round."""
    peers = presence_visible_peers(user_id=user_id, limit=settings.WS_PRESENCE_SNAPSHOT_MAX)
    if not peers:
        return []
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


def stream_page(*, user_id: str, after: int, limit: int) -> tuple[list[tuple[int, str]], bool]:
    """A replay page as (position, encoded event frame) pairs, and whether more follow."""
    events, has_more = stream_read(user_id=user_id, after=after, limit=limit)
    return [(event["position"], event_frame(position=event["position"], type=event["type"],
                                            data_json=json_text(event["data"]), created_at=event["created_at"]))
            for event in events], has_more


def device_ack(*, user_id: str, device_id: str, cursor: str) -> None:
    messaging_services.device_ack(user=user_id, device_id=device_id, cursor=cursor)


async def messages_send(requests: list[SendRequest]) -> list[Any]:
    """Send a batch: the public Message or the ApplicationError per request, in order."""
    return [result if isinstance(result, ApplicationError) else result[0]
            for result in await messaging_services.message_send_many_async(requests)]


async def _run_send_batch(requests: list[SendRequest]) -> list[Any]:
    return await messages_send(requests)  # looked up at call time, so tests can wrap it


# --- Async helpers for the socket ----------------------------------------------------------


async def announce(user_id: str, viewers: list[str], state: str, last_seen: str | None) -> None:
    """Tell the viewers' live sockets that the user came online or went offline."""
    if viewers:
        await relay({"type": "presence", "user_id": user_id, "state": state, "last_seen": last_seen},
                    user_ids=viewers)


async def store_ack(socket: Socket, position: int) -> None:
    """Returns once the ack is stored: on PostgreSQL in the process's next ack batch (one
    statement for every socket's acks meanwhile), under SQLite on a thread."""
    if not asyncdb.available():
        await database_sync_to_async(device_ack, thread_sensitive=False)(
            user_id=socket.user_id, device_id=socket.device_id, cursor=cursor_encode(position))
        return
    stored: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def done(result: Any) -> None:
        if not stored.done():
            stored.set_result(result)

    batcher(_run_ack_batch, kind="ack").submit(DeviceAck(socket.user_id, socket.device_id, position), done)
    result = await stored
    if isinstance(result, ApplicationError):
        raise result


async def _run_ack_batch(acks: list[DeviceAck]) -> list[Any]:
    return await messaging_services.device_acks_async(acks)


# --- Frame handlers -------------------------------------------------------------------------


async def handle_ping(socket: Socket, frame: dict[str, Any]) -> None:
    await socket.write('{"type":"pong"}')


async def handle_hello(socket: Socket, frame: dict[str, Any]) -> None:
    cursor = frame.get("cursor")
    cursor_decode(cursor)  # a bad cursor is the client's error, before any hop
    after = await database_sync_to_async(hello_position, thread_sensitive=False)(
        user_id=socket.user_id, device_id=socket.device_id, cursor=cursor)
    await socket.start_replay(after)
    if settings.WS_PRESENCE_SNAPSHOT:
        for presence_frame in await database_sync_to_async(presence_snapshot, thread_sensitive=False)(
                user_id=socket.user_id):
            await socket.send_frame(presence_frame)


async def handle_ack(socket: Socket, frame: dict[str, Any]) -> None:
    socket.ack(cursor_decode(require_str(frame, "cursor", max_length=32)))


async def handle_message_send(socket: Socket, frame: dict[str, Any]) -> None:
    ref = frame_ref(frame)
    if ref is None:
        raise ValidationFailed("`ref` is required.", details={"ref": ["A string (<= 64 chars) or an integer."]})
    conversation_id = require_str(frame, "conversation_id", max_length=64)
    payload = require_dict(frame, "message")
    request = SendRequest(socket.user_id, conversation_id, payload, socket.device_id)
    # Answered when its batch has committed; the socket reads its next frame meanwhile.
    batcher(_run_send_batch).submit(request, partial(_reply_sent, socket, ref))


async def _reply_sent(socket: Socket, ref: str | int, result: Any) -> None:
    if isinstance(result, ApplicationError):
        await socket.send_error(result, ref=ref)
    else:
        await socket.write(f'{{"type":"message.sent","ref":{frame_encode(ref)},"message":{json_text(result)}}}')


async def handle_typing(socket: Socket, frame: dict[str, Any]) -> None:
    conversation_id = require_str(frame, "conversation_id", max_length=64)
    state = frame.get("state")
    if state not in TYPING_STATES:
        raise ValidationFailed("`state` must be start or stop.", details={"state": ["One of: start, stop."]})
    now = time.monotonic()
    last = socket.typing_sent.get(conversation_id)
    if state == "start" and last is not None and now - last < settings.WS_TYPING_THROTTLE_SECONDS:
        return  # throttled: the relay from moments ago still shows "typing"
    recipients = await database_sync_to_async(typing_recipients, thread_sensitive=False)(
        user_id=socket.user_id, conversation_id=conversation_id)
    if state == "start":
        socket.typing_sent[conversation_id] = now
    else:
        socket.typing_sent.pop(conversation_id, None)
    if recipients:
        await relay({"type": "typing", "conversation_id": conversation_id, "user_id": socket.user_id,
                     "state": state}, user_ids=recipients)


# Frames that write, refused with an `error` frame (`service_read_only`) from the sunset's
# read-only time on. The other call frames only answer, signal or end calls already ringing.
WRITING_FRAMES = frozenset({"message.send", "call.offer"})

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
