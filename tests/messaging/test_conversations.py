import threading
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.models import Conversation, Membership
from tests.messaging.conftest import new_direct, new_group, send_text, stream_events

URL = "/api/v1/conversations"


# --- Direct -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_direct_create_returns_the_same_conversation_every_time(alice, bob):
    first = alice.client.post(URL, {"type": "direct", "user_id": str(bob.user.pk)}, format="json")
    again = alice.client.post(URL, {"type": "direct", "user_id": str(bob.user.pk)}, format="json")
    other_side = bob.client.post(URL, {"type": "direct", "user_id": str(alice.user.pk)}, format="json")
    assert first.status_code == 201
    assert again.status_code == 200 and other_side.status_code == 200
    assert first.json()["id"] == again.json()["id"] == other_side.json()["id"]
    body = first.json()
    assert body["type"] == "direct" and body["last_seq"] == 0 and body["unread_count"] == 0
    assert {m["user_id"] for m in body["members"]} == {str(alice.user.pk), str(bob.user.pk)}
    assert set(body) >= {"id", "type", "title", "members", "last_seq", "last_message", "unread_count",
                         "read_seq", "muted_until", "created_at", "updated_at"}
    assert Conversation.objects.count() == 1
    assert [t for t, _ in stream_events(bob)] == ["conversation.created"]


@pytest.mark.django_db
@pytest.mark.parametrize("body", [
    {"type": "direct"},
    {"type": "direct", "user_id": "not-a-uuid"},
    {"type": "direct", "user_id": 5},
    {"type": "direct", "user_id": str(uuid.uuid4())},
    {"type": "direct", "user_id": None},
    {"type": "channel", "title": "x"},
    {"type": "group"},
    {"type": "group", "title": "   "},
    {"type": "group", "title": "x" * 129},
    {"type": "group", "title": "x", "member_ids": [str(uuid.uuid4())]},
    {"type": "group", "title": "x", "member_ids": "abc"},
    {"type": "group", "title": "x", "color": "red"},
])
def test_create_with_bad_input_is_a_validation_error(alice, body):
    response = alice.client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert Conversation.objects.count() == 0


@pytest.mark.django_db
def test_direct_with_oneself_is_refused(alice):
    response = alice.client.post(URL, {"type": "direct", "user_id": str(alice.user.pk)}, format="json")
    assert response.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_concurrent_direct_creation_makes_exactly_one_conversation(alice, bob):
    results: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def create(index: int) -> None:
        try:
            me, other = (alice, bob) if index % 2 else (bob, alice)
            barrier.wait(timeout=10)
            response = me.client.post(URL, {"type": "direct", "user_id": str(other.user.pk)}, format="json")
            results.append((response.status_code, response.json()["id"]))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len({conversation_id for _, conversation_id in results}) == 1
    assert sorted(code for code, _ in results) == [200] * 5 + [201]
    assert Conversation.objects.count() == 1
    assert Membership.objects.count() == 2


# --- Groups and roles ------------------------------------------------------------------------


