"""Celery tasks for messaging: thin, take ids, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from messaging import services


@shared_task(name="messaging.fanout", acks_late=True, autoretry_for=(Exception,), retry_backoff=2,
             retry_backoff_max=60, retry_jitter=True, max_retries=10, soft_time_limit=240, time_limit=300)
def fanout(job_id: int) -> int:
    """Append a big conversation's event to its members in batches (resumes where it stopped)."""
    return services.fanout_job_run(job_id=job_id)


@shared_task(name="messaging.fanout_sweep", soft_time_limit=50, time_limit=60)
def fanout_sweep() -> int:
    """Re-enqueue fan-out jobs whose task was lost (the process died after commit),
    and forget the ones finished long ago."""
    services.fanout_jobs_prune()
    job_ids = services.fanout_jobs_stalled()
    for job_id in job_ids:
        fanout.delay(job_id)
    return len(job_ids)
