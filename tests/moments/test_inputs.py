"""Bad input gets the contract's error and writes nothing; retries are idempotent; sunset refuses posts."""

from __future__ import annotations

import uuid

import pytest

from moments.models import Comment, Like, Moment, MomentAttachment, MomentAudience
from tests.exports.conftest import make_sunset
from tests.moments.conftest import befriend, comment, error, like, post, posted, upload


@pytest.fixture
def pair(person):
    a, b, stranger = person("A"), person("B"), person("Stranger")
    befriend(a, b)
    return a, b, stranger


def nothing_written() -> bool:
    return not (Moment.objects.exists() or MomentAttachment.objects.exists() or MomentAudience.objects.exists())


@pytest.mark.django_db
def test_attachments_of_someone_else_are_refused(pair):
    a, b, _ = pair
    response = post(a, attachment_ids=[upload(a), upload(b)])
    assert error(response) == (400, "validation_error") and "attachment_ids" in response.json()["error"]["details"]
    assert nothing_written()


@pytest.mark.django_db
def test_unknown_attachment_ids_are_refused(pair):
    a, _, _ = pair
    assert error(post(a, attachment_ids=[str(uuid.uuid4())])) == (400, "validation_error")
    assert error(post(a, attachment_ids=["not-a-uuid"])) == (400, "validation_error")
    assert nothing_written()


@pytest.mark.django_db
def test_more_than_nine_images_are_refused_and_nine_are_fine(pair):
    a, _, _ = pair
    images = [upload(a) for _ in range(10)]
    assert error(post(a, attachment_ids=images)) == (400, "validation_error")
    assert nothing_written()
    body = post(a, attachment_ids=images[:9]).json()
    assert [x["id"] for x in body["attachments"]] == images[:9], "in the poster's order"


@pytest.mark.django_db
def test_a_video_with_images_is_refused_and_one_video_is_fine(pair):
    a, _, _ = pair
    video = upload(a, "video")
    assert error(post(a, attachment_ids=[video, upload(a)])) == (400, "validation_error")
    assert error(post(a, attachment_ids=[video, upload(a, "video")])) == (400, "validation_error")
    assert nothing_written()
    assert post(a, attachment_ids=[video]).status_code == 201


@pytest.mark.django_db
def test_voice_and_file_attachments_are_refused(pair):
    a, _, _ = pair
    assert error(post(a, attachment_ids=[upload(a, "voice")])) == (400, "validation_error")
    assert error(post(a, attachment_ids=[upload(a, "file")])) == (400, "validation_error")
    assert nothing_written()


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["only", "except"])
def test_non_friends_in_only_or_except_are_refused(pair, mode):
    a, b, stranger = pair
    response = post(a, mode=mode, user_ids=[str(b.user.pk), str(stranger.user.pk)])
    assert error(response) == (400, "validation_error")
    assert response.json()["error"]["details"]["not_friends"] == [str(stranger.user.pk)]
    assert error(post(a, mode=mode, user_ids=[str(uuid.uuid4())])) == (400, "validation_error")
    assert error(post(a, mode=mode, user_ids=[])) == (400, "validation_error")
    assert nothing_written()


@pytest.mark.django_db
def test_a_list_with_friends_or_private_mode_is_refused(pair):
    a, b, _ = pair
    assert error(post(a, mode="friends", user_ids=[str(b.user.pk)])) == (400, "validation_error")
    assert error(post(a, mode="private", user_ids=[str(b.user.pk)])) == (400, "validation_error")
    assert nothing_written()


@pytest.mark.django_db
def test_text_over_2000_characters_is_refused(pair):
    a, _, _ = pair
    response = post(a, "x" * 2001)
    assert error(response) == (400, "validation_error") and "text" in response.json()["error"]["details"]
    assert nothing_written()
    assert post(a, "字" * 2000).status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("body", [
    {"text": "no client id", "visibility": {"mode": "friends"}},
    {"client_id": "abc", "text": "x", "visibility": {"mode": "friends"}},
    {"client_id": str(uuid.uuid4()), "text": "x", "visibility": {"mode": "everyone"}},
    {"client_id": str(uuid.uuid4()), "text": "x"},
    {"client_id": str(uuid.uuid4()), "text": 5, "visibility": {"mode": "friends"}},
    {"client_id": str(uuid.uuid4()), "text": "", "visibility": {"mode": "friends"}},
    {"client_id": str(uuid.uuid4()), "text": "x", "visibility": {"mode": "friends"}, "extra": 1},
    {"client_id": str(uuid.uuid4()), "text": "x", "visibility": "friends"},
    {"client_id": str(uuid.uuid4()), "text": "x", "visibility": {"mode": "friends"}, "location": {"lat": 91, "lng": 0}},
    {"client_id": str(uuid.uuid4()), "text": "x", "visibility": {"mode": "friends"}, "attachment_ids": "abc"},
    [1, 2],
])
def test_malformed_posts_are_validation_errors(pair, body):
    a, _, _ = pair
    assert error(a.client.post("/api/v1/moments", body, format="json")) == (400, "validation_error")
    assert nothing_written()