@pytest.mark.django_db
def test_group_create_makes_creator_owner_and_tells_every_member(alice, bob, carol):
    response = alice.client.post(URL, {"type": "group", "title": "Trip",
                                       "member_ids": [str(bob.user.pk), str(carol.user.pk), str(bob.user.pk)]},
                                 format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["title"] == "Trip"
    roles = {m["user_id"]: m["role"] for m in body["members"]}
    assert roles == {str(alice.user.pk): "owner", str(bob.user.pk): "member", str(carol.user.pk): "member"}
    for who in (alice, bob, carol):
        assert [(t, d["id"]) for t, d in stream_events(who)] == [("conversation.created", body["id"])]


@pytest.mark.django_db
def test_owner_promotes_admin_who_adds_and_removes_members(alice, bob, carol, user_factory):
    dave = user_factory(display_name="Dave")
    conversation_id = new_group(alice, bob, carol)
    promote = alice.client.patch(f"{URL}/{conversation_id}/members/{bob.user.pk}", {"role": "admin"}, format="json")
    assert promote.status_code == 200
    assert {m["user_id"]: m["role"] for m in promote.json()["members"]}[str(bob.user.pk)] == "admin"
    assert stream_events(carol, "conversation.updated") == [("conversation.updated", {
        "conversation_id": conversation_id, "member": {"user_id": str(bob.user.pk), "role": "admin"}})]

    added = bob.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(dave.user.pk)]}, format="json")
    assert added.status_code == 200
    assert str(dave.user.pk) in {m["user_id"] for m in added.json()["members"]}
    assert ("member.added", {"conversation_id": conversation_id, "user_id": str(dave.user.pk), "role": "member",
                             "by": str(bob.user.pk)}) in stream_events(carol)
    assert [t for t, _ in stream_events(dave)] == ["conversation.created", "member.added"]

    removed = bob.client.delete(f"{URL}/{conversation_id}/members/{carol.user.pk}")
    assert removed.status_code == 204
    assert stream_events(carol, "member.removed")[-1][1]["user_id"] == str(carol.user.pk)
    assert carol.client.get(f"{URL}/{conversation_id}").status_code == 404
    assert send_text(carol, conversation_id).status_code == 404


@pytest.mark.django_db
def test_members_cannot_manage_and_admins_cannot_remove_owner_or_admins(alice, bob, carol, user_factory):
    dave = user_factory()
    conversation_id = new_group(alice, bob, carol, dave)
    assert carol.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(dave.user.pk)]},
                             format="json").status_code == 403
    assert carol.client.delete(f"{URL}/{conversation_id}/members/{bob.user.pk}").status_code == 403
    assert carol.client.patch(f"{URL}/{conversation_id}", {"title": "mine"}, format="json").status_code == 403
    alice.client.patch(f"{URL}/{conversation_id}/members/{bob.user.pk}", {"role": "admin"}, format="json")
    alice.client.patch(f"{URL}/{conversation_id}/members/{carol.user.pk}", {"role": "admin"}, format="json")
    assert bob.client.delete(f"{URL}/{conversation_id}/members/{alice.user.pk}").status_code == 403
    assert bob.client.delete(f"{URL}/{conversation_id}/members/{carol.user.pk}").status_code == 403
    assert bob.client.patch(f"{URL}/{conversation_id}/members/{dave.user.pk}", {"role": "admin"},
                            format="json").status_code == 403
    assert alice.client.delete(f"{URL}/{conversation_id}/members/{carol.user.pk}").status_code == 204


@pytest.mark.django_db
def test_member_leaves_and_owner_leaving_hands_over(alice, bob, carol):
    conversation_id = new_group(alice, bob, carol)
    assert carol.client.delete(f"{URL}/{conversation_id}/members/{carol.user.pk}").status_code == 204
    assert carol.client.get(f"{URL}/{conversation_id}").status_code == 404
    assert alice.client.delete(f"{URL}/{conversation_id}/members/{alice.user.pk}").status_code == 204
    body = bob.client.get(f"{URL}/{conversation_id}").json()
    assert body["members"] == [{"user_id": str(bob.user.pk), "role": "owner"}]
    assert stream_events(bob, "conversation.updated")[-1][1] == {
        "conversation_id": conversation_id, "member": {"user_id": str(bob.user.pk), "role": "owner"}}
    assert [d["user_id"] for _, d in stream_events(bob, "member.removed")] == [str(carol.user.pk),
                                                                               str(alice.user.pk)]
    assert body["member_count"] == 1


