"""The Redis cache shares one connection pool per process across the threads ASGI runs requests in."""

from __future__ import annotations

import threading

from django.core.cache import caches


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
    assert len(pools[0]._available_connections) + len(pools[0]._in_use_connections) <= 20
