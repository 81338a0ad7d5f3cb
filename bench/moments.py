"""Bench scenario `moments`: the timeline of a user with 2,000 friends who posted 100,000 posts in all.

    make bench BENCH_ARGS="--only moments"

bench/run.py calls `scenario()`. It uses its own database (BENCH_MOMENTS_DATABASE_URL, default
messenger_bench_moments), migrated, and seeded once (this file run as `seed`): the viewer, `--mo-friends`
friends (mutual address-book entries), 500 one-sided contacts and 500 strangers, `--mo-posts` posts by the
friends spread over a year (80% friends, 10% only, 5% except, 5% private; lists of 5), 10% more posts by the
strangers, and two likes and a comment on every friend's post. Then (this file run as `measure`, a Django
process pinned to one core) it times `GET /api/v1/moments?limit=20` through the whole Django stack
(middleware, auth, view, selectors, JSON) with the viewer's token, no network: the first page, and pages
deep in the feed (random cursors). Figures: p50/p95 ms per page, the queries per page, and the plan of the
page query (EXPLAIN ANALYZE).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DATABASE_URL = os.environ.get("BENCH_MOMENTS_DATABASE_URL",
                              "postgres://postgres@127.0.0.1:5432/messenger_bench_moments")
VIEWER_PHONE = "+15550000001"


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


# --- Seeding (a Django process) ------------------------------------------------------------------------


def seed(friends: int, posts: int) -> dict[str, Any]:
    _django()
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Device, User
    from accounts.services import device_create
    from contacts.models import BookEntry
    from moments.models import Comment, Like, Moment, MomentAudience, Visibility

    viewer = User.objects.filter(phone=VIEWER_PHONE).first()
    if viewer is not None and Moment.objects.count() >= posts:
        Device.objects.filter(user=viewer).delete()
        _, token = device_create(user=viewer, name="bench", platform="android")
        return {"token": token, "seeded": False}
    rng = random.Random(14)
    with transaction.atomic():
        viewer = User.objects.create_user(phone=VIEWER_PHONE, display_name="Viewer")
        people = User.objects.bulk_create(
            [User(phone=f"+1555100{i:04d}", display_name=f"Friend {i}") for i in range(friends)]
            + [User(phone=f"+1555200{i:04d}", display_name=f"One-sided {i}") for i in range(500)]
            + [User(phone=f"+1555300{i:04d}", display_name=f"Stranger {i}") for i in range(500)],
            batch_size=2000)
        friend_users, one_sided, strangers = people[:friends], people[friends:friends + 500], people[friends + 500:]

        def entry(owner: Any, contact: Any) -> BookEntry:
            return BookEntry(owner_id=owner.pk, key=rng.randbytes(32), contact_user_id=contact.pk)

        BookEntry.objects.bulk_create([entry(viewer, f) for f in friend_users]
                                      + [entry(f, viewer) for f in friend_users]
                                      + [entry(viewer, o) for o in one_sided], batch_size=5000)
        now = timezone.now()
        moments: list[Moment] = []
        audience: list[MomentAudience] = []
        for i in range(posts + posts // 10):
            author = friend_users[i % friends] if i < posts else strangers[i % len(strangers)]
            roll = rng.random()
            mode = (Visibility.FRIENDS if roll < 0.8 else Visibility.ONLY if roll < 0.9
                    else Visibility.EXCEPT if roll < 0.95 else Visibility.PRIVATE)
            moment = Moment(author_id=author.pk, client_id=uuid.uuid4(), text=f"post {i} " + "lorem ipsum " * 8,
                            visibility=mode, created_at=now - timedelta(seconds=rng.randrange(365 * 86400)))
            moments.append(moment)
            if mode in (Visibility.ONLY, Visibility.EXCEPT):
                listed = {viewer.pk} if rng.random() < 0.3 else set()
                while len(listed) < 5:
                    listed.add(rng.choice(friend_users).pk)
                audience += [MomentAudience(moment_id=moment.pk, user_id=pk) for pk in listed]
        Moment.objects.bulk_create(moments, batch_size=5000)
        MomentAudience.objects.bulk_create(audience, batch_size=5000)
        likes, comments = [], []
        for moment in moments[:posts]:
            for liker in rng.sample(friend_users, 2):
                likes.append(Like(moment_id=moment.pk, user_id=liker.pk, created_at=moment.created_at))
            comments.append(Comment(moment_id=moment.pk, user_id=rng.choice(friend_users).pk, client_id=uuid.uuid4(),
                                    text="nice one", created_at=moment.created_at))
        Like.objects.bulk_create(likes, batch_size=5000, ignore_conflicts=True)
        Comment.objects.bulk_create(comments, batch_size=5000)
        _, token = device_create(user=viewer, name="bench", platform="android")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return {"token": token, "seeded": True}


# --- Measuring (a Django process) ----------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(token: str, runs: int) -> dict[str, Any]:
    _django()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from core.keyset import keyset_cursor_encode as cursor_encode
    from moments.models import Moment

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    viewer = User.objects.get(phone=VIEWER_PHONE)

    def page(before: str | None = None) -> tuple[float, dict[str, Any]]:
        params = {"limit": 20, **({"before": before} if before else {})}
        began = time.perf_counter()
        response = client.get("/api/v1/moments", params)
        elapsed = (time.perf_counter() - began) * 1000
        assert response.status_code == 200, response.content[:500]
        return elapsed, response.json()

    for _ in range(20):  # warm the caches and the connection pool
        page()
    first = [page()[0] for _ in range(runs)]
    stamps = list(Moment.objects.order_by("?").values_list("created_at", "id")[:runs])
    deep = [page(cursor_encode(at, pk))[0] for at, pk in stamps]
    walked, before = [], None
    for _ in range(min(runs, 50)):  # a user scrolling down: page after page
        elapsed, body = page(before)
        walked.append(elapsed)
        before = body["cursor"]
    from moments.selectors import timeline

    _, body = page()
    with CaptureQueriesContext(connection) as queries:
        timeline(viewer_id=viewer.pk, limit=20)
    page_sql = queries.captured_queries[0]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + page_sql["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    from contacts.selectors import friend_ids

    return {
        "friends": len(list(friend_ids(user_id=viewer.pk))),
        "posts": Moment.objects.count(),
        "first_page_ms": {"p50": statistics.median(first), "p95": _percentile(first, 0.95)},
        "deep_page_ms": {"p50": statistics.median(deep), "p95": _percentile(deep, 0.95)},
        "scroll_page_ms": {"p50": statistics.median(walked), "p95": _percentile(walked, 0.95)},
        "queries_per_page": len(queries.captured_queries),  # the selector's (auth adds the token lookup)
        "page_size": len(body["moments"]),
        "page_query_plan": plan,
    }


# --- The scenario (called by bench/run.py) -------------------------------------------------------------


def scenario(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    from bench import run

    env = {**run.server_env(DATABASE_URL), "LOG_LEVEL": "ERROR"}
    run.ensure_database(DATABASE_URL)
    run.run_checked([PY, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, timeout=900)
    seeded = json.loads(run.run_checked([PY, str(Path(__file__)), "seed", "--friends", str(args.mo_friends),
                                         "--posts", str(args.mo_posts)], env=env, timeout=1800)
                        .strip().splitlines()[-1])
    figures = json.loads(run.run_checked(run.pinned(run.SERVER_CPU, [PY, str(Path(__file__)), "measure",
                                                                     seeded["token"], "--runs", str(args.mo_runs)]),
                                         env=env, timeout=900).strip().splitlines()[-1])
    results["moments"] = figures
    run.log("moments: timeline page p50 {:.1f} ms (first), {:.1f} ms (deep), {} queries; {} friends, {} posts".format(
        figures["first_page_ms"]["p50"], figures["deep_page_ms"]["p50"], figures["queries_per_page"],
        figures["friends"], figures["posts"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["seed", "measure"])
    parser.add_argument("token", nargs="?")
    parser.add_argument("--friends", type=int, default=2000)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    if args.command == "seed":
        print(json.dumps(seed(args.friends, args.posts)))
    else:
        print(json.dumps(measure(args.token, args.runs)))


if __name__ == "__main__":
    main()
