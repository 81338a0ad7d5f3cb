"""Celery tasks for messaging: thin, take ids, safe to run twice."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from core.durable import OUTAGE_ERRORS, resilient_task, retry_countdown
from messaging import services


@resilient_task(name="messaging.fanout", bind=True, soft_time_limit=240, time_limit=300)
def fanout(self: Any, job_id: int) -> int:
    """Append a big conversation's event to its members in batches (resumes where it stopped).

    An outage retries without end (ResilientTask); any other failure is counted on the job
    (a poison job stops after MESSAGING_FANOUT_MAX_ATTEMPTS and shows in the admin) and the
    job is retried with backoff, by this task and by the sweep."""
    try:
        return services.fanout_job_run(job_id=job_id)
    except OUTAGE_ERRORS:
        raise
    except Exception as exc:
        # The failure is counted on the job that raised (fanout_job_run); a poison job is left.
        if not self.request.is_eager and services.fanout_job_open(job_id=job_id):
            raise self.retry(countdown=retry_countdown(self.request.retries),
                             max_retries=self.request.retries + 1) from exc
        raise


@resilient_task(name="messaging.receipt_counts", soft_time_limit=50, time_limit=60)
def receipt_counts(conversation_id: str) -> int:
    """A big group's coalesced `receipt.delivered`/`receipt.read` for its last window."""
    from messaging.services.receipt_counts import receipt_counts_flush

    return receipt_counts_flush(conversation_id=conversation_id)


@shared_task(name="messaging.fanout_sweep", soft_time_limit=50, time_limit=60)
def fanout_sweep() -> int:
    """Re-enqueue fan-out jobs whose task was lost (the process died after commit),
    and forget the ones finished long ago."""
    services.fanout_jobs_prune()
    job_ids = services.fanout_jobs_stalled()
    for job_id in job_ids:
        fanout.delay(job_id)
    return len(job_ids)
