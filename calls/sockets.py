"""The call frames of the socket: async handlers for `realtime.handlers.HANDLERS`, and the
socket hooks that notice an engaged device dropping and coming back.

Each handler validates its frame, awaits one service through a database thread
hop and replies `{"type": "call.ok", "ref", "call_id", ...}`; errors propagate to
the consumer, which sends the `error` frame with the same `ref`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from calls import inputs, services
from realtime.frames import frame_ref

if TYPE_CHECKING:
    from realtime.socket import Socket as StreamConsumer

logger = logging.getLogger(__name__)


async def _reply(consumer: StreamConsumer, frame: dict[str, Any], result: dict[str, Any]) -> None:
    reply: dict[str, Any] = {"type": "call.ok"}
    ref = frame_ref(frame)
    if ref is not None:
        reply["ref"] = ref
    reply.update(result)
    try:
        await consumer.send_frame(reply)
    except OSError:
        # The client went away after the change was committed (a phone that lost the network
        # right after answering). Nobody to tell; the socket's close (and the close hooks) follow.
        logger.info("call.ok not delivered: the client is gone")


async def handle_offer(consumer: StreamConsumer, frame: dict[str, Any]) -> None:
    call_id = inputs.call_id(frame)
    to = inputs.to(frame)
    sdp = inputs.sdp(frame)
    if to is not None:  # a group call's later leg, between two joined devices
        result = await database_sync_to_async(services.call_leg_offer)(
            user=consumer.user_id, device_id=consumer.device_id, call_id=call_id, to=to, sdp=sdp)
    else:
        result = await database_sync_to_async(services.call_offer)(
            user=consumer.user_id, device_id=consumer.device_id, call_id=call_id,
            conversation_id=inputs.conversation_id(frame), media=inputs.media(frame),
            remote_control=inputs.boolean(frame, "remote_control"), sdp=sdp)
    await _reply(consumer, frame, result)


async def handle_answer(consumer: StreamConsumer, frame: dict[str, Any]) -> None:
    call_id = inputs.call_id(frame)
    result = await database_sync_to_async(services.call_answer)(
        user=consumer.user_id, device_id=consumer.device_id, call_id=call_id, sdp=inputs.sdp(frame),
        grant_control=inputs.boolean(frame, "grant_control"), to=inputs.to(frame))
    await _reply(consumer, frame, result)


async def handle_ice(consumer: StreamConsumer, frame: dict[str, Any]) -> None:
    call_id = inputs.call_id(frame)
    result = await database_sync_to_async(services.call_ice)(
        user=consumer.user_id, device_id=consumer.device_id, call_id=call_id, candidate=inputs.candidate(frame),
        to=inputs.to(frame))
    await _reply(consumer, frame, result)


async def handle_update(consumer: StreamConsumer, frame: dict[str, Any]) -> None:
    call_id = inputs.call_id(frame)
    result = await database_sync_to_async(services.call_update)(
        user=consumer.user_id, device_id=consumer.device_id, call_id=call_id, media=inputs.media(frame),
        sdp=inputs.sdp(frame, optional=True), remote_control=inputs.boolean(frame, "remote_control", default=None),
        to=inputs.to(frame))
    await _reply(consumer, frame, result)


async def handle_reject(consumer: StreamConsumer, frame: dict[str, Any]) -> None:
    call_id = inputs.call_id(frame)
    result = await database_sync_to_async(services.call_reject)(
        user=consumer.user_id, device_id=consumer.device_id, call_id=call_id)
    await _reply(consumer, frame, result)


async def handle_hangup(consumer: StreamConsumer, frame: dict[str, Any]) -> None:
    call_id = inputs.call_id(frame)
    result = await database_sync_to_async(services.call_hangup)(
        user=consumer.user_id, device_id=consumer.device_id, call_id=call_id)
    await _reply(consumer, frame, result)


HANDLERS = {
    "call.offer": handle_offer,
    "call.answer": handle_answer,
    "call.ice": handle_ice,
    "call.update": handle_update,
    "call.reject": handle_reject,
    "call.hangup": handle_hangup,
}


# --- Socket hooks (SOCKET_OPENED_HOOKS / SOCKET_CLOSED_HOOKS) ---------------------------------------
# They run for every socket, so the common case (a device in no call) costs one cache read,
# off the database thread.

_marked = sync_to_async(services.device_is_marked_engaged, thread_sensitive=False)


async def socket_closed(*, user_id: str, device_id: str) -> None:
    if await _marked(device_id=device_id):
        await database_sync_to_async(services.call_device_dropped)(user_id=user_id, device_id=device_id)


async def socket_opened(*, user_id: str, device_id: str) -> None:
    if await _marked(device_id=device_id):
        await database_sync_to_async(services.call_device_returned)(user_id=user_id, device_id=device_id)
