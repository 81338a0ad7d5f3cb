"""The one socket consumer at /ws/v1.

It is thin: it parses frames, applies the flood limit and dispatches through
`realtime.handlers.HANDLERS`; it forwards channel-layer messages to the
client. Its one piece of state worth reading twice is the stream seam:

- On connect the socket joins `user.<hex>` and `device.<hex>` BEFORE any
  replay, so every event committed from then on rings it.
- `hello` sets `last_sent` to the cursor and starts a replay task that pages
  through `stream_read`. Rings that arrive meanwhile are buffered; when the
  database has nothing more, the buffer is flushed in position order,
  skipping positions <= `last_sent`. A hole in the buffer (a lost or
  reordered ring) sends the task back to the database.
- Live rings are forwarded when `position == last_sent + 1`, skipped when
  `<= last_sent`; a hole starts the same catch-up task.
Rings before `hello` are dropped: the replay reads those events from the
database anyway. So every event reaches the client once, in order, and an
event whose ring was lost (process died after commit, full channel) comes
with the next ring's catch-up or the next `hello`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Coroutine
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from core import metrics
from core.errors import ApplicationError, ValidationFailed, to_application_error
from realtime import handlers
from realtime.frames import FloodGuard, error_frame, event_frame, frame_decode, frame_encode, frame_ref
from streams.cursors import cursor_encode
from streams.groups import device_group, user_group
from streams.selectors import stream_read

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4001
CLOSE_FLOODING = 4008
CLOSE_TOO_SLOW = 4009
CLOSE_SERVER_ERROR = 1011


class StreamConsumer(AsyncWebsocketConsumer):
    user_id: str | None = None
    too_slow = False

    # --- Lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        device = self.scope.get("device")
        if device is None:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = device.user
        self.user_id = str(device.user_id)
        self.device_id = str(device.pk)
        self.connection_id = uuid.uuid4().hex
        self.my_groups = [user_group(self.user_id), device_group(self.device_id)]
        self.last_sent: int | None = None
        self.replaying = False
        self.reread = False
        self.buffer: list[dict[str, Any]] = []
        self.replay_task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.typing_sent: dict[str, float] = {}
        self.ack_pending: int | None = None
        self.ack_stored = 0
        self.ack_task: asyncio.Task[None] | None = None
        self.ack_running = False
        self.closing = False
        self.flood = FloodGuard(rate=settings.WS_FRAME_RATE, burst=settings.WS_FRAME_BURST,
                                close_after=settings.WS_FLOOD_CLOSE_AFTER)
        for group in self.my_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        metrics.socket_opened(self)  # ops: undone in disconnect()
        self.spawn(self._heartbeat())
        try:
            active, viewers = await database_sync_to_async(handlers.socket_heartbeat)(
                user=self.user, device_id=self.device_id, connection_id=self.connection_id)
        except Exception:
            # Presence is best effort; the socket works without it and the heartbeat retries.
            logger.warning("presence update on connect failed", exc_info=True)
            return
        if not active:
            # Revoked between the token lookup and joining device.<hex>: that doorbell was missed.
            self.closing = True
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self._announce(viewers, "online", None)

    async def disconnect(self, code: int) -> None:
        if self.user_id is None:
            return
        metrics.socket_closed(self)  # ops
        logger.info("socket closed", extra={"event": "socket", "close_code": code, "user_id": self.user_id})  # ops
        self.closing = True
        ack_task = self.ack_task
        for task in list(self.tasks):
            if task is not ack_task:
                task.cancel()
        if ack_task is not None and not ack_task.done():
            # An ack sent just before closing must still move the device's cursor.
            try:
                await asyncio.wait_for(asyncio.shield(ack_task), timeout=5)
            except Exception:
                logger.warning("storing the last ack on disconnect failed", exc_info=True)
        if self.replay_task is not None:
            self.replay_task.cancel()
        for group in self.my_groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        try:
            viewers, last_seen = await database_sync_to_async(handlers.socket_closed)(
                user=self.user, device_id=self.device_id, connection_id=self.connection_id)
            await self._announce(viewers, "offline", last_seen)
        except Exception:
            logger.warning("presence update on disconnect failed", exc_info=True)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch, minus its `aclose_old_connections()` thread hop per message.

        That hop would put every frame and every ring of every socket through the
        process's one thread-sensitive executor thread. Our database work all goes
        through `database_sync_to_async`, which cleans up connections itself.
        A channel-layer message nobody here handles is dropped, not fatal.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            logger.warning("socket dropped a %r message it has no handler for", str(message.get("type"))[:40])
            return
        await handler(message)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run work beside the frame loop; cancelled when the socket closes."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("socket task failed", exc_info=task.exception())

    async def _heartbeat(self) -> None:
        """Keep presence alive and re-check the device, so a missed revocation still closes us."""
        while True:
            # Jittered: sockets that connected together (a server restart, a bench) must not
            # all queue their heartbeat on the database thread in the same instant.
            await asyncio.sleep(settings.WS_HEARTBEAT_SECONDS * random.uniform(0.8, 1.2))
            try:
                active, viewers = await database_sync_to_async(handlers.socket_heartbeat)(
                    user=self.user, device_id=self.device_id, connection_id=self.connection_id)
            except Exception:
                logger.warning("socket heartbeat failed", exc_info=True)
                continue
            if not active:
                await self.close(code=CLOSE_UNAUTHENTICATED)
                return
            await self._announce(viewers, "online", None)

    # --- Client frames ---------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        metrics.WS_FRAMES_IN.inc()  # ops
        if self.user_id is None or self.closing:
            return
        verdict = self.flood.check()
        if verdict != "ok":
            if verdict == "close":
                self.closing = True
                await self.close(code=CLOSE_FLOODING)
            elif verdict == "limited":
                await self.send_error(ApplicationError("Too many frames; slow down.", code="rate_limited",
                                                       status=429))
            return
        frame: dict[str, Any] | None = None
        try:
            frame = frame_decode(text_data, max_bytes=settings.WS_MAX_FRAME_BYTES)
            handler = handlers.HANDLERS.get(frame["type"])
            if handler is None:
                raise ValidationFailed(f"Unknown frame type {frame['type'][:40]!r}.",
                                       details={"type": ["Unknown frame type."]})
            await handler(self, frame)
        except Exception as exc:
            error = to_application_error(exc)
            if error is None:
                logger.exception("socket frame handler failed")
                error = ApplicationError("Internal server error.", code="internal_error", status=500)
            await self.send_error(error, ref=frame_ref(frame))

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None,
                   close: bool = False) -> None:
        """Every frame to the client goes through here. A client that stops reading fills the
        ASGI server's write buffer and the kernel's, and the send then waits; past
        WS_SEND_TIMEOUT_SECONDS the socket is closed with 4009 ("too slow, resume by cursor"),
        so a stalled reader holds a bounded buffer and does not keep its channel full."""
        if self.too_slow:
            return
        metrics.WS_FRAMES_OUT.inc()  # ops
        try:
            await asyncio.wait_for(super().send(text_data, bytes_data, close),
                                   timeout=settings.WS_SEND_TIMEOUT_SECONDS)
        except TimeoutError:
            self.too_slow = self.closing = True
            logger.info("socket closed: the client stopped reading (4009)")
            await self.close(code=CLOSE_TOO_SLOW)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=frame_encode(frame))

    async def send_error(self, error: ApplicationError, *, ref: str | int | None = None) -> None:
        await self.send_frame(error_frame(error, ref=ref))

    def ack(self, position: int) -> None:
        """Store the device's cursor beside the frame loop. Acks arriving while one is being
        stored collapse into the highest, so a client acking every event costs one
        transaction per round trip, not one per frame."""
        if position <= self.ack_stored:
            return  # the stored cursor only moves forward anyway
        if self.ack_pending is None or position > self.ack_pending:
            self.ack_pending = position
        if not self.ack_running:
            self.ack_running = True
            self.ack_task = self.spawn(self._store_acks())

    async def _store_acks(self) -> None:
        try:
            while self.ack_pending is not None:
                position, self.ack_pending = self.ack_pending, None
                if position <= self.ack_stored:
                    continue
                try:
                    await database_sync_to_async(handlers.device_ack)(
                        user=self.user, device_id=self.device_id, cursor=cursor_encode(position))
                    self.ack_stored = position
                except Exception as exc:
                    error = to_application_error(exc)
                    if error is None:
                        logger.exception("ack failed")
                        error = ApplicationError("Internal server error.", code="internal_error", status=500)
                    await self.send_error(error)
        finally:
            self.ack_running = False

    async def relay_to_users(self, user_ids: list[str], message: dict[str, Any]) -> None:
        if user_ids:
            await asyncio.gather(*(self.channel_layer.group_send(user_group(u), message) for u in user_ids))

    async def _announce(self, viewers: list[str], state: str, last_seen: str | None) -> None:
        await self.relay_to_users(viewers, {"type": "presence.relay", "user_id": self.user_id, "state": state,
                                            "last_seen": last_seen})

    # --- The stream seam -------------------------------------------------------------

    async def start_replay(self, after: int) -> None:
        """(Re)start streaming from position `after` (a new hello)."""
        if self.replay_task is not None and not self.replay_task.done():
            self.replay_task.cancel()
        self.last_sent = after
        self.buffer = []
        self._begin_catch_up()

    def _begin_catch_up(self) -> None:
        self.replaying = True
        self.reread = False
        self.replay_task = asyncio.get_running_loop().create_task(self._catch_up())

    async def _send_event(self, event: dict[str, Any]) -> None:
        self.last_sent = event["position"]
        await self.send(text_data=frame_encode(event_frame(event)))

    async def _catch_up(self) -> None:
        try:
            while True:
                has_more = True
                while has_more:
                    events, has_more = await database_sync_to_async(stream_read)(
                        user_id=self.user_id, after=self.last_sent, limit=settings.WS_REPLAY_PAGE)
                    for event in events:
                        await self._send_event(event)
                if await self._flush_buffer():
                    self.replaying = False
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("stream replay failed", exc_info=True)
            if not self.closing:
                self.closing = True
                error = to_application_error(exc) or ApplicationError("Replay failed; reconnect.",
                                                                      code="internal_error", status=500)
                await self.send_error(error)
                await self.close(code=CLOSE_SERVER_ERROR)

    async def _flush_buffer(self) -> bool:
        """Send buffered rings in order. True when done (the caller leaves replay mode with
        no await in between, so no ring can slip past); False when the buffer holds a hole
        or overflowed and the database must fill it."""
        while True:
            if self.reread:
                self.reread = False
                return False
            pending = sorted((e for e in self.buffer if e["position"] > self.last_sent),
                             key=lambda e: e["position"])
            self.buffer = []
            if not pending:
                return True
            for index, event in enumerate(pending):
                if event["position"] <= self.last_sent:
                    continue  # a duplicate ring
                if event["position"] != self.last_sent + 1:
                    self.buffer = pending[index:] + self.buffer
                    return False
                await self._send_event(event)

    # --- Channel-layer messages --------------------------------------------------------

    async def stream_events(self, message: dict[str, Any]) -> None:
        if self.last_sent is None or self.closing:
            return  # before hello: the replay reads these from the database
        events = message.get("events") or []
        if self.replaying:
            self.buffer.extend(events)
            if len(self.buffer) > settings.WS_REPLAY_BUFFER_MAX:
                self.buffer = []
                self.reread = True
            return
        ordered = sorted(events, key=lambda e: e["position"])
        for index, event in enumerate(ordered):
            if event["position"] <= self.last_sent:
                continue
            if event["position"] != self.last_sent + 1:
                self.buffer = ordered[index:]
                self._begin_catch_up()
                return
            await self._send_event(event)

    async def device_revoked(self, message: dict[str, Any]) -> None:
        self.closing = True
        await self.close(code=int(message.get("code") or CLOSE_UNAUTHENTICATED))

    async def typing_relay(self, message: dict[str, Any]) -> None:
        if message.get("user_id") == self.user_id:
            return
        await self.send_frame({"type": "typing", "conversation_id": message["conversation_id"],
                               "user_id": message["user_id"], "state": message["state"]})

    async def frame_relay(self, message: dict[str, Any]) -> None:
        """A frame relayed to this user's or device's sockets (streams.groups.relay_*), never stored."""
        if message.get("exclude_device") == self.device_id:
            return
        await self.send_frame(message["frame"])

    async def presence_relay(self, message: dict[str, Any]) -> None:
        if message.get("user_id") == self.user_id:
            return
        await self.send_frame({"type": "presence", "user_id": message["user_id"], "state": message["state"],
                               "last_seen": message.get("last_seen")})
