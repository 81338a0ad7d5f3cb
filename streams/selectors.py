"""Reads of users' event streams: replay by cursor and the head position."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from core.serializers import timestamp
from streams.cursors import cursor_encode
from streams.models import Event, UserStream


def event_public(*, position: int, type: str, data: Mapping[str, Any], created_at: datetime) -> dict[str, Any]:
    """The contract's Event shape. `position` is kept for the socket's de-duplication."""
    return {
        "cursor": cursor_encode(position),
        "type": type,
        "data": data,
        "created_at": timestamp(created_at),
        "position": position,
    }


def stream_read(*, user_id: UUID | str, after: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Events after position `after`, oldest first, and whether more follow."""
    rows = list(
        Event.objects.filter(user_id=user_id, position__gt=after)
        .order_by("position")
        .values_list("position", "type", "data", "created_at")[: limit + 1]
    )
    has_more = len(rows) > limit
    return [
        event_public(position=position, type=type_, data=data, created_at=created_at)
        for position, type_, data, created_at in rows[:limit]
    ], has_more


def stream_head(*, user_id: UUID | str) -> int:
    """The last committed position of the user's stream (0 when empty)."""
    return UserStream.objects.filter(user_id=user_id).values_list("last_position", flat=True).first() or 0
