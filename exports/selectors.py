"""Reads for exports and announcements."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.db.models import QuerySet

from accounts.models import User
from core.errors import ApplicationError, Conflict, NotFound
from core.sunset import NORMAL, current_schedule
from exports.events import announcement_public
from exports.models import Export, ExportStatus


class ExportExpired(ApplicationError):
    status = 410
    code = "export_expired"
    default_message = "This export has expired and its file is deleted; request a new export."


def export_storage() -> Storage:
    """Where archives are kept: the `exports` entry of STORAGES, else a private folder (EXPORT_ROOT)."""
    if "exports" in settings.STORAGES:
        return storages["exports"]
    return FileSystemStorage(location=settings.EXPORT_ROOT, base_url=None)


EXPORT_LIST_LIMIT = 100


def export_list(*, user: User) -> QuerySet[Export]:
    """The user's newest exports (at most one a day is possible, so 100 is months of history)."""
    return Export.objects.filter(user=user).order_by("-created_at")[:EXPORT_LIST_LIMIT]


def export_get_for_owner(*, user: User, export_id: object) -> Export:
    """The user's own export; anyone else's (or a malformed id) is 404."""
    try:
        return Export.objects.get(pk=export_id, user=user)
    except (Export.DoesNotExist, ValueError, TypeError, DjangoValidationError) as exc:
        # A malformed id is just another id that is not yours.
        raise NotFound("No such export.") from exc


def export_latest_ready(*, user: User) -> Export:
    export = Export.objects.filter(user=user, status=ExportStatus.READY).order_by("-finished_at").first()
    if export is None:
        raise NotFound("You have no export ready to download; request one with POST /api/v1/me/exports.")
    return export


def export_get_downloadable(*, user: User, export_id: object) -> Export:
    """The owner's ready export: expired is 410, not finished (or failed) is 409."""
    export = export_get_for_owner(user=user, export_id=export_id)
    if export.status == ExportStatus.EXPIRED:
        raise ExportExpired(details={"expired_at": export.expires_at.isoformat() if export.expires_at else None})
    if export.status != ExportStatus.READY:
        raise Conflict("This export has no archive to download.", details={"status": export.status})
    return export


def announcements_current() -> list[dict[str, Any]]:
    """The operator's announcement, from its announcement time on (empty before, or with none planned)."""
    schedule = current_schedule()
    if schedule is None or schedule.phase() == NORMAL:
        return []
    return [announcement_public(schedule)]
