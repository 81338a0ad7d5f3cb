"""An ASGI guard for the upload endpoint.

Django's ASGI handler reads the whole request body into a temporary file
before any view or upload handler runs, so under uvicorn a 2 GB upload would
be written to disk before `SizeCapUploadHandler` could refuse it. This guard
sits in front of Django: it answers 413 at once when `Content-Length` is past
the largest per-kind cap, and otherwise counts body bytes as they arrive,
answering 413 and ending the request the moment the count passes the cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from django.urls import reverse

from core.errors import error_body
from media.uploads import MULTIPART_OVERHEAD, largest_cap

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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


class UploadBodyLimit:
    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != reverse(
                "attachment-upload"):
            await self.app(scope, receive, send)
            return
        cap = largest_cap()
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
    return UploadBodyLimit(app)
