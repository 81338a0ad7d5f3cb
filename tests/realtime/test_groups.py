"""Socket groups: ringing many groups in one hop."""

import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from realtime.groups import group_send_many_now, user_group


def test_group_send_many_rings_every_group_once():
    layer = get_channel_layer()
    users = [uuid.uuid4() for _ in range(5)]
    channels = []
    for user in users:
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(user_group(user), channel)
        channels.append(channel)
    group_send_many_now([(user_group(user), {"type": "stream.events", "events": [{"n": i}]})
                         for i, user in enumerate(users)])
    for i, channel in enumerate(channels):
        assert async_to_sync(layer.receive)(channel)["events"] == [{"n": i}]


def test_group_send_many_with_nothing_to_send_does_nothing():
    group_send_many_now([])
