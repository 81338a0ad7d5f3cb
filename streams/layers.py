"""The channel layer: channels-redis's pub/sub layer, plus one pipelined send for many groups.

Pub/sub fits a doorbell: no per-group membership sets to maintain or expire in
Redis, no per-channel lists, and a message reaches only the processes that
hold a subscriber. What it does not have is a way to ring many groups at once:
`group_send` takes a per-shard lock and pays one round trip each. After a group
commit the server rings every recipient of the batch, so `group_send_many`
sends all of their PUBLISH commands in one pipeline per shard: one round trip
for the whole batch.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer


class PipelinedPubSubChannelLayer(RedisPubSubChannelLayer):
    async def group_send_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        layer = self._get_layer()
        by_shard: dict[int, list[tuple[str, bytes]]] = defaultdict(list)
        shards = {}
        for group, message in messages:
            channel = layer._get_group_channel_name(group)
            shard = layer._get_shard(channel)
            shards[id(shard)] = shard
            by_shard[id(shard)].append((channel, self.serialize(message)))
        for key, items in by_shard.items():
            shard = shards[key]
            async with shard._lock:
                shard._ensure_redis()
                async with shard._redis.pipeline(transaction=False) as pipe:
                    for channel, payload in items:
                        pipe.publish(channel, payload)
                    await pipe.execute()
