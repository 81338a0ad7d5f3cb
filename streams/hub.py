"""Delivery to live sockets: a per-process registry, and one doorbell between processes.

Every server process keeps the sockets it serves in a registry by user and by
device. After a commit the writer hands the hub what must reach live
sockets, already encoded as client frames:

- `events`: {user id hex: [(position, frame), ...]} new stream events;
- `frames`: {"u:<user hex>" | "d:<device hex>": [frame, ...]} relayed frames
  that are never stored (typing, presence, call signalling), with an optional
  device to leave out;
- `closes`: {device hex: close code} (a revoked device).

Sockets of this process get them at once; the other processes get one
doorbell per batch over the channel layer (channels-redis pub/sub): each
process subscribes one channel to the ring group(s), not one per socket, and
skips doorbells it sent itself (by their origin prefix, undecoded: see
streams.layers). The doorbell is best effort, like every
channel-layer message: a socket that misses one catches up from the database
by cursor at the next event or hello; when the layer's subscription was lost
and comes back, every socket of the process catches up at once; and the
housekeeper's heartbeat sweep compares each socket with its stream's head, so
nothing is lost, only late.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import uuid
import zlib
from collections.abc import Iterable
from typing import Any, Protocol

import orjson
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.utils import _consistent_hash
from django.conf import settings

logger = logging.getLogger(__name__)

RING_TYPE = "streams.ring"
# A raw doorbell (streams.layers) is the sender's origin (a hub's uuid hex) and the orjson body.
ORIGIN_LENGTH = 32
ANY_ORIGIN = "-" * ORIGIN_LENGTH  # rung from outside any hub (ring_now): every hub delivers it

Events = dict[str, list[tuple[int, str]]]
Frames = dict[str, list[str]]


class Subscriber(Protocol):
    """What a live socket offers the hub (realtime's socket implements it)."""

    user_key: str
    device_key: str

    async def deliver_events(self, events: list[tuple[int, str]]) -> None: ...

    async def deliver_frame(self, frame: str) -> None: ...

    async def revoke(self, code: int) -> None: ...

    def resync(self) -> None: ...


_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


_KEYS_MAX = 100_000
_keys: dict[str, str] = {}  # the database's spelling -> key, for the users and devices rung lately


def key(value: object) -> str:
    """Users and devices are keyed by their id's hex in rings (compact, one spelling)."""
    if type(value) is str:
        known = _keys.get(value)
        if known is not None:
            return known
        if _CANONICAL.fullmatch(value):  # no UUID object per recipient
            if len(_keys) >= _KEYS_MAX:
                _keys.clear()
            known = _keys[value] = value.replace("-", "")
            return known
    return uuid.UUID(str(value)).hex


def ring_group(user_or_device_key: str) -> str:
    """The ring group a target belongs to (every process joins every group)."""
    groups = ring_groups()
    return groups[zlib.crc32(user_or_device_key.encode()) % len(groups)]


def ring_groups() -> tuple[str, ...]:
    """STREAMS_RING_GROUPS group names (default: one per Redis host of the channel layer), spread
    evenly over the hosts, so the doorbells of a sharded channel layer spread over its servers."""
    config = (settings.CHANNEL_LAYERS.get("default") or {}).get("CONFIG") or {}
    hosts = max(1, len(config.get("hosts") or ()))
    return _spread_names(settings.STREAMS_RING_GROUPS or hosts, hosts, config.get("prefix", "asgi"))


@functools.cache
def _spread_names(count: int, hosts: int, prefix: str) -> tuple[str, ...]:
    # channels-redis puts a group on the host its channel name hashes to; a name that lands on
    # host i % hosts is found by trying suffixes (a handful of tries each).
    names = []
    for index in range(max(1, count)):
        name, salt = f"{RING_TYPE}.{index}", 0
        while _consistent_hash(f"{prefix}__group__{name}", hosts) != index % hosts:
            salt += 1
            name = f"{RING_TYPE}.{index}.{salt}"
        names.append(name)
    return tuple(names)


class Hub:
    """The registry of one event loop (one server process) and its doorbell subscription."""

    def __init__(self) -> None:
        self.origin = uuid.uuid4().hex
        self.origin_bytes = self.origin.encode()
        self.by_user: dict[str, set[Subscriber]] = {}
        self.by_device: dict[str, set[Subscriber]] = {}
        self.channel: str | None = None
        self.listener: asyncio.Task[None] | None = None

    # --- Registry ------------------------------------------------------------------------

    async def attach(self, subscriber: Subscriber) -> None:
        self.by_user.setdefault(subscriber.user_key, set()).add(subscriber)
        self.by_device.setdefault(subscriber.device_key, set()).add(subscriber)
        if self.listener is None or self.listener.done():
            await self._listen()

    def detach(self, subscriber: Subscriber) -> None:
        for index, name in ((self.by_user, subscriber.user_key), (self.by_device, subscriber.device_key)):
            members = index.get(name)
            if members is not None:
                members.discard(subscriber)
                if not members:
                    del index[name]

    def resync(self) -> None:
        """Doorbells may have been lost (the subscription was down): every socket reads the database."""
        for subscriber in self.subscribers():
            subscriber.resync()

    def subscribers(self) -> list[Subscriber]:
        return [subscriber for members in self.by_device.values() for subscriber in members]

    # --- Delivery ------------------------------------------------------------------------

    async def deliver(self, *, events: Events | None = None, frames: Frames | None = None,
                      closes: dict[str, int] | None = None, exclude_device: str | None = None) -> None:
        """Hand everything to the sockets of this process (no await blocks on a slow socket)."""
        for user_key, user_events in (events or {}).items():
            for subscriber in list(self.by_user.get(user_key, ())):
                await subscriber.deliver_events(user_events)
        for target, target_frames in (frames or {}).items():
            kind, _, name = target.partition(":")
            members = self.by_user.get(name, ()) if kind == "u" else self.by_device.get(name, ())
            for subscriber in list(members):
                if exclude_device and subscriber.device_key == exclude_device:
                    continue
                for frame in target_frames:
                    await subscriber.deliver_frame(frame)
        for device_key, code in (closes or {}).items():
            for subscriber in list(self.by_device.get(device_key, ())):
                await subscriber.revoke(code)

    async def publish(self, *, events: Events | None = None, frames: Frames | None = None,
                      closes: dict[str, int] | None = None, exclude_device: str | None = None,
                      origin: str | None = None) -> None:
        """One doorbell per ring group for the other processes (best effort)."""
        await publish(events=events, frames=frames, closes=closes, exclude_device=exclude_device,
                      origin=origin or self.origin)

    async def ring(self, **parts: Any) -> None:
        """Deliver here, then ring the other processes."""
        await self.deliver(**parts)
        await self.publish(**parts)

    # --- The doorbell ---------------------------------------------------------------------

    async def _listen(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        self.channel = await layer.new_channel()
        if hasattr(layer, "add_reconnect_listener"):
            layer.add_reconnect_listener(self.resync)
        for group in ring_groups():
            await layer.group_add(group, self.channel)
        self.listener = asyncio.get_running_loop().create_task(self._receive(layer))

    async def _next_doorbell(self, layer: Any) -> dict[str, Any] | None:
        """The next doorbell from another process (None for one of this process's own)."""
        if hasattr(layer, "receive_raw"):
            raw = await layer.receive_raw(self.channel)
            if raw[:ORIGIN_LENGTH] == self.origin_bytes:
                return None  # delivered here already, before it was published; never decoded
            return orjson.loads(raw[ORIGIN_LENGTH:])
        message = await layer.receive(self.channel)
        return None if message.get("o") == self.origin else message

    async def _receive(self, layer: Any) -> None:
        while True:
            try:
                message = await self._next_doorbell(layer)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("doorbell receive failed; retrying", exc_info=True)
                await asyncio.sleep(1)
                continue
            if message is None:
                continue
            try:
                await self.deliver(events={user: [(p, f) for p, f in items] for user, items in
                                           (message.get("e") or {}).items()},
                                   frames=message.get("f"), closes=message.get("c"), exclude_device=message.get("x"))
            except Exception:
                logger.exception("doorbell delivery failed")


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    """The running event loop's hub (a server process has one loop; tests have one per test)."""
    loop = asyncio.get_running_loop()
    existing = _hubs.get(loop)
    if existing is None:
        for stale in [other for other in _hubs if other.is_closed()]:
            del _hubs[stale]
        existing = _hubs[loop] = Hub()
    return existing


def _split(mapping: dict[str, Any] | None, target_key: Any) -> dict[str, dict[str, Any]]:
    """Split a ring part by the ring group of each target."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in (mapping or {}).items():
        out.setdefault(ring_group(target_key(name)), {})[name] = value
    return out


async def publish(*, events: Events | None = None, frames: Frames | None = None, closes: dict[str, int] | None = None,
                  exclude_device: str | None = None, origin: str | None = None) -> None:
    """Ring every process's hub (from any event loop, with or without a hub of its own)."""
    layer = get_channel_layer()
    if layer is None or not (events or frames or closes):
        return
    groups: dict[str, dict[str, Any]] = {}
    for part, mapping, target_key in (("e", events, _same), ("f", frames, _target_name), ("c", closes, _same)):
        for group, items in _split(mapping, target_key).items():
            groups.setdefault(group, {})[part] = items
    if exclude_device:
        for message in groups.values():
            message["x"] = exclude_device
    try:
        if hasattr(layer, "publish_raw_many"):
            # Encoded once (orjson takes the (position, frame) tuples as they are), behind the origin.
            prefix = (origin or ANY_ORIGIN).encode()
            await layer.publish_raw_many([(group, prefix + orjson.dumps(message)) for group, message in groups.items()])
        else:
            messages = [(group, {"type": RING_TYPE, "o": origin, **{
                part: {user: [[p, f] for p, f in pairs] for user, pairs in value.items()} if part == "e" else value
                for part, value in message.items()}}) for group, message in groups.items()]
            await asyncio.gather(*(layer.group_send(group, message) for group, message in messages))
    except Exception:
        logger.warning("doorbell of %d groups failed (sockets catch up by cursor)", len(groups), exc_info=True)


def _same(name: str) -> str:
    return name


def _target_name(name: str) -> str:
    return name.partition(":")[2]


def ring_now(**parts: Any) -> None:
    """From sync code (a request thread, a Celery task): ring every process, this one included.

    Under the ASGI server a request thread hands the coroutine to the server's own loop
    (async_to_sync), whose hub then receives the doorbell like every other process."""
    try:
        async_to_sync(publish)(**parts)
    except Exception:
        logger.warning("doorbell failed (sockets catch up by cursor)", exc_info=True)


def events_for(rings: Iterable[tuple[str, int, str]]) -> Events:
    """{user hex: [(position, frame), ...]} from (user hex, position, frame) triples, positions ascending."""
    out: Events = {}
    for user_key, position, frame in rings:
        out.setdefault(user_key, []).append((position, frame))
    for pairs in out.values():
        pairs.sort(key=lambda pair: pair[0])
    return out
