"""The batched ack (messaging_ack_batch): every socket's acks of a server process in one statement.

What a user would check: each device's cursor ends at the highest position it acked (never
back, never past its stream head); the reader's delivered pointer moves to the newest
message covered; each sender of a small conversation gets one `receipt.delivered` per
batch and conversation, at gapless positions of its stream, live and on replay; an ack of
a device that is gone fails nobody else's; concurrent batches over the same devices and
conversations neither deadlock nor lose or repeat a receipt.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from core import asyncdb
from messaging import services
from messaging.models import DeviceCursor, Membership
from messaging.services import DeviceAck, device_acks_async
from streams.selectors import stream_head, stream_read
from tests.messaging.conftest import new_direct, new_group, stream_events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.fail("the batched ack is PostgreSQL's path: run the suite on PostgreSQL (make test)")


def run(*batches: list[DeviceAck]) -> None:
    """The batches at once, each on its own connection of one event loop's pool."""
    async def go() -> None:
        try:
            await asyncio.gather(*(device_acks_async(batch) for batch in batches))
        finally:
            await asyncdb.close()

    async_to_sync(go)()


def send(who, conversation_id: str, count: int) -> None:
    for i in range(count):
        services.message_send(sender=who.user, conversation_id=conversation_id,
                              payload={"client_id": str(uuid.uuid4()), "type": "text", "text": f"m{i}"})


def ack(who, position: int) -> DeviceAck:
    return DeviceAck(str(who.user.pk), str(who.device.pk), position)


def cursor_of(who) -> int:
    return DeviceCursor.objects.filter(device_id=who.device.pk).values_list("position", flat=True).first() or 0


def delivered(who, conversation_id: str) -> int:
    return Membership.objects.get(user=who.user, conversation_id=conversation_id).delivered_seq


def positions(who) -> list[int]:
    events, _ = stream_read(user_id=who.user.pk, after=0, limit=100_000)
    return [e["position"] for e in events]


def test_one_batch_moves_every_device_and_owes_each_sender_one_receipt(alice, bob, carol):
    direct = new_direct(alice, bob)
    group = new_group(alice, bob, carol)
    send(alice, direct, 3)
    send(alice, group, 2)
    send(carol, group, 2)
    bob_head, carol_head = stream_head(user_id=bob.user.pk), stream_head(user_id=carol.user.pk)
    run([ack(bob, bob_head), ack(carol, carol_head + 50)])  # carol's is past her head: clamped
    assert (cursor_of(bob), cursor_of(carol)) == (bob_head, carol_head)
    assert (delivered(bob, direct), delivered(bob, group), delivered(carol, group)) == (3, 4, 2)
    # alice: bob got her direct messages, bob and carol her group messages; carol: bob got hers.
    alice_receipts = stream_events(alice, "receipt.delivered")
    assert sorted((d["conversation_id"], d["user_id"], d["seq"]) for _, d in alice_receipts) == sorted([
        (direct, str(bob.user.pk), 3), (group, str(bob.user.pk), 4), (group, str(carol.user.pk), 2)])
    assert [d for _, d in stream_events(carol, "receipt.delivered")] == [
        {"conversation_id": group, "user_id": str(bob.user.pk), "seq": 4}]
    assert positions(alice) == list(range(1, len(positions(alice)) + 1))  # gapless


def test_an_ack_never_moves_back_and_owes_nothing_twice(alice, bob):
    direct = new_direct(alice, bob)
    send(alice, direct, 4)
    head = stream_head(user_id=bob.user.pk)
    run([ack(bob, head)])
    before = stream_events(alice, "receipt.delivered")
    run([ack(bob, head - 2)], [ack(bob, head)])
    assert cursor_of(bob) == head and delivered(bob, direct) == 4
    assert stream_events(alice, "receipt.delivered") == before == [
        ("receipt.delivered", {"conversation_id": direct, "user_id": str(bob.user.pk), "seq": 4})]


