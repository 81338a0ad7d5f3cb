import httpx
from celery import shared_task

from accounts.sms import get_sms_backend


@shared_task(
    name="accounts.send_otp_sms",
    autoretry_for=(OSError, httpx.HTTPError),
    retry_backoff=2,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=5,
    acks_late=False,  # a duplicate SMS is worse than a resend the user can ask for
    time_limit=30,
)
def send_otp_sms(to: str, code: str) -> None:
    get_sms_backend().send(to=to, body=f"Your verification code is {code}")
