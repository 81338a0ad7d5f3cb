import pytest

from accounts.services import user_update
from messaging import services
from messaging.models import DeviceCursor, Membership
from streams.selectors import stream_head
from tests.messaging.conftest import new_direct, new_group, send_text, stream_events

SYNC = "/api/v1/sync"


def receipts(user, kind):
    return [d for _, d in stream_events(user, f"receipt.{kind}")]


# --- Sync paging ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sync_pages_the_stream_in_order_exactly_once(alice, bob, direct):
    for n in range(5):
        send_text(alice, direct, f"m{n}")
    seen = []
    cursor = ""
    for _ in range(10):
        page = bob.client.get(SYNC, {"cursor": cursor, "limit": 2}).json()
        assert set(page) == {"events", "cursor", "has_more"}
        for event in page["events"]:
            assert set(event) == {"cursor", "type", "data", "created_at"}
        seen += page["events"]
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    assert [e["type"] for e in seen] == ["conversation.created"] + ["message.new"] * 5
    assert [e["data"]["text"] for e in seen[1:]] == [f"m{n}" for n in range(5)]
    assert len({e["cursor"] for e in seen}) == 6
    empty = bob.client.get(SYNC, {"cursor": cursor}).json()
    assert empty == {"events": [], "cursor": cursor, "has_more": False}


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{"cursor": "abc"}, {"cursor": "-1"}, {"cursor": "9" * 40}, {"limit": 501},
                                    {"limit": 0}, {"limit": "many"}])
