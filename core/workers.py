"""Worker liveness for /healthz: every Celery worker refreshes one timestamp in the cache.

A thread in the worker's main process writes the time every
WORKER_HEARTBEAT_SECONDS from `worker_ready` until shutdown; it depends on
neither beat nor a free slot in any queue. /healthz reports the `workers` check
`degraded` when the newest heartbeat is older than WORKER_HEARTBEAT_STALE_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import signals
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "workers:heartbeat"
_stop = threading.Event()


def heartbeat_beat() -> None:
    """Record that a worker is alive now (best effort: a cache outage is logged, not raised)."""
    try:
        cache.set(HEARTBEAT_KEY, time.time(), timeout=settings.WORKER_HEARTBEAT_STALE_SECONDS * 10)
    except Exception:  # noqa: BLE001 - Redis down: /healthz says so through its broker check
        logger.info("worker heartbeat not written (cache unavailable)")


def heartbeat_age() -> float | None:
    """Seconds since the newest worker heartbeat, None when there is none."""
    last = cache.get(HEARTBEAT_KEY)
    return None if last is None else max(0.0, time.time() - float(last))


def _loop() -> None:
    while not _stop.is_set():
        heartbeat_beat()
        _stop.wait(settings.WORKER_HEARTBEAT_SECONDS)


@signals.worker_ready.connect
def _start(**_: Any) -> None:
    _stop.clear()
    threading.Thread(target=_loop, name="worker-heartbeat", daemon=True).start()


@signals.worker_shutdown.connect
def _shutdown(**_: Any) -> None:
    _stop.set()
