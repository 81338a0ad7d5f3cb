import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.services import user_delete
from core.errors import ValidationFailed
from messaging import services
from messaging.models import Message, MessageHidden
from messaging.services import SendRequest, message_send_many
from tests.messaging.conftest import an_attachment, new_direct, new_group, send_text, stream_events

CONV = "/api/v1/conversations"


def post(who, conversation_id, body):
    return who.client.post(f"{CONV}/{conversation_id}/messages", body, format="json")


def cid() -> str:
    return str(uuid.uuid4())


# --- Types and validation ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("body", [
    {"type": "text", "text": "hello"},
    {"type": "text", "text": "x" * 4096},
    {"type": "image", "attachment_id": "image", "text": "caption"},
    {"type": "voice", "attachment_id": "voice"},
    {"type": "video", "attachment_id": "video"},
    {"type": "file", "attachment_id": "file"},
    {"type": "location", "location": {"lat": 51.5, "lng": -0.12}},
    {"type": "sticker", "text": "party_parrot"},
    {"type": "sticker", "attachment_id": "image"},
])
def test_each_message_type_is_accepted(alice, direct, body):
    if "attachment_id" in body:  # the kind of upload to make
        body = {**body, "attachment_id": an_attachment(alice, body["attachment_id"])}
    response = post(alice, direct, {"client_id": cid(), **body})
    assert response.status_code == 201, response.json()
    message = response.json()
    assert set(message) == {"id", "conversation_id", "seq", "sender_id", "client_id", "type", "text", "attachment",
                            "location", "reply_to", "created_at", "edited_at", "deleted"}
    assert message["type"] == body["type"] and message["seq"] == 1 and message["deleted"] is False
    assert message["location"] == body.get("location")
    stored = Message.objects.get(pk=message["id"])
    assert str(stored.attachment_id) == body.get("attachment_id", "None")


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"type": "text"}, "text"),
    ({"type": "text", "text": "   "}, "text"),
    ({"type": "text", "text": "x" * 4097}, "text"),
    ({"type": "text", "text": 5}, "text"),
    ({"type": "image"}, "attachment_id"),
    ({"type": "image", "attachment_id": 12}, "attachment_id"),
    ({"type": "text", "text": "a", "attachment_id": str(uuid.uuid4())}, "attachment_id"),
    ({"type": "location"}, "location"),
    ({"type": "location", "location": {"lat": 91, "lng": 0}}, "location.lat"),
    ({"type": "location", "location": {"lat": "1", "lng": 0}}, "location.lat"),
    ({"type": "location", "location": {"lat": True, "lng": 0}}, "location.lat"),
    ({"type": "location", "location": {"lat": 1, "lng": 0, "alt": 3}}, "location.alt"),
    ({"type": "text", "text": "a", "location": {"lat": 1, "lng": 0}}, "location"),
    ({"type": "sticker"}, "attachment_id"),
    ({"type": "poll", "text": "a"}, "type"),
    ({"type": "text", "text": "a", "client_id": "nope"}, "client_id"),
    ({"type": "text", "text": "a", "client_id": 7}, "client_id"),
    ({"type": "text", "text": "a", "client_id": None}, "client_id"),
    ({"type": "text", "text": "a", "priority": "high"}, "priority"),
    ({"type": "text", "text": "a", "reply_to": "nope"}, "reply_to"),
])
def test_bad_message_is_a_validation_error_naming_the_field(alice, direct, body, field):
    response = post(alice, direct, {"client_id": cid(), **body})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"], error
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_malformed_json_is_a_validation_error(alice, direct):
    response = alice.client.post(f"{CONV}/{direct}/messages", "{not json", content_type="application/json")
    assert response.status_code == 400
    response = alice.client.post(f"{CONV}/{direct}/messages", "[1]", content_type="application/json")
    assert response.status_code == 400


@pytest.mark.django_db
def test_service_refuses_a_payload_that_is_not_an_object(alice, direct):
    with pytest.raises(ValidationFailed):
        services.message_send(sender=alice.user, conversation_id=direct, payload=["text"])


# --- Replies -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_reply_to_must_be_in_the_same_conversation(alice, bob, carol, direct):
    original = send_text(bob, direct, "question").json()
    other = new_direct(alice, carol)
    foreign = send_text(carol, other, "elsewhere").json()
    reply = send_text(alice, direct, "answer", reply_to=original["id"])
    assert reply.status_code == 201 and reply.json()["reply_to"] == original["id"]
    wrong = send_text(alice, direct, "answer", reply_to=foreign["id"])
    assert wrong.status_code == 400 and "reply_to" in wrong.json()["error"]["details"]
    unknown = send_text(alice, direct, "answer", reply_to=str(uuid.uuid4()))
    assert unknown.status_code == 400


