"""Writes for exports and the sunset schedule.

An export is requested (one active per user, a partial unique index), built
by a Celery worker into a temporary file named for its export id and attempt,
saved to storage under one fixed name, and marked ready in the same
transaction that emits `export.ready`. A worker that dies mid-build leaves
the row `running` with a stale heartbeat; the redelivered task (acks_late) or
the recovery beat task starts a new attempt from scratch and overwrites the
same storage name, so a request never has two archives.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import User
from core.errors import Conflict, RateLimited, ValidationFailed
from core.sunset import Schedule, forget_schedule
from exports import events
from exports.archive import archive_write
from exports.models import ACTIVE_STATUSES, AnnouncementDelivery, Export, ExportStatus, Sunset
from exports.selectors import export_storage
from streams.services import PendingEvent, stream_append

logger = logging.getLogger(__name__)


def _call_hook(setting_name: str, **kwargs: Any) -> None:
    path = getattr(settings, setting_name, "")
    if path:
        import_string(path)(**kwargs)


# --- Requesting -----------------------------------------------------------------------


def export_request(*, user: User) -> Export:
    """Queue a new export of everything the user can see.

    409 `conflict` while one is pending or running (details name it); 429
    `rate_limited` within EXPORT_MIN_INTERVAL of the last successful one
    (a failed export does not count, so a fault never locks a user out).
    """
    from exports.tasks import build_export

    now = timezone.now()
    with transaction.atomic():
        # Serialise one user's requests so the checks below see each other.
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
        active = Export.objects.filter(user=user, status__in=ACTIVE_STATUSES).first()
        if active is not None:
            raise Conflict("An export is already being prepared.",
                           details={"export_id": str(active.pk), "status": active.status})
        last = (Export.objects.filter(user=user, status__in=[ExportStatus.READY, ExportStatus.EXPIRED])
                .order_by("-finished_at").only("finished_at").first())
        if last is not None and last.finished_at and now - last.finished_at < settings.EXPORT_MIN_INTERVAL:
            wait = settings.EXPORT_MIN_INTERVAL - (now - last.finished_at)
            raise RateLimited("You can request one export a day.", retry_after=int(wait.total_seconds()) + 1)
        try:
            with transaction.atomic():
                export = Export.objects.create(user=user)
        except IntegrityError as exc:  # the partial unique index: a concurrent request won
            raise Conflict("An export is already being prepared.") from exc
        transaction.on_commit(partial(build_export.delay, str(export.pk)))
    return export


# --- Building -------------------------------------------------------------------------


class BuildOutcome(Enum):
    DONE = "done"            # ready, failed, or nothing left to do
    BUSY = "busy"            # another live worker holds this export; check again later
    SUPERSEDED = "superseded"  # a newer attempt took over while this one ran


class _Superseded(Exception):
    pass


def _temp_dir() -> Path:
    import tempfile

    return Path(settings.EXPORT_TEMP_DIR or tempfile.gettempdir())


def _temp_path(export_id: object, attempt: int) -> Path:
    return _temp_dir() / f"export-{export_id}-{attempt}.zip.part"


def export_storage_name(export: Export) -> str:
    return f"exports/{export.user_id}/{export.pk}.zip"


@dataclass
class _ProgressReporter:
    """Writes progress and the heartbeat at most every few seconds; stops a superseded run."""

    export_id: str
    attempt: int
    min_interval: float = 5.0
    _last: float = 0.0

    def __call__(self, percent: int) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval:
            return
        self._last = now
        updated = Export.objects.filter(pk=self.export_id, attempt=self.attempt, status=ExportStatus.RUNNING) \
            .update(progress=percent, heartbeat_at=timezone.now())
        if not updated:
            raise _Superseded


def _claim(export_id: str, now: datetime) -> tuple[Export | None, BuildOutcome]:
    with transaction.atomic():
        export = Export.objects.select_for_update().filter(pk=export_id).first()
        if export is None or export.status not in ACTIVE_STATUSES:
            return None, BuildOutcome.DONE
        if (export.status == ExportStatus.RUNNING and export.heartbeat_at
                and now - export.heartbeat_at < settings.EXPORT_HEARTBEAT_STALE):
            return None, BuildOutcome.BUSY
        if export.attempt >= settings.EXPORT_MAX_ATTEMPTS:
            _mark_failed(export, "The export failed repeatedly; please request a new one.")
            return None, BuildOutcome.DONE
        export.status = ExportStatus.RUNNING
        export.attempt += 1
        export.progress = 0
        export.started_at = export.heartbeat_at = now
        export.save(update_fields=["status", "attempt", "progress", "started_at", "heartbeat_at"])
        return export, BuildOutcome.DONE


def export_build(*, export_id: str) -> BuildOutcome:
    """Build the archive of one export from scratch. Safe to run twice, or after a killed run."""
    export, outcome = _claim(export_id, timezone.now())
    if export is None:
        return outcome
    attempt = export.attempt
    for leftover in _temp_dir().glob(f"export-{export.pk}-*.zip.part"):
        leftover.unlink(missing_ok=True)  # a killed attempt's file on this host
    temp_path = _temp_path(export.pk, attempt)
    storage_name = export_storage_name(export)
    try:
        user = User.objects.get(pk=export.user_id)
        archive_write(user=user, path=temp_path, on_progress=_ProgressReporter(str(export.pk), attempt))
        with transaction.atomic():
            current = Export.objects.select_for_update().get(pk=export.pk)
            if current.status != ExportStatus.RUNNING or current.attempt != attempt:
                raise _Superseded
            storage = export_storage()
            if storage.exists(storage_name):
                storage.delete(storage_name)  # a killed attempt's archive: overwritten, never a second one
            with temp_path.open("rb") as handle:
                stored_as = storage.save(storage_name, File(handle))
            now = timezone.now()
            current.status = ExportStatus.READY
            current.progress = 100
            current.storage_name = stored_as
            current.size = storage.size(stored_as)
            current.finished_at = now
            current.expires_at = now + settings.EXPORT_TTL
            current.error = ""
            current.save(update_fields=["status", "progress", "storage_name", "size", "finished_at",
                                        "expires_at", "error"])
            base_url = settings.EXPORT_PUBLIC_BASE_URL
            stream_append([PendingEvent(current.user_id, events.EXPORT_READY,
                                        events.export_ready_data(current, base_url=base_url))])
            _call_hook("EXPORT_READY_PUSH", user_id=current.user_id, kind=events.EXPORT_READY,
                       title="Your data export is ready",
                       body="Download it from the app within 7 days.",
                       collapse_key=f"export:{current.pk}", data={"export_id": str(current.pk)},
                       dedupe_key=f"export.ready:{current.pk}")
        return BuildOutcome.DONE
    except _Superseded:
        logger.info("export %s attempt %s superseded; discarded", export_id, attempt)
        return BuildOutcome.SUPERSEDED
    except OSError as exc:
        reason = ("Not enough storage space to build the archive." if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                  else "The archive could not be written.")
        logger.warning("export %s failed: %s (errno %s)", export_id, type(exc).__name__, exc.errno)
        _fail_attempt(export_id, attempt, reason, storage_name)
        return BuildOutcome.DONE
    except SoftTimeLimitExceeded:
        logger.warning("export %s ran past its time limit", export_id)
        _fail_attempt(export_id, attempt, "The export took too long; please request a new one.", storage_name)
        return BuildOutcome.DONE
    except Exception:
        logger.exception("export %s failed", export_id)
        _fail_attempt(export_id, attempt, "An internal error stopped the export.", storage_name)
        return BuildOutcome.DONE
    finally:
        temp_path.unlink(missing_ok=True)


def _mark_failed(export: Export, reason: str) -> None:
    export.status = ExportStatus.FAILED
    export.error = reason[:255]
    export.finished_at = timezone.now()
    export.save(update_fields=["status", "error", "finished_at"])


def _fail_attempt(export_id: str, attempt: int, reason: str, storage_name: str) -> None:
    """Mark this attempt failed and remove any partial archive: nothing half-served.

    A superseded attempt touches nothing: the newer attempt owns the storage name.
    """
    with transaction.atomic():
        export = Export.objects.select_for_update().filter(pk=export_id, attempt=attempt,
                                                          status=ExportStatus.RUNNING).first()
        if export is None:
            return
        _mark_failed(export, reason)
        try:
            storage = export_storage()
            if storage.exists(storage_name):
                storage.delete(storage_name)
        except OSError:
            logger.warning("export %s: partial archive could not be removed", export_id)


# --- Expiry, recovery, deletion --------------------------------------------------------


def _delete_file(storage_name: str) -> None:
    if not storage_name:
        return
    try:
        storage = export_storage()
        if storage.exists(storage_name):
            storage.delete(storage_name)
    except OSError:
        logger.warning("export file could not be deleted; will retry on the next run")
        raise


def export_expire_due(*, now: datetime | None = None) -> int:
    """Delete the files of ready exports past expires_at and mark them expired. Returns how many."""
    now = now or timezone.now()
    expired = 0
    due = Export.objects.filter(status=ExportStatus.READY, expires_at__lte=now).values_list("pk", flat=True)
    for export_id in list(due[:1000]):
        with transaction.atomic():
            export = Export.objects.select_for_update().filter(pk=export_id, status=ExportStatus.READY).first()
            if export is None:
                continue
            try:
                _delete_file(export.storage_name)
            except OSError:
                continue
            export.status = ExportStatus.EXPIRED
            export.storage_name = ""
            export.save(update_fields=["status", "storage_name"])
            expired += 1
    return expired


def export_recover_stuck(*, now: datetime | None = None) -> int:
    """Re-enqueue exports whose task was lost: pending for long, or running with a dead heartbeat."""
    from exports.tasks import build_export

    now = now or timezone.now()
    stale = now - settings.EXPORT_HEARTBEAT_STALE
    stuck = list(
        Export.objects.filter(status=ExportStatus.PENDING, created_at__lt=now - timedelta(minutes=10))
        .values_list("pk", flat=True)[:500]
    ) + list(
        Export.objects.filter(status=ExportStatus.RUNNING, heartbeat_at__lt=stale).values_list("pk", flat=True)[:500]
    )
    for export_id in stuck:
        build_export.delay(str(export_id))
    return len(stuck)


def exports_erase_for_user(*, user_id: object) -> None:
    """ACCOUNT_DELETION_STEPS entry: the user's archives are deleted with the account.

    Runs inside the deletion transaction; files go after commit, so a rolled
    back deletion keeps them. A build still running finds its row failed and
    discards its work.
    """
    now = timezone.now()
    names = list(Export.objects.filter(user_id=user_id).exclude(storage_name="")
                 .values_list("storage_name", flat=True))
    Export.objects.filter(user_id=user_id, status__in=ACTIVE_STATUSES).update(
        status=ExportStatus.FAILED, error="The account was deleted.", finished_at=now)
    Export.objects.filter(user_id=user_id, status=ExportStatus.READY).update(
        status=ExportStatus.EXPIRED, expires_at=now)
    Export.objects.filter(user_id=user_id).update(storage_name="")

    def delete_files() -> None:
        for name in names:
            # A failure is logged; the orphan sits in a private folder and is never served.
            with contextlib.suppress(OSError):
                _delete_file(name)

    transaction.on_commit(delete_files)


# --- Sunset ------------------------------------------------------------------------------

# The operator types times by hand; "now" is a few seconds old when checked.
_CLOCK_SLACK = timedelta(seconds=60)


def sunset_validate(*, announce_at: datetime | None, read_only_at: datetime | None,
                    shutdown_at: datetime | None, message: str, now: datetime | None = None) -> None:
    """Raise ValidationFailed (field -> messages) unless the phases are in the future and in order."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    times = {"announce_at": announce_at, "read_only_at": read_only_at, "shutdown_at": shutdown_at}
    for field, value in times.items():
        if value is None:
            errors[field] = ["Required."]
        elif timezone.is_naive(value):
            errors[field] = ["Give a time zone (e.g. 2030-01-31T12:00:00Z)."]
        elif value < now - _CLOCK_SLACK:
            errors[field] = ["Must not be in the past."]
    if not errors:
        if read_only_at < announce_at:
            errors["read_only_at"] = ["The read-only time must not be before the announcement."]
        if shutdown_at < read_only_at:
            errors["shutdown_at"] = ["The shutdown time must not be before the read-only time."]
    if not message or not message.strip():
        errors["message"] = ["Required: tell users what happens and how to export their data."]
    elif len(message) > 2000:
        errors["message"] = ["At most 2000 characters."]
    if errors:
        raise ValidationFailed("The sunset schedule is not valid.", details=errors)


