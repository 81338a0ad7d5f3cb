"""Extensions for clients that keep no local history (the web client): the other members'
receipt pointers of a conversation, and the head of the caller's stream."""

from __future__ import annotations

import pytest

from accounts.services import user_update
from contacts.services import block_create
from messaging import services
from streams.selectors import stream_head
from tests.messaging.conftest import new_group, send_text


def pointers(who, conversation_id: str):
    response = who.client.get(f"/api/v1/conversations/{conversation_id}/receipts")
    assert response.status_code == 200, response.content
    return response.json()["receipts"]


@pytest.mark.django_db
def test_receipt_pointers_follow_delivery_and_reading(alice, bob, direct):
    assert pointers(alice, direct) == [{"user_id": str(bob.user.pk), "delivered_seq": 0, "read_seq": 0}]
    send_text(alice, direct, "one")
    send_text(alice, direct, "two")
    services.device_ack(user=bob.user, device_id=bob.device.pk, cursor=str(stream_head(user_id=bob.user.pk)))
    assert pointers(alice, direct) == [{"user_id": str(bob.user.pk), "delivered_seq": 2, "read_seq": 0}]
    bob.client.post(f"/api/v1/conversations/{direct}/read", {"seq": 1}, format="json")
    assert pointers(alice, direct) == [{"user_id": str(bob.user.pk), "delivered_seq": 2, "read_seq": 1}]
    # Either side may ask; it never lists the caller.
    assert pointers(bob, direct) == [{"user_id": str(alice.user.pk), "delivered_seq": 0, "read_seq": 0}]


@pytest.mark.django_db
def test_a_member_with_read_receipts_off_shows_no_read_pointer(alice, bob, direct):
    user_update(user=bob.user, settings_changes={"read_receipts": False})
    send_text(alice, direct)
    bob.client.post(f"/api/v1/conversations/{direct}/read", {"seq": 1}, format="json")
    assert pointers(alice, direct) == [{"user_id": str(bob.user.pk), "delivered_seq": 1, "read_seq": None}]


@pytest.mark.django_db
@pytest.mark.parametrize("blocker", ["alice", "bob"])
def test_nothing_crosses_a_block_either_way(alice, bob, direct, blocker):
    send_text(alice, direct)
    bob.client.post(f"/api/v1/conversations/{direct}/read", {"seq": 1}, format="json")
    if blocker == "alice":
        block_create(blocker=alice.user, blocked_id=bob.user.pk)
    else:
        block_create(blocker=bob.user, blocked_id=alice.user.pk)
    assert pointers(alice, direct) == [{"user_id": str(bob.user.pk), "delivered_seq": None, "read_seq": None}]


@pytest.mark.django_db
def test_groups_list_every_other_member_and_broadcasts_none(alice, bob, carol):
    group = new_group(alice, bob, carol)
    assert {p["user_id"] for p in pointers(alice, group)} == {str(bob.user.pk), str(carol.user.pk)}
    broadcast = new_group(alice, bob, type="broadcast", title="News")
    assert pointers(alice, broadcast) == []


@pytest.mark.django_db
@pytest.mark.parametrize("conversation", ["not-a-uuid", "8d0d1f9e-3a4e-4f55-9c56-0a1b2c3d4e5f"])
def test_receipt_pointers_of_an_unknown_conversation_are_not_found(alice, conversation):
    response = alice.client.get(f"/api/v1/conversations/{conversation}/receipts")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_receipt_pointers_of_someone_elses_conversation_are_not_found(alice, bob, carol, direct):
    assert carol.client.get(f"/api/v1/conversations/{direct}/receipts").status_code == 404


@pytest.mark.django_db
def test_receipt_pointers_need_a_token(api, direct):
    assert api.get(f"/api/v1/conversations/{direct}/receipts").status_code == 401


@pytest.mark.django_db
def test_sync_head_is_the_newest_cursor_and_acknowledges_nothing(alice, bob, direct):
    empty = alice.client.get("/api/v1/sync/head").json()
    send_text(bob, direct, "a")
    send_text(bob, direct, "b")
    head = alice.client.get("/api/v1/sync/head").json()["cursor"]
    assert head != empty["cursor"]
    # Nothing after the head; everything before it is still there for /sync.
    assert alice.client.get("/api/v1/sync", {"cursor": head}).json()["events"] == []
    assert [e["data"]["text"] for e in alice.client.get("/api/v1/sync").json()["events"][1:]] == ["a", "b"]
    assert [d for d in alice.client.get("/api/v1/sync/head").json()] == ["cursor"]


@pytest.mark.django_db
def test_sync_head_of_a_new_user_is_empty(user_factory):
    newcomer = user_factory(phone="+447700900099")
    assert newcomer.client.get("/api/v1/sync/head").json() == {"cursor": ""}