# --- Idempotency ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retry_with_same_client_id_returns_the_original(alice, bob, direct):
    client_id = cid()
    first = post(alice, direct, {"client_id": client_id, "type": "text", "text": "once"})
    again = post(alice, direct, {"client_id": client_id, "type": "text", "text": "once"})
    different = post(alice, direct, {"client_id": client_id, "type": "text", "text": "something else"})
    assert first.status_code == 201
    assert again.status_code == 200 and different.status_code == 200
    assert again.json() == first.json() == different.json()
    assert Message.objects.count() == 1
    assert len(stream_events(bob, "message.new")) == 1
    assert len(stream_events(alice, "message.new")) == 1


@pytest.mark.django_db
def test_same_client_id_from_another_user_is_another_message(alice, bob, direct):
    client_id = cid()
    assert post(alice, direct, {"client_id": client_id, "type": "text", "text": "a"}).status_code == 201
    assert post(bob, direct, {"client_id": client_id, "type": "text", "text": "b"}).status_code == 201
    assert Message.objects.count() == 2


@pytest.mark.django_db
def test_batch_send_isolates_bad_requests_and_duplicates(alice, bob, carol, direct):
    group = new_group(alice, bob, carol)
    dup = cid()
    requests = [
        SendRequest(alice.user, direct, {"client_id": cid(), "type": "text", "text": "one"}),
        SendRequest(alice.user, direct, {"client_id": cid(), "type": "text"}),  # invalid
        SendRequest(bob.user, group, {"client_id": dup, "type": "text", "text": "to group"}),
        SendRequest(carol.user, direct, {"client_id": cid(), "type": "text", "text": "not a member"}),
        SendRequest(bob.user, group, {"client_id": dup, "type": "text", "text": "to group again"}),
        SendRequest(alice.user, direct, {"client_id": cid(), "type": "text", "text": "two"}),
    ]
    results = message_send_many(requests)
    assert [type(r).__name__ for r in results] == ["tuple", "ValidationFailed", "tuple", "NotFound", "tuple",
                                                   "tuple"]
    assert [r[0]["seq"] for r in (results[0], results[5])] == [1, 2]
    assert results[2][1] is True and results[4][1] is False and results[4][0] == results[2][0]
    assert Message.objects.count() == 3
    assert [d["text"] for _, d in stream_events(bob, "message.new")] == ["one", "to group", "two"]


@pytest.mark.django_db
def test_one_to_one_send_costs_a_small_constant_number_of_queries(alice, bob, direct,
                                                                  django_assert_max_num_queries):
    services.message_send(sender=alice.user, conversation_id=direct,
                          payload={"client_id": cid(), "type": "text", "text": "warm"})
    # Replay check, membership, seq UPDATE...RETURNING, message INSERT, recipients,
    # stream counter upsert, events INSERT: 7 statements, plus 4 savepoint statements
    # (the test's own transaction turns both atomic blocks into savepoints) and,
    # once contacts lands, one blockers query.
    with django_assert_max_num_queries(12):
        services.message_send(sender=alice.user, conversation_id=direct,
                              payload={"client_id": cid(), "type": "text", "text": "measured"})


def test_recipients_without_a_push_capable_device_cost_no_push_task(alice, bob, carol, pushes):
    bob.client.put("/api/v1/devices/current/push", {"provider": "apns", "token": "bob"}, format="json")
    group = new_group(alice, bob, carol)  # carol signs in from the web only: no push token
    send_text(alice, group, "ping")
    assert [p["user_id"] for p in pushes] == [str(bob.user.pk)]


# --- Concurrency -----------------------------------------------------------------------------------


def _run_threads(count, target):
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            target(index)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_get_gapless_strictly_increasing_seqs(alice, bob, carol):
    group = new_group(alice, bob, carol)
    senders = [alice, bob, carol, alice.another_device()]

    def send_many(index: int) -> None:
        who = senders[index]
        for n in range(10):
            services.message_send(sender=who.user, conversation_id=group,
                                  payload={"client_id": cid(), "type": "text", "text": f"{index}-{n}"})

    _run_threads(len(senders), send_many)
    assert sorted(Message.objects.values_list("seq", flat=True)) == list(range(1, 41))
    for who in (alice, bob, carol):
        seqs = [d["seq"] for _, d in stream_events(who, "message.new")]
        assert seqs == list(range(1, 41))  # every member's stream holds them in seq order
    assert alice.client.get(f"{CONV}/{group}").json()["last_seq"] == 40


