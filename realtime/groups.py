"""Socket group names and the one way to poke live sockets after a commit.

The channel layer is a doorbell, never the record: anything a client must not
miss is read back from the database by cursor.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def user_group(user_id: UUID | str) -> str:
    return f"user.{UUID(str(user_id)).hex}"


def device_group(device_id: UUID | str) -> str:
    return f"device.{UUID(str(device_id)).hex}"


def group_send_now(group: str, message: dict[str, Any]) -> None:
    """Best effort: a lost doorbell is recovered by the client's next hello or sync."""
    group_send_many_now([(group, message)])


def group_send_many_now(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Ring many groups with one hop onto the event loop, as one pipelined round trip
    where the layer can (realtime.layers), else with the sends in flight together.
    Best effort: a lost doorbell is recovered by the client's next hello or sync."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return

    async def send_all() -> list[Any]:
        if hasattr(layer, "group_send_many"):
            await layer.group_send_many(messages)
            return []
        return await asyncio.gather(*(layer.group_send(group, message) for group, message in messages),
                                    return_exceptions=True)

    try:
        results = async_to_sync(send_all)()
    except Exception:
        logger.warning("group_send of %d rings failed", len(messages), exc_info=True)
        return
    failed = sum(isinstance(result, BaseException) for result in results)
    if failed:
        logger.warning("group_send failed for %d of %d groups", failed, len(messages))


def group_send_on_commit(group: str, message: dict[str, Any]) -> None:
    transaction.on_commit(lambda: group_send_now(group, message))


def device_disconnect_on_commit(device_id: UUID | str, *, code: int = 4001) -> None:
    """Close every live socket of a device once its revocation is committed."""
    group_send_on_commit(device_group(device_id), {"type": "device.revoked", "code": code})
