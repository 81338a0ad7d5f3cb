"""Client frames for stream events, encoded once.

A message.new reaches every recipient with the same message and its own
cursor; the message is encoded once and spliced into each recipient's frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from streams.cursors import cursor_encode


def json_text(value: Mapping[str, Any] | None) -> str:
    return orjson.dumps(value).decode()


def event_frame(*, position: int, type: str, data_json: str, created_at: str) -> str:
    """`{"type": "event", "event": {...}}` with the contract's Event keys; `data_json` is the
    payload already encoded (types and timestamps are server-made, never need escaping)."""
    return (f'{{"type":"event","event":{{"cursor":"{cursor_encode(position)}","type":"{type}",'
            f'"data":{data_json},"created_at":"{created_at}"}}}}')
