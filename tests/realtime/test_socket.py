"""The socket end to end through config.asgi: auth, frames, flood limit, revocation, the stream seam."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from accounts.models import Device
from accounts.services import device_revoke
from realtime import handlers
from streams import selectors as stream
from streams import services as stream_services
from streams.services import PendingEvent, stream_append

pytestmark = pytest.mark.django_db(transaction=True)


def append(user_id, count: int, type_: str = "message.new") -> None:
    stream_append([PendingEvent(user_id, type_, {"i": i}) for i in range(count)])


aappend = database_sync_to_async(append)


def positions(events: list[dict]) -> list[int]:
    return [int(e["cursor"]) for e in events]


# --- Auth ------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "not-a-token", "x" * 300])
async def test_missing_or_bad_token_is_accepted_then_closed_4001(socket, token):
    client = await socket(token)
    assert await client.closed_with() == 4001


async def test_revoked_token_is_closed_4001(socket, alice):
    await database_sync_to_async(device_revoke)(user=alice.user, device_id=alice.device.pk)
    client = await socket(alice.token)
    assert await client.closed_with() == 4001


@pytest.mark.parametrize("via", ["header", "query"])
async def test_token_by_header_or_query_string_authenticates(socket, alice, via):
    client = await socket(alice.token, via=via)
    await client.send({"type": "ping"})
    assert await client.recv_type("pong") == {"type": "pong"}


async def test_device_revoked_while_connected_is_closed_4001(socket, alice):
    client = await socket(alice.token)
    await client.send({"type": "hello", "cursor": "0"})
    await database_sync_to_async(device_revoke)(user=alice.user, device_id=alice.device.pk)
    assert await client.closed_with() == 4001


async def test_revocation_missed_by_the_channel_layer_is_caught_by_the_heartbeat(socket, alice, settings):
    settings.WS_HEARTBEAT_SECONDS = 0.2
    client = await socket(alice.token)
    # Revoked without the doorbell, as if the ring had been lost.
    await database_sync_to_async(
        lambda: Device.objects.filter(pk=alice.device.pk).update(revoked_at="2026-01-01T00:00:00Z"))()
    assert await client.closed_with(timeout=3) == 4001


async def test_revocation_between_token_lookup_and_group_join_is_caught_at_connect(socket, alice, monkeypatch):
    from realtime import middleware

    device = await database_sync_to_async(lambda: Device.objects.select_related("user").get(pk=alice.device.pk))()
    monkeypatch.setattr(middleware, "device_get_by_token", lambda *, token: device)  # looked up just before...
    await database_sync_to_async(  # ...the revocation commits, its doorbell ringing nobody yet
        lambda: Device.objects.filter(pk=alice.device.pk).update(revoked_at="2026-01-01T00:00:00Z"))()
    client = await socket(alice.token)
    assert await client.closed_with(timeout=2) == 4001


async def test_other_device_of_the_user_stays_connected_when_one_is_revoked(socket, alice):
    tablet = await database_sync_to_async(alice.another_device)()
    phone_socket = await socket(alice.token)
    tablet_socket = await socket(tablet.token)
    await database_sync_to_async(device_revoke)(user=alice.user, device_id=alice.device.pk)
    assert await phone_socket.closed_with() == 4001
    await tablet_socket.send({"type": "ping"})
    assert (await tablet_socket.recv_type("pong"))["type"] == "pong"


# --- Bad frames and flooding ---------------------------------------------------------------


BAD_FRAMES = [
    ("not json", "validation_error"),
    ("[1, 2]", "validation_error"),
    ('{"no": "type"}', "validation_error"),
    ('{"type": 5}', "validation_error"),
    ('{"type": "launch.missiles"}', "validation_error"),
    ('{"type": "hello", "cursor": "abc"}', "validation_error"),
    ('{"type": "hello", "cursor": 12}', "validation_error"),
    ('{"type": "ack"}', "validation_error"),
    ('{"type": "ack", "cursor": "-4"}', "validation_error"),
    ('{"type": "typing", "conversation_id": "c"}', "validation_error"),
    ('{"type": "message.send", "conversation_id": "c", "message": {}}', "validation_error"),
    ('{"type": "message.send", "ref": "r1", "message": {}}', "validation_error"),
    ('{"type": "message.send", "ref": "r1", "conversation_id": "c", "message": "hi"}', "validation_error"),
    ('{"type": "ping", "pad": "' + "x" * (64 * 1024) + '"}', "payload_too_large"),
]


async def test_each_bad_frame_gets_an_error_frame_and_the_socket_stays_open(socket, alice):
    """One socket takes every kind of bad frame in turn (one test: each costs a database flush)."""
    client = await socket(alice.token)
    for raw, code in BAD_FRAMES:
        await client.send_raw(raw)
        error = await client.recv_type("error")
        assert error["code"] == code, raw[:60]
        assert isinstance(error["message"], str) and error["message"]
        await client.send({"type": "ping"})
        assert (await client.recv_type("pong"))["type"] == "pong"


async def test_error_frame_echoes_the_ref(socket, alice):
    client = await socket(alice.token)
    await client.send({"type": "message.send", "ref": "abc-1", "conversation_id": "c"})
    error = await client.recv_type("error")
    assert error["ref"] == "abc-1" and error["code"] == "validation_error"
    assert "message" in error["details"]


async def test_binary_frame_gets_an_error_frame(socket, alice):
    client = await socket(alice.token)
    await client.send_raw(data=b"\x00\x01")
    assert (await client.recv_type("error"))["code"] == "validation_error"
    await client.send({"type": "ping"})
    assert (await client.recv_type("pong"))["type"] == "pong"


async def test_flooding_is_rate_limited_then_closed_4008(socket, alice, settings):
    settings.WS_FRAME_RATE = 1
    settings.WS_FRAME_BURST = 3
    settings.WS_FLOOD_CLOSE_AFTER = 5
    client = await socket(alice.token)
    for _ in range(4):
        await client.send({"type": "ping"})
    frames = [await client.recv() for _ in range(4)]
    assert [f["type"] for f in frames if f["type"] != "presence"] == ["pong", "pong", "pong", "error"]
    assert frames[-1]["code"] == "rate_limited"
    for _ in range(10):
        await client.send({"type": "ping"})
    assert await client.closed_with() == 4008


async def test_a_client_within_its_budget_is_not_limited(socket, alice, settings):
    settings.WS_FRAME_RATE = 1000
    settings.WS_FRAME_BURST = 50
    client = await socket(alice.token)
    for _ in range(50):
        await client.send({"type": "ping"})
    assert [(await client.recv_type("pong"))["type"] for _ in range(50)] == ["pong"] * 50


# --- The stream: hello, replay, live, the seam ----------------------------------------------


async def test_hello_replays_after_the_cursor_then_streams_live(socket, alice):
    await aappend(alice.user.pk, 5)
    client = await socket(alice.token)
    await client.send({"type": "hello", "cursor": "2"})
    replayed = await client.events(3)
    assert positions(replayed) == [3, 4, 5]
    assert set(replayed[0]) == {"cursor", "type", "data", "created_at"}
    await aappend(alice.user.pk, 2)
    assert positions(await client.events(2)) == [6, 7]
    await client.nothing_more()


async def test_events_before_hello_are_held_back_then_replayed(socket, alice):
    client = await socket(alice.token)
    await aappend(alice.user.pk, 3)
    await client.nothing_more()
    await client.send({"type": "hello", "cursor": ""})
    assert positions(await client.events(3)) == [1, 2, 3]
    await client.nothing_more()


async def test_every_device_of_the_user_gets_the_events_and_others_do_not(socket, alice, bob):
    tablet = await database_sync_to_async(alice.another_device)()
    sockets = [await socket(alice.token), await socket(tablet.token)]
    bob_socket = await socket(bob.token)
    for client in [*sockets, bob_socket]:
        await client.send({"type": "hello", "cursor": "0"})
    await aappend(alice.user.pk, 2)
    for client in sockets:
        assert positions(await client.events(2)) == [1, 2]
    await bob_socket.nothing_more()


async def test_events_appended_between_replay_pages_arrive_exactly_once_in_order(socket, alice, settings, monkeypatch):
    """The seam: rings for events committed while the replay runs overlap the pages it still reads."""
    settings.WS_REPLAY_PAGE = 5
    await aappend(alice.user.pk, 23)
    real_read = stream.stream_read
    calls = {"n": 0}

    def read_then_append(**kwargs):
        page = real_read(**kwargs)
        calls["n"] += 1
        if calls["n"] <= 3:
            append(alice.user.pk, 3)  # committed (and rung) while the replay is between pages
        return page

    monkeypatch.setattr(handlers, "stream_read", read_then_append)
    client = await socket(alice.token)
    await client.send({"type": "hello", "cursor": "0"})
    assert positions(await client.events(32)) == list(range(1, 33))
    await client.nothing_more(0.5)
    await aappend(alice.user.pk, 1)
    assert positions(await client.events(1)) == [33]


async def test_events_committed_by_another_writer_during_hello_arrive_exactly_once(socket, alice, settings):
    settings.WS_REPLAY_PAGE = 7
    await aappend(alice.user.pk, 40)
    stop = threading.Event()

    def writer() -> None:
        try:
            for _ in range(60):
                append(alice.user.pk, 1)
                if stop.is_set():
                    break
        finally:
            connection.close()

    client = await socket(alice.token)
    thread = threading.Thread(target=writer)
    thread.start()
    await client.send({"type": "hello", "cursor": "0"})
    received = await client.events(40)
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    received += await client.events(60)
    assert positions(received) == list(range(1, 101))
    await client.nothing_more(0.5)


async def test_socket_dropped_mid_replay_then_reconnect_with_last_cursor_gets_the_rest_once(socket, alice, settings):
    settings.WS_REPLAY_PAGE = 4
    await aappend(alice.user.pk, 30)
    first = await socket(alice.token)
    await first.send({"type": "hello", "cursor": "0"})
    got = await first.events(9)
    await first.close()
    second = await socket(alice.token)
    await second.send({"type": "hello", "cursor": got[-1]["cursor"]})
    rest = await second.events(21)
    assert positions(got + rest) == list(range(1, 31))
    await second.nothing_more()


async def test_event_whose_ring_was_lost_arrives_with_the_next_ring(socket, alice, monkeypatch):
    client = await socket(alice.token)
    await client.send({"type": "hello", "cursor": "0"})
    await client.nothing_more(0.1)
    # The process dies between commit and the ring: the event is stored, nobody is told.
    monkeypatch.setattr(stream_services, "_ring", lambda by_user: None)
    await aappend(alice.user.pk, 2)
    await client.nothing_more(0.2)
    monkeypatch.undo()
    await aappend(alice.user.pk, 1)
    assert positions(await client.events(3)) == [1, 2, 3]
    await client.nothing_more()


async def test_event_whose_ring_was_lost_arrives_at_the_heartbeat_with_no_further_event(socket, alice, monkeypatch,
                                                                                         settings):
    # The last events before a quiet spell lost their doorbell (pub/sub dropped them while Redis
    # restarted): nothing else will come to reveal the gap, so the sweep compares stream heads.
    settings.WS_HEARTBEAT_SECONDS = 0.3
    client = await socket(alice.token)
    await client.send({"type": "hello", "cursor": "0"})
    await client.nothing_more(0.1)
    monkeypatch.setattr(stream_services, "_ring", lambda by_user: None)
    await aappend(alice.user.pk, 2)
    assert positions(await client.events(2, timeout=3)) == [1, 2]
    await client.nothing_more(0.7)  # later sweeps find it level with the head: nothing twice


async def test_sockets_catch_up_when_the_channel_layer_resubscribes(socket, alice, monkeypatch):
    from channels.layers import get_channel_layer

    client = await socket(alice.token)
    await client.send({"type": "hello", "cursor": "0"})
    await client.nothing_more(0.1)
    monkeypatch.setattr(stream_services, "_ring", lambda by_user: None)
    await aappend(alice.user.pk, 2)
    await client.nothing_more(0.2)
    # What redis-py does once Redis is back: a new connection, SUBSCRIBE again, then the callback.
    layer = get_channel_layer()._get_layer()
    for shard in layer._shards:
        if shard._pubsub is not None:
            await shard._pubsub.on_connect(shard._pubsub.connection)
    assert positions(await client.events(2, timeout=3)) == [1, 2]
    await client.nothing_more()


async def test_event_whose_ring_was_lost_arrives_with_the_next_hello(socket, alice, monkeypatch):
    monkeypatch.setattr(stream_services, "_ring", lambda by_user: None)
    first = await socket(alice.token)
    await first.send({"type": "hello", "cursor": "0"})
    await first.nothing_more(0.2)  # the replay is over
    await aappend(alice.user.pk, 2)
    await first.nothing_more(0.2)
    await first.close()
    second = await socket(alice.token)
    await second.send({"type": "hello", "cursor": "0"})
    assert positions(await second.events(2)) == [1, 2]


async def test_duplicate_and_reordered_rings_are_delivered_once_in_order(socket, alice):
    client = await socket(alice.token)
    await client.send({"type": "hello", "cursor": "0"})
    await client.nothing_more(0.1)
    events, _ = await database_sync_to_async(lambda: (append(alice.user.pk, 3), stream.stream_read(
        user_id=alice.user.pk, after=0, limit=10))[1])()
    assert positions(await client.events(3)) == [1, 2, 3]
    # The same ring again, and an out-of-order one, through the doorbell: nothing new reaches the client.
    from streams.encoding import event_frame, json_text
    from streams.hub import key, publish

    frames = [(e["position"], event_frame(position=e["position"], type=e["type"], data_json=json_text(e["data"]),
                                          created_at=e["created_at"])) for e in events]
    await publish(events={key(alice.user.pk): frames[::-1]})
    await publish(events={key(alice.user.pk): frames[1:2]})
    await client.nothing_more()


async def test_second_hello_restarts_the_stream_from_its_cursor(socket, alice):
    await aappend(alice.user.pk, 4)
    client = await socket(alice.token)
    await client.send({"type": "hello", "cursor": "0"})
    assert positions(await client.events(4)) == [1, 2, 3, 4]
    await client.send({"type": "hello", "cursor": "2"})
    assert positions(await client.events(2)) == [3, 4]
    await client.nothing_more()


async def test_hello_with_a_cursor_from_the_future_still_gets_new_events(socket, alice):
    await aappend(alice.user.pk, 2)
    client = await socket(alice.token)
    await client.send({"type": "hello", "cursor": "99"})
    await client.nothing_more(0.2)
    await aappend(alice.user.pk, 1)
    assert positions(await client.events(1)) == [3]


async def test_a_doorbell_of_an_unknown_shape_is_dropped_not_fatal(socket, alice):
    from channels.layers import get_channel_layer

    from streams.hub import RING_TYPE

    client = await socket(alice.token)
    await get_channel_layer().group_send(f"{RING_TYPE}.0", {"type": "something.new", "x": 1})
    await get_channel_layer().group_send(f"{RING_TYPE}.0", {"type": RING_TYPE, "e": {"not-a-user": 5}})
    await client.send({"type": "ping"})
    assert (await client.recv_type("pong"))["type"] == "pong"


async def test_database_failure_during_replay_sends_an_error_and_closes_1011(socket, alice, monkeypatch):
    from django.db import OperationalError

    def broken_read(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(handlers, "stream_read", broken_read)
    client = await socket(alice.token)
    await client.send({"type": "hello", "cursor": "0"})
    assert (await client.recv_type("error"))["code"] == "service_unavailable"
    assert await client.closed_with() == 1011
