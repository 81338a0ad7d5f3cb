"""Presence for contacts (issue 19, item 3): mutual contacts see each other's online state and
last_seen without sharing a conversation, bounded, honouring last_seen privacy and blocks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from contacts.models import Block, BookEntry
from messaging import selectors
from realtime import handlers
from streams.selectors import stream_head

pytestmark = pytest.mark.django_db(transaction=True)


def add_to_book(owner, *contacts) -> None:
    BookEntry.objects.bulk_create([BookEntry(owner_id=owner.user.pk, contact_user_id=c.user.pk,
                                             key=c.user.pk.bytes + owner.user.pk.bytes[:16]) for c in contacts])


def befriend(a, b) -> None:
    add_to_book(a, b)
    add_to_book(b, a)


@database_sync_to_async
def set_last_seen_visibility(who, value: str) -> None:
    User.objects.filter(pk=who.user.pk).update(last_seen_visibility=value)


async def live(socket, who):
    client = await socket(who.token)
    await client.send({"type": "hello", "cursor": str(await database_sync_to_async(stream_head)(user_id=who.user.pk))})
    await client.send({"type": "ping"})
    await client.recv_type("pong")
    return client


async def test_a_mutual_contact_without_a_conversation_sees_online_then_offline_with_last_seen(socket, alice, bob,
                                                                                              carol):
    await database_sync_to_async(befriend)(alice, bob)
    await set_last_seen_visibility(bob, "contacts")  # the default: alice is in bob's book
    alice_socket = await live(socket, alice)
    carol_socket = await live(socket, carol)
    bob_socket = await socket(bob.token)
    assert await alice_socket.recv() == {"type": "presence", "user_id": str(bob.user.pk), "state": "online",
                                         "last_seen": None}
    await bob_socket.close()
    offline = await alice_socket.recv()
    assert (offline["type"], offline["user_id"], offline["state"]) == ("presence", str(bob.user.pk), "offline")
    stored = await database_sync_to_async(lambda: User.objects.get(pk=bob.user.pk).last_seen_at)()
    assert offline["last_seen"].startswith(stored.strftime("%Y-%m-%dT%H:%M:%S"))
    assert await carol_socket.ws.receive_nothing(0.3)  # neither a contact nor a peer


async def test_hello_snapshot_includes_mutual_contacts(socket, alice, bob, carol):
    await database_sync_to_async(befriend)(alice, bob)
    await database_sync_to_async(befriend)(alice, carol)
    seen = timezone.now() - timedelta(hours=1)
    await database_sync_to_async(lambda: User.objects.filter(pk=carol.user.pk).update(last_seen_at=seen))()
    await socket(bob.token)
    alice_socket = await socket(alice.token)
    await alice_socket.send({"type": "hello", "cursor": str(await database_sync_to_async(stream_head)(
        user_id=alice.user.pk))})
    frames = {}
    for _ in range(2):
        frame = await alice_socket.recv()
        frames[frame["user_id"]] = frame
    assert frames[str(bob.user.pk)] == {"type": "presence", "user_id": str(bob.user.pk), "state": "online",
                                        "last_seen": None}
    assert frames[str(carol.user.pk)]["state"] == "offline"
    assert frames[str(carol.user.pk)]["last_seen"].startswith(seen.strftime("%Y-%m-%dT%H:%M:%S"))


@pytest.mark.parametrize("direction", ["only_alice_has_bob", "only_bob_has_alice"])
async def test_a_one_way_contact_sees_nothing(socket, alice, bob, direction):
    if direction == "only_alice_has_bob":
        await database_sync_to_async(add_to_book)(alice, bob)
    else:
        await database_sync_to_async(add_to_book)(bob, alice)
    await set_last_seen_visibility(bob, "everyone")
    alice_socket = await live(socket, alice)
    bob_socket = await socket(bob.token)
    await bob_socket.close()
    assert await alice_socket.ws.receive_nothing(0.4)


@pytest.mark.parametrize("blocker", ["alice", "bob"])
async def test_a_block_hides_a_contacts_presence_both_ways(socket, alice, bob, blocker):
    await database_sync_to_async(befriend)(alice, bob)
    await set_last_seen_visibility(alice, "everyone")
    await set_last_seen_visibility(bob, "everyone")
    a, b = (alice, bob) if blocker == "alice" else (bob, alice)
    await database_sync_to_async(Block.objects.create)(blocker_id=a.user.pk, blocked_id=b.user.pk)
    alice_socket = await live(socket, alice)
    bob_socket = await live(socket, bob)  # the snapshot (hello) would come before pong: none did
    assert await alice_socket.ws.receive_nothing(0.4)  # bob came online: not told
    await bob_socket.close()
    assert await alice_socket.ws.receive_nothing(0.4)
    assert await database_sync_to_async(handlers.presence_snapshot)(user_id=str(alice.user.pk)) == []
    assert await database_sync_to_async(handlers.presence_snapshot)(user_id=str(bob.user.pk)) == []


async def test_last_seen_nobody_hides_a_contacts_presence(socket, alice, bob):
    await database_sync_to_async(befriend)(alice, bob)
    await set_last_seen_visibility(bob, "nobody")
    alice_socket = await live(socket, alice)
    bob_socket = await socket(bob.token)
    await bob_socket.close()
    assert await alice_socket.ws.receive_nothing(0.4)
    assert await database_sync_to_async(handlers.presence_snapshot)(user_id=str(alice.user.pk)) == []


def make_friends(user_factory, owner, count):
    friends = [user_factory() for _ in range(count)]
    now = timezone.now()
    for i, friend in enumerate(friends):  # friend 0 seen most recently
        User.objects.filter(pk=friend.user.pk).update(last_seen_at=now - timedelta(minutes=i),
                                                      last_seen_visibility="everyone")
    add_to_book(owner, *friends)
    for friend in friends:
        add_to_book(friend, owner)
    return friends


@pytest.mark.django_db
def test_contact_presence_is_bounded_to_the_most_recently_seen(alice, user_factory, settings):
    settings.WS_PRESENCE_CONTACTS_MAX = 3
    User.objects.filter(pk=alice.user.pk).update(last_seen_visibility="everyone")
    friends = make_friends(user_factory, alice, 5)
    expected = {str(f.user.pk) for f in friends[:3]}
    assert set(selectors.presence_viewers(user_id=alice.user.pk)) == expected
    assert {str(p.pk) for p in selectors.presence_visible_peers(user_id=alice.user.pk, limit=500)} == expected


@pytest.mark.django_db
def test_connect_costs_one_query_for_the_audience_however_many_contacts(alice, bob, user_factory):
    from messaging import services as messaging_services

    messaging_services.conversation_create(creator=alice.user, type="direct", user_id=bob.user.pk)
    User.objects.filter(pk__in=[alice.user.pk, bob.user.pk]).update(last_seen_visibility="everyone")
    friends = make_friends(user_factory, alice, 30)
    Block.objects.create(blocker_id=friends[0].user.pk, blocked_id=alice.user.pk)
    with CaptureQueriesContext(connection) as queries:
        active, viewers = handlers.socket_opened(user_id=str(alice.user.pk), device_id=str(alice.device.pk),
                                                 connection_id="c-1")
    assert active
    assert set(viewers) == {str(bob.user.pk)} | {str(f.user.pk) for f in friends[1:]}
    assert len(queries) == 2, [q["sql"] for q in queries]  # the device check, then the audience
    with CaptureQueriesContext(connection) as queries:
        frames = handlers.presence_snapshot(user_id=str(alice.user.pk))
    assert len(frames) == 30 and len(queries) == 1
