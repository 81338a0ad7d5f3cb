"""Relayed frames (typing, call signalling): handed to live sockets of users or devices, never stored."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import transaction

from accounts.services import device_create
from streams.groups import relay, relay_now, relay_on_commit
from streams.selectors import stream_head

pytestmark = pytest.mark.django_db(transaction=True)

FRAME = {"type": "call.ice", "call_id": "c1", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}


async def ready(socket, token):
    client = await socket(token)
    await client.send({"type": "hello", "cursor": ""})
    await client.nothing_more(0.1)
    return client


async def test_relay_reaches_every_socket_of_the_users_but_the_excluded_device(socket, alice, bob):
    _, tablet_token = await database_sync_to_async(device_create)(user=alice.user, name="Tablet",
                                                                       platform="ios")
    phone, other, stranger = (await ready(socket, alice.token), await ready(socket, tablet_token),
                              await ready(socket, bob.token))
    await database_sync_to_async(relay_now)(FRAME, user_ids=[alice.user.pk], exclude_device_id=alice.device.pk)
    assert await other.recv_type("call.ice") == FRAME
    await phone.nothing_more()
    await stranger.nothing_more()
    assert await database_sync_to_async(stream_head)(user_id=alice.user.pk) == 0  # never stored


async def test_relay_to_a_device_reaches_only_that_device(socket, alice):
    tablet, tablet_token = await database_sync_to_async(device_create)(user=alice.user, name="Tablet",
                                                                       platform="ios")
    phone, other = await ready(socket, alice.token), await ready(socket, tablet_token)
    await relay(FRAME, device_ids=[tablet.pk])
    assert await other.recv_type("call.ice") == FRAME
    await phone.nothing_more()


async def test_relay_on_commit_waits_for_the_commit_and_a_rollback_sends_nothing(socket, alice):
    client = await ready(socket, alice.token)

    def rolled_back() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            relay_on_commit({**FRAME, "n": 1}, user_ids=[alice.user.pk])
            raise RuntimeError("rolled back")

    def committed() -> None:
        with transaction.atomic():
            relay_on_commit({**FRAME, "n": 2}, user_ids=[alice.user.pk])

    await database_sync_to_async(rolled_back)()
    await database_sync_to_async(committed)()
    assert (await client.recv_type("call.ice"))["n"] == 2
    await client.nothing_more()