def sunset_schedule(*, announce_at: datetime, read_only_at: datetime, shutdown_at: datetime,
                    message: str) -> Sunset:
    """Plan the service's end. The newest schedule replaces any earlier one."""
    from exports.tasks import announce_due

    sunset_validate(announce_at=announce_at, read_only_at=read_only_at, shutdown_at=shutdown_at, message=message)
    with transaction.atomic():
        sunset = Sunset.objects.create(announce_at=announce_at, read_only_at=read_only_at,
                                       shutdown_at=shutdown_at, message=message.strip())
        transaction.on_commit(forget_schedule)
        if announce_at <= timezone.now() + _CLOCK_SLACK:
            transaction.on_commit(announce_due.delay)
    return sunset


def sunset_cancel() -> Sunset | None:
    """Call off the schedule in force (the service returns to normal at once)."""
    with transaction.atomic():
        sunset = Sunset.objects.select_for_update().order_by("-created_at", "-id").first()
        if sunset is None or sunset.cancelled_at is not None:
            return None
        sunset.cancelled_at = timezone.now()
        sunset.save(update_fields=["cancelled_at"])
        transaction.on_commit(forget_schedule)
    return sunset


def sunset_dispatch_due(*, now: datetime | None = None) -> int | None:
    """Start the announcement fan-out once, when its time has come. Returns the sunset id started."""
    from exports.tasks import announce_batch

    now = now or timezone.now()
    with transaction.atomic():
        sunset = Sunset.objects.select_for_update().order_by("-created_at", "-id").first()
        if (sunset is None or sunset.cancelled_at is not None or sunset.dispatched_at is not None
                or sunset.announce_at > now):
            return None
        sunset.dispatched_at = now
        sunset.save(update_fields=["dispatched_at"])
        transaction.on_commit(partial(announce_batch.delay, sunset.pk, None))
    return sunset.pk


