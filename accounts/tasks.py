import logging

import httpx
from celery import shared_task
from cryptography.fernet import InvalidToken
from django.conf import settings

from accounts.sms import get_sms_backend
from core.crypto import seal, unseal

logger = logging.getLogger(__name__)

# The sealed number and code: the broker never holds either in clear text.
OTP_SEAL_PURPOSE = "accounts.send_otp_sms"


def otp_sms_sealed(*, to: str, code: str) -> str:
    return seal(OTP_SEAL_PURPOSE, {"to": to, "code": code})


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
def send_otp_sms(sealed: str) -> None:
    try:
        # A code past its lifetime is worthless: an old message in the broker sends nothing.
        values = unseal(OTP_SEAL_PURPOSE, sealed, max_age=settings.OTP_TTL_SECONDS)
    except InvalidToken:
        logger.warning("send_otp_sms: sealed value expired or not ours; nothing sent")
        return
    get_sms_backend().send(to=values["to"], body=f"Your verification code is {values['code']}")