@pytest.mark.django_db(transaction=True)
def test_two_devices_of_one_user_retrying_the_same_send_make_one_message(alice, bob):
    direct = new_direct(alice, bob)
    tablet = alice.another_device()
    client_id = cid()
    results = []

    def send(index: int) -> None:
        who = (alice, tablet)[index % 2]
        response = post(who, direct, {"client_id": client_id, "type": "text", "text": "same"})
        results.append((response.status_code, response.json()["id"]))

    _run_threads(6, send)
    assert sorted(code for code, _ in results) == [200] * 5 + [201]
    assert len({message_id for _, message_id in results}) == 1
    assert Message.objects.count() == 1
    assert len(stream_events(bob, "message.new")) == 1


# --- Events ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_send_emits_message_new_to_every_member_including_the_sender(alice, bob, direct):
    message = send_text(alice, direct, "hello").json()
    assert stream_events(bob, "message.new") == [("message.new", message)]
    assert stream_events(alice, "message.new") == [("message.new", message)]


@pytest.mark.django_db
def test_message_from_a_blocked_sender_never_reaches_the_blocker(alice, bob):
    from contacts.services import block_create

    direct = new_direct(alice, bob)
    block_create(blocker=bob.user, blocked_id=alice.user.pk)
    response = send_text(alice, direct, "are you there?")
    assert response.status_code == 201  # the sender learns nothing of the block
    assert len(stream_events(alice, "message.new")) == 1
    assert stream_events(bob, "message.new") == []
    assert bob.client.get(f"{CONV}/{direct}/messages").json()["messages"] == []
    assert bob.client.get(f"{CONV}/{direct}").json()["unread_count"] == 0
    assert send_text(bob, direct, "hi").status_code == 201
    assert len(stream_events(alice, "message.new")) == 2


# --- History ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_history_pages_backwards_and_forwards(alice, bob, direct):
    for n in range(5):
        send_text(alice, direct, f"m{n}")
    latest = alice.client.get(f"{CONV}/{direct}/messages", {"limit": 2}).json()
    assert [m["seq"] for m in latest["messages"]] == [4, 5] and latest["has_more"] is True
    older = alice.client.get(f"{CONV}/{direct}/messages", {"limit": 2, "before_seq": 4}).json()
    assert [m["seq"] for m in older["messages"]] == [2, 3] and older["has_more"] is True
    forward = alice.client.get(f"{CONV}/{direct}/messages", {"after_seq": 3}).json()
    assert [m["seq"] for m in forward["messages"]] == [4, 5] and forward["has_more"] is False


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{"limit": 201}, {"limit": 0}, {"limit": "ten"}, {"before_seq": "-1"},
                                    {"after_seq": "1.5"}])
def test_history_with_bad_parameters_is_a_validation_error(alice, direct, params):
    assert alice.client.get(f"{CONV}/{direct}/messages", params).status_code == 400


# --- Edit -------------------------------------------------------------------------------------------


def _age(message_id: str, hours: float) -> None:
    Message.objects.filter(pk=message_id).update(created_at=timezone.now() - timedelta(hours=hours))


@pytest.mark.django_db
def test_sender_edits_within_the_window_and_members_hear_of_it(alice, bob, direct):
    message = send_text(alice, direct, "typo").json()
    _age(message["id"], 47)
    response = alice.client.patch(f"/api/v1/messages/{message['id']}", {"text": "fixed"}, format="json")
    assert response.status_code == 200
    assert response.json()["text"] == "fixed" and response.json()["edited_at"] is not None
    assert stream_events(bob, "message.edited") == [("message.edited", response.json())]
    assert stream_events(alice, "message.edited") == [("message.edited", response.json())]


@pytest.mark.django_db
def test_edit_after_the_window_is_forbidden(alice, direct):
    message = send_text(alice, direct, "old").json()
    _age(message["id"], 49)
    response = alice.client.patch(f"/api/v1/messages/{message['id']}", {"text": "new"}, format="json")
    assert response.status_code == 403
    assert Message.objects.get(pk=message["id"]).text == "old"


