from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from core.sunset import forget_schedule
from exports.models import Export, Sunset
from tests.exports import recorder


@pytest.fixture(autouse=True)
def export_dirs(settings, tmp_path: Path) -> Path:
    """Archives and their temporary files go to this test's own folders."""
    settings.EXPORT_ROOT = str(tmp_path / "exports")
    settings.EXPORT_TEMP_DIR = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    return tmp_path


@pytest.fixture(autouse=True)
def pushes(settings) -> Iterator[list[dict[str, Any]]]:
    settings.EXPORT_READY_PUSH = "tests.exports.recorder.record_push"
    settings.SUNSET_ANNOUNCEMENT_PUSH = "tests.exports.recorder.record_push"
    recorder.PUSHES.clear()
    forget_schedule()
    yield recorder.PUSHES
    recorder.PUSHES.clear()
    forget_schedule()


def export_files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "exports").rglob("*") if path.is_file())


def open_archive(content: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(content))


def make_sunset(phase: str, message: str = "We are closing. Export your data.") -> Sunset:
    """A schedule whose current phase is `phase` (written directly: validation forbids past times)."""
    now = timezone.now()
    hour = timedelta(hours=1)
    offsets = {
        "normal": (hour, 2 * hour, 3 * hour),
        "announced": (-hour, hour, 2 * hour),
        "read_only": (-2 * hour, -hour, hour),
        "shutdown": (-3 * hour, -2 * hour, -hour),
    }[phase]
    sunset = Sunset.objects.create(announce_at=now + offsets[0], read_only_at=now + offsets[1],
                                   shutdown_at=now + offsets[2], message=message)
    forget_schedule()
    return sunset


def finished_export(user: Any, *, status: str = "ready", finished_ago: timedelta = timedelta(hours=1),
                    storage_name: str = "") -> Export:
    now = timezone.now()
    return Export.objects.create(user=user, status=status, progress=100, finished_at=now - finished_ago,
                                 expires_at=now - finished_ago + timedelta(days=7), size=0,
                                 storage_name=storage_name)
