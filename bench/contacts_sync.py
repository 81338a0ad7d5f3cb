"""Server time of one address-book sync: a 5,000-hash book against the seeded user base.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/msg_contacts REDIS_URL=redis://127.0.0.1:6379/2 \\
        .venv/bin/python manage.py contacts_seed --users 1000000 --books 400
    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/contacts_sync.py --runs 30

Times `contacts.services.contacts_sync` in-process (database and Redis work
included, HTTP excluded) and the whole POST /contacts/sync through Django's
test client (parsing, auth, rendering included), for these cases:

- first upload: `replace` by a user whose stored book is empty (5,000 rows written),
- re-sync: `replace` with the same book again (the everyday case),
- replace with another book: 5,000 entries out, 5,000 in (the worst case),
- add: `add` of a fresh 5,000-hash batch onto a book being grown,

and the match query alone (the one indexed statement that finds the
registered users among the 5,000 hashes).

Each book mixes hits (seeded users) and misses (unregistered numbers).
It uses its own bench owner users and removes them at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from accounts.models import User  # noqa: E402
from accounts.services import device_create, user_delete  # noqa: E402
from contacts.management.commands.contacts_seed import SEED_NAME, SEED_PREFIX, seed_phone  # noqa: E402
from contacts.selectors import index_match  # noqa: E402
from contacts.services import contacts_sync, pepper_ensure_current  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(name: str, samples: list[float]) -> None:
    print(f"{name:<34} n={len(samples):<3} p50={percentile(samples, 0.5):7.1f} ms  "
          f"p95={percentile(samples, 0.95):7.1f} ms  mean={statistics.fmean(samples):7.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--book", type=int, default=5000)
    parser.add_argument("--hits", type=int, default=500, help="registered numbers per book")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("Set DATABASE_URL to the PostgreSQL database seeded by contacts_seed.", file=sys.stderr)
        return 2
    seeded = User.objects.filter(display_name=SEED_NAME, phone__startswith=SEED_PREFIX).count()
    if seeded < args.hits:
        print("Seed first: python manage.py contacts_seed --users 1000000", file=sys.stderr)
        return 2
    # The bench measures speed, not the anti-enumeration budgets.
    settings.CONTACTS_DAILY_NEW_HASHES = 10**9
    settings.CONTACTS_DAILY_NEW_HASHES_PER_IP = 10**9
    settings.CONTACTS_SYNC_LIMIT_PER_IP = (10**9, 3600)
    settings.CONTACTS_MAX_BOOK_SIZE = 10**9

    pepper = pepper_ensure_current()
    key = bytes(pepper.secret)
    rng = random.Random(7)

    def client_hash(e164: str) -> str:
        return hmac.new(key, e164.encode(), hashlib.sha256).hexdigest()

    def book() -> list[str]:
        hits = [seed_phone(rng.randrange(seeded)) for _ in range(args.hits)]
        misses = [f"+98{rng.randrange(10**10):010d}" for _ in range(args.book - args.hits)]
        numbers = list(dict.fromkeys(hits + misses))
        return [client_hash(n) for n in numbers]

    owners: list[User] = []

    def new_owner() -> tuple[User, APIClient]:
        """A user with an empty stored book, and an API client signed in as them."""
        owner = User.objects.create_user(phone=f"+97{rng.randrange(10**10):010d}", display_name="bench-owner")
        owners.append(owner)
        _, token = device_create(user=owner, name="bench", platform="android")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return owner, client

    def timed(call: Any) -> tuple[float, Any]:
        started = time.perf_counter()
        value = call()
        return (time.perf_counter() - started) * 1000, value

    print(f"{seeded} registered users, pepper {pepper.pk}, books of {args.book} hashes "
          f"({args.hits} registered), {args.runs} runs each")
    try:
        match_only, first, resync, swap, matched = [], [], [], [], 0
        for _ in range(args.runs):
            digests = [bytes.fromhex(h) for h in book()]
            match_only.append(timed(lambda d=digests: index_match(viewer_id=uuid.uuid4(), pepper_id=pepper.pk,
                                                                   digests=d))[0])
        for _ in range(args.runs):
            owner, _ = new_owner()
            hashes, other = book(), book()
            elapsed, result = timed(lambda o=owner, h=hashes: contacts_sync(
                user=o, pepper_id=pepper.pk, mode="replace", hashes=h))
            first.append(elapsed)
            matched = len(result.matches)
            resync.append(timed(lambda o=owner, h=hashes: contacts_sync(
                user=o, pepper_id=pepper.pk, mode="replace", hashes=h))[0])
            swap.append(timed(lambda o=owner, h=other: contacts_sync(
                user=o, pepper_id=pepper.pk, mode="replace", hashes=h))[0])
        report("match query alone", match_only)
        report("service: first upload (empty book)", first)
        report("service: re-sync same book", resync)
        report("service: replace with another book", swap)

        owner, _ = new_owner()
        added = [timed(lambda: contacts_sync(user=owner, pepper_id=pepper.pk, mode="add", hashes=book()))[0]
                 for _ in range(min(args.runs, 10))]
        report(f"service: add 5k (book to {len(added) * args.book})", added)

        http_first, http_resync = [], []
        for _ in range(min(args.runs, 10)):
            _, client = new_owner()
            body = {"pepper_id": pepper.pk, "mode": "replace", "hashes": book()}
            elapsed, response = timed(lambda c=client, b=body: c.post("/api/v1/contacts/sync", b, format="json"))
            assert response.status_code == 200, response.content[:300]
            http_first.append(elapsed)
            http_resync.append(timed(lambda c=client, b=body: c.post("/api/v1/contacts/sync", b, format="json"))[0])
        report("HTTP: first upload (empty book)", http_first)
        report("HTTP: re-sync same book", http_resync)
        print(f"matches per sync: {matched} of {args.hits} registered numbers in the book")
    finally:
        for owner in owners:
            user_delete(user=owner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
