"""Socket frames that reach the messaging domain: message.send, ack, typing, presence."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async

from accounts.models import User
from messaging import services as messaging_services
from messaging.models import Message
from realtime import handlers
from streams.selectors import stream_head

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def direct(a, b) -> str:
    conversation, _ = messaging_services.conversation_create(creator=a.user, type="direct", user_id=b.user.pk)
    return conversation["id"]


@database_sync_to_async
def group(owner, *members) -> str:
    conversation, _ = messaging_services.conversation_create(creator=owner.user, type="group", title="Team",
                                                             member_ids=[m.user.pk for m in members])
    return conversation["id"]


@database_sync_to_async
def head(who) -> str:
    return str(stream_head(user_id=who.user.pk))


@database_sync_to_async
def set_last_seen_visibility(who, value: str) -> None:
    User.objects.filter(pk=who.user.pk).update(last_seen_visibility=value)


async def live(socket, who):
    """A socket past its replay: hello at the stream head, so only new events follow."""
    client = await socket(who.token)
    await client.send({"type": "hello", "cursor": await head(who)})
    await client.send({"type": "ping"})
    await client.recv_type("pong")  # frames are handled in order: hello's presence snapshot is behind us
    return client


def text(body: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"client_id": str(uuid.uuid4()), "type": "text", "text": body, **extra}


async def frames_until(client, predicate, limit: int = 20) -> list[dict[str, Any]]:
    """Frames up to and including the first that matches."""
    seen = []
    for _ in range(limit):
        frame = await client.recv()
        seen.append(frame)
        if predicate(frame):
            return seen
    raise AssertionError(f"no matching frame in {seen}")


# --- message.send -----------------------------------------------------------------------


async def test_message_send_replies_message_sent_after_commit_and_reaches_every_device(socket, alice, bob):
    conversation_id = await direct(alice, bob)
    tablet = await database_sync_to_async(alice.another_device)()
    alice_socket, bob_socket, tablet_socket = await live(socket, alice), await live(socket, bob), await live(
        socket, tablet)
    body = text("hello bob")
    await alice_socket.send({"type": "message.send", "ref": "r-1", "conversation_id": conversation_id,
                             "message": body})
    sent = (await frames_until(alice_socket, lambda f: f["type"] == "message.sent"))[-1]
    assert sent["ref"] == "r-1"
    message = sent["message"]
    assert (message["conversation_id"], message["client_id"], message["text"], message["seq"]) == (
        conversation_id, body["client_id"], "hello bob", 1)
    assert message["sender_id"] == str(alice.user.pk)
    # Acknowledged means committed: another connection sees the row.
    assert await database_sync_to_async(Message.objects.filter(pk=message["id"]).exists)()
    for client in (bob_socket, tablet_socket):
        event = (await client.recv_type("event"))["event"]
        assert event["type"] == "message.new"
        assert event["data"] == message


async def test_message_send_retry_with_the_same_client_id_returns_the_original(socket, alice, bob):
    conversation_id = await direct(alice, bob)
    client = await live(socket, alice)
    body = text("once")
    for ref in ("a", "b"):
        await client.send({"type": "message.send", "ref": ref, "conversation_id": conversation_id, "message": body})
    replies = [f for f in await frames_until(client, lambda f: f.get("ref") == "b" and f["type"] == "message.sent")
               if f["type"] == "message.sent"]
    first = next(f for f in replies if f["ref"] == "a")
    assert first["message"]["id"] == replies[-1]["message"]["id"]
    assert await database_sync_to_async(Message.objects.filter(conversation_id=conversation_id).count)() == 1


async def test_message_send_to_someone_elses_conversation_is_not_found_with_ref(socket, alice, bob, carol):
    conversation_id = await direct(alice, bob)
    client = await live(socket, carol)
    await client.send({"type": "message.send", "ref": 9, "conversation_id": conversation_id, "message": text()})
    error = await client.recv_type("error")
    assert (error["code"], error["ref"]) == ("not_found", 9)
    await client.send({"type": "message.send", "ref": 10, "conversation_id": "not-a-uuid", "message": text()})
    error = await client.recv_type("error")
    assert (error["code"], error["ref"]) == ("not_found", 10)


async def test_message_send_with_an_invalid_body_is_a_validation_error_with_details(socket, alice, bob):
    conversation_id = await direct(alice, bob)
    client = await live(socket, alice)
    await client.send({"type": "message.send", "ref": "x", "conversation_id": conversation_id,
                       "message": {"client_id": "nope", "type": "text", "text": "a" * 5000}})
    error = await client.recv_type("error")
    assert (error["code"], error["ref"]) == ("validation_error", "x")
    assert {"client_id", "text"} <= set(error["details"])
    await client.send({"type": "ping"})
    assert (await client.recv_type("pong"))["type"] == "pong"


async def test_sends_arriving_together_share_one_transaction(socket, alice, bob, monkeypatch):
    """Group commit: frames queued while a batch commits go together in the next one."""
    conversation_id = await direct(alice, bob)
    sizes: list[int] = []
    real = handlers.messages_send

    def recording(requests):
        sizes.append(len(requests))
        return real(requests)

    monkeypatch.setattr(handlers, "messages_send", recording)
    alice_socket, bob_socket = await live(socket, alice), await live(socket, bob)
    for i in range(30):
        for who, client in ((alice, alice_socket), (bob, bob_socket)):
            await client.send({"type": "message.send", "ref": f"{who.user.pk}-{i}", "conversation_id": conversation_id,
                               "message": text(f"{i}")})
    sent = []
    for client in (alice_socket, bob_socket):
        replies = 0
        while replies < 30:
            frame = await client.recv()
            assert frame["type"] in ("message.sent", "event", "presence"), frame
            if frame["type"] == "message.sent":
                sent.append(frame)
                replies += 1
    assert sorted(f["message"]["seq"] for f in sent) == list(range(1, 61))
    assert sum(sizes) == 60
    assert len(sizes) < 60 and max(sizes) > 1


# --- ack and resume ---------------------------------------------------------------------------


async def test_hello_without_cursor_resumes_after_the_devices_last_ack(socket, alice, bob):
    conversation_id = await direct(alice, bob)
    for i in range(3):
        await database_sync_to_async(messaging_services.message_send)(
            sender=alice.user, conversation_id=conversation_id, payload=text(str(i)))
    first = await socket(bob.token)
    await first.send({"type": "hello"})
    events = await first.events(4)  # conversation.created + 3 messages
    await first.send({"type": "ack", "cursor": events[1]["cursor"]})
    await first.send({"type": "ping"})
    await first.recv_type("pong")
    await first.close()
    second = await socket(bob.token)
    await second.send({"type": "hello", "cursor": None})
    assert [e["cursor"] for e in await second.events(2)] == [events[2]["cursor"], events[3]["cursor"]]
    await second.nothing_more()


async def test_ack_marks_messages_delivered_for_the_sender(socket, alice, bob):
    conversation_id = await direct(alice, bob)
    alice_socket = await live(socket, alice)
    bob_socket = await live(socket, bob)
    await alice_socket.send({"type": "message.send", "ref": "m", "conversation_id": conversation_id,
                             "message": text()})
    event = (await bob_socket.recv_type("event"))["event"]
    await bob_socket.send({"type": "ack", "cursor": event["cursor"]})
    frames = await frames_until(alice_socket, lambda f: f["type"] == "event"
                                and f["event"]["type"] == "receipt.delivered")
    assert frames[-1]["event"]["data"]["user_id"] == str(bob.user.pk)


# --- typing -----------------------------------------------------------------------------------


async def test_typing_is_relayed_to_the_other_members_only(socket, alice, bob, carol):
    conversation_id = await group(alice, bob)
    alice_socket, bob_socket, carol_socket = await live(socket, alice), await live(socket, bob), await live(
        socket, carol)
    tablet = await database_sync_to_async(alice.another_device)()
    alice_tablet = await live(socket, tablet)
    await alice_socket.send({"type": "typing", "conversation_id": conversation_id, "state": "start"})
    assert await bob_socket.recv_type("typing") == {"type": "typing", "conversation_id": conversation_id,
                                                     "user_id": str(alice.user.pk), "state": "start"}
    await alice_tablet.nothing_more()
    await carol_socket.nothing_more()
    await alice_socket.nothing_more()


async def test_typing_is_never_stored(socket, alice, bob):
    conversation_id = await direct(alice, bob)
    before = await head(bob)
    client = await live(socket, alice)
    await client.send({"type": "typing", "conversation_id": conversation_id, "state": "start"})
    await client.send({"type": "ping"})
    await client.recv_type("pong")
    assert await head(bob) == before


async def test_typing_in_a_conversation_of_others_is_not_found(socket, alice, bob, carol):
    conversation_id = await direct(alice, bob)
    bob_socket = await live(socket, bob)
    carol_socket = await live(socket, carol)
    await carol_socket.send({"type": "typing", "conversation_id": conversation_id, "state": "start"})
    assert (await carol_socket.recv_type("error"))["code"] == "not_found"
    await bob_socket.nothing_more()


async def test_typing_start_is_throttled_and_stop_always_goes_through(socket, alice, bob):
    conversation_id = await direct(alice, bob)
    alice_socket, bob_socket = await live(socket, alice), await live(socket, bob)
    for state in ("start", "start", "start", "stop"):
        await alice_socket.send({"type": "typing", "conversation_id": conversation_id, "state": state})
    assert (await bob_socket.recv_type("typing"))["state"] == "start"
    assert (await bob_socket.recv_type("typing"))["state"] == "stop"
    await bob_socket.nothing_more()


async def test_typing_does_not_reach_a_member_who_blocked_the_typer(socket, alice, bob, carol, monkeypatch):
    conversation_id = await group(alice, bob, carol)
    # contacts' blocks arrive through this seam (contacts.selectors.blockers_of once merged).
    monkeypatch.setattr(handlers, "blockers_of",
                        lambda *, user_id, candidate_ids: {str(bob.user.pk)} & set(candidate_ids))
    alice_socket, bob_socket, carol_socket = await live(socket, alice), await live(socket, bob), await live(
        socket, carol)
    await alice_socket.send({"type": "typing", "conversation_id": conversation_id, "state": "start"})
    assert (await carol_socket.recv_type("typing"))["user_id"] == str(alice.user.pk)
    await bob_socket.nothing_more()


# --- presence ---------------------------------------------------------------------------------


async def test_peer_sees_online_then_offline_with_last_seen(socket, alice, bob, carol):
    await direct(alice, bob)
    await set_last_seen_visibility(bob, "everyone")
    alice_socket = await live(socket, alice)
    carol_socket = await live(socket, carol)
    bob_socket = await socket(bob.token)
    online = await alice_socket.recv()
    assert online == {"type": "presence", "user_id": str(bob.user.pk), "state": "online", "last_seen": None}
    await bob_socket.close()
    offline = await alice_socket.recv()
    assert (offline["type"], offline["user_id"], offline["state"]) == ("presence", str(bob.user.pk), "offline")
    stored = await database_sync_to_async(lambda: User.objects.get(pk=bob.user.pk).last_seen_at)()
    assert stored is not None and offline["last_seen"].startswith(stored.strftime("%Y-%m-%dT%H:%M:%S"))
    assert await carol_socket.ws.receive_nothing(0.3)  # not a peer


async def test_second_device_coming_online_is_not_announced_again(socket, alice, bob):
    await direct(alice, bob)
    await set_last_seen_visibility(bob, "everyone")
    alice_socket = await live(socket, alice)
    await socket(bob.token)
    assert (await alice_socket.recv())["state"] == "online"
    tablet = await database_sync_to_async(bob.another_device)()
    tablet_socket = await socket(tablet.token)
    assert await alice_socket.ws.receive_nothing(0.3)
    await tablet_socket.close()
    assert await alice_socket.ws.receive_nothing(0.3)  # bob's phone is still connected


@pytest.mark.parametrize("visibility", ["nobody", "contacts"])
async def test_presence_honours_last_seen_privacy(socket, alice, bob, visibility):
    """"contacts" means alice is in bob's address book; she is not here."""
    await direct(alice, bob)
    await set_last_seen_visibility(bob, visibility)
    alice_socket = await live(socket, alice)
    bob_socket = await socket(bob.token)
    await bob_socket.close()
    assert await alice_socket.ws.receive_nothing(0.4)


