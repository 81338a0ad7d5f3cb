"""Fixed-window counters in the shared cache (Redis in the real stack).

Keys are keyed hashes, so no phone number or address ever appears in Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from django.conf import settings
from django.core.cache import cache

from core.errors import RateLimited

Limit = tuple[int, int]  # (count, window seconds)


def _cache_key(scope: str, subject: str, window: int) -> tuple[str, int]:
    now = time.time()
    index = int(now // window)
    digest = hmac.new(settings.SECRET_KEY.encode(), subject.encode(), hashlib.sha256).hexdigest()[:32]
    retry_after = int(window - (now % window)) + 1
    return f"rl:{scope}:{digest}:{index}", retry_after


def count(scope: str, subject: str, limit: Limit) -> int:
    key, _ = _cache_key(scope, subject, limit[1])
    return int(cache.get(key) or 0)


def ensure_not_exhausted(scope: str, subject: str, limit: Limit, *,
                         error: type[RateLimited] = RateLimited, cost: int = 0) -> None:
    """Raise when `cost` more hits would pass the limit, without spending any."""
    allowed, window = limit
    key, retry_after = _cache_key(scope, subject, window)
    if int(cache.get(key) or 0) + cost > allowed:
        raise _refusal(error, scope, retry_after)


def hit(scope: str, subject: str, limit: Limit, *, cost: int = 1,
        error: type[RateLimited] = RateLimited) -> int:
    """Spend `cost` from the window; raise (having spent it) when past the limit."""
    allowed, window = limit
    key, retry_after = _cache_key(scope, subject, window)
    cache.add(key, 0, timeout=window + 1)
    try:
        used = cache.incr(key, cost)
    except ValueError:  # expired between add and incr
        cache.add(key, 0, timeout=window + 1)
        used = cache.incr(key, cost)
    if used > allowed:
        raise _refusal(error, scope, retry_after)
    return used


# --- Allowances for batches (the message send path) ---------------------------------------
#
# A batch of sends asks once how much each sender may still send in the window, the
# database refuses what goes past it (retries of stored messages do not count), and the
# batch then spends what it really wrote. Two round trips per batch whatever its size;
# concurrent batches of one sender may overshoot the limit by what they had in flight.

def _keys(scope: str, subjects: list[str], window: int) -> tuple[dict[str, str], int]:
    keys: dict[str, str] = {}
    retry_after = window
    for subject in subjects:
        keys[subject], retry_after = _cache_key(scope, subject, window)
    return keys, retry_after


def remaining_many(scope: str, subjects: list[str], limit: Limit) -> tuple[dict[str, int], int]:
    """({subject: hits left in the window}, seconds until it ends) in one cache round trip."""
    allowed, window = limit
    keys, retry_after = _keys(scope, subjects, window)
    used = cache.get_many(list(keys.values()))
    return {subject: max(0, allowed - int(used.get(key) or 0)) for subject, key in keys.items()}, retry_after


def spend_many(scope: str, costs: dict[str, int], limit: Limit) -> None:
    """Add each subject's cost to its window's counter."""
    for subject, cost in costs.items():
        if cost:
            hit(scope, subject, limit, cost=cost, error=_NeverRaised)


class _NeverRaised(RateLimited):
    """Spending what was already written must not fail; past the limit is fine here."""


_async_clients: dict[object, object] = {}


def _async_client() -> object:
    import asyncio

    from redis import asyncio as aioredis

    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        for stale in [other for other in _async_clients if other.is_closed()]:  # type: ignore[attr-defined]
            del _async_clients[stale]
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2,
            max_connections=settings.REDIS_POOL_MAX_CONNECTIONS, timeout=settings.REDIS_POOL_TIMEOUT)
        client = _async_clients[loop] = aioredis.Redis(connection_pool=pool)
    return client


async def remaining_many_async(scope: str, subjects: list[str], limit: Limit) -> tuple[dict[str, int], int]:
    """`remaining_many` from the event loop, on the same counters (Redis only)."""
    if not settings.REDIS_URL:
        from asgiref.sync import sync_to_async

        return await sync_to_async(remaining_many)(scope, subjects, limit)
    allowed, window = limit
    keys, retry_after = _keys(scope, subjects, window)
    values = await _async_client().mget([cache.make_key(key) for key in keys.values()])  # type: ignore[attr-defined]
    return {subject: max(0, allowed - int(value or 0))
            for (subject, _), value in zip(keys.items(), values, strict=True)}, retry_after


async def spend_many_async(scope: str, costs: dict[str, int], limit: Limit) -> None:
    """`spend_many` from the event loop: one pipeline for every subject."""
    costs = {subject: cost for subject, cost in costs.items() if cost}
    if not costs:
        return
    if not settings.REDIS_URL:
        from asgiref.sync import sync_to_async

        await sync_to_async(spend_many)(scope, costs, limit)
        return
    _, window = limit
    keys, _ = _keys(scope, list(costs), window)
    async with _async_client().pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
        for subject, cost in costs.items():
            full_key = cache.make_key(keys[subject])
            pipe.incrby(full_key, cost)
            pipe.expire(full_key, window + 1, nx=True)
        await pipe.execute()
def _refusal(error: type[RateLimited], scope: str, retry_after: int) -> RateLimited:
    refused = error(retry_after=retry_after)
    refused.scope = scope  # which limit refused it: the reason label of core.metrics counters
    return refused
