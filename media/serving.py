"""Streaming stored files to clients, with single-range requests (RFC 9110 section 14).

Only `bytes=a-b`, `bytes=a-` and `bytes=-n` are honoured; a multi-range or
malformed header is ignored (a full 200, which the RFC allows), and a range
that starts past the end is 416 with `Content-Range: bytes */<size>`.
"""

from __future__ import annotations

import re
from typing import IO

from django.http import FileResponse, HttpRequest

from core.errors import ApplicationError

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
BLOCK_SIZE = 64 * 1024


class RangeNotSatisfiable(ApplicationError):
    status = 416
    code = "range_not_satisfiable"
    default_message = "The requested range is outside the file."

    def __init__(self, *, size: int) -> None:
        super().__init__(details={"size": size})
        self.size = size


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive byte positions, or None to send the whole file."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last n bytes
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable(size=size)
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid spec: ignored
    if start >= size:
        raise RangeNotSatisfiable(size=size)
    return start, min(end, size - 1)


class _Slice:
    """A read-only window over an open stored file; FileResponse streams it in blocks."""

    def __init__(self, fileobj: IO[bytes], start: int, length: int) -> None:
        self._file = fileobj
        self._remaining = length
        if start:
            fileobj.seek(start)

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        size = self._remaining if size is None or size < 0 else min(size, self._remaining)
        data = self._file.read(size)
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._file.close()


def stored_file_response(request: HttpRequest, *, fileobj: IO[bytes], size: int, content_type: str,
                         etag: str, filename: str, as_attachment: bool) -> FileResponse:
    """200 or 206 streaming response; the caller has already authorised the reader."""
    byte_range = parse_range(request.META.get("HTTP_RANGE"), size)
    if_range = request.META.get("HTTP_IF_RANGE")
    if byte_range is not None and if_range and if_range.strip() != etag:
        byte_range = None  # the client's copy is another version: send it whole
    start, end = byte_range if byte_range is not None else (0, size - 1)
    length = max(0, end - start + 1)
    response = FileResponse(_Slice(fileobj, start, length), content_type=content_type,
                            as_attachment=as_attachment, filename=filename,
                            status=206 if byte_range is not None else 200)
    response.block_size = BLOCK_SIZE
    response["Content-Length"] = str(length)
    if byte_range is not None:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    # Content never changes under an id; only the authorised client may keep it.
    response["Cache-Control"] = "private, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    # Defence in depth: even if a browser rendered a stored file, no script runs.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