async def test_presence_does_not_cross_a_block(socket, alice, bob):
    from contacts.models import Block

    await direct(alice, bob)
    await set_last_seen_visibility(bob, "everyone")
    await database_sync_to_async(Block.objects.create)(blocker_id=alice.user.pk, blocked_id=bob.user.pk)
    alice_socket = await live(socket, alice)
    bob_socket = await socket(bob.token)
    await bob_socket.close()
    assert await alice_socket.ws.receive_nothing(0.4)


async def test_hello_sends_the_current_presence_of_visible_peers(socket, alice, bob, carol):
    await direct(alice, bob)
    await direct(alice, carol)
    await set_last_seen_visibility(bob, "everyone")
    await set_last_seen_visibility(carol, "nobody")
    await socket(bob.token)
    alice_socket = await socket(alice.token)
    await alice_socket.send({"type": "hello", "cursor": await head(alice)})
    assert await alice_socket.recv() == {"type": "presence", "user_id": str(bob.user.pk), "state": "online",
                                         "last_seen": None}
    await alice_socket.nothing_more(ignore_presence=False)


async def test_privacy_tightened_while_connected_hides_the_offline(socket, alice, bob):
    await direct(alice, bob)
    await set_last_seen_visibility(bob, "everyone")
    alice_socket = await live(socket, alice)
    bob_socket = await socket(bob.token)
    assert (await alice_socket.recv())["state"] == "online"
    await set_last_seen_visibility(bob, "nobody")
    await bob_socket.close()
    assert await alice_socket.ws.receive_nothing(0.4)


