"""Who sees which post, like and comment: WeChat's rules, computed at read time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from moments.models import Comment, Like, Moment
from tests.moments.conftest import (
    add_to_book,
    befriend,
    block,
    comment,
    like,
    post,
    posted,
    remove_from_book,
    seen,
    timeline_ids,
    unblock,
)


@pytest.fixture
def trio(person):
    """A with friends B and C, who are not each other's friends; D is nobody's friend."""
    a, b, c, d = person("A"), person("B"), person("C"), person("D")
    befriend(a, b)
    befriend(a, c)
    return a, b, c, d


@pytest.mark.django_db
def test_friends_mode_is_seen_by_the_author_and_every_friend_only(trio):
    a, b, c, d = trio
    moment_id = posted(a, "to all my friends")
    assert timeline_ids(a) == [moment_id]
    assert timeline_ids(b) == [moment_id] and timeline_ids(c) == [moment_id]
    assert timeline_ids(d) == []
    assert seen(d, moment_id) is None
    assert seen(b, moment_id)["text"] == "to all my friends"


@pytest.mark.django_db
def test_only_mode_is_seen_by_the_listed_friends_alone(trio):
    a, b, c, _ = trio
    moment_id = posted(a, mode="only", user_ids=[str(b.user.pk)])
    assert timeline_ids(b) == [moment_id]
    assert timeline_ids(c) == [] and seen(c, moment_id) is None
    mine = seen(a, moment_id)
    assert mine["visibility"] == {"mode": "only", "user_ids": [str(b.user.pk)]}
    assert seen(b, moment_id)["visibility"] == {"mode": "only", "user_ids": []}, "the list is the author's business"


@pytest.mark.django_db
def test_except_mode_is_seen_by_every_friend_but_the_listed(trio):
    a, b, c, _ = trio
    moment_id = posted(a, mode="except", user_ids=[str(b.user.pk)])
    assert timeline_ids(b) == [] and seen(b, moment_id) is None
    assert timeline_ids(c) == [moment_id]
    assert timeline_ids(a) == [moment_id]


@pytest.mark.django_db
def test_private_mode_is_seen_by_the_author_alone(trio):
    a, b, c, _ = trio
    moment_id = posted(a, mode="private")
    assert timeline_ids(a) == [moment_id]
    assert timeline_ids(b) == [] and timeline_ids(c) == []
    assert seen(b, moment_id) is None


@pytest.mark.django_db
def test_a_one_sided_contact_is_not_a_friend(person):
    a, b = person("A"), person("B")
    add_to_book(b, a)  # B has A's number, A does not have B's
    moment_id = posted(a)
    assert timeline_ids(b) == [] and seen(b, moment_id) is None


@pytest.mark.django_db
def test_likes_and_comments_are_seen_by_the_author_and_the_interactors_friends_only(trio):
    """A posts; B and C are A's friends but not each other's."""
    a, b, c, _ = trio
    moment_id = posted(a, "sunset at the Bund")
    assert like(b, moment_id).status_code == 204
    assert like(c, moment_id).status_code == 204
    b_comment = comment(b, moment_id, "from B").json()
    c_comment = comment(c, moment_id, "from C").json()

    as_a = seen(a, moment_id)
    assert {x["user_id"] for x in as_a["likes"]} == {str(b.user.pk), str(c.user.pk)}
    assert [x["id"] for x in as_a["comments"]] == [b_comment["id"], c_comment["id"]]

    as_b = seen(b, moment_id)
    assert [x["user_id"] for x in as_b["likes"]] == [str(b.user.pk)]
    assert [x["text"] for x in as_b["comments"]] == ["from B"]

    as_c = seen(c, moment_id)
    assert [x["user_id"] for x in as_c["likes"]] == [str(c.user.pk)]
    assert [x["text"] for x in as_c["comments"]] == ["from C"]
    # The same rule in the timeline as in the single post.
    assert timeline_ids(b) == [moment_id]
    feed = b.client.get("/api/v1/moments").json()["moments"][0]
    assert [x["text"] for x in feed["comments"]] == ["from B"]

    # Once B and C become friends, each sees the other's.
    befriend(b, c)
    assert {x["text"] for x in seen(b, moment_id)["comments"]} == {"from B", "from C"}
    assert len(seen(c, moment_id)["likes"]) == 2


@pytest.mark.django_db
def test_unfriending_hides_posts_both_ways_at_once(trio):
    a, b, _, _ = trio
    from_a = posted(a, "by A")
    from_b = posted(b, "by B")
    assert set(timeline_ids(a)) == {from_a, from_b} and set(timeline_ids(b)) == {from_a, from_b}

    remove_from_book(a, b)  # one side removes the other: no longer mutual
    assert timeline_ids(a) == [from_a]
    assert timeline_ids(b) == [from_b]
    assert seen(b, from_a) is None and seen(a, from_b) is None

    add_to_book(a, b)  # friends again: the past posts are back
    assert set(timeline_ids(b)) == {from_a, from_b}


@pytest.mark.django_db
@pytest.mark.parametrize("blocker_is_author", [True, False])
def test_a_block_either_way_hides_posts_and_interactions_both_ways(trio, blocker_is_author):
    a, b, c, _ = trio
    befriend(b, c)
    from_a = posted(a, "by A")
    from_b = posted(b, "by B")
    comment(b, from_a, "B on A's post")
    like(b, from_a)
    comment(a, from_b, "A on B's post")

    if blocker_is_author:
        block(a, b)
    else:
        block(b, a)
    assert timeline_ids(a) == [from_a]
    assert from_a not in timeline_ids(b)
    assert seen(a, from_b) is None and seen(b, from_a) is None
    as_a = seen(a, from_a)
    assert as_a["comments"] == [] and as_a["likes"] == [], "interactions across a block are hidden"
    assert comment(b, from_a, "again").status_code == 404
    assert like(b, from_a).status_code == 404
    # C, friends with both, still sees everything on both posts.
    assert [x["text"] for x in seen(c, from_a)["comments"]] == ["B on A's post"]
    assert [x["text"] for x in seen(c, from_b)["comments"]] == ["A on B's post"]

    unblock(*(a, b) if blocker_is_author else (b, a))
    assert seen(b, from_a) is not None


@pytest.mark.django_db
@pytest.mark.parametrize(("window", "visible_days"), [("all", [1, 10, 60, 400]), ("6m", [1, 10, 60]),
                                                      ("1m", [1, 10]), ("3d", [1])])
def test_a_persons_page_honours_their_moments_window(person, window, visible_days):
    a, b = person("A"), person("B")
    befriend(a, b)
    ids = {}
    for days in (1, 10, 60, 400):
        ids[days] = posted(a, f"{days} days ago")
        Moment.objects.filter(pk=ids[days]).update(created_at=timezone.now() - timedelta(days=days))
    assert a.client.patch("/api/v1/me", {"settings": {"moments_window": window}}, format="json").status_code == 200

    page = b.client.get(f"/api/v1/users/{a.user.pk}/moments").json()
    assert [m["id"] for m in page["moments"]] == [ids[d] for d in visible_days]
    own = a.client.get(f"/api/v1/users/{a.user.pk}/moments").json()
    assert len(own["moments"]) == 4, "the owner always sees all of their own"


@pytest.mark.django_db
def test_a_persons_page_for_a_stranger_is_empty_and_for_an_unknown_user_404(trio):
    a, _, _, d = trio
    posted(a)
    assert d.client.get(f"/api/v1/users/{a.user.pk}/moments").json() == {"moments": [], "cursor": "",
                                                                        "has_more": False}
    response = d.client.get("/api/v1/users/00000000-0000-0000-0000-000000000000/moments")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_a_deleted_post_disappears_with_its_likes_and_comments(trio):
    a, b, c, _ = trio
    moment_id = posted(a)
    like(b, moment_id)
    comment(c, moment_id)
    assert b.client.delete(f"/api/v1/moments/{moment_id}").status_code == 403, "a friend may not delete it"
    assert a.client.delete(f"/api/v1/moments/{moment_id}").status_code == 204
    assert timeline_ids(a) == [] and timeline_ids(b) == [] and timeline_ids(c) == []
    assert not Like.objects.exists() and not Comment.objects.exists()
    assert a.client.delete(f"/api/v1/moments/{moment_id}").status_code == 404


@pytest.mark.django_db
def test_a_deleted_accounts_posts_and_interactions_go(trio):
    a, b, c, _ = trio
    from_b = posted(b, "by B")
    from_a = posted(a, "by A")
    comment(b, from_a, "B was here")
    like(b, from_a)
    assert b.client.delete("/api/v1/me").status_code == 204
    assert timeline_ids(a) == [from_a]
    assert seen(a, from_a)["comments"] == [] and seen(a, from_a)["likes"] == []
    assert not Moment.objects.filter(pk=from_b).exists()
    assert timeline_ids(c) == [from_a]


@pytest.mark.django_db
def test_comments_and_their_replies(trio):
    a, b, c, _ = trio
    moment_id = posted(a)
    first = comment(b, moment_id, "first").json()
    reply = comment(a, moment_id, "thanks", reply_to_user_id=str(b.user.pk))
    assert reply.status_code == 201 and reply.json()["reply_to_user_id"] == str(b.user.pk)
    # C cannot see B's comment (not friends), so C cannot reply to B there.
    refused = comment(c, moment_id, "hi B", reply_to_user_id=str(b.user.pk))
    assert refused.status_code == 400 and refused.json()["error"]["details"]["reply_to_user_id"]
    assert comment(c, moment_id, "hi A", reply_to_user_id=str(a.user.pk)).status_code == 201
    # The commenter and the post's author may delete a comment; nobody else.
    assert c.client.delete(f"/api/v1/moments/{moment_id}/comments/{first['id']}").status_code == 404
    assert a.client.delete(f"/api/v1/moments/{moment_id}/comments/{first['id']}").status_code == 204
    assert [x["text"] for x in seen(b, moment_id)["comments"]] == ["thanks"]


@pytest.mark.django_db
def test_attachments_of_a_post_are_readable_by_its_viewers_only(trio):
    from media.models import Attachment
    from media.selectors import attachment_can_view
    from tests.moments.conftest import upload

    a, b, _, d = trio
    image = upload(a)
    moment_id = posted(a, attachment_ids=[image])
    attachment = Attachment.objects.get(pk=image)
    assert attachment.used_at is not None, "posted: not an unreferenced upload any more"
    assert attachment_can_view(attachment=attachment, user_id=b.user.pk)
    assert not attachment_can_view(attachment=attachment, user_id=d.user.pk)
    assert seen(b, moment_id)["attachments"][0]["id"] == image
    remove_from_book(b, a)
    assert not attachment_can_view(attachment=attachment, user_id=b.user.pk)


@pytest.mark.django_db
def test_post_has_the_contract_shape(trio):
    a, _, _, _ = trio
    body = post(a, "hi", location={"lat": 31.24, "lng": 121.49, "name": "The Bund"}).json()
    assert set(body) == {"id", "author_id", "text", "attachments", "location", "visibility", "created_at",
                         "likes", "comments"}
    assert body["location"] == {"lat": 31.24, "lng": 121.49, "name": "The Bund"}
    assert body["author_id"] == str(a.user.pk) and body["created_at"].endswith("Z")
