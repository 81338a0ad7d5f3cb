"""The timeline: newest first, keyset paging that neither repeats nor skips under concurrent posting,
and a fixed number of queries whatever the number of friends and posts."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from moments.models import Moment
from moments.selectors import timeline
from moments.services import moment_post
from tests.moments.conftest import befriend, comment, like, posted, upload


def walk(who, limit: int) -> list[str]:
    ids, before = [], ""
    while True:
        params = {"limit": limit, **({"before": before} if before else {})}
        page = who.client.get("/api/v1/moments", params).json()
        ids += [m["id"] for m in page["moments"]]
        if not page["has_more"]:
            return ids
        before = page["cursor"]


@pytest.mark.django_db
def test_the_timeline_is_newest_first_and_pages_cover_it_exactly_once(person):
    a, b, c = person("A"), person("B"), person("C")
    befriend(a, b)
    befriend(a, c)
    made = [posted(who, f"post {i}") for i, who in enumerate([a, b, c] * 5)]
    # Same created_at for several posts: the id breaks the tie.
    same = timezone.now() - timedelta(minutes=1)
    Moment.objects.filter(pk__in=made[:6]).update(created_at=same)
    full = walk(a, 50)
    assert sorted(full) == sorted(made) and len(full) == 15
    assert walk(a, 4) == full
    assert walk(a, 1) == full
    created = list(Moment.objects.filter(pk__in=full).values_list("created_at", "id"))
    assert [str(i) for _, i in sorted(created, reverse=True)] == full


@pytest.mark.django_db(transaction=True)
def test_paging_is_stable_while_friends_post_concurrently(person):
    a, b, c = person("A"), person("B"), person("C")
    befriend(a, b)
    befriend(a, c)
    before_walk = {posted(who, "old") for who in [b, c] * 10}

    stop = threading.Event()
    written: list[str] = []

    def keep_posting(author: User) -> None:
        try:
            while not stop.is_set() and len(written) < 100:
                moment, _ = moment_post(author=author, client_id=uuid.uuid4(), text="new")
                written.append(moment["id"])
        finally:
            connection.close()

    threads = [threading.Thread(target=keep_posting, args=(who.user,)) for who in (b, c)]
    for thread in threads:
        thread.start()
    try:
        seen: list[str] = []
        before = ""
        while True:
            params = {"limit": 3, **({"before": before} if before else {})}
            page = a.client.get("/api/v1/moments", params).json()
            seen += [m["id"] for m in page["moments"]]
            if not page["has_more"]:
                break
            before = page["cursor"]
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert written, "posts were made during the walk"
    assert len(seen) == len(set(seen)), "no post is repeated"
    assert before_walk <= set(seen), "no post that was there when the walk began is skipped"


@pytest.mark.django_db
def test_a_timeline_page_costs_the_same_queries_whatever_the_friends_posts_and_interactions(
        person, django_assert_num_queries):
    a = person("A")
    friends = [person(f"F{i}") for i in range(6)]
    befriend(a, *friends)
    for friend in friends:
        moment_id = posted(friend, attachment_ids=[upload(friend), upload(friend)])
        like(a, moment_id)
        comment(a, moment_id, "nice")
        for other in friends[:3]:
            if other is not friend:
                like(other, moment_id)
    own = posted(a, mode="only", user_ids=[str(friends[0].user.pk)])
    like(friends[0], own)

    # The page (friends a subquery of it), attachments, likes and comments (each marked with whether
    # its author is the viewer's friend), and the lists of the viewer's own only/except posts.
    with django_assert_num_queries(5):
        page = timeline(viewer_id=a.user.pk, limit=20)
    assert len(page["moments"]) == 7
    assert all(len(m["attachments"]) == 2 for m in page["moments"][1:])
    assert all(len(m["likes"]) >= 3 for m in page["moments"][1:]), "A and friends' likes, seen by A"

    # A friend's view: no own posts with lists on the page, so four queries; the page is one statement.
    with CaptureQueriesContext(connection) as queries:
        timeline(viewer_id=friends[4].user.pk, limit=20)
    assert len(queries) == 4
    sql = queries.captured_queries[0]["sql"]
    assert "contacts_bookentry" in sql and "ORDER BY" in sql and "LIMIT 21" in sql, (
        "one keyset query for the page, the friends a subquery of it")


@pytest.mark.django_db
def test_the_query_count_does_not_grow_with_more_friends_and_posts(person):
    a = person("A")
    counts = []
    for round_ in range(2):
        for i in range(4 if round_ == 0 else 8):
            friend = person(f"F{round_}-{i}")
            befriend(a, friend)
            for _ in range(3):
                moment_id = posted(friend)
                like(friend, moment_id)
                comment(friend, moment_id)
        with CaptureQueriesContext(connection) as queries:
            timeline(viewer_id=a.user.pk, limit=20)
        counts.append(len(queries))
    assert counts[0] == counts[1] == 4