async def test_heartbeat_keeps_a_live_socket_online_past_the_ttl(socket, alice, settings):
    from streams.presence import device_ids_online

    settings.WS_PRESENCE_TTL = 1
    settings.WS_HEARTBEAT_SECONDS = 0.3
    await socket(alice.token)
    await asyncio.sleep(1.6)
    assert await database_sync_to_async(device_ids_online)([alice.device.pk]) == {str(alice.device.pk)}


async def test_typing_is_not_relayed_in_a_crowd(socket, alice, bob, carol, settings):
    settings.WS_TYPING_MAX_RECIPIENTS = 1
    conversation_id = await group(alice, bob, carol)
    alice_socket, bob_socket = await live(socket, alice), await live(socket, bob)
    await alice_socket.send({"type": "typing", "conversation_id": conversation_id, "state": "start"})
    await bob_socket.nothing_more()
    await alice_socket.nothing_more()  # no error either


async def test_acks_in_quick_succession_collapse_into_the_highest(socket, alice, bob, monkeypatch):
    conversation_id = await direct(alice, bob)
    for i in range(20):
        await database_sync_to_async(messaging_services.message_send)(
            sender=alice.user, conversation_id=conversation_id, payload=text(str(i)))
    stored: list[str] = []  # the positions handed to the database, in order
    real = messaging_services.device_acks_async

    async def recording(acks):
        stored.extend(str(ack.position) for ack in acks)
        return await real(acks)

    monkeypatch.setattr(messaging_services, "device_acks_async", recording)
    client = await socket(bob.token)
    await client.send({"type": "hello", "cursor": "0"})
    events = await client.events(21)
    cursors = [e["cursor"] for e in events]
    for cursor in [*cursors[:-3], cursors[-1], cursors[-3], cursors[-2]]:  # the highest is not the last sent
        await client.send({"type": "ack", "cursor": cursor})
    await client.send({"type": "ping"})
    await client.recv_type("pong")
    await asyncio.sleep(0.3)
    assert stored[-1] == cursors[-1]
    assert len(stored) < len(cursors)
    resumed = await database_sync_to_async(handlers.hello_position)(user_id=str(bob.user.pk),
                                                                    device_id=str(bob.device.pk), cursor=None)
    assert resumed == int(cursors[-1])
