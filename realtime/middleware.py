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
