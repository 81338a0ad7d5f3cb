"""Group commit for socket sends and acks: many frames, one statement, several batches in flight.

Each event loop (server process) has one batcher per kind (`message.send`, `ack`). A handler `submit`s its
request with the callback that answers it and returns at once, so a socket
keeps reading while its sends commit. The first request to arrive starts a
batch on the next turn of the loop (after every socket whose frames arrived
in the same turn had its say), up to `max_batch` requests; while batches are
in flight (at most `max_in_flight`, each on its own pooled connection) new
requests queue and go together in the next one, so under load batches grow
by themselves and the per-message cost of the round trip and the commit is
shared. A callback runs only after its batch function returned, i.e. after
the commit: "acknowledged means committed" holds for every request.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from django.conf import settings

from core import metrics
from core.errors import ApplicationError, log_failure, to_application_error

logger = logging.getLogger(__name__)

BatchFunction = Callable[[list[Any]], Awaitable[Sequence[Any]]]
Done = Callable[[Any], Awaitable[None]]


class Batcher:
    def __init__(self, run: BatchFunction, *, max_batch: int, max_in_flight: int, kind: str = "send") -> None:
        self.run = run
        self.kind = kind  # "send" or "ack": what the batches hold, for the metrics and the log
        self.max_batch = max(1, max_batch)
        self.max_in_flight = max(1, max_in_flight)
        self.queue: deque[tuple[Any, Done]] = deque()
        self.in_flight = 0
        self.running: set[asyncio.Task[None]] = set()  # held, so a batch in flight is never collected
        self.scheduled = False
        self.batches = 0
        # A fresh context: batches serve every socket of the process and must not carry the
        # context variables of whichever socket happened to start one.
        self._context = contextvars.Context()

    def submit(self, request: Any, done: Done) -> None:
        """Queue a request; `done(result)` is awaited after its batch commits (the result is
        the batch function's, or the ApplicationError that failed the batch)."""
        self.queue.append((request, done))
        self._schedule()

    def _schedule(self) -> None:
        if not self.scheduled and self.queue and self.in_flight < self.max_in_flight:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self._start, context=self._context)

    def _start(self) -> None:
        self.scheduled = False
        loop = asyncio.get_running_loop()
        while self.queue and self.in_flight < self.max_in_flight:
            batch = [self.queue.popleft() for _ in range(min(self.max_batch, len(self.queue)))]
            self.in_flight += 1
            task = loop.create_task(self._run(batch), context=self._context)
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def _run(self, batch: list[tuple[Any, Done]]) -> None:
        try:
            results = list(await self.run([request for request, _ in batch]))
        except Exception as exc:
            error = to_application_error(exc)
            if error is None:
                logger.exception("%s batch failed", self.kind)
                error = ApplicationError("Internal server error.", code="internal_error", status=500)
            results = [error] * len(batch)
        finally:
            self.in_flight -= 1
            self.batches += 1
            self._schedule()
        if self.kind == "send":
            metrics.SEND_BATCH_SIZE.observe(len(batch))
        logger.info("frame batch", extra={"event": "frame_batch", "kind": self.kind, "batch_size": len(batch),
                                          "errors": sum(isinstance(r, ApplicationError) for r in results)})
        for (_, done), result in zip(batch, results, strict=True):
            try:
                await done(result)
            except Exception as exc:  # noqa: BLE001 - one client's failure must not stop the others' answers
                log_failure(logger, f"answering a {self.kind} failed", exc)


_batchers: dict[tuple[asyncio.AbstractEventLoop, BatchFunction], Batcher] = {}


def batcher(run: BatchFunction, *, kind: str = "send") -> Batcher:
    """The running loop's batcher for `run` (the sends', the acks'; tests run each on a fresh loop)."""
    loop = asyncio.get_running_loop()
    existing = _batchers.get((loop, run))
    if existing is None:
        for stale in [entry for entry in _batchers if entry[0].is_closed()]:
            del _batchers[stale]
        existing = _batchers[(loop, run)] = Batcher(run, max_batch=settings.WS_SEND_BATCH_MAX,
                                                    max_in_flight=settings.WS_SEND_BATCHES_IN_FLIGHT, kind=kind)
    return existing
