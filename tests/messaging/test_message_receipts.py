"""GET /messages/{id}/receipts: who got and who read one message, groups and broadcasts too
(issue 19, item 2)."""

from __future__ import annotations

import contextlib

import pytest

from accounts.services import user_update
from contacts.services import block_create
from messaging import services
from streams.selectors import stream_head
from tests.messaging.conftest import new_group, send_text


def receipts(who, message_id: str, **params):
    return who.client.get(f"/api/v1/messages/{message_id}/receipts", params)


def ack_all(who) -> None:
    services.device_ack(user=who.user, device_id=who.device.pk, cursor=str(stream_head(user_id=who.user.pk)))


def by_user(body) -> dict[str, dict]:
    return {r["user_id"]: r for r in body["receipts"]}


@pytest.mark.django_db
def test_sender_sees_delivery_then_read_per_member_of_a_big_group(settings, alice, bob, carol,
                                                                   django_capture_on_commit_callbacks):
    settings.MESSAGING_INLINE_FANOUT_MAX = 1  # over the small limit: no per-member receipt events
    group = new_group(alice, bob, carol)
    with django_capture_on_commit_callbacks(execute=True):  # the fan-out runs after commit
        first = send_text(alice, group, "one").json()
        second = send_text(alice, group, "two").json()

    body = receipts(alice, first["id"]).json()
    assert body["has_more"] is False and body["cursor"] is None
    assert by_user(body) == {
        str(bob.user.pk): {"user_id": str(bob.user.pk), "delivered_at": None, "read_at": None},
        str(carol.user.pk): {"user_id": str(carol.user.pk), "delivered_at": None, "read_at": None},
    }

    ack_all(bob)
    bob.client.post(f"/api/v1/conversations/{group}/read", {"seq": first["seq"]}, format="json")
    rows = by_user(receipts(alice, first["id"]).json())
    assert rows[str(bob.user.pk)]["delivered_at"] is not None
    assert rows[str(bob.user.pk)]["read_at"] is not None
    assert rows[str(carol.user.pk)] == {"user_id": str(carol.user.pk), "delivered_at": None, "read_at": None}
    # The second message is delivered to Bob but not read yet.
    rows = by_user(receipts(alice, second["id"]).json())
    assert rows[str(bob.user.pk)]["delivered_at"] is not None and rows[str(bob.user.pk)]["read_at"] is None

    # Reading without a device ack still counts as delivered.
    carol.client.post(f"/api/v1/conversations/{group}/read", {"seq": second["seq"]}, format="json")
    rows = by_user(receipts(alice, first["id"]).json())
    assert rows[str(carol.user.pk)]["delivered_at"] is not None and rows[str(carol.user.pk)]["read_at"] is not None


@pytest.mark.django_db
def test_only_the_sender_may_ask(alice, bob, carol, user_factory):
    group = new_group(alice, bob)
    message = send_text(alice, group).json()
    assert receipts(alice, message["id"]).status_code == 200
    member = receipts(bob, message["id"])
    assert member.status_code == 404 and member.json()["error"]["code"] == "not_found"
    outsider = receipts(carol, message["id"])
    assert outsider.status_code == 404 and outsider.json()["error"]["code"] == "not_found"
    assert receipts(alice, "not-a-uuid").status_code == 404
    assert receipts(alice, "00000000-0000-0000-0000-000000000000").status_code == 404


@pytest.mark.django_db
def test_a_sender_who_left_the_group_no_longer_sees_receipts(alice, bob, carol):
    group = new_group(alice, bob, carol)
    message = send_text(alice, group).json()
    assert alice.client.delete(f"/api/v1/conversations/{group}/members/{alice.user.pk}").status_code == 204
    assert receipts(alice, message["id"]).status_code == 404


@pytest.mark.django_db
def test_pages_walk_every_member_once(user_factory, alice):
    members = [user_factory(phone=f"+4477009001{i:02d}", display_name=f"M{i}") for i in range(7)]
    group = new_group(alice, *members)
    message = send_text(alice, group).json()
    seen, cursor, pages = [], "", 0
    while True:
        body = receipts(alice, message["id"], cursor=cursor, limit=3).json()
        pages += 1
        seen += [r["user_id"] for r in body["receipts"]]
        if not body["has_more"]:
            assert body["cursor"] is None
            break
        cursor = body["cursor"]
    assert pages == 3
    assert sorted(seen) == sorted(str(m.user.pk) for m in members) and len(seen) == len(set(seen))
    bad = receipts(alice, message["id"], cursor="garbage")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"
    assert receipts(alice, message["id"], limit=0).status_code == 400


@pytest.mark.django_db
def test_members_who_joined_later_are_not_listed(alice, bob, carol):
    group = new_group(alice, bob)
    message = send_text(alice, group).json()
    response = alice.client.post(f"/api/v1/conversations/{group}/members", {"user_ids": [str(carol.user.pk)]},
                                 format="json")
    assert response.status_code in (200, 201), response.content
    assert [r["user_id"] for r in receipts(alice, message["id"]).json()["receipts"]] == [str(bob.user.pk)]


