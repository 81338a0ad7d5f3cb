"""Token auth for the socket: `Authorization: Bearer <token>` or `?token=<token>`.

This only resolves the device; it never refuses the handshake. The socket
accepts and closes with 4001 when there is no device, because a browser cannot
read an HTTP refusal and must be able to tell "log in again" from a network fault.
Lookups go through a bound per process, so a burst of connects (a server
restart) queues instead of taking every database connection at once.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings

from accounts.models import Device
from accounts.selectors import device_get_by_token
from webclient.security import websocket_origin_allowed

_admission: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def token_from_scope(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens else None


def _device_for(token: str) -> Device | None:
    return device_get_by_token(token=token)  # looked up at call time, so tests can stand in for it


def _bound() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    semaphore = _admission.get(loop)
    if semaphore is None:
        for stale in [other for other in _admission if other.is_closed()]:
            del _admission[stale]
        semaphore = _admission[loop] = asyncio.Semaphore(settings.WS_CONNECT_CONCURRENCY)
    return semaphore


async def authenticate(scope: dict[str, Any]) -> Device | None:
    """The active device holding the socket's token, or None."""
    token = token_from_scope(scope)
    if not token:
        return None
    async with _bound():
        return await database_sync_to_async(_device_for, thread_sensitive=False)(token)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class OriginCheckMiddleware:
    """Refuse the handshake (HTTP 403) of a socket opened by a page of a foreign origin.

    Same-origin pages and CORS_ALLOWED_ORIGINS are let through, and so are clients
    that send no Origin (apps, scripts). Checked before the token lookup, so a
    hijack attempt costs no database query.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if not websocket_origin_allowed(origin=_header(scope, b"origin"), host=_header(scope, b"host")):
            message = await receive()
            if message.get("type") == "websocket.connect":
                await send({"type": "websocket.close", "code": 1008})
            return None
        return await self.inner(scope, receive, send)
