"""Who may add me to a group (`settings.group_add`), and the invitations sent instead:
the `invited` list, `group.invited`, POST /conversations/{id}/join, expiry, blocks, the
daily allowance, broadcasts. Everything through REST, as a client sees it."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from contacts.services import contacts_user_registered
from messaging.models import Conversation, GroupInvitation, Membership
from tests.contacts.conftest import discovery_of, sync
from tests.factories import SignedInDevice, sign_in
from tests.messaging.conftest import send_text, stream_events

URL = "/api/v1/conversations"


def person(group_add: str, name: str = "") -> SignedInDevice:
    return sign_in(display_name=name, group_add=group_add)


def has_in_book(owner: SignedInDevice, *others: SignedInDevice) -> None:
    """`owner` uploads an address book holding the others' numbers (the contacts API)."""
    discovery = discovery_of(owner.client)
    for other in others:
        # What signup does (its contact.joined announcement, after commit, does not run here).
        contacts_user_registered(user_id=other.user.pk)
    response = sync(owner.client, discovery, [o.user.phone for o in others])
    assert response.status_code == 200
    assert len(response.json()["matches"]) == len(others)


def block(blocker: SignedInDevice, blocked: SignedInDevice) -> None:
    assert blocker.client.post("/api/v1/blocks", {"user_id": str(blocked.user.pk)}, format="json").status_code == 204


def create_group(owner: SignedInDevice, *members: SignedInDevice, type: str = "group"):
    return owner.client.post(URL, {"type": type, "title": "Trip", "member_ids": [str(m.user.pk) for m in members]},
                             format="json")


def member_ids(body: dict) -> set[str]:
    return {m["user_id"] for m in body["members"]}


def sync_events(who: SignedInDevice, type: str) -> list[dict]:
    """Events of a type as a device reads them through GET /sync."""
    body = who.client.get("/api/v1/sync", {"limit": 500}).json()
    return [e["data"] for e in body["events"] if e["type"] == type]


# --- The setting --------------------------------------------------------------------------


