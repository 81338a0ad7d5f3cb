"""Strict input fields and the parse-or-400 helpers every app's views share.

JSON types are taken as they are: an integer field takes only a JSON integer
(not "5", 5.0 or true), a UUID field only a string. (messaging.inputs keeps
its own copies of the first two, from before this module.)
"""

from __future__ import annotations

import uuid
from typing import Any

from rest_framework import exceptions as drf
from rest_framework import serializers

from core.errors import ValidationFailed, to_application_error


class StrictIntegerField(serializers.IntegerField):
    """Only JSON integers: no "5", 5.0 or true."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    """Only UUID strings: DRF would otherwise turn the integer 5 into a UUID."""

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Validate with the given input serializer or raise ValidationFailed (400)."""
    if not isinstance(data, dict):
        raise ValidationFailed(details={"body": ["Expected a JSON object."]})
    serializer = serializer_class(data=data)
    try:
        serializer.is_valid(raise_exception=True)
    except drf.ValidationError as exc:
        raise to_application_error(exc) from exc  # type: ignore[misc]
    return dict(serializer.validated_data)


def int_param(params: Any, name: str, *, default: int | None, minimum: int = 0,
              maximum: int | None = None) -> int | None:
    """A query-string integer, or ValidationFailed naming the parameter."""
    raw = params.get(name)
    if raw is None:
        return default
    if not isinstance(raw, str) or len(raw) > 18 or not raw.isdigit():
        raise ValidationFailed(details={name: ["A non-negative integer is required."]})
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ValidationFailed(details={name: [f"Must be {bound}."]})
    return value