@pytest.mark.django_db
def test_a_retried_post_returns_the_first_one(pair):
    a, b, _ = pair
    body = {"client_id": str(uuid.uuid4()), "text": "once", "visibility": {"mode": "friends"}}
    first = a.client.post("/api/v1/moments", body, format="json")
    again = a.client.post("/api/v1/moments", {**body, "text": "changed"}, format="json")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["text"] == "once"
    assert Moment.objects.count() == 1
    # Another user may use the same client_id.
    assert b.client.post("/api/v1/moments", body, format="json").status_code == 201


@pytest.mark.django_db
def test_likes_and_comments_are_idempotent(pair):
    a, b, _ = pair
    moment_id = posted(a)
    assert like(b, moment_id).status_code == 204 and like(b, moment_id).status_code == 204
    assert Like.objects.count() == 1
    body = {"client_id": str(uuid.uuid4()), "text": "once"}
    first = b.client.post(f"/api/v1/moments/{moment_id}/comments", body, format="json")
    again = b.client.post(f"/api/v1/moments/{moment_id}/comments", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200) and first.json() == again.json()
    assert Comment.objects.count() == 1
    assert b.client.delete(f"/api/v1/moments/{moment_id}/like").status_code == 204
    assert Like.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["only", "except", "private"])
def test_interacting_with_a_post_you_may_not_see_is_not_found(person, mode):
    a, b, c = person("A"), person("B"), person("C")
    befriend(a, b)
    befriend(a, c)
    user_ids = {"only": [str(c.user.pk)], "except": [str(b.user.pk)], "private": []}[mode]
    moment_id = posted(a, mode=mode, user_ids=user_ids)
    assert error(comment(b, moment_id)) == (404, "not_found")
    assert error(like(b, moment_id)) == (404, "not_found")
    assert error(b.client.delete(f"/api/v1/moments/{moment_id}")) == (404, "not_found")
    assert error(b.client.get(f"/api/v1/moments/{moment_id}")) == (404, "not_found")
    assert not Comment.objects.exists() and not Like.objects.exists()


@pytest.mark.django_db
def test_a_stranger_cannot_comment_and_bad_ids_are_not_found(pair):
    a, _, stranger = pair
    moment_id = posted(a)
    assert error(comment(stranger, moment_id)) == (404, "not_found")
    assert error(comment(stranger, "nope")) == (404, "not_found")
    assert error(like(stranger, str(uuid.uuid4()))) == (404, "not_found")


@pytest.mark.django_db
def test_bad_comments_are_validation_errors(pair):
    a, b, _ = pair
    moment_id = posted(a)
    assert error(comment(b, moment_id, "x" * 1001)) == (400, "validation_error")
    assert error(comment(b, moment_id, "   ")) == (400, "validation_error")
    assert error(comment(b, moment_id, "hi", reply_to_user_id="bob")) == (400, "validation_error")
    assert error(comment(b, moment_id, "hi", reply_to_user_id=str(uuid.uuid4()))) == (400, "validation_error")
    assert not Comment.objects.exists()


@pytest.mark.django_db
# (An unknown parameter such as `after` is ignored, as everywhere: tests/core/test_query_parameters.py.)
@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "51"}, {"limit": "x"}, {"before": "garbage"}])
def test_bad_paging_parameters_are_validation_errors(pair, params):
    a, _, _ = pair
    assert error(a.client.get("/api/v1/moments", params)) == (400, "validation_error")


@pytest.mark.django_db
def test_the_sunset_read_only_phase_refuses_new_posts_likes_and_comments_but_not_deletion(pair):
    a, b, _ = pair
    moment_id = posted(a)
    make_sunset("read_only")
    assert error(post(a)) == (403, "service_read_only")
    assert error(like(b, moment_id)) == (403, "service_read_only")
    assert error(comment(b, moment_id)) == (403, "service_read_only")
    assert a.client.get("/api/v1/moments").status_code == 200
    assert a.client.delete(f"/api/v1/moments/{moment_id}").status_code == 204
    assert not Moment.objects.exists()


@pytest.mark.django_db
def test_settings_moments_window_and_notifications_are_validated(pair):
    a, _, _ = pair
    me = a.client.get("/api/v1/me").json()
    assert me["settings"]["moments_window"] == "all" and me["settings"]["moments_notifications"] is True
    assert error(a.client.patch("/api/v1/me", {"settings": {"moments_window": "1y"}}, format="json")) == (
        400, "validation_error")
    assert error(a.client.patch("/api/v1/me", {"settings": {"moments_notifications": "no"}}, format="json")) == (
        400, "validation_error")
    body = a.client.patch("/api/v1/me", {"settings": {"moments_window": "3d", "moments_notifications": False}},
                          format="json").json()
    assert body["settings"]["moments_window"] == "3d" and body["settings"]["moments_notifications"] is False