@pytest.mark.django_db
def test_contacts_default_invites_a_stranger_instead_of_adding_them(alice):
    stranger = person("contacts")
    response = create_group(alice, stranger)
    assert response.status_code == 201
    body = response.json()
    conversation_id = body["id"]
    assert member_ids(body) == {str(alice.user.pk)} and body["member_count"] == 1
    assert body["invited"] == [str(stranger.user.pk)]
    # The invitee learns of it through their stream, and of nothing else.
    [invite] = sync_events(stranger, "group.invited")
    assert invite["conversation_id"] == conversation_id and invite["by"] == str(alice.user.pk)
    assert invite["type"] == "group" and invite["title"] == "Trip" and invite["member_count"] == 1
    expires = timezone.datetime.fromisoformat(invite["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=6, hours=23) < expires - timezone.now() <= timedelta(days=7)
    assert [t for t, _ in stream_events(stranger)] == ["group.invited"]
    # Until they join, the group does not exist for them.
    assert stranger.client.get(f"{URL}/{conversation_id}").status_code == 404
    assert stranger.client.get(f"{URL}/{conversation_id}/messages").status_code == 404
    assert send_text(stranger, conversation_id).status_code == 404
    assert stranger.client.get(URL).json()["conversations"] == []
    # The members' snapshot does not list the invitee.
    [(_, created)] = stream_events(alice, "conversation.created")
    assert member_ids(created) == {str(alice.user.pk)}


@pytest.mark.django_db
def test_contacts_admits_whoever_is_in_the_invitees_own_book(alice):
    friend = person("contacts")
    has_in_book(friend, alice)
    response = create_group(alice, friend)
    assert response.status_code == 201
    assert member_ids(response.json()) == {str(alice.user.pk), str(friend.user.pk)}
    assert response.json()["invited"] == []
    assert [t for t, _ in stream_events(friend)] == ["conversation.created"]


@pytest.mark.django_db
def test_contacts_is_one_way_the_adders_book_does_not_count(alice):
    target = person("contacts")
    has_in_book(alice, target)  # alice knows target's number; target never saved alice's
    body = create_group(alice, target).json()
    assert body["invited"] == [str(target.user.pk)] and member_ids(body) == {str(alice.user.pk)}


@pytest.mark.django_db
def test_everyone_is_added_directly(alice):
    open_person = person("everyone")
    body = create_group(alice, open_person).json()
    assert member_ids(body) == {str(alice.user.pk), str(open_person.user.pk)} and body["invited"] == []
    assert stream_events(open_person, "group.invited") == []


@pytest.mark.django_db
def test_nobody_is_invited_even_by_a_contact(alice):
    private = person("nobody")
    has_in_book(private, alice)
    body = create_group(alice, private).json()
    assert body["invited"] == [str(private.user.pk)] and member_ids(body) == {str(alice.user.pk)}
    assert len(stream_events(private, "group.invited")) == 1


@pytest.mark.django_db
def test_one_request_mixes_added_and_invited(alice):
    everyone, nobody, contacts = person("everyone"), person("nobody"), person("contacts")
    body = create_group(alice, everyone, nobody, contacts).json()
    assert member_ids(body) == {str(alice.user.pk), str(everyone.user.pk)}
    assert body["invited"] == sorted([str(nobody.user.pk), str(contacts.user.pk)])
    assert body["member_count"] == 2


@pytest.mark.django_db
def test_changing_the_setting_takes_effect_for_the_next_add(alice):
    target = person("everyone")
    assert target.client.patch("/api/v1/me", {"settings": {"group_add": "nobody"}}, format="json").status_code == 200
    assert create_group(alice, target).json()["invited"] == [str(target.user.pk)]


@pytest.mark.django_db
def test_direct_conversations_ignore_group_add(alice):
    private = person("nobody")
    response = alice.client.post(URL, {"type": "direct", "user_id": str(private.user.pk)}, format="json")
    assert response.status_code == 201
    assert response.json()["invited"] == [] and str(private.user.pk) in member_ids(response.json())


# --- Adding members -----------------------------------------------------------------------


@pytest.mark.django_db
def test_members_add_invites_whom_it_may_not_add(alice, bob):
    conversation_id = create_group(alice, bob).json()["id"]
    private, open_person = person("nobody"), person("everyone")
    response = alice.client.post(f"{URL}/{conversation_id}/members",
                                 {"user_ids": [str(private.user.pk), str(open_person.user.pk)]}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert member_ids(body) == {str(u.user.pk) for u in (alice, bob, open_person)}
    assert body["invited"] == [str(private.user.pk)]
    assert [d["user_id"] for _, d in stream_events(bob, "member.added")] == [str(open_person.user.pk)]
    assert len(stream_events(private, "group.invited")) == 1


@pytest.mark.django_db
def test_inviting_again_while_open_sends_nothing_new(alice, bob):
    conversation_id = create_group(alice, bob).json()["id"]
    private = person("nobody")
    for _ in range(2):
        response = alice.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(private.user.pk)]},
                                     format="json")
        assert response.json()["invited"] == [str(private.user.pk)]
    # Another admin inviting the same person changes nothing either.
    alice.client.patch(f"{URL}/{conversation_id}/members/{bob.user.pk}", {"role": "admin"}, format="json")
    bob.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(private.user.pk)]}, format="json")
    assert len(stream_events(private, "group.invited")) == 1
    assert GroupInvitation.objects.count() == 1


@pytest.mark.django_db
def test_an_invitee_added_directly_later_has_no_invitation_left(alice, bob):
    target = person("contacts")
    conversation_id = create_group(alice, target).json()["id"]
    # bob is in target's book: bob may add them straight away.
    has_in_book(target, bob)
    alice.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(bob.user.pk)]}, format="json")
    alice.client.patch(f"{URL}/{conversation_id}/members/{bob.user.pk}", {"role": "admin"}, format="json")
    body = bob.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(target.user.pk)]},
                           format="json").json()
    assert str(target.user.pk) in member_ids(body) and body["invited"] == []
    assert GroupInvitation.objects.count() == 0
    # Joining now changes nothing: they already are a member.
    assert target.client.post(f"{URL}/{conversation_id}/join").status_code == 200
    assert Membership.objects.filter(conversation_id=conversation_id, left_at__isnull=True).count() == 3


@pytest.mark.django_db
def test_non_admins_and_strangers_cannot_invite(alice, bob, carol):
    conversation_id = create_group(alice, bob).json()["id"]
    private = person("nobody")
    body = {"user_ids": [str(private.user.pk)]}
    assert bob.client.post(f"{URL}/{conversation_id}/members", body, format="json").status_code == 403
    assert carol.client.post(f"{URL}/{conversation_id}/members", body, format="json").status_code == 404
    assert stream_events(private) == [] and GroupInvitation.objects.count() == 0


