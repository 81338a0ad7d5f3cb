"""Celery tasks of exports: thin callers of the services, safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import IntegrityError

from core.durable import resilient_task
from exports import services


# The export row is the durable record: exports.recover re-enqueues pending and stalled builds.
@resilient_task(
    name="exports.build",
    bind=True,
    acks_late=True,  # idempotent: a redelivered build starts a new attempt or finds the work done
    reject_on_worker_lost=True,
    max_retries=60,
    time_limit=settings.EXPORT_TASK_TIME_LIMIT,
    soft_time_limit=settings.EXPORT_TASK_TIME_LIMIT - 60,
)
def build_export(self, export_id: str) -> str:
    outcome = services.export_build(export_id=export_id)
    if outcome is services.BuildOutcome.BUSY:
        # Another worker's heartbeat is fresh (the broker redelivered a task that is
        # still running); look again once that heartbeat would be stale.
        raise self.retry(countdown=int(settings.EXPORT_HEARTBEAT_STALE.total_seconds()) + 5)
    return outcome.value


@shared_task(name="exports.expire", acks_late=True, time_limit=600, soft_time_limit=540)
def expire_exports() -> int:
    return services.export_expire_due()


@shared_task(name="exports.recover", acks_late=True, time_limit=120, soft_time_limit=100)
def recover_exports() -> int:
    return services.export_recover_stuck()


@shared_task(name="exports.announce_due", acks_late=True, time_limit=60, soft_time_limit=50)
def announce_due() -> int | None:
    return services.sunset_dispatch_due()


@resilient_task(
    name="exports.announce_batch",
    acks_late=True,
    autoretry_for=(IntegrityError,),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
    time_limit=300,
    soft_time_limit=240,
)
def announce_batch(sunset_id: int, after_user_id: str | None) -> str | None:
    """Tell one batch of users, then enqueue the next batch (a chain: each link is idempotent)."""
    last = services.announcement_deliver(sunset_id=sunset_id, after_user_id=after_user_id)
    if last is not None:
        announce_batch.delay(sunset_id, last)
    return last
