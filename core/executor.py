"""The event loop's default executor, sized for threads that wait on the database.

`database_sync_to_async(..., thread_sensitive=False)` runs in the loop's default
executor, which asyncio sizes by CPUs (cpu_count + 4: six threads on two cores).
Those threads spend their time waiting on PostgreSQL and Redis round trips, so
six of them capped a connect burst at the latency of six round trips at a time
while the database pool (DB_POOL_MAX_SIZE) had connections to spare.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings

_configured: set[asyncio.AbstractEventLoop] = set()


def ensure_database_executor() -> None:
    loop = asyncio.get_running_loop()
    if loop in _configured:
        return
    for stale in [other for other in _configured if other.is_closed()]:
        _configured.discard(stale)
    loop.set_default_executor(ThreadPoolExecutor(max_workers=settings.ASYNC_DB_THREADS, thread_name_prefix="db"))
    _configured.add(loop)


def with_database_executor(application: Any) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        ensure_database_executor()
        await application(scope, receive, send)

    return app
