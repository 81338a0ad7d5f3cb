"""The socket at /ws/v1: one receive loop per connection, its state in a small slotted object.

A plain ASGI application (no Channels consumer): per connection there is the
ASGI server's task running `Socket.run`, which reads frames one after the other
and dispatches them through `realtime.handlers.HANDLERS`; nothing else runs per
socket unless it has work (a replay, an ack being stored, a stalled write).
Delivery comes from the process hub (`streams.hub`), which calls
`deliver_events` / `deliver_frame` / `revoke` on the sockets of the users and
devices concerned.

The stream seam (read twice):
- The socket joins the hub BEFORE any replay, so every event committed from
  then on reaches `deliver_events`.
- `hello` sets `last_sent` to the cursor and starts a replay task that pages
  through the database; events delivered meanwhile are buffered and flushed
  in position order when the database has nothing more, skipping positions
  <= `last_sent`.
- Live events are sent when `position == last_sent + 1`, skipped when
  `<= last_sent`. A hole (an event of another batch still on its way, or a
  lost doorbell) waits briefly for the missing one, then reads the database.
Events before `hello` are dropped: the replay reads them from the database.
So every event reaches the client once, in order.

Writes never wait on a slow client: while the ASGI server's transport is
writable a send completes at once; otherwise frames queue on the socket and the
process's housekeeper flushes them when it drains, or closes the socket with
4009 after WS_SEND_TIMEOUT_SECONDS (the client resumes by cursor).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from core import metrics, sunset
from core.errors import ApplicationError, ValidationFailed, is_client_disconnect, log_failure, to_application_error
from realtime import handlers, housekeeping
from realtime.frames import FloodGuard, error_frame, frame_decode, frame_encode, frame_ref
from realtime.hooks import run_socket_hooks
from realtime.middleware import authenticate
from streams.hub import hub
from streams.hub import key as hub_key

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4001
CLOSE_FLOODING = 4008
CLOSE_TOO_SLOW = 4009
CLOSE_SERVER_ERROR = 1011
CLOSE_SERVICE_SHUT_DOWN = 4503  # the sunset's shutdown time has passed: only export (HTTP) still works

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Socket:
    __slots__ = (
        "_send", "_writable", "accepted", "ack_pending", "ack_running", "ack_stored", "backlog", "buffer", "closed",
        "connection_id", "device_id", "device_key", "flood", "gap_timer", "last_sent", "replay_task",
        "replaying", "reread", "scope", "stalled_since", "swept_head", "tasks", "typing_sent", "user_id", "user_key",
    )

    def __init__(self, scope: dict[str, Any], send: Send) -> None:
        self.scope = scope
        self._send = send
        # uvicorn's flow control: cleared while its transport's buffer is over the high-water
        # mark. Other ASGI servers (and the test communicator) have none: always writable.
        self._writable: asyncio.Event | None = getattr(getattr(send, "__self__", None), "writable", None)
        self.user_id = self.device_id = self.user_key = self.device_key = ""
        self.connection_id = uuid.uuid4().hex
        self.last_sent: int | None = None
        self.replaying = False
        self.reread = False
        self.swept_head = 0  # the stream head the housekeeper saw at its previous sweep
        self.buffer: list[tuple[int, str]] = []
        self.gap_timer: asyncio.TimerHandle | None = None
        self.replay_task: asyncio.Task[None] | None = None
        self.backlog: deque[str] | None = None
        self.stalled_since = 0.0
        self.closed = False
        self.accepted = False  # frames delivered before the handshake completes are dropped
        self.flood = FloodGuard(rate=settings.WS_FRAME_RATE, burst=settings.WS_FRAME_BURST,
                                close_after=settings.WS_FLOOD_CLOSE_AFTER)
        self.typing_sent: dict[str, float] = {}
        self.ack_pending: int | None = None
        self.ack_stored = 0
        self.ack_running = False
        self.tasks: set[asyncio.Task[Any]] = set()

    # --- Lifecycle -------------------------------------------------------------------------

    async def run(self, receive: Receive) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        if await sunset.phase_async() == sunset.SHUTDOWN:
            # Refused like a bad token: accepted and closed at once, so a browser can read why.
            await self._send({"type": "websocket.accept"})
            self.accepted = True
            await self.close(CLOSE_SERVICE_SHUT_DOWN)
            await _until_disconnect(receive)
            return
        device = await authenticate(self.scope)
        if device is not None:
            self.user_id, self.device_id = str(device.user_id), str(device.pk)
            self.user_key, self.device_key = hub_key(self.user_id), hub_key(self.device_id)
            await hub().attach(self)  # before the device is re-checked: see _opened
            metrics.LIVE_SOCKETS.inc()
            housekeeping.attach(self)
            viewers = await self._opened()
        await self._send({"type": "websocket.accept"})
        self.accepted = True
        if device is None or viewers is None:
            # Accepted, then closed at once: a browser cannot read an HTTP refusal, and must
            # tell "log in again" from a network fault.
            await self.close(CLOSE_UNAUTHENTICATED)
            if device is not None:
                await self._closed()
            await _until_disconnect(receive)
            return
        await handlers.announce(self.user_id, viewers, "online", None)
        self.spawn(run_socket_hooks("SOCKET_OPENED_HOOKS", user_id=self.user_id, device_id=self.device_id))
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    await self.on_frame(message.get("text"))
                elif kind == "websocket.disconnect":
                    break
        finally:
            await self._closed()

    async def _opened(self) -> list[str] | None:
        """Presence on connect, before the handshake completes (so a peer that connects next
        finds this user online); and the device re-checked now that it is in the hub, so a
        revocation committed between the token lookup and `attach` (whose close order rang
        nobody) still closes it. The viewers to tell "online", or None for a revoked device."""
        try:
            active, viewers = await database_sync_to_async(handlers.socket_opened, thread_sensitive=False)(
                user_id=self.user_id, device_id=self.device_id, connection_id=self.connection_id)
        except Exception:
            # Presence is best effort; the socket works without it and the housekeeper retries.
            logger.warning("presence update on connect failed", exc_info=True)
            return []
        return viewers if active else None

    async def _closed(self) -> None:
        self.closed = True
        hub().detach(self)
        metrics.LIVE_SOCKETS.dec()
        logger.info("socket closed", extra={"event": "socket", "user_id": self.user_id})
        housekeeping.detach(self)
        if self.gap_timer is not None:
            self.gap_timer.cancel()
        pending = [task for task in self.tasks if not task.done()]
        for task in pending:
            if task is not self.replay_task and not getattr(task, "keep_on_close", False):
                task.cancel()
        if self.replay_task is not None:
            self.replay_task.cancel()
        acks = [task for task in pending if getattr(task, "keep_on_close", False)]
        if acks:
            # An ack sent just before closing must still move the device's cursor.
            await asyncio.wait(acks, timeout=5)
        try:
            viewers, last_seen = await database_sync_to_async(handlers.socket_closed, thread_sensitive=False)(
                user_id=self.user_id, device_id=self.device_id, connection_id=self.connection_id)
            await handlers.announce(self.user_id, viewers, "offline", last_seen)
        except Exception:
            logger.warning("presence update on disconnect failed", exc_info=True)
        await run_socket_hooks("SOCKET_CLOSED_HOOKS", user_id=self.user_id, device_id=self.device_id)

    def spawn(self, coroutine: Coroutine[Any, Any, Any], *, keep_on_close: bool = False) -> asyncio.Task[Any]:
        """Work beside the frame loop (cancelled when the socket closes, unless kept)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        if keep_on_close:
            task.keep_on_close = True  # type: ignore[attr-defined]
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log_failure(logger, "socket task failed", task.exception())

    # --- Client frames -------------------------------------------------------------------

    async def on_frame(self, text: str | None) -> None:
        metrics.WS_FRAMES_IN.inc()
        if self.closed:
            return
        verdict = self.flood.check()
        if verdict != "ok":
            if verdict == "close":
                await self.close(CLOSE_FLOODING)
            elif verdict == "limited":
                await self.send_error(ApplicationError("Too many frames; slow down.", code="rate_limited",
                                                       status=429))
            return
        frame: dict[str, Any] | None = None
        try:
            frame = frame_decode(text, max_bytes=settings.WS_MAX_FRAME_BYTES)
            handler = handlers.HANDLERS.get(frame["type"])
            if handler is None:
                raise ValidationFailed(f"Unknown frame type {frame['type'][:40]!r}.",
                                       details={"type": ["Unknown frame type."]})
            if frame["type"] in handlers.WRITING_FRAMES:
                await sunset.ensure_writable_async(frame["type"])  # the process memo: no query per frame
            await handler(self, frame)
        except Exception as exc:
            if is_client_disconnect(exc):
                log_failure(logger, "socket frame handler failed", exc)
                return  # nobody to answer
            error = to_application_error(exc)
            if error is None:
                logger.exception("socket frame handler failed")
                error = ApplicationError("Internal server error.", code="internal_error", status=500)
            await self.send_error(error, ref=frame_ref(frame))

    # --- Writing ---------------------------------------------------------------------------

    async def write(self, text: str) -> None:
        """Send a frame without ever waiting on the client: a frame the transport cannot take
        now queues (in order) for the housekeeper."""
        if self.closed or not self.accepted:
            return
        if self.backlog is not None:
            self.backlog.append(text)
            if len(self.backlog) > settings.WS_BACKLOG_MAX:
                await self.too_slow()
            return
        if self._writable is not None and not self._writable.is_set():
            self.backlog = deque([text])
            self.stalled_since = time.monotonic()
            housekeeping.stalled(self)
            return
        try:
            await self._send({"type": "websocket.send", "text": text})
        except Exception:  # noqa: BLE001 - the client went away mid-write; its disconnect follows
            self.closed = True
            return
        metrics.WS_FRAMES_OUT.inc()

    async def flush_backlog(self) -> bool:
        """The housekeeper's turn: write what queued while the transport is writable again.
        True when the backlog is empty (or the socket gone)."""
        backlog = self.backlog
        while backlog and not self.closed:
            if self._writable is not None and not self._writable.is_set():
                return False
            text = backlog.popleft()
            try:
                await self._send({"type": "websocket.send", "text": text})
            except Exception:  # noqa: BLE001
                self.closed = True
        self.backlog = None
        return True

    async def too_slow(self) -> None:
        """The client stopped reading: drop what queued and close with 4009 (resume by cursor).
        The close frame goes out once its buffers drain; a client that never reads again is cut
        off by the ASGI server's own timeouts."""
        if self.closed:
            return
        logger.info("socket closed: the client stopped reading (4009)")
        self.backlog = None
        self.closed = True
        self.spawn(self._send_close(CLOSE_TOO_SLOW), keep_on_close=True)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.write(frame_encode(frame))

    async def send_error(self, error: ApplicationError, *, ref: str | int | None = None) -> None:
        await self.write(frame_encode(error_frame(error, ref=ref)))

    async def close(self, code: int) -> None:
        if self.closed:
            return
        self.closed = True
        await self._send_close(code)

    async def _send_close(self, code: int) -> None:
        try:
            await self._send({"type": "websocket.close", "code": code})
        except Exception:
            logger.debug("close on a socket that is already gone", exc_info=True)

    # --- What the hub delivers -----------------------------------------------------------

    async def deliver_frame(self, frame: str) -> None:
        await self.write(frame)

    async def revoke(self, code: int) -> None:
        await self.close(code)

    def missed_doorbell(self, head: int) -> bool:
        """At a heartbeat sweep: True when events committed before the previous sweep (a whole
        heartbeat ago) are still not sent and no catch-up is under way, i.e. their doorbell was
        lost. Events committed since are most likely on their way and are left to it."""
        missed = (self.last_sent is not None and not self.closed and not self.replaying
                  and self.last_sent < min(self.swept_head, head))
        self.swept_head = head
        return missed

    def resync(self) -> None:
        """Doorbells may have been missed: read the stream from the database after last_sent."""
        if self.last_sent is None or self.closed:
            return  # before hello: the replay reads the database anyway
        if self.replaying:
            self.reread = True  # the pass under way may have read before the missed events
        else:
            self._begin_catch_up()

    async def deliver_events(self, events: list[tuple[int, str]]) -> None:
        """New events of this user, in position order (from this process or a doorbell)."""
        if self.last_sent is None or self.closed:
            return  # before hello: the replay reads these from the database
        if self.replaying:
            self.buffer.extend(events)
            if len(self.buffer) > settings.WS_REPLAY_BUFFER_MAX:
                self.buffer = []
                self.reread = True
            return
        for position, frame in events:
            if position <= self.last_sent:
                continue
            if position != self.last_sent + 1:
                self.buffer.append((position, frame))
                self._await_gap()
                continue
            self.last_sent = position
            await self.write(frame)
        if self.buffer:
            await self._flush_contiguous()

    async def _flush_contiguous(self) -> None:
        """Send what the buffer holds from last_sent + 1 on; a hole stays buffered."""
        self.buffer.sort(key=lambda pair: pair[0])
        kept = []
        for position, frame in self.buffer:
            if position <= self.last_sent:
                continue
            if position == self.last_sent + 1:
                self.last_sent = position
                await self.write(frame)
            else:
                kept.append((position, frame))
        self.buffer = kept
        if not kept and self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None

    def _await_gap(self) -> None:
        """An event came ahead of its predecessor, which is most likely a moment behind it
        (another batch's result, another process's doorbell): give it WS_GAP_WAIT_SECONDS,
        then fill the hole from the database."""
        if self.gap_timer is None:
            self.gap_timer = asyncio.get_running_loop().call_later(settings.WS_GAP_WAIT_SECONDS, self._gap_expired)

    def _gap_expired(self) -> None:
        self.gap_timer = None
        if self.buffer and not self.replaying and not self.closed:
            self._begin_catch_up()

    # --- Replay ----------------------------------------------------------------------------

    async def start_replay(self, after: int) -> None:
        """(Re)start streaming from position `after` (a hello)."""
        if self.replay_task is not None and not self.replay_task.done():
            self.replay_task.cancel()
        self.last_sent = after
        self.buffer = []
        self._begin_catch_up()

    def _begin_catch_up(self) -> None:
        if self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None
        self.replaying = True
        self.reread = False
        self.replay_task = self.spawn(self._catch_up())

    async def _catch_up(self) -> None:
        try:
            while True:
                has_more = True
                while has_more:
                    events, has_more = await database_sync_to_async(handlers.stream_page, thread_sensitive=False)(
                        user_id=self.user_id, after=self.last_sent, limit=settings.WS_REPLAY_PAGE)
                    for position, frame in events:
                        if position > self.last_sent:
                            self.last_sent = position
                            await self.write(frame)
                if self._flush_replay_buffer_is_done():
                    await self._flush_contiguous()
                    self.replaying = False
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("stream replay failed", exc_info=True)
            if not self.closed:
                error = to_application_error(exc) or ApplicationError("Replay failed; reconnect.",
                                                                      code="internal_error", status=500)
                await self.send_error(error)
                await self.close(CLOSE_SERVER_ERROR)

    def _flush_replay_buffer_is_done(self) -> bool:
        """True when the buffer can be flushed without the database (no hole after last_sent,
        no overflow); the caller flushes it and leaves replay with no await in between, so no
        delivery can slip past."""
        if self.reread:
            self.reread = False
            return False
        pending = sorted(pair for pair in self.buffer if pair[0] > self.last_sent)
        self.buffer = pending
        expected = self.last_sent + 1
        for position, _ in pending:
            if position > expected:
                return False  # a hole: the database has it
            expected = max(expected, position + 1)
        return True

    # --- Acks ------------------------------------------------------------------------------

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
            self.spawn(self._store_acks(), keep_on_close=True)

    async def _store_acks(self) -> None:
        try:
            while self.ack_pending is not None:
                position, self.ack_pending = self.ack_pending, None
                if position <= self.ack_stored:
                    continue
                try:
                    await handlers.store_ack(self, position)
                    self.ack_stored = position
                except Exception as exc:
                    error = to_application_error(exc)
                    if error is None and is_client_disconnect(exc):
                        log_failure(logger, "ack failed", exc)
                        continue
                    if error is None:
                        logger.exception("ack failed")
                        error = ApplicationError("Internal server error.", code="internal_error", status=500)
                    await self.send_error(error)
        finally:
            self.ack_running = False


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The ASGI application for /ws/v1."""
    await Socket(scope, send).run(receive)
