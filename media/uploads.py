"""Streaming guard for multipart uploads.

Django's own handlers spool a file part to a temporary file past
FILE_UPLOAD_MAX_MEMORY_SIZE; this handler sits in front of them and stops
the request as soon as it is certain to exceed the largest per-kind cap, so
a 2 GB upload is never written anywhere.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler

from core.errors import PayloadTooLarge

# Room for the multipart envelope (boundaries, part headers, the `kind` field).
MULTIPART_OVERHEAD = 64 * 1024
ORIGINAL_NAME_MAX = 255


def largest_cap() -> int:
    return max(settings.MEDIA_MAX_SIZE.values())


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file is larger than {limit} bytes.", details={"max_size": limit})


class SizeCapUploadHandler(FileUploadHandler):
    """Refuses the body by its Content-Length, then counts file bytes as they stream."""

    def __init__(self, request: Any = None, *, limit: int | None = None) -> None:
        super().__init__(request)
        self.limit = limit or largest_cap()
        self.received = 0

    def handle_raw_input(self, input_data: Any, META: Any, content_length: int, boundary: Any,
                         encoding: str | None = None) -> None:
        if content_length and content_length > self.limit + MULTIPART_OVERHEAD:
            raise too_large(self.limit)

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            raise too_large(self.limit)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def sanitize_original_name(name: str | None) -> str:
    """A display name only (storage names are generated): no path, no control characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if len(name) > ORIGINAL_NAME_MAX:
        stem, ext = os.path.splitext(name)
        ext = ext if len(ext) <= 16 else ""
        name = stem[: ORIGINAL_NAME_MAX - len(ext)] + ext
    return name
