"""Django's PostgreSQL backend with a connection pool that waits for a busy pool, not for a dead database.

Django builds a `psycopg_pool.ConnectionPool` per process (`OPTIONS["pool"]`). A
request that finds every connection busy waits up to the pool's `timeout` for
one, in arrival order, which is what we want under a burst of requests. But while
PostgreSQL is down the same wait would hold every request for the whole timeout;
the promise is a 503 within about `connect_timeout`. So when an attempt to open a
connection fails, every request waiting at that moment is told so at once (the
pool's own `fail` on its waiting clients) instead of waiting on.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from django.db.utils import DEFAULT_DB_ALIAS
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

# A connection handed back less than this long ago is lent again without the health check's
# round trip (which cost as much as the query itself on short requests and socket connects);
# one idle longer is checked first, so a restart of PostgreSQL costs no request an error.
HEALTH_CHECK_AFTER_IDLE_SECONDS = 2.0


def check_after_idle(connection: Any) -> None:
    """The pool's `check`: psycopg_pool's own check, for connections idle a while."""
    if monotonic() - getattr(connection, "_returned_at", 0.0) >= HEALTH_CHECK_AFTER_IDLE_SECONDS:
        ConnectionPool.check_connection(connection)


def _unreachable(error: Exception) -> PoolTimeout | None:
    """The error for the waiting requests when a connect failed, or None when they should wait on.

    A database at its connection limit is up: the pool cannot grow, but the connections it
    holds come back, and the waiting requests get them in turn. (PostgreSQL reports that
    condition with no SQLSTATE at connect time, so it is told by its message.)
    """
    if "too many c" in str(error):  # "too many clients already", "too many connections for role"
        return None
    return PoolTimeout(f"couldn't get a connection: the database is unreachable ({error})")


def _waiting_to_fail(pool: ConnectionPool | AsyncConnectionPool, error: Exception) -> tuple[list, PoolTimeout | None]:
    """Take the waiting requests out of the queue when they are to be failed (call under the pool's lock)."""
    failure = _unreachable(error)
    if failure is None:
        return [], None
    waiting = list(pool._waiting)
    pool._waiting.clear()
    return waiting, failure


class FailFastConnectionPool(ConnectionPool):
    def _connect(self, timeout: float | None = None) -> Any:
        try:
            return super()._connect(timeout)
        except Exception as error:
            # Called only from the pool's worker (never under its lock). Requests arriving later
            # queue again and are failed by the next attempt, which the pool retries with backoff.
            with self._lock:
                waiting, failure = _waiting_to_fail(self, error)
            for client in waiting:
                client.fail(failure)
            raise

    def putconn(self, conn: Any) -> None:
        conn._returned_at = monotonic()
        super().putconn(conn)


class AsyncFailFastConnectionPool(AsyncConnectionPool):
    """The same rule for the socket's async pool (core.asyncdb)."""

    async def _connect(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - psycopg_pool's signature
        try:
            return await super()._connect(timeout)
        except Exception as error:
            async with self._lock:
                waiting, failure = _waiting_to_fail(self, error)
            for client in waiting:
                await client.fail(failure)
            raise


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> ConnectionPool | None:
        # Django's own property, building FailFastConnectionPool instead of ConnectionPool.
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == base.NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # Django sets its own mode later on
            pool = FailFastConnectionPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=check_after_idle if self.settings_dict["CONN_HEALTH_CHECKS"] else None,
                name=f"{self.settings_dict.get('NAME')}:{self.alias or DEFAULT_DB_ALIAS}",
                **({} if pool_options is True else pool_options),
            )
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]