# --- Joining -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_join_makes_the_invitee_a_member(alice, bob):
    invitee = person("contacts")
    conversation_id = create_group(alice, bob, invitee).json()["id"]
    send_text(alice, conversation_id, "before")
    response = invitee.client.post(f"{URL}/{conversation_id}/join")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == conversation_id and str(invitee.user.pk) in member_ids(body)
    assert body["member_count"] == 3 and body["unread_count"] == 0
    # Members see them added by the inviter; the joiner gets the conversation.
    added = [d for _, d in stream_events(bob, "member.added")]
    assert added == [{"conversation_id": conversation_id, "user_id": str(invitee.user.pk), "role": "member",
                      "by": str(alice.user.pk)}]
    assert [t for t, _ in stream_events(invitee)] == ["group.invited", "conversation.created", "member.added"]
    # Now a member like any other.
    assert send_text(invitee, conversation_id, "hello").status_code == 201
    assert invitee.client.get(f"{URL}/{conversation_id}").status_code == 200
    assert [m["text"] for m in invitee.client.get(f"{URL}/{conversation_id}/messages").json()["messages"]] \
        == ["before", "hello"]


@pytest.mark.django_db
def test_join_again_is_a_no_op(alice):
    invitee = person("nobody")
    conversation_id = create_group(alice, invitee).json()["id"]
    assert invitee.client.post(f"{URL}/{conversation_id}/join").status_code == 200
    before = len(stream_events(alice)) + len(stream_events(invitee))
    again = invitee.client.post(f"{URL}/{conversation_id}/join")
    assert again.status_code == 200 and str(invitee.user.pk) in member_ids(again.json())
    assert len(stream_events(alice)) + len(stream_events(invitee)) == before


@pytest.mark.django_db
def test_join_without_an_invitation_is_not_found(alice, bob, carol):
    conversation_id = create_group(alice, bob).json()["id"]
    for path in (f"{URL}/{conversation_id}/join", f"{URL}/{uuid.uuid4()}/join", f"{URL}/not-a-uuid/join",
                 f"{URL}/{'x' * 300}/join"):
        response = carol.client.post(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert not Membership.objects.filter(user=carol.user).exists()


@pytest.mark.django_db
def test_join_after_leaving_needs_a_new_invitation(alice):
    invitee = person("nobody")
    conversation_id = create_group(alice, invitee).json()["id"]
    invitee.client.post(f"{URL}/{conversation_id}/join")
    assert invitee.client.delete(f"{URL}/{conversation_id}/members/{invitee.user.pk}").status_code == 204
    assert invitee.client.post(f"{URL}/{conversation_id}/join").status_code == 404
    alice.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(invitee.user.pk)]}, format="json")
    assert len(stream_events(invitee, "group.invited")) == 2
    assert invitee.client.post(f"{URL}/{conversation_id}/join").status_code == 200


@pytest.mark.django_db
def test_join_needs_auth_and_post(alice, api):
    invitee = person("nobody")
    conversation_id = create_group(alice, invitee).json()["id"]
    assert api.post(f"{URL}/{conversation_id}/join").json()["error"]["code"] == "unauthenticated"
    response = invitee.client.get(f"{URL}/{conversation_id}/join")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    # A body is not expected and changes nothing.
    assert invitee.client.post(f"{URL}/{conversation_id}/join", "{not json", content_type="application/json") \
        .status_code in (200, 400)


@pytest.mark.django_db
def test_join_into_a_full_group_is_a_conflict_and_changes_nothing(alice, bob, settings):
    invitee = person("nobody")
    conversation_id = create_group(alice, invitee).json()["id"]
    settings.MESSAGING_GROUP_MAX_MEMBERS = 2
    alice.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(bob.user.pk)]}, format="json")
    response = invitee.client.post(f"{URL}/{conversation_id}/join")
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"
    assert not Membership.objects.filter(user=invitee.user).exists()
    assert GroupInvitation.objects.get().accepted_at is None
    assert Conversation.objects.get().member_count == 2


# --- Expiry ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_invitation_expires_after_seven_days(alice):
    invitee = person("nobody")
    conversation_id = create_group(alice, invitee).json()["id"]
    GroupInvitation.objects.update(created_at=timezone.now() - timedelta(days=7, seconds=1),
                                   expires_at=timezone.now() - timedelta(seconds=1))
    response = invitee.client.post(f"{URL}/{conversation_id}/join")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert not Membership.objects.filter(user=invitee.user).exists()
    # A new invitation after expiry arrives and works.
    alice.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(invitee.user.pk)]}, format="json")
    assert len(stream_events(invitee, "group.invited")) == 2
    assert invitee.client.post(f"{URL}/{conversation_id}/join").status_code == 200


