"""Event payloads of the exports app: plain JSON types, built here only."""

from __future__ import annotations

from typing import Any

from core.serializers import timestamp
from core.sunset import Schedule
from exports.models import Export

EXPORT_READY = "export.ready"
SYSTEM_ANNOUNCEMENT = "system.announcement"


def download_path(export_id: object) -> str:
    return f"/api/v1/me/exports/{export_id}/download"


def export_public(export: Export, *, base_url: str = "") -> dict[str, Any]:
    """The contract's Export shape (plus progress, error and timestamps)."""
    ready = export.status == "ready"
    return {
        "id": str(export.pk),
        "status": export.status,
        "progress": export.progress,
        "size": export.size if ready else None,
        "download_url": f"{base_url}{download_path(export.pk)}" if ready else None,
        "expires_at": timestamp(export.expires_at),
        "created_at": timestamp(export.created_at),
        "finished_at": timestamp(export.finished_at),
        "error": export.error or None,
    }


def export_ready_data(export: Export, *, base_url: str) -> dict[str, Any]:
    return {"export": export_public(export, base_url=base_url)}


def announcement_public(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": str(schedule.id),
        "message": schedule.message,
        "announce_at": timestamp(schedule.announce_at),
        "read_only_at": timestamp(schedule.read_only_at),
        "shutdown_at": timestamp(schedule.shutdown_at),
        "phase": schedule.phase(),
    }