def announcement_deliver(*, sunset_id: int, after_user_id: str | None) -> str | None:
    """Announce to the next batch of active users after `after_user_id` (by id order).

    Idempotent per user: an AnnouncementDelivery row commits with the event, so a
    re-run (a redelivered task) skips users already told. Returns the last user
    id of the batch, or None when every user has been reached.
    """
    sunset = Sunset.objects.filter(pk=sunset_id, cancelled_at__isnull=True).first()
    if sunset is None:
        return None
    users = User.objects.filter(is_active=True).order_by("pk")
    if after_user_id:
        users = users.filter(pk__gt=after_user_id)
    user_ids = [str(pk) for pk in users.values_list("pk", flat=True)[: settings.SUNSET_ANNOUNCE_BATCH]]
    if not user_ids:
        return None
    schedule = Schedule(id=sunset.pk, announce_at=sunset.announce_at, read_only_at=sunset.read_only_at,
                        shutdown_at=sunset.shutdown_at, message=sunset.message)
    data = events.announcement_public(schedule)
    with transaction.atomic():
        told = {str(pk) for pk in AnnouncementDelivery.objects.filter(sunset=sunset, user_id__in=user_ids)
                .values_list("user_id", flat=True)}
        fresh = [user_id for user_id in user_ids if user_id not in told]
        # A concurrent duplicate of this batch makes this raise; the task retries and skips them.
        AnnouncementDelivery.objects.bulk_create([AnnouncementDelivery(sunset=sunset, user_id=u) for u in fresh])
        stream_append([PendingEvent(user_id, events.SYSTEM_ANNOUNCEMENT, data) for user_id in fresh])
        for user_id in fresh:
            _call_hook("SUNSET_ANNOUNCEMENT_PUSH", user_id=user_id, kind=events.SYSTEM_ANNOUNCEMENT,
                       title="Service announcement", body=sunset.message[:180],
                       collapse_key=f"sunset:{sunset.pk}", data={"announcement_id": str(sunset.pk)},
                       dedupe_key=f"system.announcement:{sunset.pk}:{user_id}")
    return user_ids[-1]