@pytest.mark.django_db
def test_removed_member_can_be_added_back_with_nothing_unread(alice, bob, carol):
    conversation_id = new_group(alice, bob, carol)
    alice.client.delete(f"{URL}/{conversation_id}/members/{carol.user.pk}")
    send_text(alice, conversation_id)
    response = alice.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(carol.user.pk)]},
                                 format="json")
    assert response.status_code == 200
    body = carol.client.get(f"{URL}/{conversation_id}").json()
    assert body["unread_count"] == 0 and body["read_seq"] == 1 and body["member_count"] == 3


@pytest.mark.django_db
def test_direct_conversation_has_no_members_to_manage(alice, bob, carol):
    conversation_id = new_direct(alice, bob)
    assert alice.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(carol.user.pk)]},
                             format="json").status_code == 400
    assert alice.client.delete(f"{URL}/{conversation_id}/members/{alice.user.pk}").status_code == 400
    assert alice.client.patch(f"{URL}/{conversation_id}", {"title": "x"}, format="json").status_code == 400


@pytest.mark.django_db
def test_removing_someone_who_is_not_a_member_is_not_found(alice, bob, carol):
    conversation_id = new_group(alice, bob)
    assert alice.client.delete(f"{URL}/{conversation_id}/members/{carol.user.pk}").status_code == 404
    assert alice.client.delete(f"{URL}/{conversation_id}/members/garbage").status_code == 404


@pytest.mark.django_db
def test_title_change_tells_every_member(alice, bob):
    conversation_id = new_group(alice, bob)
    response = alice.client.patch(f"{URL}/{conversation_id}", {"title": "New name"}, format="json")
    assert response.status_code == 200 and response.json()["title"] == "New name"
    assert stream_events(bob, "conversation.updated") == [
        ("conversation.updated", {"conversation_id": conversation_id, "title": "New name"})]


# --- Non-members learn nothing -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("conversation", ["foreign", "unknown", "garbage"])
def test_non_member_gets_not_found_everywhere(alice, bob, carol, conversation):
    conversation_id = {"foreign": new_direct(alice, bob), "unknown": str(uuid.uuid4()),
                       "garbage": "x' OR 1=1"}[conversation]
    client = carol.client
    calls = [
        client.get(f"{URL}/{conversation_id}"),
        client.patch(f"{URL}/{conversation_id}", {"title": "x"}, format="json"),
        client.get(f"{URL}/{conversation_id}/messages"),
        send_text(carol, conversation_id),
        client.post(f"{URL}/{conversation_id}/read", {"seq": 0}, format="json"),
        client.put(f"{URL}/{conversation_id}/mute", {"until": None}, format="json"),
        client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(carol.user.pk)]}, format="json"),
        client.delete(f"{URL}/{conversation_id}/members/{carol.user.pk}"),
    ]
    for response in calls:
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_requests_without_a_token_are_unauthenticated(api):
    assert api.get(URL).status_code == 401


# --- Broadcast ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_only_admins_post_in_a_broadcast(alice, bob, carol):
    response = alice.client.post(URL, {"type": "broadcast", "title": "News",
                                       "member_ids": [str(bob.user.pk), str(carol.user.pk)]}, format="json")
    assert response.status_code == 201
    conversation_id = response.json()["id"]
    # The audience is not listed, only the owner and admins.
    assert response.json()["members"] == [{"user_id": str(alice.user.pk), "role": "owner"}]
    assert response.json()["member_count"] == 3
    refused = send_text(bob, conversation_id)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert send_text(alice, conversation_id).status_code == 201
    alice.client.patch(f"{URL}/{conversation_id}/members/{bob.user.pk}", {"role": "admin"}, format="json")
    assert send_text(bob, conversation_id).status_code == 201
    assert [d["seq"] for _, d in stream_events(carol, "message.new")] == [1, 2]


