"""Django's PostgreSQL backend with a connection pool that waits for a busy pool, not for a dead database.

Django builds a `psycopg_pool.ConnectionPool` per process (`OPTIONS["pool"]`). A
request that finds every connection busy waits up to the pool's `timeout` for
one, which is what we want under a burst of requests. But while PostgreSQL is
down the same wait would hold every request for the whole timeout; the promise
is a 503 within about `connect_timeout`. So the pool remembers when it last failed
to open a connection, and a waiting request gives up as soon as an attempt
failed after it started waiting.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from django.db.utils import DEFAULT_DB_ALIAS
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

# A waiting request looks at the pool's last connection failure this often.
WAIT_SLICE_SECONDS = 0.25
# A connection handed back less than this long ago is lent again without the health check's
# round trip (which cost as much as the query itself on short requests and socket connects);
# one idle longer is checked first, so a restart of PostgreSQL costs no request an error.
HEALTH_CHECK_AFTER_IDLE_SECONDS = 2.0


def check_after_idle(connection: Any) -> None:
    """The pool's `check`: psycopg_pool's own check, for connections idle a while."""
    if monotonic() - getattr(connection, "_returned_at", 0.0) >= HEALTH_CHECK_AFTER_IDLE_SECONDS:
        ConnectionPool.check_connection(connection)


class FailFastConnectionPool(ConnectionPool):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connect_failed_at = 0.0
        super().__init__(*args, **kwargs)

    def _connect(self, timeout: float | None = None) -> Any:
        try:
            connection = super()._connect(timeout)
        except Exception:
            self._connect_failed_at = monotonic()
            raise
        self._connect_failed_at = 0.0
        return connection

    def putconn(self, conn: Any) -> None:
        conn._returned_at = monotonic()
        super().putconn(conn)

    def getconn(self, timeout: float | None = None) -> Any:
        started = monotonic()
        deadline = started + (self.timeout if timeout is None else timeout)
        while True:
            try:
                return super().getconn(timeout=max(0.001, min(WAIT_SLICE_SECONDS, deadline - monotonic())))
            except PoolTimeout:
                if self._connect_failed_at > started or monotonic() >= deadline:
                    raise


class AsyncFailFastConnectionPool(AsyncConnectionPool):
    """The same rule for the socket's async pool (core.asyncdb)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connect_failed_at = 0.0
        super().__init__(*args, **kwargs)

    async def _connect(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - psycopg_pool's signature
        try:
            connection = await super()._connect(timeout)
        except Exception:
            self._connect_failed_at = monotonic()
            raise
        self._connect_failed_at = 0.0
        return connection

    async def getconn(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - psycopg_pool's signature
        started = monotonic()
        deadline = started + (self.timeout if timeout is None else timeout)
        while True:
            try:
                return await super().getconn(timeout=max(0.001, min(WAIT_SLICE_SECONDS, deadline - monotonic())))
            except PoolTimeout:
                if self._connect_failed_at > started or monotonic() >= deadline:
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