def test_one_device_acked_twice_in_a_batch_counts_once_at_its_highest(alice, bob):
    direct = new_direct(alice, bob)
    send(alice, direct, 3)
    head = stream_head(user_id=bob.user.pk)
    run([ack(bob, head), ack(bob, head - 1)])
    assert cursor_of(bob) == head and delivered(bob, direct) == 3
    assert len(stream_events(alice, "receipt.delivered")) == 1


def test_a_device_that_is_gone_fails_no_one_else(alice, bob):
    direct = new_direct(alice, bob)
    send(alice, direct, 2)
    ghost = DeviceAck(str(bob.user.pk), str(uuid.uuid4()), 5)
    run([ghost, ack(bob, stream_head(user_id=bob.user.pk))])
    assert delivered(bob, direct) == 2
    assert not DeviceCursor.objects.filter(device_id=ghost.device_id).exists()


def test_a_member_who_left_is_not_marked_delivered(alice, bob, carol):
    group = new_group(alice, bob, carol)
    send(alice, group, 2)
    head = stream_head(user_id=carol.user.pk)
    services.member_remove(actor=carol.user, conversation_id=group, user_id=carol.user.pk)
    run([ack(carol, head)])
    assert cursor_of(carol) == head
    assert delivered(carol, group) == 0
    assert not [d for _, d in stream_events(alice, "receipt.delivered") if d["user_id"] == str(carol.user.pk)]


def test_concurrent_batches_over_the_same_devices_neither_deadlock_nor_repeat(alice, bob, carol):
    group = new_group(alice, bob, carol)
    direct = new_direct(alice, bob)
    tablets = [bob.another_device(), carol.another_device()]
    send(alice, group, 10)
    send(alice, direct, 10)
    readers = [bob, carol, *tablets]
    heads = {who.device.pk: stream_head(user_id=who.user.pk) for who in readers}
    # Eight batches at once, each acking every reader's device at a different point (some repeated).
    batches = [[ack(who, max(1, heads[who.device.pk] - step)) for who in reversed(readers)
                if step % 2 == 0 or who != bob] for step in range(8)]
    run(*batches)
    assert all(cursor_of(who) == heads[who.device.pk] for who in readers)
    assert (delivered(bob, group), delivered(bob, direct), delivered(carol, group)) == (10, 10, 10)
    receipts = [d for _, d in stream_events(alice, "receipt.delivered")]
    # Every receipt moved a pointer forward: per (conversation, reader) the seqs strictly rise.
    for conversation in (group, direct):
        for reader in (bob, carol):
            seqs = [d["seq"] for d in receipts if d["conversation_id"] == conversation
                    and d["user_id"] == str(reader.user.pk)]
            assert seqs == sorted(set(seqs))
            if conversation == group or reader == bob:
                assert seqs[-1] == 10
    assert positions(alice) == list(range(1, len(positions(alice)) + 1))


def test_receipts_reach_the_senders_live_socket_and_replay_the_same(alice, bob):
    from streams.hub import Hub

    direct = new_direct(alice, bob)
    send(alice, direct, 2)
    head = stream_head(user_id=bob.user.pk)
    got: list[tuple[int, str]] = []

    class Listener:
        user_key, device_key = alice.user.pk.hex, alice.device.pk.hex

        async def deliver_events(self, events):
            got.extend(events)

    async def go() -> None:
        from streams import hub as hub_module

        live = hub_module.hub()
        assert isinstance(live, Hub)
        live.by_user[Listener.user_key] = {Listener()}
        try:
            await device_acks_async([ack(bob, head)])
        finally:
            await asyncdb.close()

    async_to_sync(go)()
    replayed = stream_read(user_id=alice.user.pk, after=0, limit=100)[0][-1]
    assert [position for position, _ in got] == [replayed["position"]]
    assert f'"cursor":"{replayed["position"]}"' in got[0][1] and '"type":"receipt.delivered"' in got[0][1]