# --- Mute -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_mute_sets_and_clears_until_and_syncs_own_devices(alice, bob, direct):
    response = alice.client.put(f"{URL}/{direct}/mute", {"until": "2030-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 200
    assert response.json()["muted_until"] == "2030-01-01T00:00:00.000Z"
    assert stream_events(alice, "conversation.updated")[-1][1] == {
        "conversation_id": direct, "muted_until": "2030-01-01T00:00:00.000Z"}
    assert stream_events(bob, "conversation.updated") == []
    response = alice.client.put(f"{URL}/{direct}/mute", {"until": None}, format="json")
    assert response.json()["muted_until"] is None


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{}, {"until": "tomorrow"}, {"until": 5}, {"until": None, "x": 1}])
def test_mute_with_bad_input_is_a_validation_error(alice, direct, body):
    assert alice.client.put(f"{URL}/{direct}/mute", body, format="json").status_code == 400


# --- List --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_is_sorted_by_activity_with_unread_and_last_message(alice, bob, carol):
    with_bob = new_direct(alice, bob)
    with_carol = new_direct(alice, carol)
    group = new_group(alice, bob, carol)
    send_text(bob, with_bob, "one")
    send_text(bob, with_bob, "two")
    send_text(carol, with_carol, "hey")
    send_text(alice, group, "mine")
    page = alice.client.get(URL).json()
    assert page["has_more"] is False and page["cursor"]
    body = page["conversations"]
    assert [c["id"] for c in body] == [group, with_carol, with_bob]
    by_id = {c["id"]: c for c in body}
    assert by_id[with_bob]["unread_count"] == 2 and by_id[with_bob]["last_message"]["text"] == "two"
    assert by_id[with_carol]["unread_count"] == 1
    assert by_id[group]["unread_count"] == 0  # one's own messages are never unread
    send_text(bob, with_bob, "three")
    assert alice.client.get(URL).json()["conversations"][0]["id"] == with_bob


