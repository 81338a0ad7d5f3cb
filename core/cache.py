"""Django's Redis cache with one connection pool per process.

Django keeps a cache backend per thread, and each RedisCache instance builds
its own connection pools. Under ASGI every request runs in a thread of its own,
so each request opened (and dropped) a fresh TCP connection to Redis (redis-py
also reads its package metadata for every new connection): a quarter of a
simple request's time. Here the pools live in the process, keyed by server and
options, and every thread's backend borrows from them.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_pools: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class SharedPoolRedisCacheClient(RedisCacheClient):
    def _get_connection_pool(self, write: bool) -> Any:
        index = self._get_connection_pool_index(write)
        key = (self._servers[index], repr(sorted(self._pool_options.items())))
        pool = _pools.get(key)
        if pool is None:
            with _lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = _pools[key] = self._pool_class.from_url(self._servers[index], **self._pool_options)
        return pool


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolRedisCacheClient
