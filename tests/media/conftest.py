from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import SignedInDevice


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    """Every media test stores into its own empty MEDIA_ROOT, so it can list what is left."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = str(root)
    settings.MEDIA_STORAGE_ALIAS = "default"
    return root


@pytest.fixture
def stored_files(media_root: Path) -> Callable[[], list[str]]:
    def listing() -> list[str]:
        return sorted(str(path.relative_to(media_root)) for path in media_root.rglob("*") if path.is_file())

    return listing


@pytest.fixture
def upload(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """POST a file to /attachments as `who`; thumbnail tasks run (eagerly) on commit."""

    def post(who: SignedInDevice, data: bytes, name: str = "upload.bin", content_type: str = "application/octet-stream",
             **fields: Any) -> Any:
        body = {"file": SimpleUploadedFile(name, data, content_type=content_type), **fields}
        with django_capture_on_commit_callbacks(execute=True):
            return who.client.post("/api/v1/attachments", body, format="multipart")

    return post
