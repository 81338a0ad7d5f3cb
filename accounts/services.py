"""Writes for accounts: phone verification, devices and their tokens, profiles."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import Device, MomentsWindow, PhoneVerification, PushProvider, User, Visibility
from accounts.tasks import otp_sms_sealed, send_otp_sms
from core import metrics, ratelimit
from core.crypto import constant_time_equals, keyed_hash, new_numeric_code, new_token, token_digest
from core.errors import ApplicationError, NotFound, RateLimited, ValidationFailed
from core.ids import uuid_or_not_found
from core.phone import country_prefix, is_test_number, normalize_phone
from core.sunset import ensure_writable
from streams.groups import device_disconnect_on_commit

logger = logging.getLogger(__name__)


class InvalidCode(ApplicationError):
    status = 400
    code = "invalid_code"
    default_message = "The code is not correct."


class CodeExpired(ApplicationError):
    status = 400
    code = "code_expired"
    default_message = "The code has expired; request a new one."


class AccountSuspended(ApplicationError):
    status = 403
    code = "account_suspended"
    default_message = "This account is suspended."


class TooManyAttempts(RateLimited):
    code = "too_many_attempts"
    default_message = "Too many wrong codes; request a new code later."


@dataclass(frozen=True)
class OtpRequested:
    phone: str
    expires_in: int
    resend_after: int


@dataclass(frozen=True)
class SignedIn:
    user: User
    device: Device
    token: str
    is_new_user: bool


def _phone_key(e164: str) -> str:
    return keyed_hash("phone-verification", e164)


def _code_hash(verification_key: str, code: str) -> str:
    return keyed_hash("otp-code", f"{verification_key}:{code}")


@metrics.counts_refusals(metrics.OTP_REFUSALS)
def otp_request(*, phone: object, region: object = None, client_ip: str) -> OtpRequested:
    """Send a fresh code to the number, within the resend cooldown and SMS limits.

    Test numbers (OTP_TEST_NUMBERS) get the fixed OTP_TEST_CODE, no SMS, and
    so no SMS limits.
    """
    metrics.OTP_REQUESTS.inc()
    e164 = normalize_phone(phone, region)
    phone_key = _phone_key(e164)
    now = timezone.now()
    test_number = is_test_number(e164)

    if not test_number:
        latest = (
            PhoneVerification.objects.filter(phone_key=phone_key, consumed_at__isnull=True, superseded=False)
            .order_by("-created_at")
            .only("created_at")
            .first()
        )
        if latest is not None:
            wait = settings.OTP_RESEND_AFTER_SECONDS - (now - latest.created_at).total_seconds()
            if wait > 0:
                cooldown = RateLimited("Wait before asking for another code.", retry_after=int(wait) + 1)
                cooldown.scope = "otp-resend"
                raise cooldown
        # Check every limit before spending any, so one refusal does not eat the others' budget.
        ratelimit.ensure_not_exhausted("otp-ip", client_ip, settings.OTP_LIMIT_PER_IP, cost=1)
        ratelimit.ensure_not_exhausted("otp-prefix", country_prefix(e164), settings.OTP_LIMIT_PER_PREFIX, cost=1)
        ratelimit.hit("otp-number", phone_key, settings.OTP_LIMIT_PER_NUMBER)
        ratelimit.hit("otp-ip", client_ip, settings.OTP_LIMIT_PER_IP)
        ratelimit.hit("otp-prefix", country_prefix(e164), settings.OTP_LIMIT_PER_PREFIX)

    code = settings.OTP_TEST_CODE if test_number else new_numeric_code()
    with transaction.atomic():
        PhoneVerification.objects.filter(phone_key=phone_key, consumed_at__isnull=True).update(superseded=True)
        verification = PhoneVerification.objects.create(
            phone_key=phone_key,
            code_hash="",
            expires_at=now + timedelta(seconds=settings.OTP_TTL_SECONDS),
        )
        verification.code_hash = _code_hash(str(verification.pk), code)
        verification.save(update_fields=["code_hash"])
        if not test_number:
            sealed = otp_sms_sealed(to=e164, code=code)
            transaction.on_commit(lambda: send_otp_sms.delay(sealed))
    return OtpRequested(
        phone=e164, expires_in=settings.OTP_TTL_SECONDS, resend_after=settings.OTP_RESEND_AFTER_SECONDS
    )


def _run_hooks(setting_name: str, **kwargs: Any) -> None:
    for path in getattr(settings, setting_name, []):
        import_string(path)(**kwargs)


@metrics.counts_refusals(metrics.OTP_VERIFY_FAILURES)
def otp_verify(
    *, phone: object, code: str, device_name: str, platform: str, client_ip: str, region: object = None
) -> SignedIn:
    """Check the code and sign in: the user is created on first verify, and a new device always."""
    e164 = normalize_phone(phone, region)
    phone_key = _phone_key(e164)
    ratelimit.ensure_not_exhausted("otp-verify-number", phone_key, settings.OTP_VERIFY_LIMIT_PER_NUMBER,
                                   error=TooManyAttempts, cost=1)
    ratelimit.ensure_not_exhausted("otp-verify-ip", client_ip, settings.OTP_VERIFY_LIMIT_PER_IP,
                                   error=TooManyAttempts, cost=1)

    # One transaction for a good code: consume it, create the user and the device, and run
    # the registration hooks (their rows commit with the user, their tasks are enqueued on
    # commit). A refusal commits the attempt counter and raises after the block.
    failure: ApplicationError | None = None
    signed_in: SignedIn | None = None
    with transaction.atomic():
        verification = (
            PhoneVerification.objects.select_for_update()
            .filter(phone_key=phone_key, consumed_at__isnull=True, superseded=False)
            .order_by("-created_at")
            .first()
        )
        now = timezone.now()
        if verification is None:
            failure = InvalidCode("No code is pending for this number; request one.")
        elif verification.expires_at <= now:
            failure = CodeExpired()
        elif verification.attempts >= settings.OTP_MAX_ATTEMPTS:
            failure = TooManyAttempts(retry_after=settings.OTP_RESEND_AFTER_SECONDS)
        elif not constant_time_equals(verification.code_hash, _code_hash(str(verification.pk), code)):
            verification.attempts += 1
            verification.save(update_fields=["attempts"])
            failure = InvalidCode()
        else:
            verification.consumed_at = now
            verification.save(update_fields=["consumed_at"])
            signed_in = _sign_in(e164=e164, device_name=device_name, platform=platform)
    if failure is not None:
        if isinstance(failure, InvalidCode):
            ratelimit.hit("otp-verify-number", phone_key, settings.OTP_VERIFY_LIMIT_PER_NUMBER,
                          error=TooManyAttempts)
            ratelimit.hit("otp-verify-ip", client_ip, settings.OTP_VERIFY_LIMIT_PER_IP, error=TooManyAttempts)
        raise failure
    assert signed_in is not None
    return signed_in


def _sign_in(*, e164: str, device_name: str, platform: str) -> SignedIn:
    for attempt in range(2):
        try:
            with transaction.atomic():
                user, created = User.objects.get_or_create(phone=e164, defaults={"is_active": True})
                if created:
                    ensure_writable("signup")  # sunset read-only: no new accounts (rolls the user back)
                if not user.is_active:
                    # A deleted account keeps no phone, so this is a disabled one.
                    raise NotFound("This account is disabled.")
                if user.suspended_at is not None:
                    raise AccountSuspended()
                device, token = device_create(user=user, name=device_name, platform=platform)
                if created:
                    _run_hooks("ACCOUNT_REGISTERED_HOOKS", user_id=user.pk)
            return SignedIn(user=user, device=device, token=token, is_new_user=created)
        except IntegrityError:
            # Two first verifies of one number raced; the loser signs in to the winner's user.
            if attempt:
                raise
    raise AssertionError("unreachable")


def device_create(*, user: User, name: str, platform: str) -> tuple[Device, str]:
    token = new_token()
    device = Device.objects.create(user=user, name=name, platform=platform, token_hash=token_digest(token))
    return device, token


def device_revoke(*, user: User, device_id: object) -> None:
    """Revoke one of the user's devices and close its live sockets (code 4001)."""
    with transaction.atomic():
        device_id = uuid_or_not_found(device_id)
        updated = Device.objects.filter(user=user, pk=device_id, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), push_token="", push_provider=""
        )
        if not updated:
            raise NotFound()
        device_disconnect_on_commit(device_id)


