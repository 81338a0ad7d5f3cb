"""Input shapes shared by the REST views and the services the socket calls.

`message_send` validates its payload itself (the socket passes the REST body
unchanged), so the send body's serializer lives here rather than in apis.py.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions as drf
from rest_framework import serializers

from core.errors import ValidationFailed, to_application_error
from core.serializers import StrictCharField, StrictSerializer
from messaging.models import CLIENT_MESSAGE_TYPES, ConversationType, MessageType, Role

MEDIA_TYPES = {MessageType.IMAGE, MessageType.VOICE, MessageType.VIDEO, MessageType.FILE}
MAX_LIST = 256


class StrictUUIDField(serializers.UUIDField):
    """Only UUID strings: DRF would otherwise turn the integer 5 into a UUID."""

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """Only JSON integers: no "5", 5.0 or true."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, (int, float)) or not math.isfinite(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictDateTimeField(serializers.DateTimeField):
    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str) or len(data) > 40 or parse_datetime(data) is None:
            self.fail("invalid", format="RFC 3339")
        return super().to_internal_value(data)


class LocationInput(StrictSerializer):
    lat = StrictFloatField(min_value=-90, max_value=90)
    lng = StrictFloatField(min_value=-180, max_value=180)


class MessageSendInput(StrictSerializer):
    client_id = StrictUUIDField()
    # `call` and `red_packet` messages are made by the server only.
    type = serializers.ChoiceField(choices=[(t.value, t.label) for t in CLIENT_MESSAGE_TYPES])
    text = StrictCharField(required=False, allow_blank=True, trim_whitespace=False,
                           max_length=settings.MESSAGING_TEXT_MAX)
    attachment_id = StrictUUIDField(required=False, allow_null=True)
    reply_to = StrictUUIDField(required=False, allow_null=True)
    location = LocationInput(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            return _send_rules(attrs)
        except ValidationFailed as error:
            raise serializers.ValidationError(error.details) from error


_SEND_FIELDS = frozenset({"client_id", "type", "text", "attachment_id", "reply_to", "location"})
_CLIENT_TYPES = frozenset(t.value for t in CLIENT_MESSAGE_TYPES)
_LOCATION_BOUNDS = {"lat": 90, "lng": 180}


def _uuid_value(value: Any, field: str, errors: dict[str, list[str]], *, nullable: bool) -> uuid.UUID | None:
    if value is None:
        if not nullable:
            errors[field] = ["This field may not be null."]
        return None
    if isinstance(value, str) and len(value) <= 64:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    errors[field] = ["Must be a valid UUID."]
    return None


def _text_value(value: Any, errors: dict[str, list[str]]) -> str | None:
    if value is None:
        errors["text"] = ["This field may not be null."]
    elif not isinstance(value, str):
        errors["text"] = ["Not a valid string."]
    elif len(value) > settings.MESSAGING_TEXT_MAX:
        errors["text"] = [f"Ensure this field has no more than {settings.MESSAGING_TEXT_MAX} characters."]
    elif "\x00" in value:
        errors["text"] = ["Null characters are not allowed."]
    elif not value.isascii() and any("\ud800" <= char <= "\udfff" for char in value):
        errors["text"] = ["Surrogate characters are not allowed."]
    else:
        return value
    return None


def _location_value(value: Any, errors: dict[str, list[str]]) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors["location"] = [f"Invalid data. Expected a dictionary, but got {type(value).__name__}."]
        return None
    unknown = sorted(set(value) - set(_LOCATION_BOUNDS))
    if unknown:
        for name in unknown:
            errors[f"location.{name}"] = ["Unknown field."]
        return None
    out: dict[str, float] = {}
    for name, bound in _LOCATION_BOUNDS.items():
        number = value.get(name)
        if number is None:
            errors[f"location.{name}"] = ["This field may not be null." if name in value else
                                          "This field is required."]
        elif isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            errors[f"location.{name}"] = ["A valid number is required."]
        elif number < -bound:
            errors[f"location.{name}"] = [f"Ensure this value is greater than or equal to -{bound}."]
        elif number > bound:
            errors[f"location.{name}"] = [f"Ensure this value is less than or equal to {bound}."]
        else:
            out[name] = float(number)
    return out if len(out) == len(_LOCATION_BOUNDS) else None


def message_send_validate(payload: Any) -> dict[str, Any]:
    """The send body, checked like MessageSendInput (same fields, messages and rules) without
    building a DRF serializer per message, which cost more than the message's whole SQL.
    Returns the validated fields that were given; raises ValidationFailed."""
    if not isinstance(payload, dict):
        raise ValidationFailed(details={"body": ["Expected a JSON object."]})
    unknown = sorted(set(payload) - _SEND_FIELDS)
    if unknown:
        raise ValidationFailed(details={name: ["Unknown field."] for name in unknown})
    errors: dict[str, list[str]] = {}
    data: dict[str, Any] = {}
    if "client_id" not in payload:
        errors["client_id"] = ["This field is required."]
    else:
        data["client_id"] = _uuid_value(payload["client_id"], "client_id", errors, nullable=False)
    kind = payload.get("type")
    if "type" not in payload:
        errors["type"] = ["This field is required."]
    elif kind is None:
        errors["type"] = ["This field may not be null."]
    elif not isinstance(kind, str) or kind not in _CLIENT_TYPES:
        errors["type"] = [f'"{str(kind)[:40]}" is not a valid choice.']
    else:
        data["type"] = kind
    if "text" in payload:
        data["text"] = _text_value(payload["text"], errors)
    for field in ("attachment_id", "reply_to"):
        if field in payload:
            data[field] = _uuid_value(payload[field], field, errors, nullable=True)
    if "location" in payload:
        data["location"] = _location_value(payload["location"], errors)
    if errors:
        raise ValidationFailed(details=errors)
    return _send_rules(data)


def _send_rules(attrs: dict[str, Any]) -> dict[str, Any]:
    """The rules across fields (what each message type needs and refuses)."""
    kind = attrs["type"]
    text = attrs.get("text") or ""
    errors: dict[str, list[str]] = {}
    if kind == MessageType.TEXT and not text.strip():
        errors["text"] = ["A text message needs text."]
    if kind in MEDIA_TYPES and not attrs.get("attachment_id"):
        errors["attachment_id"] = [f"A {kind} message needs an attachment."]
    if kind == MessageType.STICKER and not attrs.get("attachment_id") and not text.strip():
        errors["attachment_id"] = ["A sticker needs an attachment or a sticker code in text."]
    if kind in {MessageType.TEXT, MessageType.LOCATION} and attrs.get("attachment_id"):
        errors["attachment_id"] = [f"A {kind} message carries no attachment."]
    if kind == MessageType.LOCATION and not attrs.get("location"):
        errors["location"] = ["A location message needs a location."]
    if kind != MessageType.LOCATION and attrs.get("location"):
        errors["location"] = ["Only location messages carry a location."]
    if errors:
        raise ValidationFailed(details=errors)
    return attrs


class MessageEditInput(StrictSerializer):
    text = StrictCharField(allow_blank=True, trim_whitespace=False, max_length=settings.MESSAGING_TEXT_MAX)


class ReadInput(StrictSerializer):
    seq = StrictIntegerField(min_value=0)


class ConversationCreateInput(StrictSerializer):
    type = serializers.ChoiceField(choices=ConversationType.choices)
    user_id = StrictUUIDField(required=False)
    title = StrictCharField(required=False, max_length=128)
    member_ids = serializers.ListField(child=StrictUUIDField(), required=False, max_length=MAX_LIST)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs["type"]
        errors: dict[str, list[str]] = {}
        if kind == ConversationType.DIRECT:
            if "user_id" not in attrs:
                errors["user_id"] = ["This field is required."]
            for name in ("title", "member_ids"):
                if name in attrs:
                    errors[name] = ["Not allowed for a direct conversation."]
        else:
            if not (attrs.get("title") or "").strip():
                errors["title"] = ["This field is required."]
            if "user_id" in attrs:
                errors["user_id"] = ["Only for a direct conversation; use member_ids."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ConversationUpdateInput(StrictSerializer):
    title = StrictCharField(max_length=128)


class MembersAddInput(StrictSerializer):
    user_ids = serializers.ListField(child=StrictUUIDField(), min_length=1, max_length=MAX_LIST)


class MemberRoleInput(StrictSerializer):
    role = serializers.ChoiceField(choices=[(Role.ADMIN, "admin"), (Role.MEMBER, "member")])


class MuteInput(StrictSerializer):
    until = StrictDateTimeField(allow_null=True)


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
    if not isinstance(raw, str) or len(raw) > 19 or not raw.isdigit():
        raise ValidationFailed(details={name: ["A non-negative integer is required."]})
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ValidationFailed(details={name: [f"Must be {bound}."]})
    return value
