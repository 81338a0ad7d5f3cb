"""Serving a stored file with HTTP Range support (RFC 9110 section 14).

One byte range per request is honoured (206 with Content-Range); a range
past the end is 416 with `Content-Range: bytes */<size>` in the error shape;
several ranges, or a header we do not understand, get the whole file (200),
which RFC 9110 allows. The body is streamed in chunks, never read whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from django.core.files.storage import Storage
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

from core.errors import json_error

CHUNK_SIZE = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single satisfiable range; None means "send it all"."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # several ranges or another unit: serve the whole file
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # suffix range: the last N bytes
        suffix = int(last_text)
        if suffix == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size:
        raise RangeNotSatisfiable
    if last < first:
        return None  # syntactically invalid: ignore the header
    return first, min(last, size - 1)


def _chunks(handle: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def serve_stored_file(*, storage: Storage, name: str, range_header: str | None, content_type: str,
                      download_name: str | None = None) -> HttpResponse:
    """Stream `name` from `storage`, honouring a single Range; attachment when download_name is given."""
    size = storage.size(name)
    try:
        byte_range = parse_range(range_header, size)
    except RangeNotSatisfiable:
        return json_error(416, "range_not_satisfiable", "The requested range is outside the file.",
                          {"size": size}, headers={"Content-Range": f"bytes */{size}"})
    start, last = byte_range if byte_range else (0, size - 1)
    length = max(0, last - start + 1)
    response = StreamingHttpResponse(_chunks(storage.open(name, "rb"), start, length),
                                     status=206 if byte_range else 200, content_type=content_type)
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    if byte_range:
        response["Content-Range"] = f"bytes {start}-{last}/{size}"
    if download_name:
        response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=download_name)
    response["Cache-Control"] = "private, no-store"
    return response
