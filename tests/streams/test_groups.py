"""Socket groups: ringing many groups in one hop (one pipelined round trip on Redis)."""

import asyncio
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from streams.groups import group_send_many_now, user_group


async def test_group_send_many_rings_every_group_once():
    layer = get_channel_layer()
    users = [uuid.uuid4() for _ in range(5)]
    channels = []
    for user in users:
        channel = await layer.new_channel()
        await layer.group_add(user_group(user), channel)
        channels.append(channel)
    await sync_to_async(group_send_many_now)(
        [(user_group(user), {"type": "stream.events", "events": [{"n": i}]}) for i, user in enumerate(users)]
    )
    for i, channel in enumerate(channels):
        assert (await asyncio.wait_for(layer.receive(channel), timeout=5))["events"] == [{"n": i}]
    for channel in channels:  # exactly once: nothing else is waiting
        assert layer._get_layer().channels[channel].empty()


def test_group_send_many_with_nothing_to_send_does_nothing():
    group_send_many_now([])
