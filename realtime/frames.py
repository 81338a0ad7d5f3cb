"""Socket frames: parsing client frames, building server frames, the flood limit.

Frames are JSON text encoded with orjson. Parsing is strict about what a
handler needs (type, required fields and their JSON types) and ignores keys
it does not know, so newer clients can add fields without breaking.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from core.errors import ApplicationError, PayloadTooLarge, ValidationFailed

MAX_REF_LENGTH = 64


def frame_encode(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def frame_decode(text: str | None, *, max_bytes: int) -> dict[str, Any]:
    """The frame as a dict with a string `type`; raises ValidationFailed/PayloadTooLarge."""
    if text is None:
        raise ValidationFailed("Binary frames are not supported; send JSON text.",
                               details={"frame": ["Binary frames are not supported."]})
    # len() counts characters, which never exceed bytes; encode only when it could matter.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode()) > max_bytes):
        raise PayloadTooLarge(f"Frames are limited to {max_bytes} bytes.")
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed("The frame is not valid JSON.", details={"frame": ["Not valid JSON."]}) from exc
    if not isinstance(frame, dict):
        raise ValidationFailed("A frame is a JSON object.", details={"frame": ["Must be a JSON object."]})
    if not isinstance(frame.get("type"), str):
        raise ValidationFailed("The frame has no type.", details={"type": ["This field is required."]})
    return frame


def frame_ref(frame: object) -> str | int | None:
    """The client's correlation `ref`, echoed on replies and errors when it is a sane scalar."""
    if not isinstance(frame, dict):
        return None
    ref = frame.get("ref")
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int) or (isinstance(ref, str) and len(ref) <= MAX_REF_LENGTH):
        return ref
    return None


def require_str(frame: dict[str, Any], field: str, *, max_length: int = 256, optional: bool = False) -> str | None:
    value = frame.get(field)
    if value is None and optional:
        return None
    if value is None:
        raise ValidationFailed(f"`{field}` is required.", details={field: ["This field is required."]})
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise ValidationFailed(f"`{field}` must be a non-empty string.",
                               details={field: [f"Must be a non-empty string of at most {max_length} characters."]})
    return value


def require_dict(frame: dict[str, Any], field: str) -> dict[str, Any]:
    value = frame.get(field)
    if not isinstance(value, dict):
        raise ValidationFailed(f"`{field}` must be an object.", details={field: ["Must be a JSON object."]})
    return value


def error_frame(error: ApplicationError, *, ref: str | int | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": error.code, "message": error.message}
    if ref is not None:
        frame["ref"] = ref
    if error.details:
        frame["details"] = error.details
    return frame


def event_frame(event: dict[str, Any]) -> dict[str, Any]:
    """A stream event for the socket: the contract's keys only (no internal `position`)."""
    return {"type": "event", "event": {"cursor": event["cursor"], "type": event["type"], "data": event["data"],
                                       "created_at": event["created_at"]}}


class FloodGuard:
    """A token bucket per socket: `rate` frames a second sustained, `burst` at once.

    `check()` returns "ok"; "limited" (drop the frame and tell the client, once
    per episode of excess); "drop" (drop it silently); or "close" (more than
    `close_after` frames dropped within `window` seconds: the client ignores
    the error frames).
    """

    def __init__(self, *, rate: float, burst: int, close_after: int, window: float = 10.0) -> None:
        self.rate = max(rate, 0.001)
        self.burst = max(burst, 1)
        self.tokens = float(self.burst)
        self.close_after = close_after
        self.window = window
        self.updated = time.monotonic()
        self.dropped = 0
        self.dropped_since = self.updated
        self.warned = False

    def check(self) -> str:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.warned = False
            return "ok"
        if now - self.dropped_since > self.window:
            self.dropped, self.dropped_since = 0, now
        self.dropped += 1
        if self.dropped > self.close_after:
            return "close"
        if self.warned:
            return "drop"
        self.warned = True
        return "limited"