def test_sync_with_garbage_parameters_is_a_validation_error(alice, params):
    response = alice.client.get(SYNC, params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.django_db
def test_events_committed_without_a_live_ring_are_still_synced(alice, bob, direct):
    # No on_commit callbacks run in this test: the socket ring never happened,
    # as if the process died right after commit. Sync still brings the message.
    send_text(alice, direct, "survives")
    events = bob.client.get(SYNC).json()["events"]
    assert events[-1]["type"] == "message.new" and events[-1]["data"]["text"] == "survives"


@pytest.mark.django_db
def test_each_device_keeps_its_own_cursor(alice, bob, direct):
    send_text(alice, direct)
    tablet = bob.another_device()
    head = str(stream_head(user_id=bob.user.pk))
    bob.client.get(SYNC, {"cursor": head})
    assert DeviceCursor.objects.get(device=bob.device).position == int(head)
    assert not DeviceCursor.objects.filter(device=tablet.device).exists()
    assert len(tablet.client.get(SYNC).json()["events"]) == 2


# --- Receipts: sent -> delivered -> read ------------------------------------------------------------


@pytest.mark.django_db
def test_receipts_go_sent_then_delivered_then_read(alice, bob, direct):
    sent = send_text(alice, direct, "hello")
    assert sent.status_code == 201  # S: acknowledged means committed
    page = bob.client.get(SYNC).json()  # fetched, not yet proven stored
    assert receipts(alice, "delivered") == []
    bob.client.get(SYNC, {"cursor": page["cursor"]})  # D: the device stored up to here
    assert receipts(alice, "delivered") == [{"conversation_id": direct, "user_id": str(bob.user.pk), "seq": 1}]
    assert Membership.objects.get(conversation_id=direct, user=bob.user).delivered_seq == 1

    response = bob.client.post(f"/api/v1/conversations/{direct}/read", {"seq": 1}, format="json")
    assert response.status_code == 204  # R
    assert receipts(alice, "read") == [{"conversation_id": direct, "user_id": str(bob.user.pk), "seq": 1}]
    assert stream_events(bob, "conversation.updated")[-1][1] == {"conversation_id": direct, "read_seq": 1,
                                                                  "unread_count": 0}
    assert receipts(bob, "read") == [] and receipts(bob, "delivered") == []
    assert bob.client.get(f"/api/v1/conversations/{direct}").json()["read_seq"] == 1


@pytest.mark.django_db
def test_ack_moves_forward_only_and_another_device_does_not_repeat_receipts(alice, bob, direct):
    send_text(alice, direct, "one")
    send_text(alice, direct, "two")
    head = stream_head(user_id=bob.user.pk)
    services.device_ack(user=bob.user, device_id=bob.device.pk, cursor=str(head))
    services.device_ack(user=bob.user, device_id=bob.device.pk, cursor="1")
    assert DeviceCursor.objects.get(device=bob.device).position == head
    tablet = bob.another_device()
    services.device_ack(user=bob.user, device_id=tablet.device.pk, cursor=str(head))
    assert receipts(alice, "delivered") == [{"conversation_id": direct, "user_id": str(bob.user.pk), "seq": 2}]


@pytest.mark.django_db
def test_ack_beyond_the_stream_head_is_clamped(alice, bob, direct):
    send_text(alice, direct)
    services.device_ack(user=bob.user, device_id=bob.device.pk, cursor="999999")
    assert DeviceCursor.objects.get(device=bob.device).position == stream_head(user_id=bob.user.pk)
    send_text(alice, direct, "later")
    services.device_ack(user=bob.user, device_id=bob.device.pk, cursor=str(stream_head(user_id=bob.user.pk)))
    assert [r["seq"] for r in receipts(alice, "delivered")] == [1, 2]


@pytest.mark.django_db
def test_own_messages_never_produce_receipts(alice, bob, direct):
    send_text(alice, direct)
    services.device_ack(user=alice.user, device_id=alice.device.pk, cursor=str(stream_head(user_id=alice.user.pk)))
    assert receipts(alice, "delivered") == [] and receipts(bob, "delivered") == []


@pytest.mark.django_db
def test_group_delivered_receipt_goes_to_each_sender_once(alice, bob, carol):
    group = new_group(alice, bob, carol)
    send_text(alice, group)
    send_text(bob, group)
    send_text(alice, group)
    services.device_ack(user=carol.user, device_id=carol.device.pk, cursor=str(stream_head(user_id=carol.user.pk)))
    expected = {"conversation_id": group, "user_id": str(carol.user.pk), "seq": 3}
    assert receipts(alice, "delivered")[-1:] == [expected]
    assert expected in receipts(bob, "delivered")


@pytest.mark.django_db
def test_read_receipts_off_keeps_the_pointer_but_tells_nobody(alice, bob, direct):
    user_update(user=bob.user, settings_changes={"read_receipts": False})
    bob.user.refresh_from_db()
    send_text(alice, direct)
    assert bob.client.post(f"/api/v1/conversations/{direct}/read", {"seq": 1}, format="json").status_code == 204
    assert receipts(alice, "read") == []
    assert Membership.objects.get(conversation_id=direct, user=bob.user).read_seq == 1


@pytest.mark.django_db
def test_read_pointer_never_moves_back(alice, bob, direct):
    for _ in range(3):
        send_text(alice, direct)
    url = f"/api/v1/conversations/{direct}/read"
    assert bob.client.post(url, {"seq": 3}, format="json").status_code == 204
    before = len(stream_events(alice))
    assert bob.client.post(url, {"seq": 1}, format="json").status_code == 204  # in the past: a no-op
    assert bob.client.post(url, {"seq": 3}, format="json").status_code == 204
    assert Membership.objects.get(conversation_id=direct, user=bob.user).read_seq == 3
    assert len(stream_events(alice)) == before


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{"seq": 2}, {"seq": -1}, {"seq": "1"}, {"seq": 1.0}, {"seq": True}, {},
                                  {"seq": 1, "extra": 1}])
def test_read_with_bad_seq_is_a_validation_error(alice, bob, direct, body):
    send_text(alice, direct)
    response = bob.client.post(f"/api/v1/conversations/{direct}/read", body, format="json")
    assert response.status_code == 400
    assert Membership.objects.get(conversation_id=direct, user=bob.user).read_seq == 0


@pytest.mark.django_db
def test_unread_count_follows_the_read_pointer(alice, bob, direct):
    for _ in range(3):
        send_text(alice, direct)
    assert bob.client.get(f"/api/v1/conversations/{direct}").json()["unread_count"] == 3
    bob.client.post(f"/api/v1/conversations/{direct}/read", {"seq": 2}, format="json")
    assert bob.client.get(f"/api/v1/conversations/{direct}").json()["unread_count"] == 1


@pytest.mark.django_db
def test_read_receipt_is_not_sent_to_a_blocked_user(alice, bob, monkeypatch):
    import contacts.selectors

    monkeypatch.setattr(contacts.selectors, "blocked_either_way",
                        lambda *, user_id, other_ids: {str(bob.user.pk)} & set(other_ids), raising=False)
    direct = new_direct(alice, bob)
    send_text(bob, direct)
    send_text(bob, direct)
    alice.client.post(f"/api/v1/conversations/{direct}/read", {"seq": 2}, format="json")
    assert receipts(bob, "read") == []