@pytest.mark.django_db
def test_an_invitation_is_still_good_just_before_it_expires(alice):
    invitee = person("nobody")
    conversation_id = create_group(alice, invitee).json()["id"]
    GroupInvitation.objects.update(expires_at=timezone.now() + timedelta(seconds=30))
    assert invitee.client.post(f"{URL}/{conversation_id}/join").status_code == 200


# --- Blocks ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("group_add", ["everyone", "contacts", "nobody"])
def test_a_blocked_adders_invitation_never_arrives(alice, group_add):
    blocker = person(group_add)
    has_in_book(blocker, alice)
    block(blocker, alice)
    private = person("nobody")  # the same answer for someone who merely said "nobody"
    response = create_group(alice, blocker, private)
    assert response.status_code == 201
    body = response.json()
    assert member_ids(body) == {str(alice.user.pk)}
    assert body["invited"] == sorted([str(blocker.user.pk), str(private.user.pk)])
    assert stream_events(blocker) == []
    assert sync_events(blocker, "group.invited") == []
    response = blocker.client.post(f"{URL}/{body['id']}/join")
    assert response.status_code == 404
    assert not Membership.objects.filter(user=blocker.user).exists()


@pytest.mark.django_db
def test_a_blocked_adder_cannot_add_through_members_add_either(alice, bob):
    conversation_id = create_group(alice, bob).json()["id"]
    blocker = person("everyone")
    block(blocker, alice)
    body = alice.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(blocker.user.pk)]},
                             format="json").json()
    assert body["invited"] == [str(blocker.user.pk)] and str(blocker.user.pk) not in member_ids(body)
    assert stream_events(blocker) == []
    assert stream_events(bob, "member.added") == []


@pytest.mark.django_db
def test_the_block_is_per_adder_another_admin_still_invites(alice, bob):
    invitee = person("nobody")
    block(invitee, alice)
    conversation_id = create_group(alice, bob, invitee).json()["id"]
    alice.client.patch(f"{URL}/{conversation_id}/members/{bob.user.pk}", {"role": "admin"}, format="json")
    body = bob.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(invitee.user.pk)]},
                           format="json").json()
    assert body["invited"] == [str(invitee.user.pk)]
    [invite] = sync_events(invitee, "group.invited")
    assert invite["by"] == str(bob.user.pk)
    assert invitee.client.post(f"{URL}/{conversation_id}/join").status_code == 200


# --- The daily allowance -----------------------------------------------------------------------


@pytest.mark.django_db
def test_invitations_past_the_daily_allowance_are_refused_whole(alice, bob, settings):
    settings.MESSAGING_GROUP_INVITATIONS_PER_DAY = 3
    first = [person("nobody") for _ in range(2)]
    assert create_group(alice, *first).status_code == 201
    second = [person("nobody") for _ in range(2)]
    response = create_group(alice, bob, *second)
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and error["details"]["limit"] == 3
    retry_after = int(response["Retry-After"])
    assert 86000 < retry_after <= 86400
    # Nothing of the refused request was written: no group, no member, no invitation, no event.
    assert Conversation.objects.count() == 1 and GroupInvitation.objects.count() == 2
    assert stream_events(bob) == [] and all(stream_events(p) == [] for p in second)
    # One more still fits.
    assert create_group(alice, second[0]).status_code == 201


@pytest.mark.django_db
def test_the_allowance_counts_per_inviter_and_only_what_is_open(alice, bob, settings):
    settings.MESSAGING_GROUP_INVITATIONS_PER_DAY = 2
    a, b, c = person("nobody"), person("nobody"), person("nobody")
    conversation_id = create_group(alice, a, b).json()["id"]
    assert create_group(alice, c).status_code == 429
    assert create_group(bob, c).status_code == 201  # bob has his own allowance
    # An accepted invitation frees its place.
    a.client.post(f"{URL}/{conversation_id}/join")
    assert create_group(alice, c).status_code == 201
    # So does the 24-hour window passing.
    assert alice.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(c.user.pk)]},
                             format="json").status_code == 429
    GroupInvitation.objects.filter(inviter=alice.user).update(created_at=timezone.now() - timedelta(hours=25))
    response = alice.client.post(f"{URL}/{conversation_id}/members", {"user_ids": [str(c.user.pk)]}, format="json")
    assert response.status_code == 200 and response.json()["invited"] == [str(c.user.pk)]


