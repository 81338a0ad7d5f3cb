"""The process's housekeeper for its sockets: one task instead of timers in every socket.

- Stalled writes: a socket whose transport stopped taking frames (the client is
  not reading) queues them; every WS_HOUSEKEEPING_SECONDS the housekeeper
  flushes the queues that can drain and closes with 4009 the sockets stalled
  longer than WS_SEND_TIMEOUT_SECONDS.
- The heartbeat: every WS_HEARTBEAT_SECONDS one sweep over all sockets of the
  process (one query for revoked devices, one cache pipeline for presence)
  instead of a query per socket; a revocation whose close order was lost still
  closes its sockets here; a socket whose stream's head is past what it sent,
  with no catch-up under way, missed a doorbell and reads the database (events
  committed since the previous sweep are left to their doorbell).
- The sunset: once the shutdown time has passed, the sweep closes every socket of
  the process with 4503.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

from channels.db import database_sync_to_async
from django.conf import settings

from core import sunset
from realtime import handlers

if TYPE_CHECKING:
    from realtime.socket import Socket

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4001
CLOSE_SERVICE_SHUT_DOWN = 4503


class Housekeeper:
    def __init__(self) -> None:
        self.sockets: set[Socket] = set()
        self.stalled_sockets: set[Socket] = set()
        self.task: asyncio.Task[None] | None = None
        self.sweep_task: asyncio.Task[None] | None = None

    def attach(self, socket: Socket) -> None:
        self.sockets.add(socket)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def detach(self, socket: Socket) -> None:
        self.sockets.discard(socket)
        self.stalled_sockets.discard(socket)

    async def _run(self) -> None:
        # Jittered: processes (and a restarted one's sockets) must not all sweep in the same instant.
        next_sweep = time.monotonic() + settings.WS_HEARTBEAT_SECONDS * random.uniform(0.5, 1.0)
        while self.sockets:
            await asyncio.sleep(min(settings.WS_HOUSEKEEPING_SECONDS, settings.WS_HEARTBEAT_SECONDS))
            now = time.monotonic()
            for socket in list(self.stalled_sockets):
                try:
                    if await socket.flush_backlog():
                        self.stalled_sockets.discard(socket)
                    elif now - socket.stalled_since > settings.WS_SEND_TIMEOUT_SECONDS:
                        self.stalled_sockets.discard(socket)
                        await socket.too_slow()
                except Exception:
                    logger.exception("flushing a stalled socket failed")
            if now >= next_sweep and (self.sweep_task is None or self.sweep_task.done()):
                next_sweep = now + settings.WS_HEARTBEAT_SECONDS
                self.sweep_task = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        sockets = [s for s in self.sockets if not s.closed]
        if not sockets:
            return
        if await sunset.phase_async() == sunset.SHUTDOWN:
            # The service has shut down: every live socket of the process goes (new ones are
            # refused at connect); export downloads keep working over HTTP.
            for socket in sockets:
                await socket.close(CLOSE_SERVICE_SHUT_DOWN)
            return
        try:
            beat = await database_sync_to_async(handlers.sockets_heartbeat, thread_sensitive=False)(
                [(s.user_id, s.device_id, s.connection_id) for s in sockets])
        except Exception:
            logger.warning("socket heartbeat sweep failed", exc_info=True)
            return
        for socket in sockets:
            if socket.device_id in beat.revoked:
                await socket.close(CLOSE_UNAUTHENTICATED)
            elif socket.missed_doorbell(beat.heads.get(socket.user_id, 0)):
                socket.resync()  # a doorbell was lost (pub/sub is fire-and-forget): read the database
        for user_id, viewers in beat.came_online:
            await handlers.announce(user_id, viewers, "online", None)


_housekeepers: dict[asyncio.AbstractEventLoop, Housekeeper] = {}


def _housekeeper() -> Housekeeper:
    loop = asyncio.get_running_loop()
    existing = _housekeepers.get(loop)
    if existing is None:
        for stale in [other for other in _housekeepers if other.is_closed()]:
            del _housekeepers[stale]
        existing = _housekeepers[loop] = Housekeeper()
    return existing


def attach(socket: Socket) -> None:
    _housekeeper().attach(socket)


def detach(socket: Socket) -> None:
    _housekeeper().detach(socket)


def stalled(socket: Socket) -> None:
    _housekeeper().stalled_sockets.add(socket)
