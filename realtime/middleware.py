"""Token auth for the socket: `Authorization: Bearer <token>` or `?token=<token>`.

The middleware only resolves the device; it never refuses the handshake.
The consumer accepts and closes with 4001 when `scope["device"]` is None,
because a browser cannot read an HTTP refusal and must be able to tell
"log in again" from a network fault.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from accounts.models import Device
from accounts.selectors import device_get_by_token


def token_from_scope(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens else None


@database_sync_to_async
def _device_for(token: str) -> Device | None:
    return device_get_by_token(token=token)


class TokenAuthMiddleware:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        token = token_from_scope(scope)
        device = await _device_for(token) if token else None
        scope = {**scope, "device": device, "user": device.user if device else None}
        return await self.inner(scope, receive, send)
