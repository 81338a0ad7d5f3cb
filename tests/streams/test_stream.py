import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction

from core.errors import ValidationFailed
from streams.cursors import cursor_decode
from streams.selectors import stream_head, stream_read
from streams.services import PendingEvent, stream_append


@pytest.mark.django_db
def test_append_assigns_consecutive_positions_per_user(alice, bob):
    stream_append([
        PendingEvent(alice.user.pk, "message.new", {"n": 1}),
        PendingEvent(bob.user.pk, "message.new", {"n": 1}),
        PendingEvent(alice.user.pk, "message.new", {"n": 2}),
    ])
    events, has_more = stream_read(user_id=alice.user.pk, after=0, limit=10)
    assert [(e["position"], e["data"]["n"]) for e in events] == [(1, 1), (2, 2)]
    assert [e["cursor"] for e in events] == ["1", "2"]
    assert has_more is False
    assert stream_head(user_id=bob.user.pk) == 1


@pytest.mark.django_db
def test_read_pages_with_has_more(alice):
    stream_append([PendingEvent(alice.user.pk, "t", {"i": i}) for i in range(5)])
    page, has_more = stream_read(user_id=alice.user.pk, after=0, limit=3)
    assert [e["data"]["i"] for e in page] == [0, 1, 2] and has_more
    page, has_more = stream_read(user_id=alice.user.pk, after=3, limit=3)
    assert [e["data"]["i"] for e in page] == [3, 4] and not has_more


@pytest.mark.django_db
def test_rolled_back_append_leaves_no_event_and_no_gap(alice):
    with pytest.raises(RuntimeError), transaction.atomic():
        stream_append([PendingEvent(alice.user.pk, "t", {})])
        raise RuntimeError("crash before commit")
    stream_append([PendingEvent(alice.user.pk, "t", {"after": True})])
    events, _ = stream_read(user_id=alice.user.pk, after=0, limit=10)
    assert [e["position"] for e in events] == [1]


@pytest.mark.parametrize("cursor", ["abc", "-1", "1" * 30, 5, "1.5"])
def test_garbage_cursor_is_a_validation_error(cursor):
    with pytest.raises(ValidationFailed):
        cursor_decode(cursor)


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_stay_gapless_and_unique(alice, bob):
    """Eight threads append to two shared streams at once, in opposite user orders."""
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            for _ in range(25):
                users = [alice.user.pk, bob.user.pk] if index % 2 else [bob.user.pk, alice.user.pk]
                stream_append([PendingEvent(user, "t", {"w": index}) for user in users])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for user in (alice.user, bob.user):
        events, _ = stream_read(user_id=user.pk, after=0, limit=1000)
        assert [e["position"] for e in events] == list(range(1, 201))


@pytest.mark.django_db(transaction=True)
async def test_append_rings_the_users_sockets_after_commit(alice):
    import orjson

    from streams.hub import hub, key

    class Listener:
        user_key, device_key = key(alice.user.pk), key(alice.device.pk)

        def __init__(self) -> None:
            self.got: asyncio.Queue = asyncio.Queue()

        async def deliver_events(self, events):
            for event in events:
                self.got.put_nowait(event)

    listener = Listener()
    await hub().attach(listener)
    try:
        await sync_to_async(stream_append)([PendingEvent(alice.user.pk, "message.new", {"x": 1})])
        position, frame = await asyncio.wait_for(listener.got.get(), timeout=5)
    finally:
        hub().detach(listener)
    event = orjson.loads(frame)
    assert event["type"] == "event"
    assert (position, event["event"]["cursor"], event["event"]["type"], event["event"]["data"]) == (
        1, "1", "message.new", {"x": 1})