def device_touch(*, device: Device) -> None:
    """Record activity, at most once per DEVICE_ACTIVITY_RESOLUTION to keep reads cheap."""
    now = timezone.now()
    if now - device.last_active_at >= settings.DEVICE_ACTIVITY_RESOLUTION:
        Device.objects.filter(pk=device.pk).update(last_active_at=now)
        device.last_active_at = now


def device_push_set(*, device: Device, provider: str, token: str) -> None:
    if provider not in PushProvider.values:
        raise ValidationFailed(details={"provider": ["Unknown provider."]})
    with transaction.atomic():
        # A push token belongs to one install: take it away from any other device.
        Device.objects.filter(push_provider=provider, push_token=token).exclude(pk=device.pk).update(
            push_provider="", push_token=""
        )
        Device.objects.filter(pk=device.pk).update(
            push_provider=provider, push_token=token, push_updated_at=timezone.now()
        )


def device_push_clear(*, device: Device) -> None:
    Device.objects.filter(pk=device.pk).update(push_provider="", push_token="", push_updated_at=timezone.now())


_SETTINGS_FIELDS = {
    "discoverable": "discoverable",
    "last_seen": "last_seen_visibility",
    "read_receipts": "read_receipts",
    "message_preview_in_push": "message_preview_in_push",
    "moments_window": "moments_window",
    "moments_notifications": "moments_notifications",
    "group_add": "group_add",
}


