"""Async PostgreSQL for the socket's hot path: a bounded psycopg pool used straight from the event loop.

Django's ORM runs on threads (each call through `sync_to_async` costs a thread
hop and, for thread-sensitive work, a turn on the process's one database
thread). The send path instead runs its one statement per batch on an
`AsyncConnectionPool` owned by the running event loop: no hop, several
batches in flight on separate connections, in autocommit (the statement is
its own transaction and commits before the result comes back).

Only PostgreSQL has this path; under SQLite (the embedded default) callers
use the ORM through a thread hop instead (`available()` says which).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from django.conf import settings
from django.db import connections
from psycopg import AsyncConnection
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

from core.postgresql.base import AsyncFailFastConnectionPool

logger = logging.getLogger(__name__)

_pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool] = {}


def available() -> bool:
    return connections["default"].vendor == "postgresql"


def _conninfo() -> dict[str, Any]:
    """Connection parameters from Django's settings for the default database (the test
    database under pytest), so both paths always talk to the same database."""
    wrapper = connections["default"]
    params = wrapper.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("pool", None)
    return params


async def _configure(connection: AsyncConnection) -> None:
    # jsonb comes back through orjson (the send result is parsed once, fast).
    set_json_loads(orjson.loads, connection)
    set_json_dumps(lambda value: orjson.dumps(value).decode(), connection)


async def pool() -> AsyncConnectionPool:
    """This event loop's pool, opened on first use (tests run each on a new loop)."""
    loop = asyncio.get_running_loop()
    existing = _pools.get(loop)
    if existing is not None:
        return existing
    for stale in [other for other in _pools if other.is_closed()]:
        _forget(_pools.pop(stale))
    # Waits for a busy pool, not for a dead database (a send then fails fast with 503).
    created = AsyncFailFastConnectionPool(
        kwargs={**_conninfo(), "autocommit": True},
        min_size=1,
        max_size=settings.DB_ASYNC_POOL_SIZE,
        timeout=settings.DB_POOL_TIMEOUT,
        configure=_configure,
        name="socket",
        open=False,
        reconnect_timeout=max(5, 2 * settings.DB_CONNECT_TIMEOUT),
    )
    _pools[loop] = created
    await created.open(wait=False)
    return created


def _forget(stale: AsyncConnectionPool) -> None:
    """Close the connections of a pool whose loop is gone (tests): no loop is left to await on."""
    for connection in list(getattr(stale, "_pool", ())):
        try:
            connection.pgconn.finish()
        except Exception:
            logger.debug("closing a stale pool connection failed", exc_info=True)


async def close() -> None:
    """Close this loop's pool (end of a test, or server shutdown)."""
    existing = _pools.pop(asyncio.get_running_loop(), None)
    if existing is not None:
        await existing.close()


async def fetchval(sql: str, params: list[Any] | tuple[Any, ...] = ()) -> Any:
    """The first column of the first row (None when there is none)."""
    async with (await pool()).connection() as connection:
        cursor = await connection.execute(sql, params)
        row = await cursor.fetchone()
    return row[0] if row else None
