"""Opaque keyset cursors on (created_at, id), for lists paged newest first (calls, moments)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from core.errors import ValidationFailed

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def keyset_cursor_encode(created_at: datetime, row_id: uuid.UUID) -> str:
    return f"{(created_at - EPOCH) // MICROSECOND}.{row_id.hex}"


def keyset_cursor_decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor stands for; validation_error on `before` for anything else."""
    try:
        micros, _, hex_id = cursor.partition(".")
        if len(cursor) > 64 or not micros.isdigit():
            raise ValueError(cursor)
        return EPOCH + int(micros) * MICROSECOND, uuid.UUID(hex=hex_id)
    except (ValueError, OverflowError, OSError) as exc:
        raise ValidationFailed("Not a cursor from this list.", details={"before": ["Not a valid cursor."]}) from exc
