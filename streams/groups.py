"""Frames for live sockets that are never stored, and closing a device's sockets.

Two kinds of traffic reach sockets: stream events (stored, rung after commit by
`streams.services.stream_append`) and what this module sends: relayed frames
(typing, presence, call signalling) handed to the live sockets of some users or
devices on whichever server process they live, and close orders for a revoked
device. Both go through the process hub (`streams.hub`): local sockets at once,
other processes by one doorbell. Relays are best effort, like typing in every
messenger: a socket that is not connected simply misses them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db import transaction

from streams.encoding import json_text
from streams.hub import Frames, hub, key, ring_now


def _frames(frame: dict[str, Any], *, user_ids: Iterable[object], device_ids: Iterable[object]) -> Frames:
    """The frame (plain JSON types only), encoded once, for every target."""
    text = json_text(frame)
    targets = {f"u:{key(u)}" for u in user_ids} | {f"d:{key(d)}" for d in device_ids}
    return {target: [text] for target in sorted(targets)}


def _excluded(device_id: object) -> str | None:
    return key(device_id) if device_id is not None else None


def relay_now(frame: dict[str, Any], *, user_ids: Iterable[object] = (), device_ids: Iterable[object] = (),
              exclude_device_id: object = None) -> None:
    """From sync code (services, Celery): relay a frame to live sockets at once."""
    frames = _frames(frame, user_ids=user_ids, device_ids=device_ids)
    if frames:
        ring_now(frames=frames, exclude_device=_excluded(exclude_device_id))


def relay_on_commit(frame: dict[str, Any], *, user_ids: Iterable[object] = (), device_ids: Iterable[object] = (),
                    exclude_device_id: object = None) -> None:
    """From inside a transaction: relay once it commits (never a frame about rolled-back state)."""
    frames = _frames(frame, user_ids=user_ids, device_ids=device_ids)
    excluded = _excluded(exclude_device_id)
    if frames:
        transaction.on_commit(lambda: ring_now(frames=frames, exclude_device=excluded))


async def relay(frame: dict[str, Any], *, user_ids: Iterable[object] = (), device_ids: Iterable[object] = (),
                exclude_device_id: object = None) -> None:
    """From the event loop (socket handlers): this process's sockets at once, the others by doorbell."""
    frames = _frames(frame, user_ids=user_ids, device_ids=device_ids)
    if frames:
        await hub().ring(frames=frames, exclude_device=_excluded(exclude_device_id))


def device_disconnect_on_commit(device_id: UUID | str, *, code: int = 4001) -> None:
    """Close every live socket of a device, on any process, once its revocation commits."""
    closes = {key(device_id): code}
    transaction.on_commit(lambda: ring_now(closes=closes))
