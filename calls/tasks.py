"""Celery tasks of calls: thin, take ids, safe to run twice (the call row's state decides)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from calls import services
from core.durable import resilient_task

# An outage retries without end, backing off to minutes (core.durable.ResilientTask); the call
# row is the durable record: calls.sweep ends rings and dropped devices whose task was lost.
COMMON: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "soft_time_limit": 50,
    "time_limit": 60,
}


@resilient_task(bind=True, name="calls.ring_timeout", **COMMON)
def ring_timeout(self: Any, call_id: str) -> str:
    """An offer's 45 s are up: ringing callees missed it; a call nobody answered ends `missed`."""
    left = services.call_ring_expire(call_id=call_id)
    if left is not None and not self.request.is_eager:
        # Ran early (clock skew between hosts): come back when it is due.
        ring_timeout.apply_async(args=[call_id], countdown=left + 0.5)
        return "not yet"
    return "done"


@resilient_task(bind=True, name="calls.drop_check", **COMMON)
def drop_check(self: Any, call_id: str) -> str:
    """A device's socket dropped in an active call: fail the call if it did not come back."""
    left = services.call_drop_check(call_id=call_id)
    if left is not None and not self.request.is_eager:
        drop_check.apply_async(args=[call_id], countdown=left + 0.5)
        return "not yet"
    return "done"


@shared_task(name="calls.sweep", soft_time_limit=50, time_limit=60)
def sweep() -> dict[str, int]:
    """Beat: rings and dropped devices whose task was lost, and devices of killed processes."""
    return services.calls_sweep()
