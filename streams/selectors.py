"""Reads of users' event streams: replay by cursor and the head position."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from core.serializers import timestamp
from streams.cursors import cursor_encode
from streams.models import Event, UserStream
from streams.rendering import render_references


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
    """Events after position `after`, oldest first, and whether more follow.
    Events that reference a row are rendered by their type's renderer, one call per type."""
    rows = list(
        Event.objects.filter(user_id=user_id, position__gt=after)
        .order_by("position")
        .values_list("position", "type", "data", "ref_id", "created_at")[: limit + 1]
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    rendered = render_references((type_, str(ref_id)) for _, type_, _, ref_id, _ in rows if ref_id)
    return [
        event_public(position=position, type=type_, created_at=created_at,
                     data=rendered[(type_, str(ref_id))] if ref_id else data)
        for position, type_, data, ref_id, created_at in rows
    ], has_more


def stream_heads(*, user_ids: list[UUID | str]) -> dict[str, int]:
    """{user id: last committed position} for many users in one query (users with no stream left out)."""
    return {str(user_id): position for user_id, position in
            UserStream.objects.filter(user_id__in=user_ids).values_list("user_id", "last_position")}


def stream_head(*, user_id: UUID | str) -> int:
    """The last committed position of the user's stream (0 when empty)."""
    return UserStream.objects.filter(user_id=user_id).values_list("last_position", flat=True).first() or 0
