"""Streaming stored files to clients, with single-range requests (RFC 9110 section 14).

Only `bytes=a-b`, `bytes=a-` and `bytes=-n` are honoured; a multi-range or
malformed header is ignored (a full 200, which the RFC allows), and a range
that starts past the end is 416 with `Content-Range: bytes */<size>`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import IO

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.storage import Storage
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseNotModified, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header

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
    """A read-only window over an open stored file, read in blocks."""

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


def _blocks(window: _Slice) -> Iterator[bytes]:
    try:
        while chunk := window.read(BLOCK_SIZE):
            yield chunk
    finally:
        window.close()


async def _async_blocks(window: _Slice) -> AsyncIterator[bytes]:
    # Under ASGI a synchronous iterator would be read whole into memory by Django
    # before sending (StreamingHttpResponse.__aiter__): read block by block in a thread.
    read = sync_to_async(window.read, thread_sensitive=False)
    try:
        while chunk := await read(BLOCK_SIZE):
            yield chunk
    finally:
        await sync_to_async(window.close, thread_sensitive=False)()


def _if_range_holds(if_range: str | None, etag: str) -> bool:
    """RFC 9110 13.1.5: a Range applies only if If-Range names the current representation.

    Strong comparison with our ETag; a weak tag or a date (we send no Last-Modified) never
    matches, so a client resuming a download of a file that changed gets it whole instead
    of splicing two versions.
    """
    if if_range is None:
        return True
    return if_range.strip() == etag


def _none_match(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match (weak comparison): the client already holds this version."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def stored_file_response(request: HttpRequest, *, fileobj: IO[bytes], size: int, content_type: str,
                         etag: str, filename: str, as_attachment: bool) -> HttpResponseBase:
    """200, 206 or 304; the caller has already authorised the reader."""
    if _none_match(request.META.get("HTTP_IF_NONE_MATCH"), etag):
        fileobj.close()
        not_modified = HttpResponseNotModified()
        not_modified["ETag"] = etag
        not_modified["Cache-Control"] = "private, max-age=86400"
        return not_modified
    byte_range = None
    # When the client's partial copy is another version, the Range is ignored: it gets the file whole.
    if _if_range_holds(request.META.get("HTTP_IF_RANGE"), etag):
        byte_range = parse_range(request.META.get("HTTP_RANGE"), size)
    start, end = byte_range if byte_range is not None else (0, size - 1)
    length = max(0, end - start + 1)
    window = _Slice(fileobj, start, length)
    content = _async_blocks(window) if isinstance(request, ASGIRequest) else _blocks(window)
    response = StreamingHttpResponse(content, content_type=content_type,
                                     status=206 if byte_range is not None else 200)
    response["Content-Length"] = str(length)
    if disposition := content_disposition_header(as_attachment, filename):
        response["Content-Disposition"] = disposition
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


def presigned_redirect(storage: Storage, *, name: str, content_type: str, as_attachment: bool,
                       filename: str) -> HttpResponseRedirect:
    """302 to the object store's own short-lived signed URL (MEDIA_SERVE_REDIRECT).

    For S3-compatible storage: the bucket then serves the bytes and the ranges,
    with the type and disposition we decide, and the app never proxies a video.
    Call only after authorising the reader.
    """
    parameters = {"ResponseContentType": content_type}
    if disposition := content_disposition_header(as_attachment, filename):
        parameters["ResponseContentDisposition"] = disposition
    url = storage.url(name, parameters=parameters, expire=settings.MEDIA_SIGNED_URL_TTL)
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "private, no-store"  # the target expires
    return response
