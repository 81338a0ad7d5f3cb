"""moment.new and moment.interaction through the event stream, and the push for interactions on one's post."""

from __future__ import annotations

import json

import pytest

from tests.moments.conftest import befriend, comment, events, like, posted


@pytest.fixture
def trio(person):
    a, b, c, d = person("A"), person("B"), person("C"), person("D")
    befriend(a, b)
    befriend(a, c)
    return a, b, c, d


@pytest.mark.django_db
def test_moment_new_goes_to_the_friends_who_may_see_the_post(trio):
    a, b, c, d = trio
    public = posted(a)
    only_b = posted(a, mode="only", user_ids=[str(b.user.pk)])
    not_b = posted(a, mode="except", user_ids=[str(b.user.pk)])
    posted(a, mode="private")
    expected = {"author_id": str(a.user.pk)}
    assert events(b, "moment.new") == [{**expected, "moment_id": public}, {**expected, "moment_id": only_b}]
    assert events(c, "moment.new") == [{**expected, "moment_id": public}, {**expected, "moment_id": not_b}]
    assert events(d, "moment.new") == []
    assert events(a, "moment.new") == []


@pytest.mark.django_db
def test_moment_interaction_goes_to_the_author_and_earlier_commenters_who_may_see_it(trio, person):
    a, b, c, _ = trio
    e = person("E")
    befriend(a, e)
    befriend(b, e)  # E is friends with A and B, not C
    moment_id = posted(a)
    b_comment = comment(b, moment_id, "B first").json()
    comment(c, moment_id, "C second")
    like(e, moment_id)
    e_comment = comment(e, moment_id, "E third").json()

    to_a = events(a, "moment.interaction")
    assert to_a == [
        {"moment_id": moment_id, "kind": "comment", "user_id": str(b.user.pk), "comment_id": b_comment["id"]},
        {"moment_id": moment_id, "kind": "comment", "user_id": str(c.user.pk),
         "comment_id": to_a[1]["comment_id"]},
        {"moment_id": moment_id, "kind": "like", "user_id": str(e.user.pk)},
        {"moment_id": moment_id, "kind": "comment", "user_id": str(e.user.pk), "comment_id": e_comment["id"]},
    ]
    # B commented earlier and is E's friend: told of E's like and comment, not of C's (not B's friend).
    assert [(x["kind"], x["user_id"]) for x in events(b, "moment.interaction")] == [
        ("like", str(e.user.pk)), ("comment", str(e.user.pk))]
    # C commented earlier but is friends with neither B nor E.
    assert events(c, "moment.interaction") == []
    assert events(e, "moment.interaction") == []


@pytest.mark.django_db
def test_the_author_gets_a_push_for_likes_and_comments_unless_turned_off(trio, pushes):
    a, b, _, _ = trio
    moment_id = posted(a)
    like(b, moment_id)
    comment(b, moment_id, "lovely")
    assert [(p["user_id"], p["kind"], p["body"]) for p in pushes] == [
        (str(a.user.pk), "moment.interaction", "B liked your moment"),
        (str(a.user.pk), "moment.interaction", "B: lovely"),
    ]
    assert pushes[0]["data"] == {"moment_id": moment_id, "kind": "like", "user_id": str(b.user.pk)}

    pushes.clear()
    a.client.patch("/api/v1/me", {"settings": {"message_preview_in_push": False}}, format="json")
    comment(b, moment_id, "secret")
    assert [p["body"] for p in pushes] == ["B commented on your moment"], "no comment text without previews"

    pushes.clear()
    a.client.patch("/api/v1/me", {"settings": {"moments_notifications": False}}, format="json")
    comment(b, moment_id, "again")
    assert pushes == []
    assert len(events(a, "moment.interaction")) == 4, "the event still comes"


@pytest.mark.django_db
def test_no_push_or_event_for_ones_own_interactions_and_none_for_earlier_commenters(trio, pushes):
    a, b, _, _ = trio
    moment_id = posted(a)
    comment(b, moment_id, "B")
    pushes.clear()
    like(a, moment_id)
    comment(a, moment_id, "thanks")
    assert pushes == [], "B hears by event, the author pushes no one"
    assert [x["kind"] for x in events(b, "moment.interaction")] == ["like", "comment"]
    assert [x["user_id"] for x in events(a, "moment.interaction")] == [str(b.user.pk)]


@pytest.mark.django_db
def test_the_real_push_pipeline_sends_to_the_authors_offline_device(trio, settings, tmp_path,
                                                                    django_capture_on_commit_callbacks):
    """Through notifications.services.push_notify (PUSH_BACKEND=file): one line for the author's device."""
    a, b, _, _ = trio
    settings.MOMENTS_PUSH = "notifications.services.push_notify"
    settings.PUSH_BACKEND = "file"
    settings.PUSH_FILE_PATH = str(tmp_path / "push.jsonl")
    a.client.put("/api/v1/devices/current/push", {"provider": "fcm", "token": "tok-a"}, format="json")
    moment_id = posted(a)
    with django_capture_on_commit_callbacks(execute=True):
        like(b, moment_id)
    lines = [json.loads(line) for line in (tmp_path / "push.jsonl").read_text().splitlines()]
    assert [(x["kind"], x["token"], x["body"]) for x in lines] == [("moment.interaction", "tok-a",
                                                                   "B liked your moment")]
