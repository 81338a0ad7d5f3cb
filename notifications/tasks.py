"""Celery tasks: thin callers of notifications.services, retry-safe by the delivery rows."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from cryptography.fernet import InvalidToken

from core.crypto import unseal
from core.durable import durable_task, resilient_task
from notifications import services

logger = logging.getLogger(__name__)

# acks_late: a worker killed mid-task leaves the message unacknowledged, so the broker
# redelivers it; the rows' unique key and claim make a second run harmless.
COMMON: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "time_limit": 60,
    "soft_time_limit": 50,
}


# An outage (database or broker unavailable) retries without end, backing off to minutes
# (core.durable.ResilientTask): the task message waits in the broker until the database is back.
@resilient_task(name="notifications.push_fanout", **COMMON)
def push_fanout(*, sealed: str, **kwargs: Any) -> int:
    """`sealed` is the push's title and body, encrypted by `push_notify` for the broker."""
    return _unsealed_fanout(sealed, kwargs)


def _unsealed_fanout(sealed: str, kwargs: dict[str, Any]) -> int:
    try:
        text = unseal(services.PUSH_SEAL_PURPOSE, sealed)
    except InvalidToken:
        # Sealed under another SECRET_KEY (rotated since) or tampered with: nothing readable to send.
        logger.warning("push fan-out: sealed text unreadable (kind=%s); skipped", kwargs.get("kind"))
        return 0
    return len(services.push_fanout(title=str(text["title"]), body=str(text["body"]), **kwargs))


@durable_task(name="notifications.push_fanout_outbox", **COMMON)
def push_fanout_outbox(*, sealed: str, **kwargs: Any) -> None:
    """The same from an outbox row: the broker was down when the push was to be enqueued."""
    _unsealed_fanout(sealed, kwargs)


@resilient_task(
    bind=True,
    name="notifications.push_deliver",
    # Provider retries are bounded by PUSH_MAX_ATTEMPTS on the row; this is only a backstop.
    max_retries=50,
    **COMMON,
)
def push_deliver(self: Any, delivery_id: int) -> str:
    later = services.push_deliver(delivery_id=delivery_id, claim=self.request.id or f"local-{delivery_id}")
    if later is not None and self.request.is_eager:
        # Embedded mode (no broker) cannot wait out a countdown; the row stays PENDING for push_sweep.
        return "retry later"
    if later is not None:
        # Same task id on retry; the row it retries may be a newer one that the window collapsed into.
        raise self.retry(args=[later.delivery_id], countdown=later.countdown)
    return "done"


@shared_task(name="notifications.push_sweep", time_limit=120, soft_time_limit=100)
def push_sweep() -> dict[str, int]:
    return services.push_sweep()
