"""The batched send (messaging_send_batch): one statement per batch, from the socket's async pool
and from Django's connection, judged request by request.

What a user would check: seqs gapless per conversation and positions gapless per user under
concurrent batches from several processes, every message in every member's stream exactly once;
retries answered with the original; blocks and broadcast roles honoured; events that reference
their message replayed as the message stands now.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection

from contacts.services import block_create
from core import asyncdb
from core.errors import ApplicationError
from messaging import services
from messaging.models import Membership, Message, MessageHidden
from messaging.services import SendRequest, message_send_many, message_send_many_async
from streams.models import Event
from streams.selectors import stream_read
from tests.messaging.conftest import new_direct, new_group, stream_events
from tests.processes import ROOT, current_database_url


def body(text: str = "hi", client_id: str | None = None, **extra) -> dict:
    return {"client_id": client_id or str(uuid.uuid4()), "type": "text", "text": text, **extra}


def send_async(requests: list[SendRequest]) -> list:
    async def run() -> list:
        try:
            return await message_send_many_async(requests)
        finally:
            await asyncdb.close()

    return async_to_sync(run)()


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.fail("the batched send is PostgreSQL's path: run the suite on PostgreSQL (make test)")


# --- One batch, judged request by request ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_batch_from_the_socket_path_judges_each_request_and_writes_the_rest(alice, bob, carol):
    direct = new_direct(alice, bob)
    group = new_group(alice, bob)
    repeated = str(uuid.uuid4())
    results = send_async([
        SendRequest(alice.user.pk, direct, body("one")),
        SendRequest(carol.user.pk, direct, body("not a member")),
        SendRequest(bob.user.pk, group, body("to group", client_id=repeated)),
        SendRequest(alice.user.pk, direct, {"type": "text"}),  # invalid
        SendRequest(bob.user.pk, group, body("the same client_id again", client_id=repeated)),
        SendRequest(alice.user.pk, "not-a-uuid", body()),
    ])
    assert results[0][1] is True and results[0][0]["text"] == "one" and results[0][0]["seq"] == 1
    assert isinstance(results[1], ApplicationError) and results[1].code == "not_found"
    assert results[2][1] is True
    assert isinstance(results[3], ApplicationError) and results[3].code == "validation_error"
    assert results[4] == (results[2][0], False)  # the repeat is the first, not a second message
    assert isinstance(results[5], ApplicationError) and results[5].code == "not_found"
    assert Message.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_retry_through_either_path_returns_the_stored_message(alice, bob):
    direct = new_direct(alice, bob)
    client_id = str(uuid.uuid4())
    first = send_async([SendRequest(alice.user.pk, direct, body("once", client_id=client_id))])[0]
    again_async = send_async([SendRequest(alice.user.pk, direct, body("changed", client_id=client_id))])[0]
    again_sync = message_send_many([SendRequest(alice.user, direct, body("changed", client_id=client_id))])[0]
    assert first[1] is True and again_async == (first[0], False) and again_sync == (first[0], False)
    assert [d["text"] for _, d in stream_events(bob, "message.new")] == ["once"]


@pytest.mark.django_db(transaction=True)
def test_a_member_who_blocked_the_sender_gets_no_event_and_the_message_is_hidden_for_them(alice, bob, carol):
    group = new_group(alice, bob, carol)
    block_create(blocker=carol.user, blocked_id=alice.user.pk)
    message, _ = send_async([SendRequest(alice.user.pk, group, body("hello all"))])[0]
    assert [d["id"] for _, d in stream_events(bob, "message.new")] == [message["id"]]
    assert stream_events(carol, "message.new") == []
    assert MessageHidden.objects.filter(message_id=message["id"], user=carol.user).exists()


@pytest.mark.django_db(transaction=True)
def test_in_a_broadcast_only_admins_post(alice, bob, carol):
    broadcast = new_group(alice, bob, carol, type="broadcast", title="News")
    services.member_role_set(actor=alice.user, conversation_id=broadcast, user_id=carol.user.pk, role="admin")
    results = send_async([SendRequest(bob.user.pk, broadcast, body("member")),
                          SendRequest(carol.user.pk, broadcast, body("admin")),
                          SendRequest(alice.user.pk, broadcast, body("owner"))])
    assert isinstance(results[0], ApplicationError) and results[0].code == "forbidden"
    assert [r[0]["seq"] for r in results[1:]] == [1, 2]
    assert [d["text"] for _, d in stream_events(bob, "message.new")] == ["admin", "owner"]


@pytest.mark.django_db(transaction=True)
def test_the_send_rate_counts_new_messages_only(alice, bob, settings):
    settings.MESSAGING_SEND_LIMIT = (3, 60)
    direct = new_direct(alice, bob)
    client_ids = [str(uuid.uuid4()) for _ in range(5)]
    results = send_async([SendRequest(alice.user.pk, direct, body(str(i), client_id=c))
                          for i, c in enumerate(client_ids)])
    assert [isinstance(r, tuple) for r in results] == [True, True, True, False, False]
    assert {r.code for r in results[3:]} == {"rate_limited"} and all(r.retry_after >= 1 for r in results[3:])
    # Retries of stored messages are answered, and still cost nothing.
    retries = send_async([SendRequest(alice.user.pk, direct, body(str(i), client_id=c))
                          for i, c in enumerate(client_ids[:3])])
    assert [r[1] for r in retries] == [False, False, False]
    assert Message.objects.filter(sender=alice.user).count() == 3


@pytest.mark.django_db(transaction=True)
def test_replayed_message_events_render_the_message_as_it_stands_now(alice, bob):
    direct = new_direct(alice, bob)
    message, _ = send_async([SendRequest(alice.user.pk, direct, body("first draft"))])[0]
    services.message_edit(user=alice.user, message_id=message["id"], text="edited")
    (event,) = [e for e in stream_read(user_id=bob.user.pk, after=0, limit=50)[0] if e["type"] == "message.new"]
    assert event["data"]["id"] == message["id"] and event["data"]["text"] == "edited"
    assert event["data"]["edited_at"] is not None
    stored = Event.objects.get(user=bob.user, type="message.new")
    assert stored.data is None and str(stored.ref_id) == message["id"]  # one row, not a copy per recipient


# --- Concurrency across processes -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_from_several_processes_keep_seqs_and_positions_gapless(alice, bob, carol):
    """Three OS processes send overlapping batches (each round one async batch or one sync
    batch) into three shared conversations at once; nobody deadlocks, nothing is lost."""
    group = new_group(alice, bob, carol)
    ab, bc = new_direct(alice, bob), new_direct(bob, carol)
    requests = [{"sender": str(alice.user.pk), "conversation_id": group},
                {"sender": str(bob.user.pk), "conversation_id": ab},
                {"sender": str(carol.user.pk), "conversation_id": bc},
                {"sender": str(bob.user.pk), "conversation_id": group}]
    env = {**os.environ, "DATABASE_URL": current_database_url(), "REDIS_URL": settings.REDIS_URL,
           "SECRET_KEY": settings.SECRET_KEY, "MESSAGING_SEND_LIMIT": "0", "PYTHONPATH": str(ROOT)}
    rounds = 12
    workers = [subprocess.Popen(
        [sys.executable, "-m", "tests.messaging.send_worker",
         json.dumps({"rounds": rounds, "requests": requests[i:] + requests[:i], "label": f"w{i}"})],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    outputs = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr[-3000:]
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    assert all(out["errors"] == [] for out in outputs), [out["errors"] for out in outputs]
    sent = [message_id for out in outputs for message_id in out["sent"]]
    assert len(sent) == len(set(sent)) == 3 * rounds * len(requests)

    for conversation_id in (group, ab, bc):
        seqs = sorted(Message.objects.filter(conversation_id=conversation_id).values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1)), f"seq gap in {conversation_id}"
    for person in (alice, bob, carol):
        events, _ = stream_read(user_id=person.user.pk, after=0, limit=100_000)
        assert [e["position"] for e in events] == list(range(1, len(events) + 1)), "position gap"
        delivered = Counter(e["data"]["id"] for e in events if e["type"] == "message.new")
        mine = set(Message.objects.filter(conversation__memberships__user=person.user,
                                          conversation__memberships__left_at__isnull=True)
                   .values_list("pk", flat=True))
        assert set(delivered) == {str(pk) for pk in mine}
        assert set(delivered.values()) == {1}, "a message reached a stream twice"
        # And within each conversation the stream holds the messages in seq order.
        for conversation_id in {e["data"]["conversation_id"] for e in events if e["type"] == "message.new"}:
            seqs = [e["data"]["seq"] for e in events
                    if e["type"] == "message.new" and e["data"]["conversation_id"] == conversation_id]
            assert seqs == sorted(seqs)
    assert Membership.objects.filter(conversation_id=group).count() == 3
