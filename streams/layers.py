"""The channel layer: channels-redis's pub/sub layer, plus one pipelined send for many groups,
and a signal when the subscription comes back after Redis was lost.

Pub/sub fits a doorbell: no per-group membership sets to maintain or expire in
Redis, no per-channel lists, and a message reaches only the processes that
hold a subscriber. What it does not have is a way to ring many groups at once:
`group_send` takes a per-shard lock and pays one round trip each. After a group
commit the server rings every recipient of the batch, so `publish_raw_many`
sends all of their PUBLISH commands in one pipeline per shard: one round trip
for the whole batch. The hub's doorbells skip the layer's message serializer
(`publish_raw_many` / `receive_raw`): they are encoded once with orjson behind
the sender's origin, so a process drops its own doorbells by a bytes prefix.

Pub/sub is also fire-and-forget: every doorbell published while the
subscriber's connection was down is gone. redis-py re-subscribes when the
connection comes back; the layer then calls its reconnect listeners, and the
hub has every socket of the process read what it missed from the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection, _wrap_close
from redis.asyncio.client import PubSub

logger = logging.getLogger(__name__)

ReconnectListener = Callable[[], None]


class _ResubscribingPubSub(PubSub):
    """redis-py's PubSub, which tells the layer when it re-subscribed on a new connection."""

    on_resubscribed: Callable[[], None] | None = None
    connected_before = False

    async def connect(self) -> None:
        await super().connect()
        self.connected_before = True  # from here on, a connect callback means a new connection

    async def on_connect(self, connection: Any) -> None:
        await super().on_connect(connection)  # SUBSCRIBE again before anyone reads the database
        if self.connected_before and self.on_resubscribed is not None:
            self.on_resubscribed()


class _Shard(RedisSingleShardConnection):
    def _ensure_redis(self) -> None:
        if self._redis is None:
            super()._ensure_redis()
            pubsub = _ResubscribingPubSub(self._redis.connection_pool,
                                          event_dispatcher=self._redis._event_dispatcher)
            pubsub.on_resubscribed = self.channel_layer.resubscribed
            self._pubsub = pubsub


class _LoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listeners: list[ReconnectListener] = []
        self._shards = [_Shard(shard.host, self) for shard in self._shards]

    def resubscribed(self) -> None:
        logger.info("channel layer subscription restored; live sockets catch up from the database")
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:
                logger.exception("reconnect listener failed")


class PipelinedPubSubChannelLayer(RedisPubSubChannelLayer):
    def add_reconnect_listener(self, listener: ReconnectListener) -> None:
        """Call `listener` on the running event loop each time its lost subscription is restored."""
        listeners = self._get_layer().listeners
        if listener not in listeners:
            listeners.append(listener)

    def _get_layer(self) -> _LoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return layer

    async def publish_raw_many(self, payloads: list[tuple[str, bytes]]) -> None:
        """PUBLISH already-encoded payloads to groups: one pipeline (one round trip) per shard.
        Only `receive_raw` reads them (the hub's doorbell, which encodes its own)."""
        layer = self._get_layer()
        by_shard: dict[int, list[tuple[str, bytes]]] = defaultdict(list)
        shards = {}
        for group, payload in payloads:
            channel = layer._get_group_channel_name(group)
            shard = layer._get_shard(channel)
            shards[id(shard)] = shard
            by_shard[id(shard)].append((channel, payload))
        for key, items in by_shard.items():
            shard = shards[key]
            async with shard._lock:
                shard._ensure_redis()
                async with shard._redis.pipeline(transaction=False) as pipe:
                    for channel, payload in items:
                        pipe.publish(channel, payload)
                    await pipe.execute()

    async def receive_raw(self, channel: str) -> bytes:
        """The next payload on `channel` (of this process) as published, not deserialized: the
        hub skips its own doorbells by a prefix before paying for any decoding."""
        layer = self._get_layer()
        if channel not in layer.channels:
            await layer._subscribe_to_channel(channel)
        try:
            return await layer.channels[channel].get()
        except (asyncio.CancelledError, GeneratorExit):
            # as the layer's own receive: a cancelled receiver is gone, so is its subscription
            if layer.channels.pop(channel, None) is not None:
                try:
                    await layer._get_shard(channel).unsubscribe(channel)
                except Exception:
                    logger.exception("unsubscribing a cancelled receiver failed")
            raise
