"""Moved to the `streams` app; these names stay importable while other work moves over."""

from streams.cursors import MAX_CURSOR_LENGTH, cursor_decode, cursor_encode
from streams.selectors import event_public, stream_head, stream_read
from streams.services import PendingEvent, stream_append

__all__ = ["MAX_CURSOR_LENGTH", "PendingEvent", "cursor_decode", "cursor_encode", "event_public", "stream_append",
           "stream_head", "stream_read"]
