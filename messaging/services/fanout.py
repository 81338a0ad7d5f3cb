"""Fan-out for big conversations: events promised in the change's transaction, appended in Celery batches."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.selectors import has_push_device
from core.durable import is_outage
from messaging import events, integrations
from messaging.models import (
    Conversation,
    FanoutJob,
    Membership,
    Message,
    MessageHidden,
)
from messaging.selectors import is_inline, message_public
from messaging.services.push import push_new_message
from streams.services import PendingEvent, stream_append

logger = logging.getLogger(__name__)


# --- Fan-out for big conversations ---------------------------------------------------------


def enqueue_fanout(job_ids: list[int]) -> None:
    from messaging.tasks import fanout

    def enqueue() -> None:
        for job_id in job_ids:
            try:
                fanout.delay(job_id)
            except Exception:  # The sweep re-enqueues unfinished jobs.
                logger.warning("could not enqueue fan-out job %s", job_id, exc_info=True)

    transaction.on_commit(enqueue)


def fan_out(*, conversation: Conversation, type: str, data: dict[str, Any], message: Message | None = None,
             inline_user_ids: Iterable[str] = ()) -> list[PendingEvent]:
    """Promise an event to every current member of a big conversation, appended
    in Celery batches; returns the events `inline_user_ids` get now (the actor,
    for their other devices)."""
    inline = [str(u) for u in inline_user_ids]
    job = FanoutJob.objects.create(conversation=conversation, message=message, event_type=type, data=data,
                                   exclude_user_ids=inline, cutoff=timezone.now())
    enqueue_fanout([job.pk])
    return [PendingEvent(u, type, data) for u in inline]


def fanout_job_run(*, job_id: int, batch_size: int | None = None, max_batches: int = 100_000) -> int:
    """Run a fan-out job to completion (safe to run twice; returns events appended).

    Jobs of one conversation run strictly in creation order, so every member
    sees that conversation's events in order, even with several workers.
    """
    batch_size = batch_size or settings.MESSAGING_FANOUT_BATCH
    conversation_id = FanoutJob.objects.filter(pk=job_id).values_list("conversation_id", flat=True).first()
    appended = 0
    for _ in range(max_batches):
        current = None
        try:
            with transaction.atomic():
                job = (FanoutJob.objects.select_for_update(of=("self",)).select_related("message__sender")
                       .filter(conversation_id=conversation_id, finished_at__isnull=True, failed_at__isnull=True)
                       .order_by("pk").first())
                if job is None:
                    return appended
                current = job.pk
                appended += _fanout_batch(job, batch_size)
                if job.pk == job_id and job.finished_at is not None:
                    return appended
        except Exception as exc:
            if current is not None and not is_outage(exc):
                _fanout_job_failed(job_id=current, error=exc)
            raise
    return appended


def _fanout_job_failed(*, job_id: int, error: BaseException) -> None:
    """Count a failure that was not an outage (the batch rolled back); a job that keeps failing
    is a poison input: it stops, so the conversation's later jobs go on, and the admin shows it."""
    attempts = FanoutJob.objects.filter(pk=job_id).values_list("attempts", flat=True).first() or 0
    poisoned = attempts + 1 >= settings.MESSAGING_FANOUT_MAX_ATTEMPTS
    FanoutJob.objects.filter(pk=job_id, finished_at__isnull=True).update(
        attempts=F("attempts") + 1, last_error="".join(traceback.format_exception(error))[-4000:],
        failed_at=timezone.now() if poisoned else None)
    log = logger.error if poisoned else logger.warning
    log("fan-out job %s failed (%s, attempt %d)%s", job_id, type(error).__name__, attempts + 1,
        ": marked failed, see the admin" if poisoned else "")


def fanout_job_open(*, job_id: int) -> bool:
    """The job still has work and has not been given up as a poison input."""
    return FanoutJob.objects.filter(pk=job_id, finished_at__isnull=True, failed_at__isnull=True).exists()


