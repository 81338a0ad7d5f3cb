"""Stream cursors: opaque to clients, a decimal position here."""

from __future__ import annotations

from core.errors import ValidationFailed

MAX_CURSOR_LENGTH = 20


def cursor_encode(position: int) -> str:
    """Cursors are opaque to clients; today they are the decimal position."""
    return str(position)


def cursor_decode(cursor: object) -> int:
    """The position after which to read; "" or None means from the start."""
    if cursor is None or cursor == "":
        return 0
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH or not cursor.isdigit():
        raise ValidationFailed(details={"cursor": ["Not a cursor returned by this server."]})
    return int(cursor)