@pytest.mark.django_db
def test_only_the_sender_edits_and_strangers_get_not_found(alice, bob, carol, direct):
    message = send_text(alice, direct, "mine").json()
    url = f"/api/v1/messages/{message['id']}"
    assert bob.client.patch(url, {"text": "x"}, format="json").status_code == 403
    assert carol.client.patch(url, {"text": "x"}, format="json").status_code == 404
    assert carol.client.patch("/api/v1/messages/garbage", {"text": "x"}, format="json").status_code == 404
    assert alice.client.patch(url, {"text": "x" * 4097}, format="json").status_code == 400
    assert alice.client.patch(url, {"text": ""}, format="json").status_code == 400


@pytest.mark.django_db
def test_recalled_message_cannot_be_edited(alice, direct):
    message = send_text(alice, direct, "gone").json()
    alice.client.delete(f"/api/v1/messages/{message['id']}?for=everyone")
    response = alice.client.patch(f"/api/v1/messages/{message['id']}", {"text": "back"}, format="json")
    assert response.status_code == 409


# --- Recall and delete-for-me -----------------------------------------------------------------------


@pytest.mark.django_db
def test_sender_recalls_for_everyone_within_the_window(alice, bob, direct):
    message = send_text(alice, direct, "oops").json()
    _age(message["id"], 23)
    assert alice.client.delete(f"/api/v1/messages/{message['id']}?for=everyone").status_code == 204
    history = bob.client.get(f"{CONV}/{direct}/messages").json()["messages"]
    assert history[0]["deleted"] is True and history[0]["text"] == "" and history[0]["seq"] == 1
    expected = ("message.deleted", {"conversation_id": direct, "message_id": message["id"], "seq": 1,
                                    "for": "everyone"})
    assert stream_events(bob, "message.deleted") == [expected]
    assert stream_events(alice, "message.deleted") == [expected]
    # Recalling again changes nothing and emits nothing.
    assert alice.client.delete(f"/api/v1/messages/{message['id']}?for=everyone").status_code == 204
    assert len(stream_events(bob, "message.deleted")) == 1


@pytest.mark.django_db
def test_recall_after_the_window_or_by_the_other_side_is_forbidden(alice, bob, direct):
    message = send_text(alice, direct, "old").json()
    assert bob.client.delete(f"/api/v1/messages/{message['id']}?for=everyone").status_code == 403
    _age(message["id"], 25)
    assert alice.client.delete(f"/api/v1/messages/{message['id']}?for=everyone").status_code == 403
    assert Message.objects.get(pk=message["id"]).deleted_at is None


@pytest.mark.django_db
def test_group_admin_recalls_any_message_at_any_time(alice, bob, carol):
    group = new_group(alice, bob, carol)
    message = send_text(bob, group, "spam").json()
    _age(message["id"], 24 * 30)
    assert carol.client.delete(f"/api/v1/messages/{message['id']}?for=everyone").status_code == 403
    assert alice.client.delete(f"/api/v1/messages/{message['id']}?for=everyone").status_code == 204
    assert Message.objects.get(pk=message["id"]).deleted_at is not None


@pytest.mark.django_db
def test_delete_for_me_hides_it_on_my_devices_only(alice, bob, direct):
    message = send_text(alice, direct, "hmm").json()
    assert bob.client.delete(f"/api/v1/messages/{message['id']}?for=me").status_code == 204
    assert bob.client.get(f"{CONV}/{direct}/messages").json()["messages"] == []
    assert len(alice.client.get(f"{CONV}/{direct}/messages").json()["messages"]) == 1
    assert stream_events(bob, "message.deleted")[0][1]["for"] == "me"
    assert stream_events(alice, "message.deleted") == []
    assert bob.client.get(f"{CONV}/{direct}").json()["unread_count"] == 0
    assert MessageHidden.objects.count() == 1


@pytest.mark.django_db
def test_delete_with_unknown_scope_is_a_validation_error(alice, direct):
    message = send_text(alice, direct).json()
    assert alice.client.delete(f"/api/v1/messages/{message['id']}?for=nobody").status_code == 400


# --- Account deletion -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_deleting_an_account_recalls_its_messages_and_memberships(alice, bob, carol):
    direct = new_direct(alice, bob)
    group = new_group(alice, bob, carol)
    send_text(alice, direct, "secret")
    send_text(alice, group, "also secret")
    user_delete(user=alice.user)
    assert not Message.objects.filter(text__contains="secret").exists()
    assert all(m["deleted"] for m in bob.client.get(f"{CONV}/{direct}/messages").json()["messages"])
    group_body = bob.client.get(f"{CONV}/{group}").json()
    assert str(alice.user.pk) not in {m["user_id"] for m in group_body["members"]}
    assert {m["role"] for m in group_body["members"]} == {"owner", "member"}


