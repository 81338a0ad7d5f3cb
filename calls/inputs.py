"""Parsing of the call frames' fields: hostile input becomes `validation_error`, never a 500.

Unknown keys are ignored (as for every frame), so newer clients can add fields.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from django.conf import settings

from calls.models import Media
from core.errors import ValidationFailed

# RTCIceCandidateInit's members; values are JSON scalars.
CANDIDATE_KEYS = {"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"}


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"`{field}`: {message}", details={field: [message]})


def uuid_field(frame: dict[str, Any], field: str, *, optional: bool = False) -> uuid.UUID | None:
    value = frame.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise _invalid(field, "A UUID string is required.")
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise _invalid(field, "A UUID string is required.") from exc


def call_id(frame: dict[str, Any]) -> uuid.UUID:
    value = uuid_field(frame, "call_id")
    assert value is not None
    return value


def to(frame: dict[str, Any]) -> str | None:
    """The peer device a group leg frame is for (optional)."""
    value = uuid_field(frame, "to", optional=True)
    return str(value) if value else None


def conversation_id(frame: dict[str, Any]) -> str:
    value = frame.get("conversation_id")
    if not isinstance(value, str) or not value or len(value) > 64:
        raise _invalid("conversation_id", "A conversation id is required.")
    return value


def media(frame: dict[str, Any]) -> str:
    value = frame.get("media")
    if value not in Media.values:
        raise _invalid("media", f"One of: {', '.join(Media.values)}.")
    return value


def boolean(frame: dict[str, Any], field: str, *, default: bool | None = False) -> bool | None:
    """A JSON boolean; missing or null means `default`."""
    value = frame.get(field)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(field, "Must be true or false.")
    return value


def sdp(frame: dict[str, Any], *, optional: bool = False) -> str | None:
    value = frame.get("sdp")
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _invalid("sdp", "A session description (string) is required.")
    limit = settings.CALLS_SDP_MAX_BYTES
    if len(value) > limit or len(value.encode()) > limit:
        raise _invalid("sdp", f"At most {limit} bytes.")
    return value


def candidate(frame: dict[str, Any]) -> Any:
    """An RTCIceCandidateInit object, a candidate line, or null (end of candidates)."""
    if "candidate" not in frame:
        raise _invalid("candidate", "This field is required.")
    value = frame["candidate"]
    if value is None:
        return None
    if isinstance(value, dict):
        unknown = set(value) - CANDIDATE_KEYS
        if unknown or not all(v is None or (isinstance(v, (str, int)) and not isinstance(v, bool))
                              for v in value.values()):
            raise _invalid("candidate", "An RTCIceCandidateInit: candidate, sdpMid, sdpMLineIndex, "
                                        "usernameFragment.")
        if not isinstance(value.get("candidate", ""), str):
            raise _invalid("candidate", "`candidate.candidate` must be a string.")
    elif not isinstance(value, str):
        raise _invalid("candidate", "An object or a string is required.")
    try:
        size = len(orjson.dumps(value))
    except TypeError as exc:  # integers beyond 64 bits
        raise _invalid("candidate", "Not a valid candidate.") from exc
    if size > settings.CALLS_CANDIDATE_MAX_BYTES:
        raise _invalid("candidate", f"At most {settings.CALLS_CANDIDATE_MAX_BYTES} bytes.")
    return value
