"""The Redis cache shares one connection pool per process across the threads ASGI runs requests in."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.conf import settings
from django.core.cache import caches

from core.cache import SharedPoolRedisCache


def test_every_request_thread_borrows_from_one_redis_connection_pool():
    pools, values = [], []

    def request_thread(index: int) -> None:
        cache = caches["default"]  # Django builds a backend per thread
        cache.set(f"pool-test-{index}", index, timeout=30)
        values.append(cache.get(f"pool-test-{index}"))
        pools.append(cache._cache._get_connection_pool(write=True))

    threads = [threading.Thread(target=request_thread, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(values) == list(range(20))
    assert len({id(pool) for pool in pools}) == 1
    # Connections are kept for reuse, not one per thread.
    assert len(pools[0]._connections) <= 20


def burst(cache: SharedPoolRedisCache, threads: int, operations: int) -> list[BaseException]:
    """`threads` callers at once, each doing `operations` round trips; what they raised."""
    raised: list[BaseException] = []
    start = threading.Barrier(threads)

    def caller(index: int) -> None:
        start.wait(timeout=10)
        try:
            for step in range(operations):
                cache.set(f"burst-{index}-{step}", step, timeout=30)
        except BaseException as error:  # reported by the test
            raised.append(error)

    workers = [threading.Thread(target=caller, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return raised


def test_more_concurrent_callers_than_redis_connections_wait_for_one_instead_of_failing():
    # The settings' cache with a pool of 2: 16 threads at once must queue for the two connections
    # (redis-py's plain pool raised "Too many connections" here, a 503 for the request).
    options = {**settings.CACHES["default"]["OPTIONS"], "max_connections": 2}
    cache = SharedPoolRedisCache(settings.REDIS_URL, {"OPTIONS": options, "KEY_PREFIX": "burst"})
    assert burst(cache, threads=16, operations=30) == []
    pool = cache._cache._get_connection_pool(write=True)
    assert len(pool._connections) <= 2


@pytest.mark.asyncio
async def test_rate_limit_calls_from_the_event_loop_wait_for_a_redis_connection_instead_of_failing(settings):
    from core import ratelimit

    settings.REDIS_POOL_MAX_CONNECTIONS = 2
    ratelimit._async_clients.pop(asyncio.get_running_loop(), None)
    limit = (1000, 60)
    try:
        results = await asyncio.gather(*(ratelimit.remaining_many_async("burst", [f"s{i}"], limit)
                                         for i in range(50)))
        assert all(remaining == {f"s{i}": 1000} for i, (remaining, _) in enumerate(results))
        pool = ratelimit._async_client().connection_pool
        assert pool.max_connections == 2
    finally:
        client = ratelimit._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
            await client.connection_pool.disconnect()
