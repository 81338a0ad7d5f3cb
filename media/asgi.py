"""Media's ASGI layer in front of Django: a guard for the upload endpoint, and streamed tus PATCHes.

Django's ASGI handler reads the whole request body into a temporary file
before any view or upload handler runs, so under uvicorn a 2 GB upload would
be written to disk before `SizeCapUploadHandler` could refuse it. This guard
sits in front of Django: it answers 413 at once when `Content-Length` is past
the largest per-kind cap, and otherwise counts body bytes as they arrive,
answering 413 and ending the request the moment the count passes the cap.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.urls import reverse

from core.errors import (
    ApplicationError,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthenticated,
    UnsupportedMediaType,
    error_body,
)
from media.uploads import MULTIPART_OVERHEAD, largest_cap

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger(__name__)


async def _send_too_large(send: Send, limit: int) -> None:
    body = orjson.dumps(error_body("payload_too_large", f"The file is larger than {limit} bytes.",
                                   {"max_size": limit}))
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


_GROUP_AVATAR_PATH = re.compile(r"^/api/v1/conversations/[^/]+/avatar$")


def _multipart_cap(scope: Scope) -> int | None:
    """The byte cap of a multipart upload endpoint, None for any other request."""
    method, path = scope.get("method"), scope.get("path", "")
    if method == "POST" and path == reverse("attachment-upload"):
        return largest_cap()
    if method == "PUT" and (path == reverse("me-avatar") or _GROUP_AVATAR_PATH.match(path)):
        return settings.MEDIA_MAX_SIZE["image"]
    return None


class UploadBodyLimit:
    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cap = _multipart_cap(scope) if scope["type"] == "http" else None
        if cap is None:
            await self.app(scope, receive, send)
            return
        limit = cap + MULTIPART_OVERHEAD
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _send_too_large(send, cap)
            return
        received = 0
        refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await _send_too_large(send, cap)
                    # Django treats this as the client going away: it stops reading and answers nothing.
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counted_receive, send)


def limit_upload_bodies(app: AsgiApp) -> AsgiApp:
    """Media's ASGI layer in front of Django: size caps on multipart uploads, streamed tus PATCHes."""
    return ResumablePatch(UploadBodyLimit(app))


# --- Resumable uploads: PATCH bodies streamed into storage as they arrive ------------------------

_UPLOAD_PATH = re.compile(r"^/api/v1/uploads/(?P<upload_id>[^/]+)$")
RECEIVE_TIMEOUT_SECONDS = 60.0


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


async def _send_response(send: Send, status: int, headers: dict[str, str], body: bytes = b"") -> None:
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, error: ApplicationError) -> None:
    from media.apis import tus_headers

    headers = {"content-type": "application/json", **tus_headers(status=error.status)}
    if error.retry_after:
        headers["retry-after"] = str(error.retry_after)
    await _send_response(send, error.status, headers, orjson.dumps({"error": error.as_dict()}))


class ResumablePatch:
    """`PATCH /api/v1/uploads/{id}` handled before Django.

    Django's ASGI handler reads a whole request body before any view runs, and drops
    it when the client disconnects: an interrupted PATCH would keep nothing. Here the
    checks (auth, Tus-Resumable, content type, offset) run before the body is read,
    body chunks go to a local buffer as they arrive, every MEDIA_RESUMABLE_PIECE_BYTES
    and at the end (or at the disconnect) they are stored as a piece, and the new
    offset is committed. The services are the same ones the DRF view calls.
    """

    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _UPLOAD_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope.get("method") != "PATCH":
            await self.app(scope, receive, send)
            return
        try:
            await self._patch(match["upload_id"], scope, receive, send)
        except ApplicationError as error:
            await _send_error(send, error)
        except (OperationalError, InterfaceError):
            # What core.middleware.DatabaseUnavailableMiddleware answers for Django's views.
            logger.warning("Database unavailable during a resumable PATCH")
            await _send_error(send, ServiceUnavailable("The database is unavailable; retry shortly.",
                                                       details={"check": "database"}, retry_after=2))

    async def _patch(self, upload_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        from accounts.authentication import bearer_token_from_header
        from media import resumable
        from media.apis import tus_headers, upload_headers

        headers = _headers(scope)
        token = bearer_token_from_header(headers.get("authorization"))
        device = await database_sync_to_async(_device_for)(token) if token else None
        if device is None:
            raise Unauthenticated("The token is missing, malformed or revoked.")
        if headers.get("tus-resumable") != resumable.TUS_VERSION:
            raise resumable.TusVersionUnsupported()
        if headers.get("content-type", "").split(";")[0].strip() != "application/offset+octet-stream":
            raise UnsupportedMediaType("Send the bytes as application/offset+octet-stream.")
        offset = resumable.parse_length(headers.get("upload-offset"), name="Upload-Offset")
        upload = await database_sync_to_async(resumable.upload_write_begin)(
            upload_id=upload_id, user_id=device.user_id, offset=offset)
        declared = _declared_length(scope)
        if declared is not None and declared > upload.length - upload.offset:
            raise PayloadTooLarge("The body goes past Upload-Length.", details={"max_size": upload.length})
        writer = resumable.PieceWriter(upload=upload)
        # Storage and database work off the event loop, and off Django's one thread for sync views.
        flush = database_sync_to_async(writer.flush, thread_sensitive=False)
        try:
            while True:
                try:
                    message = await asyncio.wait_for(receive(), RECEIVE_TIMEOUT_SECONDS)
                except TimeoutError:
                    # A stalled client: keep what arrived, and say where to resume.
                    await flush()
                    raise ApplicationError("No bytes arrived for a while; resume from Upload-Offset.",
                                           code="request_timeout", status=408,
                                           details={"offset": writer.offset}) from None
                if message["type"] == "http.disconnect":
                    await flush()
                    logger.info("Upload %s: connection lost at offset %d; kept", upload_id, writer.offset)
                    return
                writer.write(message.get("body", b""))
                if writer.full:
                    await flush()
                if not message.get("more_body", False):
                    break
            await flush()
        except BaseException:
            writer.discard()
            raise
        upload = await database_sync_to_async(resumable.upload_after_write, thread_sensitive=False)(
            upload_id=upload.pk)
        await _send_response(send, 204, {**tus_headers(status=204), **upload_headers(upload)})


def _device_for(token: str) -> Any:
    from accounts.selectors import device_get_by_token
    from accounts.services import device_touch

    device = device_get_by_token(token=token)
    if device is not None:
        device_touch(device=device)
    return device
