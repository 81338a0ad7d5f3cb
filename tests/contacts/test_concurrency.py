"""Parallel syncs of one user are serialised: the daily budget cannot be overspent by racing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from contacts.models import BookEntry
from contacts.services import contacts_sync, pepper_ensure_current
from core.errors import RateLimited
from tests.contacts.conftest import Discovery
from tests.factories import next_phone, sign_in


@pytest.mark.django_db(transaction=True)
def test_parallel_syncs_cannot_overspend_the_daily_budget(settings):
    settings.CONTACTS_DAILY_NEW_HASHES = 5
    owner = sign_in().user
    pepper = pepper_ensure_current()
    client = Discovery(pepper_id=pepper.pk, key=bytes(pepper.secret))
    books = [[client.hash(next_phone()) for _ in range(3)] for _ in range(4)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(books))

    def upload(hashes: list[str]) -> None:
        try:
            barrier.wait(timeout=10)
            contacts_sync(user=owner, pepper_id=pepper.pk, mode="add", hashes=hashes)
            outcomes.append("ok")
        except RateLimited:
            outcomes.append("429")
        except BaseException as exc:  # pragma: no cover - reported below
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=upload, args=(book,)) for book in books]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["429", "429", "429", "ok"]
    assert BookEntry.objects.filter(owner=owner).count() == 3