def user_update(*, user: User, display_name: str | None = None, about: str | None = None,
                settings_changes: dict[str, Any] | None = None) -> User:
    """Change the given profile fields and settings; others are kept."""
    changed: list[str] = []
    if display_name is not None:
        user.display_name = display_name
        changed.append("display_name")
    if about is not None:
        user.about = about
        changed.append("about")
    for key, value in (settings_changes or {}).items():
        field = _SETTINGS_FIELDS[key]
        if field in {"discoverable", "last_seen_visibility", "group_add"} and value not in Visibility.values:
            raise ValidationFailed(details={f"settings.{key}": ["Unknown value."]})
        if field == "moments_window" and value not in MomentsWindow.values:
            raise ValidationFailed(details={f"settings.{key}": ["Unknown value."]})
        setattr(user, field, value)
        changed.append(field)
    if changed:
        user.save(update_fields=changed)
    return user


def user_delete(*, user: User) -> None:
    """Erase the account: devices revoked, profile erased, then each app's deletion step.

    Steps listed in ACCOUNT_DELETION_STEPS run inside the same transaction
    (messaging marks the user's messages deleted for everyone, contacts drops
    the address book), so a failure leaves nothing half-erased.
    """
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        now = timezone.now()
        device_ids = list(Device.objects.filter(user=user, revoked_at__isnull=True).values_list("pk", flat=True))
        Device.objects.filter(pk__in=device_ids).update(revoked_at=now, push_token="", push_provider="")
        for device_id in device_ids:
            device_disconnect_on_commit(device_id)
        _run_hooks("ACCOUNT_DELETION_STEPS", user_id=user.pk)
        user.phone = None
        user.display_name = ""
        user.about = ""
        user.avatar_url = ""
        user.last_seen_at = None
        user.is_active = False
        user.deleted_at = now
        user.set_unusable_password()
        user.save()


def user_mark_seen(*, user_id: object, at: datetime | None = None) -> None:
    User.objects.filter(pk=user_id).update(last_seen_at=at or timezone.now())
