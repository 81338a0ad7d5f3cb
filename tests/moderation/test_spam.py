"""The spam score, and the throttle on new accounts that message many strangers."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from contacts.models import BookEntry
from messaging import services as messaging_services
from messaging.models import Conversation
from moderation import spam
from moderation.models import Report
from tests.factories import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.SPAM_NEW_ACCOUNT_HOURS = 72
    settings.SPAM_SCORE_LIMIT = 5
    settings.SPAM_REPORT_WEIGHT = 2
    settings.SPAM_SENDS_PER_POINT = 1000
    spam.forget_known()
    yield
    spam.forget_known()


def direct(a, b) -> str:
    response = a.client.post("/api/v1/conversations", {"type": "direct", "user_id": str(b.user.pk)}, format="json")
    return response.json()["id"]


def send(user, conversation: str, text: str = "hi"):
    return user.client.post(f"/api/v1/conversations/{conversation}/messages",
                            {"client_id": str(uuid.uuid4()), "type": "text", "text": text}, format="json")


def strangers(count: int):
    return [sign_in() for _ in range(count)]


def test_a_new_account_is_throttled_after_messaging_many_strangers(alice):
    targets = strangers(7)
    conversations = [direct(alice, t) for t in targets]
    statuses = [send(alice, c).status_code for c in conversations]
    assert statuses == [201] * 5 + [429] * 2
    refused = send(alice, conversations[5])
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused["Retry-After"]) > 0
    assert spam.spam_score(user_id=alice.user.pk).strangers_24h == 5
    # Conversations already opened, replies, and people who know the sender still work.
    assert send(alice, conversations[0], "still talking").status_code == 201
    assert send(targets[6], conversations[6], "hello?").status_code == 201  # the stranger wrote first
    assert send(alice, conversations[6], "hi back").status_code == 201
    friend = sign_in()
    BookEntry.objects.create(owner_id=friend.user.pk, contact_user_id=alice.user.pk, key=b"k" * 32)
    assert send(alice, direct(alice, friend)).status_code == 201


def test_an_established_account_is_never_throttled(alice):
    User.objects.filter(pk=alice.user.pk).update(created_at=timezone.now() - timedelta(days=30))
    alice.user.refresh_from_db()
    assert all(send(alice, direct(alice, t)).status_code == 201 for t in strangers(7))


def test_groups_are_not_screened(alice):
    members = strangers(7)
    group = alice.client.post("/api/v1/conversations", {"type": "group", "title": "g",
                                                        "member_ids": [str(m.user.pk) for m in members]},
                              format="json").json()["id"]
    assert all(send(alice, group).status_code == 201 for _ in range(7))


def test_reports_raise_the_score_so_fewer_strangers_are_allowed(alice, bob, carol):
    for reporter in (bob, carol):
        Report.objects.create(reporter=reporter.user, reported_user=alice.user, reason="spam")
    score = spam.spam_score(user_id=alice.user.pk)
    assert (score.reporters_30d, score.value) == (2, 4)
    statuses = [send(alice, direct(alice, t)).status_code for t in strangers(3)]
    assert statuses == [201, 429, 429]


def test_the_decision_function():
    high = spam.SpamScore(strangers_24h=5, reporters_30d=0, sends_1h=0)
    low = spam.SpamScore(strangers_24h=1, reporters_30d=0, sends_1h=0)
    assert spam.spam_decision(score=high, new_account=True, first_contact_with_stranger=True)
    assert not spam.spam_decision(score=high, new_account=False, first_contact_with_stranger=True)
    assert not spam.spam_decision(score=high, new_account=True, first_contact_with_stranger=False)
    assert not spam.spam_decision(score=low, new_account=True, first_contact_with_stranger=True)


def test_one_batch_opening_many_conversations_is_judged_as_it_goes(alice):
    conversations = [direct(alice, t) for t in strangers(7)]
    results = messaging_services.message_send_many([
        {"sender": alice.user, "conversation_id": c, "payload": {"client_id": str(uuid.uuid4()), "type": "text",
                                                                 "text": "bulk"}}
        for c in conversations])
    assert [isinstance(r, tuple) for r in results] == [True] * 5 + [False] * 2
    assert Conversation.objects.filter(pk__in=conversations, last_seq=1).count() == 5


def test_the_socket_path_skips_the_screen_for_conversations_a_new_account_is_known_to_pass(alice):
    """MESSAGING_SEND_SCREEN_NEEDED: once a new account wrote in a conversation (or it is a group),
    its further sends there need no screen, hence no query; a first contact still does."""
    from messaging.integrations import ScreenedSend

    target, other = strangers(2)
    conversation, fresh = direct(alice, target), direct(alice, other)
    group = alice.client.post("/api/v1/conversations", {"type": "group", "title": "g",
                                                        "member_ids": [str(target.user.pk)]},
                              format="json").json()["id"]
    me = str(alice.user.pk)
    assert spam.screening_needed(sends=[ScreenedSend(0, me, conversation)])  # nothing remembered yet
    assert send(alice, conversation).status_code == 201
    assert send(alice, group).status_code == 201
    assert not spam.screening_needed(sends=[ScreenedSend(0, me, conversation), ScreenedSend(1, me, group)])
    assert spam.screening_needed(sends=[ScreenedSend(0, me, conversation), ScreenedSend(1, me, fresh)])


def test_the_throttle_can_be_turned_off(alice, settings):
    settings.SPAM_NEW_ACCOUNT_HOURS = 0
    assert all(send(alice, direct(alice, t)).status_code == 201 for t in strangers(7))


@pytest.mark.django_db(transaction=True)
async def test_a_throttled_socket_send_gets_a_rate_limited_error_frame(alice, settings):
    from channels.db import database_sync_to_async

    from tests.realtime.conftest import open_socket

    settings.SPAM_SCORE_LIMIT = 1
    first, second = await database_sync_to_async(strangers)(2)
    conversations = [await database_sync_to_async(direct)(alice, other) for other in (first, second)]
    client = await open_socket(alice.token)
    for ref, conversation in enumerate(conversations):
        await client.send({"type": "message.send", "ref": str(ref), "conversation_id": conversation,
                           "message": {"client_id": str(uuid.uuid4()), "type": "text", "text": "hi"}})
    sent = await client.recv_type("message.sent")
    refused = await client.recv_type("error")
    assert (sent["ref"], refused["ref"], refused["code"]) == ("0", "1", "rate_limited")
    await client.close()
