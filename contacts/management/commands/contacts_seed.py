"""Seed many registered users and their discovery index, for the contacts benchmark.

    python manage.py contacts_seed --users 1000000

Users get synthetic numbers under "+99" (no country uses it) and the display
name "seed"; rows go in with PostgreSQL COPY, so a million takes about a
minute. Rerunning tops up to --users (a later rotation indexes them under
the new pepper like every other user).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from contacts.hashing import discovery_digest
from contacts.models import BookEntry
from contacts.services import pepper_ensure_current

SEED_PREFIX = "+99"
SEED_NAME = "seed"


def seed_phone(index: int) -> str:
    return f"{SEED_PREFIX}{index:010d}"


class Command(BaseCommand):
    help = "Seed registered users and the current pepper's index (PostgreSQL only), for bench/contacts_sync.py."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--users", type=int, default=1_000_000)
        parser.add_argument("--chunk", type=int, default=100_000)
        parser.add_argument("--books", type=int, default=0,
                            help="also store this many address books of --book-size random entries "
                                 "(owned by seeded users), so the stored-book table is not empty")
        parser.add_argument("--book-size", type=int, default=5000)

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("contacts_seed needs PostgreSQL (it uses COPY); set DATABASE_URL.")
        wanted = options["users"]
        chunk = max(1, options["chunk"])
        started = time.monotonic()
        pepper = pepper_ensure_current()
        secret = bytes(pepper.secret)
        existing = User.objects.filter(display_name=SEED_NAME, phone__startswith=SEED_PREFIX).count()
        now = timezone.now()
        for start in range(existing, wanted, chunk):
            stop = min(wanted, start + chunk)
            with transaction.atomic(), connection.cursor() as cursor:
                raw = cursor.cursor
                users = [(uuid.uuid4(), seed_phone(i)) for i in range(start, stop)]
                with raw.copy(
                    "COPY accounts_user (id, password, is_superuser, phone, display_name, about, avatar_url, "
                    "discoverable, last_seen_visibility, read_receipts, message_preview_in_push, created_at, "
                    "is_active, is_staff) FROM STDIN"
                ) as copy:
                    for user_id, phone in users:
                        copy.write_row((user_id, "!", False, phone, SEED_NAME, "", "", "everyone", "contacts",
                                        True, True, now, True, False))
                with raw.copy("COPY contacts_phoneindex (pepper_id, digest, user_id) FROM STDIN") as copy:
                    for user_id, phone in users:
                        copy.write_row((pepper.pk, discovery_digest(secret, phone), user_id))
            self.stdout.write(f"  {stop} users ({time.monotonic() - started:.0f} s)")
        if options["books"]:
            self._seed_books(count=options["books"], size=options["book_size"], started=started)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE accounts_user")
            cursor.execute("ANALYZE contacts_phoneindex")
            cursor.execute("ANALYZE contacts_bookentry")
        indexed = pepper.pk
        self.stdout.write(self.style.SUCCESS(
            f"{max(existing, wanted)} seeded users indexed under pepper {indexed} in {time.monotonic() - started:.0f} s"
        ))

    def _seed_books(self, *, count: int, size: int, started: float) -> None:
        owners = list(
            User.objects.filter(display_name=SEED_NAME, phone__startswith=SEED_PREFIX)
            .exclude(pk__in=BookEntry.objects.values("owner_id"))
            .values_list("pk", flat=True)[:count]
        )
        now = timezone.now()
        for index, owner_id in enumerate(owners, start=1):
            with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(
                "COPY contacts_bookentry (owner_id, key, created_at) FROM STDIN"
            ) as copy:
                for key in sorted(os.urandom(32) for _ in range(size)):
                    copy.write_row((owner_id, key, now))
            if index % 50 == 0 or index == len(owners):
                self.stdout.write(f"  {index} stored books ({time.monotonic() - started:.0f} s)")

