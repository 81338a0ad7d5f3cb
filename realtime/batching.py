"""Group commit for socket sends: many frames, one thread hop, one transaction.

Each process has one batcher per event loop. Handlers `submit` a request and
await its own result; one drain task takes everything queued (up to
`max_batch`) and runs it through a sync function in one
`database_sync_to_async` call. While a batch commits, the next one queues up,
so under load the batch size grows by itself and the per-message cost of the
transaction, the thread hop and the post-commit wake-ups is shared. A reply
is sent only when the batch function returned, i.e. after its commit:
"acknowledged means committed" holds for every request in it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from channels.db import database_sync_to_async

from core import metrics
from core.errors import ApplicationError, to_application_error

logger = logging.getLogger(__name__)

BatchFunction = Callable[[list[Any]], Sequence[Any]]
Hop = Callable[[BatchFunction], Callable[[list[Any]], Awaitable[Sequence[Any]]]]


class GroupCommitBatcher:
    def __init__(self, run: BatchFunction, *, max_batch: int, hop: Hop = database_sync_to_async) -> None:
        self.run = run
        self.hop = hop  # how the sync batch function is run off the loop
        self.max_batch = max(1, max_batch)
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue()
        # A fresh context: the drain task serves every socket of the process and must
        # not carry the context variables of whichever consumer happened to create it.
        self.task = asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
        self.batches = 0

    async def submit(self, request: Any) -> Any:
        """The batch function's result for this request; raises its ApplicationError."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.queue.put((request, future))
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    async def _drain(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            live = [(request, future) for request, future in batch if not future.cancelled()]
            if not live:
                continue
            try:
                results = list(await self.hop(self.run)([request for request, _ in live]))
            except Exception as exc:
                error = to_application_error(exc)
                if error is None:
                    logger.exception("send batch failed")
                    error = ApplicationError("Internal server error.", code="internal_error", status=500)
                results = [error] * len(live)
            self.batches += 1
            metrics.SEND_BATCH_SIZE.observe(len(live))  # ops
            logger.info("frame batch", extra={"event": "frame_batch", "batch_size": len(live), "errors": sum(isinstance(r, ApplicationError) for r in results)})  # ops  # noqa: E501
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)


_batchers: dict[tuple[asyncio.AbstractEventLoop, str], GroupCommitBatcher] = {}


def batcher_for(name: str, run: BatchFunction, *, max_batch: int) -> GroupCommitBatcher:
    """The batcher `name` of the running loop (tests run each on a fresh loop)."""
    loop = asyncio.get_running_loop()
    key = (loop, name)
    batcher = _batchers.get(key)
    if batcher is None or batcher.task.done():
        for stale in [k for k in _batchers if k[0].is_closed()]:
            del _batchers[stale]
        batcher = _batchers[key] = GroupCommitBatcher(run, max_batch=max_batch)
    return batcher