def announcement_deliver_to_new_user(*, user_id: object) -> None:
    """ACCOUNT_REGISTERED_HOOKS entry: someone who signs up after the fan-out still gets the event."""
    schedule_row = Sunset.objects.order_by("-created_at", "-id").first()
    if schedule_row is None or schedule_row.cancelled_at is not None or schedule_row.dispatched_at is None:
        return  # nothing announced yet; the fan-out, when it runs, includes this user
    schedule = Schedule(id=schedule_row.pk, announce_at=schedule_row.announce_at,
                        read_only_at=schedule_row.read_only_at, shutdown_at=schedule_row.shutdown_at,
                        message=schedule_row.message)
    with transaction.atomic():
        _, created = AnnouncementDelivery.objects.get_or_create(sunset=schedule_row, user_id=user_id)
        if not created:
            return
        stream_append([PendingEvent(user_id, events.SYSTEM_ANNOUNCEMENT, events.announcement_public(schedule))])
        _call_hook("SUNSET_ANNOUNCEMENT_PUSH", user_id=user_id, kind=events.SYSTEM_ANNOUNCEMENT,
                   title="Service announcement", body=schedule_row.message[:180],
                   collapse_key=f"sunset:{schedule_row.pk}", data={"announcement_id": str(schedule_row.pk)},
                   dedupe_key=f"system.announcement:{schedule_row.pk}:{user_id}")