@pytest.mark.django_db
def test_list_costs_the_same_queries_for_many_conversations(alice, user_factory):
    def fill(count: int) -> None:
        for _ in range(count):
            other = user_factory()
            conversation_id = new_direct(alice, other)
            send_text(other, conversation_id)

    def list_queries(expected: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert len(alice.client.get(URL).json()["conversations"]) == expected
        return len(captured.captured_queries)

    fill(2)
    few = list_queries(2)
    fill(8)
    assert list_queries(10) == few <= 7  # auth, then page + members + last messages + moved-since check


def _walk(client, limit: int, between_pages=None) -> list[list[str]]:
    pages, cursor = [], ""
    while True:
        response = client.get(URL, {"limit": limit, "cursor": cursor})
        assert response.status_code == 200
        body = response.json()
        pages.append([c["id"] for c in body["conversations"]])
        cursor = body["cursor"]
        if not body["has_more"]:
            return pages
        if between_pages:
            between_pages(len(pages))


@pytest.mark.django_db
def test_list_pages_with_cursor_and_has_more_through_thousands(alice, user_factory):
    """3,000 chats: every one reached once, newest activity first, 200 at a time."""
    from datetime import timedelta

    from django.utils import timezone

    from messaging.models import Conversation, ConversationType, Membership, Role

    base = timezone.now() - timedelta(days=30)
    conversations = Conversation.objects.bulk_create(
        [Conversation(type=ConversationType.GROUP, title=f"g{n}", member_count=1) for n in range(3000)])
    Membership.objects.bulk_create([Membership(conversation=c, user=alice.user, role=Role.OWNER)
                                    for c in conversations])
    for n, conversation in enumerate(conversations):
        conversation.updated_at = base + timedelta(seconds=n // 3)  # ties on activity: the id breaks them
    Conversation.objects.bulk_update(conversations, ["updated_at"])

    pages = _walk(alice.client, 200)
    seen = [cid for page in pages for cid in page]
    assert len(pages) == 15 and all(len(page) == 200 for page in pages)
    assert len(seen) == len(set(seen)) == 3000
    expected = sorted(conversations, key=lambda c: (c.updated_at, c.pk), reverse=True)
    assert seen == [str(c.pk) for c in expected]


@pytest.mark.django_db
def test_list_walk_is_stable_while_new_messages_reorder_the_list(alice, user_factory):
    others = [user_factory() for _ in range(7)]
    ids = [new_direct(alice, other) for other in others]
    for other, conversation_id in zip(others, ids, strict=True):
        send_text(other, conversation_id)
    newest_first = list(reversed(ids))

    def activity(page_number: int) -> None:
        if page_number == 1:
            send_text(others[0], ids[0], "the oldest, not yet listed, jumps to the top")
            send_text(others[6], ids[6], "one already listed jumps again")

    pages = _walk(alice.client, 3, activity)
    seen = [cid for page in pages for cid in page]
    # Nothing of the first walk repeated in place or skipped; what moved comes once more at the end.
    assert pages[0] == newest_first[:3]
    first_pass = [cid for cid in seen[3:] if cid not in (ids[0], ids[6])]
    assert first_pass == newest_first[3:6]
    assert set(seen) == set(ids)
    assert sorted(seen[-2:]) == sorted([ids[0], ids[6]])

    # The last cursor, used later, is "what changed since".
    last = alice.client.get(URL, {"limit": 3}).json()
    while last["has_more"]:
        last = alice.client.get(URL, {"limit": 3, "cursor": last["cursor"]}).json()
    send_text(others[3], ids[3], "later")
    since = alice.client.get(URL, {"cursor": last["cursor"]}).json()
    assert [c["id"] for c in since["conversations"]] == [ids[3]]
    assert since["conversations"][0]["last_message"]["text"] == "later"


@pytest.mark.django_db
def test_list_refuses_bad_limits_and_cursors(alice):
    assert alice.client.get(URL, {"limit": 0}).status_code == 400
    assert alice.client.get(URL, {"limit": 201}).status_code == 400
    for cursor in ("yesterday", "W10", "eyJ4IjoxfQ", "A" * 500, "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwwLDAsMF0"):
        response = alice.client.get(URL, {"cursor": cursor})
        assert response.status_code == 400, cursor
        assert response.json()["error"]["details"] == {"cursor": ["Not a cursor this server handed out."]}


@pytest.mark.django_db
def test_broadcast_audience_does_not_hear_of_each_other(alice, bob, carol):
    conversation_id = new_group(alice, bob, type="broadcast", title="News")
    alice.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(carol.user.pk)]}, format="json")
    assert stream_events(bob, "member.added") == []
    assert [t for t, _ in stream_events(carol)] == ["conversation.created", "member.added"]
    assert len(stream_events(alice, "member.added")) == 1


@pytest.mark.django_db
def test_group_read_receipt_goes_to_every_other_member(alice, bob, carol):
    conversation_id = new_group(alice, bob, carol)
    send_text(alice, conversation_id)
    carol.client.post(f"{URL}/{conversation_id}/read", {"seq": 1}, format="json")
    receipt = {"conversation_id": conversation_id, "user_id": str(carol.user.pk), "seq": 1}
    assert stream_events(alice, "receipt.read") == [("receipt.read", receipt)]
    assert stream_events(bob, "receipt.read") == [("receipt.read", receipt)]
    assert stream_events(carol, "receipt.read") == []


@pytest.mark.django_db
def test_direct_conversation_from_a_blocked_user_is_not_announced_to_the_blocker(alice, bob, monkeypatch):
    import contacts.selectors

    monkeypatch.setattr(contacts.selectors, "blockers_of",
                        lambda *, user_id, candidate_ids: {str(bob.user.pk)} & {str(c) for c in candidate_ids}
                        if str(user_id) == str(alice.user.pk) else set(), raising=False)
    response = alice.client.post(URL, {"type": "direct", "user_id": str(bob.user.pk)}, format="json")
    assert response.status_code == 201
    assert [t for t, _ in stream_events(alice)] == ["conversation.created"]
    assert stream_events(bob) == []