def _fanout_batch(job: FanoutJob, batch_size: int) -> int:
    """One batch of members after the job's cursor; call holding the job row lock."""
    qs = Membership.objects.filter(conversation_id=job.conversation_id, left_at__isnull=True,
                                   joined_at__lte=job.cutoff).exclude(user_id__in=job.exclude_user_ids)
    if job.after_user_id:
        qs = qs.filter(user_id__gt=job.after_user_id)
    rows = list(qs.order_by("user_id").annotate(has_push=has_push_device())
                .values_list("user_id", "muted_until", "has_push")[:batch_size])
    if not rows:
        job.finished_at = timezone.now()
        job.save(update_fields=["finished_at"])
        return 0
    user_ids = [str(u) for u, _, _ in rows]
    skip: set[str] = set()
    if job.message_id:
        if job.event_type == events.MESSAGE_NEW:
            skip = integrations.blockers_of(user_id=job.message.sender_id, candidate_ids=user_ids)
            MessageHidden.objects.bulk_create([MessageHidden(message_id=job.message_id, user_id=u) for u in skip],
                                              ignore_conflicts=True)
        skip |= {str(u) for u in MessageHidden.objects.filter(message_id=job.message_id, user_id__in=user_ids)
                 .values_list("user_id", flat=True)}
    recipients = [(str(u), muted, has_push) for u, muted, has_push in rows if str(u) not in skip]
    # A new message is referenced, not copied: each member's event points at the one row
    # (live sockets are rung with it as it stands now).
    ref_id, data = None, job.data
    if job.event_type == events.MESSAGE_NEW and job.message_id:
        ref_id, data = job.message_id, message_public(job.message)
    stream_append([PendingEvent(u, job.event_type, data, ref_id=ref_id) for u, _, _ in recipients])
    if job.event_type == events.MESSAGE_NEW and job.message_id:
        push_new_message(job.message, [(u, muted) for u, muted, has_push in recipients if has_push])
    job.after_user_id = rows[-1][0]
    job.save(update_fields=["after_user_id"])
    return len(recipients)


def fanout_jobs_prune(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Forget finished jobs; their events live in the streams."""
    deleted, _ = FanoutJob.objects.filter(finished_at__lt=timezone.now() - older_than).delete()
    return deleted


def fanout_jobs_stalled(*, older_than_seconds: int = 60) -> list[int]:
    """Unfinished jobs whose task may have been lost (process died before enqueueing)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(FanoutJob.objects.filter(finished_at__isnull=True, failed_at__isnull=True, created_at__lt=cutoff)
                .order_by("pk").values_list("pk", flat=True)[:1000])


def emit_to_members(*, conversation: Conversation, type: str, data: dict[str, Any],
                     message: Message | None = None, actor_id: object = None,
                     extra_user_ids: Iterable[str] = ()) -> list[PendingEvent]:
    """One event for every current member (minus those who hid `message`), plus
    `extra_user_ids` (e.g. a member who just left). Big conversations fan out.

    Returns the events to append now: each transaction appends once, so its
    stream-counter locks are taken in one sorted batch (no deadlock between
    transactions appending to overlapping users)."""
    extra = {str(u) for u in extra_user_ids}
    if not is_inline(conversation):
        inline = extra | ({str(actor_id)} if actor_id else set())
        return fan_out(conversation=conversation, type=type, data=data, message=message,
                        inline_user_ids=sorted(inline))
    qs = Membership.objects.filter(conversation=conversation, left_at__isnull=True)
    if message is not None:
        qs = qs.exclude(user_id__in=MessageHidden.objects.filter(message=message).values("user_id"))
    user_ids = [str(u) for u in qs.order_by("joined_at", "pk").values_list("user_id", flat=True)]
    user_ids += sorted(extra - set(user_ids))
    return [PendingEvent(u, type, data) for u in user_ids]
