"""Socket group names and the one way to poke live sockets.

The channel layer is a doorbell, never the record: anything a client must not
miss is read back from the database by cursor.

Two kinds of traffic go through here:
- rings after a stream append (`stream.events`), sent by `streams.services`;
- relayed frames that are never stored (typing, call signalling): `relay_*`
  hands a ready client frame to the live sockets of some users or devices, on
  whichever server process they live. Best effort, like typing in every
  messenger: a socket that is not connected simply misses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
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
    where the layer can (streams.layers), else with the sends in flight together.
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


# --- Relayed frames: live sockets only, never stored --------------------------------------

RELAY = "frame.relay"


def _relay_messages(frame: dict[str, Any], *, user_ids: Iterable[object] = (), device_ids: Iterable[object] = (),
                    exclude_device_id: object = None) -> list[tuple[str, dict[str, Any]]]:
    """Channel-layer messages that hand `frame` (plain JSON types only) to the sockets of
    `user_ids` (all their devices but `exclude_device_id`) and of `device_ids`."""
    message: dict[str, Any] = {"type": RELAY, "frame": frame}
    if exclude_device_id is not None:
        message["exclude_device"] = str(exclude_device_id)
    groups = {user_group(u) for u in user_ids} | {device_group(d) for d in device_ids}
    return [(group, message) for group in sorted(groups)]


def relay_now(frame: dict[str, Any], *, user_ids: Iterable[object] = (), device_ids: Iterable[object] = (),
              exclude_device_id: object = None) -> None:
    """From sync code (services, Celery): relay a frame to live sockets at once."""
    group_send_many_now(_relay_messages(frame, user_ids=user_ids, device_ids=device_ids,
                                        exclude_device_id=exclude_device_id))


def relay_on_commit(frame: dict[str, Any], *, user_ids: Iterable[object] = (), device_ids: Iterable[object] = (),
                    exclude_device_id: object = None) -> None:
    """From inside a transaction: relay once it commits (never a frame about rolled-back state)."""
    messages = _relay_messages(frame, user_ids=user_ids, device_ids=device_ids, exclude_device_id=exclude_device_id)
    transaction.on_commit(lambda: group_send_many_now(messages))


async def relay(frame: dict[str, Any], *, user_ids: Iterable[object] = (), device_ids: Iterable[object] = (),
                exclude_device_id: object = None) -> None:
    """From the event loop (socket handlers): relay a frame to live sockets."""
    layer = get_channel_layer()
    messages = _relay_messages(frame, user_ids=user_ids, device_ids=device_ids, exclude_device_id=exclude_device_id)
    if layer is None or not messages:
        return
    try:
        if hasattr(layer, "group_send_many"):
            await layer.group_send_many(messages)
        else:
            await asyncio.gather(*(layer.group_send(group, message) for group, message in messages))
    except Exception:
        logger.warning("relay of a %r frame failed", str(frame.get("type"))[:40], exc_info=True)
