from celery import shared_task

from media import services


@shared_task(
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