@pytest.mark.django_db
def test_batch_send_accepts_plain_mappings(alice, direct):
    (result,) = message_send_many([{"sender": alice.user, "conversation_id": direct, "device_id": alice.device.pk,
                                    "payload": {"client_id": cid(), "type": "text", "text": "hi"}}])
    message, created = result
    assert created is True and message["seq"] == 1


# --- Push ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_new_message_asks_for_a_push_to_each_recipient(alice, bob, carol, pushes):
    for person in (alice, bob, carol):
        person.client.put("/api/v1/devices/current/push", {"provider": "fcm", "token": f"t-{person.user.pk}"},
                          format="json")
    group = new_group(alice, bob, carol)
    services.conversation_mute(user=carol.user, conversation_id=group,
                               until=timezone.now() + timedelta(hours=1))
    message = send_text(alice, group, "ping").json()
    by_user = {p["user_id"]: p for p in pushes}
    assert set(by_user) == {str(bob.user.pk), str(carol.user.pk)}  # never the sender
    assert by_user[str(bob.user.pk)]["muted"] is False and by_user[str(carol.user.pk)]["muted"] is True
    assert by_user[str(bob.user.pk)] | {"muted": False} == {
        "user_id": str(bob.user.pk), "kind": "message.new", "title": "Alice", "body": "ping",
        "conversation_id": group, "message_id": message["id"], "muted": False, "collapse_key": group,
    }


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_over_shared_conversations_neither_deadlock_nor_leave_gaps(alice, bob, carol):
    first = new_group(alice, bob, carol)
    second = new_direct(alice, bob)
    third = new_direct(bob, carol)

    def batches(index: int) -> None:
        order = [first, second, third] if index % 2 else [third, second, first]
        sender_for = {first: carol, second: alice, third: bob}
        for _ in range(5):
            results = message_send_many([
                SendRequest(sender_for[c].user, c, {"client_id": cid(), "type": "text", "text": str(index)})
                for c in order
            ])
            assert all(isinstance(r, tuple) and r[1] for r in results), results

    _run_threads(4, batches)
    for conversation_id in (first, second, third):
        seqs = sorted(Message.objects.filter(conversation_id=conversation_id).values_list("seq", flat=True))
        assert seqs == list(range(1, 21))
    bob_seqs = [(d["conversation_id"], d["seq"]) for _, d in stream_events(bob, "message.new")]
    for conversation_id in (first, second, third):
        assert [s for c, s in bob_seqs if c == conversation_id] == list(range(1, 21))


# --- Atomicity and wake-ups -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_send_that_fails_mid_way_leaves_no_message_no_event_and_no_seq_gap(alice, bob, direct, monkeypatch):
    from messaging.services import sending

    def explode(*args, **kwargs):
        raise RuntimeError("crash after the statement wrote everything, before the commit")

    monkeypatch.setattr(sending, "_apply", explode)
    with pytest.raises(RuntimeError):
        services.message_send(sender=alice.user, conversation_id=direct,
                              payload={"client_id": cid(), "type": "text", "text": "lost"})
    monkeypatch.undo()
    assert Message.objects.count() == 0
    assert stream_events(bob, "message.new") == []
    message, created = services.message_send(sender=alice.user, conversation_id=direct,
                                             payload={"client_id": cid(), "type": "text", "text": "kept"})
    assert created and message["seq"] == 1


@pytest.mark.django_db(transaction=True)
async def test_send_rings_the_recipients_sockets_after_commit(alice, bob):
    import asyncio

    import orjson
    from asgiref.sync import sync_to_async

    from streams.hub import hub, key

    class Listener:
        user_key, device_key = key(bob.user.pk), key(bob.device.pk)

        def __init__(self) -> None:
            self.got: asyncio.Queue = asyncio.Queue()

        async def deliver_events(self, events):
            for event in events:
                self.got.put_nowait(event)

    direct = await sync_to_async(new_direct)(alice, bob)
    listener = Listener()
    await hub().attach(listener)
    try:
        message = (await sync_to_async(send_text)(alice, direct, "ding")).json()
        position, frame = await asyncio.wait_for(listener.got.get(), timeout=5)
    finally:
        hub().detach(listener)
    event = orjson.loads(frame)["event"]
    assert (event["type"], event["data"], event["cursor"]) == ("message.new", message, str(position))