@pytest.mark.django_db
def test_read_receipts_off_and_blocks_hide_times(alice, bob, carol):
    group = new_group(alice, bob, carol)
    message = send_text(alice, group).json()
    user_update(user=bob.user, settings_changes={"read_receipts": False})
    for who in (bob, carol):
        who.client.post(f"/api/v1/conversations/{group}/read", {"seq": message["seq"]}, format="json")
    block_create(blocker=carol.user, blocked_id=alice.user.pk)
    rows = by_user(receipts(alice, message["id"]).json())
    assert rows[str(bob.user.pk)]["delivered_at"] is not None and rows[str(bob.user.pk)]["read_at"] is None
    assert rows[str(carol.user.pk)] == {"user_id": str(carol.user.pk), "delivered_at": None, "read_at": None}


@pytest.mark.django_db
def test_broadcast_answers_counts_only(alice, bob, carol):
    channel = new_group(alice, bob, carol, type="broadcast", title="News")
    message = send_text(alice, channel).json()
    ack_all(bob)
    ack_all(carol)
    carol.client.post(f"/api/v1/conversations/{channel}/read", {"seq": message["seq"]}, format="json")
    body = receipts(alice, message["id"]).json()
    assert body == {"receipts": [], "cursor": None, "has_more": False, "delivered_count": 2, "read_count": 1}
    assert receipts(bob, message["id"]).status_code == 404


# --- Coalesced receipts for big groups (item 2b) -------------------------------------------


def counts_events(who, type_: str) -> list[dict]:
    from tests.messaging.conftest import stream_events

    return [data for _, data in stream_events(who.user, type_)]


@contextlib.contextmanager
def held_flushes():
    """Eager Celery would flush at once; hold the scheduled flushes (the window) and list them."""
    from messaging import tasks

    scheduled: list = []
    original = tasks.receipt_counts.apply_async
    tasks.receipt_counts.apply_async = lambda *a, **k: scheduled.append((a, k))
    try:
        yield scheduled
    finally:
        tasks.receipt_counts.apply_async = original


@pytest.mark.django_db
def test_many_readers_in_a_big_group_give_the_sender_one_event_per_message_with_counts(
        settings, user_factory, alice, django_capture_on_commit_callbacks):
    from messaging.services.receipt_counts import receipt_counts_flush

    settings.MESSAGING_INLINE_FANOUT_MAX = 2
    members = [user_factory(phone=f"+4477009002{i:02d}", display_name=f"R{i}") for i in range(6)]
    with django_capture_on_commit_callbacks(execute=True):
        group = new_group(alice, *members)
        first = send_text(alice, group, "one").json()
        second = send_text(alice, group, "two").json()
    user_update(user=members[0].user, settings_changes={"read_receipts": False})

    # Six members read; the notes are written after commit, and only the first schedules a flush.
    with held_flushes() as scheduled:
        for i, member in enumerate(members):
            with django_capture_on_commit_callbacks(execute=True):
                seq = second["seq"] if i < 3 else first["seq"]
                response = member.client.post(f"/api/v1/conversations/{group}/read", {"seq": seq}, format="json")
            assert response.status_code == 204
    assert scheduled == [(((group,),), {"countdown": settings.MESSAGING_RECEIPT_COUNTS_WINDOW})]
    assert counts_events(alice, "receipt.read") == [] and counts_events(alice, "receipt.delivered") == []

    assert receipt_counts_flush(conversation_id=group) == 4
    reads = sorted(counts_events(alice, "receipt.read"), key=lambda d: d["seq"])
    assert reads == [
        {"conversation_id": group, "message_id": first["id"], "seq": first["seq"], "delivered_count": 6,
         "read_count": 5},
        {"conversation_id": group, "message_id": second["id"], "seq": second["seq"], "delivered_count": 3,
         "read_count": 2},
    ]
    assert sorted(counts_events(alice, "receipt.delivered"), key=lambda d: d["seq"]) == reads
    # Nothing moved since: the next window sends nothing; the readers got no receipts at all.
    assert receipt_counts_flush(conversation_id=group) == 0
    assert counts_events(members[1], "receipt.read") == []


@pytest.mark.django_db
def test_device_acks_in_a_big_group_coalesce_into_delivered_counts(
        settings, user_factory, alice, django_capture_on_commit_callbacks):
    from messaging.services.receipt_counts import receipt_counts_flush

    settings.MESSAGING_INLINE_FANOUT_MAX = 2
    members = [user_factory(phone=f"+4477009003{i:02d}", display_name=f"D{i}") for i in range(4)]
    with django_capture_on_commit_callbacks(execute=True):
        group = new_group(alice, *members)
        message = send_text(alice, group).json()
    with held_flushes() as scheduled:
        for member in members[:3]:
            with django_capture_on_commit_callbacks(execute=True):
                ack_all(member)
    assert len(scheduled) == 1
    assert receipt_counts_flush(conversation_id=group) == 1
    assert counts_events(alice, "receipt.delivered") == [
        {"conversation_id": group, "message_id": message["id"], "seq": message["seq"], "delivered_count": 3,
         "read_count": 0}]
    assert counts_events(alice, "receipt.read") == []


@pytest.mark.django_db
def test_small_groups_keep_per_member_receipts_and_no_counts(alice, bob, carol, django_capture_on_commit_callbacks):
    from messaging.services.receipt_counts import receipt_counts_flush

    group = new_group(alice, bob, carol)
    message = send_text(alice, group).json()
    with django_capture_on_commit_callbacks(execute=True):
        bob.client.post(f"/api/v1/conversations/{group}/read", {"seq": message["seq"]}, format="json")
    assert receipt_counts_flush(conversation_id=group) == 0
    assert counts_events(alice, "receipt.read") == [
        {"conversation_id": group, "user_id": str(bob.user.pk), "seq": message["seq"]}]
