"""Celery tasks of media: thin, take ids, safe to run twice.

The follow-ups of an upload (thumbnail, waveform, transcode) run from outbox rows
written with the attachment (core.durable): `media.thumbnail`, `media.waveform`,
`media.transcode`. The older `media.make_*` names stay for messages already queued
and for direct calls.
"""

import contextlib

from celery import shared_task

from core.durable import durable_task, resilient_task
from media import services


@durable_task(name="media.thumbnail", time_limit=120, soft_time_limit=100, lease_seconds=180)
def thumbnail(attachment_id: str) -> None:
    services.attachment_make_thumbnail(attachment_id=attachment_id)


@durable_task(name="media.waveform", time_limit=180, soft_time_limit=150, lease_seconds=240)
def waveform(attachment_id: str) -> None:
    services.attachment_make_waveform(attachment_id=attachment_id)


@durable_task(name="media.transcode", time_limit=3900, soft_time_limit=3800, lease_seconds=4000, max_attempts=3)
def transcode(attachment_id: str) -> None:
    services.attachment_transcode(attachment_id=attachment_id)


@resilient_task(
    name="media.make_thumbnail",
    acks_late=True,  # idempotent: a redelivered run finds the thumbnail made
    autoretry_for=(OSError,),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
    time_limit=120,
    soft_time_limit=100,
)
def make_thumbnail(attachment_id: str) -> None:
    services.attachment_make_thumbnail(attachment_id=attachment_id)


@shared_task(name="media.delete_unreferenced", acks_late=True, time_limit=600, soft_time_limit=540)
def delete_unreferenced() -> int:
    return services.attachments_delete_unreferenced()


@resilient_task(
    name="media.make_waveform",
    acks_late=True,  # idempotent: a redelivered run finds the waveform made
    autoretry_for=(OSError,),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
    time_limit=180,
    soft_time_limit=150,
)
def make_waveform(attachment_id: str) -> None:
    services.attachment_make_waveform(attachment_id=attachment_id)


@resilient_task(
    name="media.transcode_video",
    acks_late=True,  # idempotent: a redelivered run finds the rendition made (or overwrites its own name)
    autoretry_for=(OSError,),
    retry_backoff=30,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=3,
    time_limit=3900,
    soft_time_limit=3800,
)
def transcode_video(attachment_id: str) -> None:
    services.attachment_transcode(attachment_id=attachment_id)


@resilient_task(
    name="media.finish_upload",
    acks_late=True,  # idempotent: upload_finish claims the upload or reports the outcome already there
    autoretry_for=(OSError,),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
    time_limit=900,
    soft_time_limit=840,
)
def finish_upload(upload_id: str) -> None:
    from core.errors import ApplicationError
    from media import resumable

    # A refusal is recorded on the upload; gone or being finished elsewhere: nothing to do.
    with contextlib.suppress(ApplicationError):
        resumable.upload_finish(upload_id=upload_id)


@shared_task(name="media.resumable_sweep", acks_late=True, time_limit=600, soft_time_limit=540)
def resumable_sweep() -> dict[str, int]:
    from media import resumable

    return resumable.uploads_sweep()
