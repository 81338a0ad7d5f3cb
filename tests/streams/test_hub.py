"""The hub: sockets of this process get their events straight from the writer, not through Redis;
other processes get one doorbell per batch (a socket on each of two processes:
tests/realtime/test_multiprocess.py)."""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async

from messaging import services as messaging_services
from streams import hub as hub_module
from streams.selectors import stream_head

pytestmark = pytest.mark.django_db(transaction=True)


async def live(socket, who):
    client = await socket(who.token)
    await client.send({"type": "hello", "cursor": str(await database_sync_to_async(stream_head)(user_id=who.user.pk))})
    await client.send({"type": "ping"})
    await client.recv_type("pong")
    return client


async def test_a_send_reaches_a_socket_of_the_same_process_with_no_doorbell_at_all(socket, alice, bob, monkeypatch):
    conversation, _ = await database_sync_to_async(messaging_services.conversation_create)(
        creator=alice.user, type="direct", user_id=bob.user.pk)
    alice_socket, bob_socket = await live(socket, alice), await live(socket, bob)
    doorbells = []

    async def no_redis(**parts):
        doorbells.append(parts)  # the other processes' doorbell: nobody needs it here

    monkeypatch.setattr(hub_module, "publish", no_redis)
    client_id = str(uuid.uuid4())
    await alice_socket.send({"type": "message.send", "ref": "r", "conversation_id": conversation["id"],
                             "message": {"client_id": client_id, "type": "text", "text": "local"}})
    sent = await alice_socket.recv()
    while sent["type"] != "message.sent":  # her own event (for her other devices) comes first
        assert sent["type"] == "event", sent
        sent = await alice_socket.recv()
    event = (await bob_socket.recv_type("event"))["event"]
    assert event["type"] == "message.new" and event["data"] == sent["message"]
    assert doorbells and set(doorbells[0]["events"]) == {hub_module.key(alice.user.pk), hub_module.key(bob.user.pk)}


async def test_a_doorbell_this_process_sent_is_not_delivered_twice(socket, alice, bob):
    conversation, _ = await database_sync_to_async(messaging_services.conversation_create)(
        creator=alice.user, type="direct", user_id=bob.user.pk)
    alice_socket, bob_socket = await live(socket, alice), await live(socket, bob)
    hub = hub_module.hub()
    delivered = []
    real = hub.deliver

    async def counting(**parts):
        delivered.append(parts)
        await real(**parts)

    hub.deliver = counting
    try:
        await alice_socket.send({"type": "message.send", "ref": "r", "conversation_id": conversation["id"],
                                 "message": {"client_id": str(uuid.uuid4()), "type": "text", "text": "once"}})
        await bob_socket.recv_type("event")
        await bob_socket.nothing_more(0.5)  # the doorbell came back from Redis meanwhile
    finally:
        del hub.deliver
    assert len([parts for parts in delivered if parts.get("events")]) == 1


def test_ring_groups_spread_evenly_over_the_redis_hosts_of_a_sharded_layer(settings):
    from channels_redis.utils import _consistent_hash

    for hosts, count in ((2, 0), (3, 0), (2, 8), (4, 8)):
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "streams.layers.PipelinedPubSubChannelLayer",
                                               "CONFIG": {"hosts": [f"redis://127.0.0.1:6379/{i}"
                                                                    for i in range(hosts)],
                                                          "prefix": "asgi"}}}
        settings.STREAMS_RING_GROUPS = count
        groups = hub_module.ring_groups()
        assert len(groups) == (count or hosts) and len(set(groups)) == len(groups)
        shards = [_consistent_hash(f"asgi__group__{group}", hosts) for group in groups]
        assert sorted(shards) == sorted(index % hosts for index in range(len(groups)))
        # Every target maps to one of them, and targets spread over all of them.
        used = {hub_module.ring_group(uuid.uuid4().hex) for _ in range(500)}
        assert used == set(groups)