@pytest.mark.django_db
def test_direct_adds_do_not_spend_the_allowance(alice, settings):
    settings.MESSAGING_GROUP_INVITATIONS_PER_DAY = 1
    people = [person("everyone") for _ in range(5)]
    assert create_group(alice, *people).status_code == 201
    assert create_group(alice, person("nobody")).status_code == 201


@pytest.mark.django_db
def test_members_add_past_the_allowance_adds_nobody(alice, bob, settings):
    settings.MESSAGING_GROUP_INVITATIONS_PER_DAY = 1
    conversation_id = create_group(alice, bob).json()["id"]
    open_person, p1, p2 = person("everyone"), person("nobody"), person("nobody")
    response = alice.client.post(f"{URL}/{conversation_id}/members",
                                 {"user_ids": [str(u.user.pk) for u in (open_person, p1, p2)]}, format="json")
    assert response.status_code == 429
    assert not Membership.objects.filter(user=open_person.user).exists()
    assert stream_events(open_person) == [] and stream_events(bob, "member.added") == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_cannot_overspend_the_allowance(settings):
    settings.MESSAGING_GROUP_INVITATIONS_PER_DAY = 4
    owner = person("everyone")
    invitees = [person("nobody") for _ in range(12)]
    statuses: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def create(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            statuses.append(create_group(owner, *invitees[2 * index:2 * index + 2]).status_code)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(statuses) == [201, 201, 429, 429, 429, 429]
    assert GroupInvitation.objects.count() == 4 and Conversation.objects.count() == 2


# --- Broadcasts --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_broadcasts_follow_the_same_rule(alice, bob):
    private, open_person = person("contacts"), person("everyone")
    response = create_group(alice, private, open_person, type="broadcast")
    assert response.status_code == 201
    body = response.json()
    assert body["type"] == "broadcast" and body["invited"] == [str(private.user.pk)]
    assert body["member_count"] == 2
    [invite] = sync_events(private, "group.invited")
    assert invite["type"] == "broadcast" and invite["conversation_id"] == body["id"]
    assert private.client.get(f"{URL}/{body['id']}/messages").status_code == 404
    # Joining makes them part of the audience: they receive what admins post, and cannot post.
    assert private.client.post(f"{URL}/{body['id']}/join").status_code == 200
    assert send_text(alice, body["id"], "news").status_code == 201
    assert [d["text"] for _, d in stream_events(private, "message.new")] == ["news"]
    assert send_text(private, body["id"]).status_code == 403
    # The audience does not see each other join.
    assert stream_events(open_person, "member.added") == []


@pytest.mark.django_db
def test_broadcast_members_add_invites_and_a_block_suppresses(alice):
    conversation_id = create_group(alice, type="broadcast").json()["id"]
    private, blocker = person("nobody"), person("everyone")
    block(blocker, alice)
    body = alice.client.post(f"{URL}/{conversation_id}/members",
                             {"user_ids": [str(private.user.pk), str(blocker.user.pk)]}, format="json").json()
    assert body["invited"] == sorted([str(private.user.pk), str(blocker.user.pk)])
    assert len(stream_events(private, "group.invited")) == 1 and stream_events(blocker) == []


# --- Bad input ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("user_ids", [[str(uuid.uuid4())], ["nope"], [5], "abc", [], None])
def test_bad_member_ids_invite_nobody(alice, user_ids):
    conversation_id = create_group(alice).json()["id"]
    private = person("nobody")
    body = {"user_ids": [str(private.user.pk), *user_ids] if isinstance(user_ids, list) and user_ids else user_ids}
    response = alice.client.post(f"{URL}/{conversation_id}/members", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert GroupInvitation.objects.count() == 0 and stream_events(private) == []


@pytest.mark.django_db
def test_create_with_an_unknown_member_invites_nobody(alice):
    private = person("nobody")
    response = alice.client.post(URL, {"type": "group", "title": "x",
                                       "member_ids": [str(private.user.pk), str(uuid.uuid4())]}, format="json")
    assert response.status_code == 400
    assert Conversation.objects.count() == 0 and GroupInvitation.objects.count() == 0
    assert stream_events(private) == []
