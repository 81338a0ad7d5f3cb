"""Writes for moderation: reports from users, and what staff do about them.

Staff actions go through the same services users' actions do (a removed
message is deleted for everyone by `messaging.services.message_remove`, so its
events reach every member; a suspended user's sockets are closed through
`streams.groups.device_disconnect_on_commit`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Device, User
from accounts.selectors import user_get_active
from core import metrics
from core.errors import NotFound, ValidationFailed
from core.ids import uuid_or_not_found
from messaging import services as messaging_services
from messaging.selectors import message_get_for_member
from moderation.models import Report, ReportReason, ReportStatus, Suspension
from streams.groups import device_disconnect_on_commit

logger = logging.getLogger(__name__)

REPORT_TEXT_MAX = 1000


@dataclass(frozen=True)
class ReportFiled:
    report: Report
    created: bool


def report_create(*, reporter: User, reason: object, message_id: object = None, user_id: object = None,
                  text: object = "") -> ReportFiled:
    """File a report on a message the reporter can see, or on a user. A repeat of an open
    report on the same target returns the first one."""
    errors: dict[str, list[str]] = {}
    if reason not in ReportReason.values:
        errors["reason"] = [f"One of: {', '.join(ReportReason.values)}."]
    if (message_id is None) == (user_id is None):
        errors["message_id"] = ["Give exactly one of message_id and user_id."]
    if text is None:
        text = ""
    if not isinstance(text, str) or len(text) > REPORT_TEXT_MAX:
        errors["text"] = [f"A string of at most {REPORT_TEXT_MAX} characters."]
    if errors:
        raise ValidationFailed(details=errors)
    message = None
    if message_id is not None:
        message = message_get_for_member(user_id=reporter.pk, message_id=message_id)  # NotFound if not visible
        target_id = message.sender_id
        if target_id == reporter.pk:
            raise ValidationFailed(details={"message_id": ["You cannot report your own message."]})
    else:
        target_id = user_get_active(user_id=user_id).pk
        if target_id == reporter.pk:
            raise ValidationFailed(details={"user_id": ["You cannot report yourself."]})
    existing = Report.objects.filter(reporter=reporter, reported_user_id=target_id, message=message,
                                     status=ReportStatus.OPEN).first()
    if existing is not None:
        return ReportFiled(existing, False)
    try:
        with transaction.atomic():
            report = Report.objects.create(reporter=reporter, reason=reason, message=message,
                                           reported_user_id=target_id, text=text)
    except IntegrityError:  # the same report, filed twice at once
        return ReportFiled(Report.objects.get(reporter=reporter, reported_user_id=target_id, message=message,
                                              status=ReportStatus.OPEN), False)
    metrics.REPORTS.labels(reason, "message" if message else "user").inc()
    logger.info("report filed", extra={"event": "report", "report_id": str(report.pk), "reason": reason})
    return ReportFiled(report, True)


def user_suspend(*, user_id: object, staff: User | None, reason: str = "") -> Suspension:
    """Suspend an account: every token is refused from now on, every live socket of its
    devices is closed with 4001, sign-in answers 403 account_suspended. Idempotent."""
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=uuid_or_not_found(user_id), is_active=True).first()
        if user is None:
            raise NotFound()
        active = Suspension.objects.filter(user=user, lifted_at__isnull=True).first()
        if active is not None:
            return active
        user.suspended_at = timezone.now()
        user.save(update_fields=["suspended_at"])
        suspension = Suspension.objects.create(user=user, created_by=staff, reason=reason[:500])
        for device_id in Device.objects.filter(user=user, revoked_at__isnull=True).values_list("pk", flat=True):
            device_disconnect_on_commit(device_id)
    metrics.SUSPENSIONS.inc()
    logger.info("account suspended", extra={"event": "suspension", "user_id": str(user.pk)})
    return suspension


def user_unsuspend(*, user_id: object, staff: User | None) -> bool:
    """Lift a suspension: the devices' tokens work again. False when none was active."""
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=uuid_or_not_found(user_id)).first()
        if user is None:
            raise NotFound()
        lifted = Suspension.objects.filter(user=user, lifted_at__isnull=True).update(
            lifted_at=timezone.now(), lifted_by=staff)
        user.suspended_at = None
        user.save(update_fields=["suspended_at"])
    return bool(lifted)


def report_close(*, report: Report, staff: User | None, status: str) -> None:
    if status not in (ReportStatus.ACTIONED, ReportStatus.DISMISSED):
        raise ValueError(status)
    Report.objects.filter(pk=report.pk, status=ReportStatus.OPEN).update(
        status=status, handled_by=staff, handled_at=timezone.now())


def report_suspend_user(*, report: Report, staff: User | None) -> None:
    """Staff action on a report: suspend the reported user; the user's open reports are actioned."""
    user_suspend(user_id=report.reported_user_id, staff=staff, reason=f"report {report.pk}: {report.reason}")
    Report.objects.filter(reported_user_id=report.reported_user_id, status=ReportStatus.OPEN).update(
        status=ReportStatus.ACTIONED, handled_by=staff, handled_at=timezone.now())


def report_remove_message(*, report: Report, staff: User | None) -> None:
    """Staff action on a message report: the message becomes deleted for everyone."""
    if report.message_id is None:
        raise ValidationFailed(details={"message": ["This report names a user, not a message."]})
    messaging_services.message_remove(message_id=report.message_id)
    Report.objects.filter(message_id=report.message_id, status=ReportStatus.OPEN).update(
        status=ReportStatus.ACTIONED, handled_by=staff, handled_at=timezone.now())
