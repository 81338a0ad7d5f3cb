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


def _refusal(error: type[RateLimited], scope: str, retry_after: int) -> RateLimited:
    refused = error(retry_after=retry_after)
    refused.scope = scope  # which limit refused it: the reason label of core.metrics counters
    return refused
