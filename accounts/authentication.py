from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts.selectors import device_get_by_token
from accounts.services import device_touch
from core.errors import Unauthenticated


def bearer_token_from_header(value: str | bytes | None) -> str | None:
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class DeviceTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <device token>`; sets request.auth to the Device."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header:
            return None
        token = bearer_token_from_header(header)
        device = device_get_by_token(token=token) if token else None
        if device is None:
            raise Unauthenticated("The token is missing, malformed or revoked.")
        device_touch(device=device)
        return device.user, device

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "Device token from /auth/otp/verify"}
