"""Pepper rotation, contact.joined, deletion and the sync service's cost, on real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.services import otp_request, otp_verify, user_delete
from contacts import services
from contacts.hashing import BOOK_KEY_PURPOSE, book_keys
from contacts.models import BookEntry, DiscoveryPepper, JoinedNotified, PhoneIndex
from contacts.selectors import has_in_address_book
from contacts.tasks import notify_contact_joined, rotate_pepper
from core.crypto import keyed_hash
from streams.selectors import stream_read
from tests.contacts.conftest import discovery_of, sync
from tests.factories import next_phone

pytestmark = pytest.mark.django_db

PUSHES: list[dict] = []


def record_push(**kwargs: object) -> None:
    """Stands in for notifications.services.push_notify through the CONTACT_JOINED_PUSH seam."""
    PUSHES.append(kwargs)


def _joined_events(user) -> list[dict]:
    events, _ = stream_read(user_id=user.user.pk, after=0, limit=100)
    return [e for e in events if e["type"] == "contact.joined"]


# --- Keys -----------------------------------------------------------------------------------


def test_book_keys_are_keyed_hashes_under_the_book_secret(settings):
    digest = "ab" * 32
    assert book_keys("p1", [digest]) == [bytes.fromhex(keyed_hash(BOOK_KEY_PURPOSE, f"p1:{digest}"))]
    settings.CONTACTS_BOOK_SECRET = "another-secret"
    assert book_keys("p1", [digest]) == [
        bytes.fromhex(keyed_hash(BOOK_KEY_PURPOSE, f"p1:{digest}", secret="another-secret"))]
    assert book_keys("p2", [digest]) != book_keys("p1", [digest])


# --- Pepper rotation -----------------------------------------------------------------------------


def test_rotation_builds_the_new_index_in_batches_and_keeps_the_old_one_live(alice, discovery, register, settings):
    settings.CONTACTS_INDEX_BATCH = 2
    users = [register() for _ in range(5)]
    old = DiscoveryPepper.objects.get(pk=discovery.pepper_id)
    new = services.pepper_rotate(force=True)
    assert new.is_current and new.pk != old.pk
    old.refresh_from_db()
    assert not old.is_current and old.retired_at is not None
    # Both indexes hold every active user with a number (alice + 5).
    assert PhoneIndex.objects.filter(pepper=new).count() == 6
    assert PhoneIndex.objects.filter(pepper=old).count() == 6
    # The old pepper is still accepted during grace, and matches through its own index.
    body = sync(alice.client, discovery, [u.user.phone for u in users]).json()
    assert len(body["matches"]) == 5
    fresh = discovery_of(alice.client)
    assert len(sync(alice.client, fresh, [u.user.phone for u in users]).json()["matches"]) == 5


def test_previous_pepper_turns_stale_after_grace_and_its_index_is_dropped(alice, discovery, register, settings):
    bob = register()
    services.pepper_rotate(force=True)
    assert sync(alice.client, discovery, [bob.user.phone]).status_code == 200
    later = timezone.now() + timedelta(days=settings.CONTACTS_PEPPER_GRACE_DAYS, seconds=1)
    assert services.pepper_rotate(now=later) is None  # not due yet, but expired indexes go
    assert not PhoneIndex.objects.filter(pepper_id=discovery.pepper_id).exists()
    response = sync(alice.client, discovery, [bob.user.phone])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_pepper"
    # The secret is kept: books stored under it can still be matched later.
    assert DiscoveryPepper.objects.get(pk=discovery.pepper_id).secret


def test_grace_period_is_a_setting(alice, discovery, register, settings):
    settings.CONTACTS_PEPPER_GRACE_DAYS = 0
    services.pepper_rotate(force=True)
    response = sync(alice.client, discovery, [next_phone()])
    assert response.status_code == 409 and response.json()["error"]["code"] == "stale_pepper"


def test_rotation_is_due_only_after_the_interval(alice, discovery, settings):
    assert rotate_pepper.delay().get() is None
    assert DiscoveryPepper.objects.count() == 1
    due = timezone.now() + timedelta(days=settings.CONTACTS_PEPPER_ROTATION_DAYS)
    assert services.pepper_rotate(now=due) is not None
    assert DiscoveryPepper.objects.count() == 2
    assert DiscoveryPepper.objects.filter(is_current=True).count() == 1


def test_rotation_task_forces_a_new_pepper(alice, discovery):
    new_id = rotate_pepper.delay(force=True).get()
    assert new_id and new_id != discovery.pepper_id
    assert discovery_of(alice.client).pepper_id == new_id


def test_interrupted_build_is_resumed_not_duplicated(alice, discovery, register):
    bob = register()
    building = DiscoveryPepper.objects.create(id="building1", secret=b"k" * 32)
    services.pepper_index_build(pepper=building, batch_size=1)
    new = services.pepper_rotate()  # not due, but a started build is finished and activated
    assert new.pk == "building1" and new.is_current
    assert PhoneIndex.objects.filter(pepper=new).count() == 2
    assert PhoneIndex.objects.filter(pepper=new, user=bob.user.pk).count() == 1


def test_registration_during_a_build_is_indexed_under_the_building_pepper(discovery, register):
    building = DiscoveryPepper.objects.create(id="building2", secret=b"s" * 32)
    newcomer = register()
    assert PhoneIndex.objects.filter(pepper=building, user=newcomer.user.pk).exists()
    assert PhoneIndex.objects.filter(pepper_id=discovery.pepper_id, user=newcomer.user.pk).exists()


# --- contact.joined -------------------------------------------------------------------------------


def test_contact_joined_reaches_every_owner_whose_book_holds_the_number(discovery, register):
    alice, carol, bob = register(), register(), register()
    number = next_phone()
    sync(alice.client, discovery, [number, next_phone()])
    sync(carol.client, discovery, [number])
    sync(bob.client, discovery, [next_phone()])
    dave = register(phone=number, display_name="Dave")
    expected = {"user": {"id": str(dave.user.pk), "display_name": "Dave", "about": "", "avatar_url": ""}}
    assert [e["data"] for e in _joined_events(alice)] == [expected]
    assert [e["data"] for e in _joined_events(carol)] == [expected]
    assert _joined_events(bob) == []
    assert _joined_events(dave) == []
    # The stored book now links to the newcomer.
    assert has_in_address_book(owner_id=alice.user.pk, other_id=dave.user.pk)
    assert [c["user"]["id"] for c in alice.client.get("/api/v1/contacts").json()] == [str(dave.user.pk)]


def test_contact_joined_task_rerun_emits_no_duplicates(discovery, register):
    alice = register()
    number = next_phone()
    sync(alice.client, discovery, [number])
    dave = register(phone=number)
    assert notify_contact_joined.delay(str(dave.user.pk)).get() == 0
    assert services.contact_joined_notify(user_id=dave.user.pk) == 0
    assert len(_joined_events(alice)) == 1
    assert JoinedNotified.objects.filter(joined_user=dave.user.pk).count() == 1


def test_contact_joined_is_sent_in_batches(discovery, register, settings):
    settings.CONTACTS_JOINED_BATCH = 2
    number = next_phone()
    owners = [register() for _ in range(5)]
    for owner in owners:
        sync(owner.client, discovery, [number])
    register(phone=number)
    assert all(len(_joined_events(owner)) == 1 for owner in owners)


def test_contact_joined_matches_books_stored_under_a_retired_pepper(discovery, register, settings):
    alice = register()
    number = next_phone()
    sync(alice.client, discovery, [number])
    services.pepper_rotate(force=True)
    services.pepper_drop_expired(now=timezone.now() + timedelta(days=settings.CONTACTS_PEPPER_GRACE_DAYS + 1))
    dave = register(phone=number)
    assert len(_joined_events(alice)) == 1
    assert has_in_address_book(owner_id=alice.user.pk, other_id=dave.user.pk)


def test_contact_joined_honours_discoverable_nobody(discovery, register):
    alice = register()
    number = next_phone()
    sync(alice.client, discovery, [number])
    register(phone=number, discoverable="nobody")
    assert _joined_events(alice) == []


def test_contact_joined_for_contacts_only_waits_for_the_newcomers_own_book(discovery, register,
                                                                         django_capture_on_commit_callbacks):
    alice, bob = register(), register()
    number = next_phone()
    sync(alice.client, discovery, [number])
    sync(bob.client, discovery, [number])
    dana = register(phone=number, discoverable="contacts")
    assert _joined_events(alice) == [] and _joined_events(bob) == []
    # Dana's own upload holding alice announces her to alice only (the sync enqueues the task).
    with django_capture_on_commit_callbacks(execute=True):
        sync(dana.client, discovery, [alice.user.phone])
    assert len(_joined_events(alice)) == 1
    assert _joined_events(bob) == []


def test_contact_joined_skips_owners_who_blocked_the_newcomer(discovery, register,
                                                              django_capture_on_commit_callbacks):
    alice, carol = register(), register()
    number = next_phone()
    sync(alice.client, discovery, [number])
    sync(carol.client, discovery, [number])
    dave = register(phone=number, discoverable="contacts")  # not announced yet: his book is empty
    alice.client.post("/api/v1/blocks", {"user_id": str(dave.user.pk)}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        sync(dave.client, discovery, [alice.user.phone, carol.user.phone])
    assert _joined_events(alice) == []
    assert len(_joined_events(carol)) == 1


def test_contact_joined_is_not_sent_for_books_that_took_the_number_later(discovery, register):
    number = next_phone()
    dave = register(phone=number)
    late = register()
    sync(late.client, discovery, [number])
    BookEntry.objects.filter(owner=late.user.pk).update(created_at=timezone.now() + timedelta(hours=1))
    services.contact_joined_notify(user_id=dave.user.pk)
    assert _joined_events(late) == []


def test_contact_joined_pushes_through_the_setting_seam(discovery, register, settings):
    settings.CONTACT_JOINED_PUSH = "tests.contacts.test_services.record_push"
    PUSHES.clear()
    alice = register()
    number = next_phone()
    sync(alice.client, discovery, [number])
    dave = register(phone=number, display_name="Dave")
    assert len(PUSHES) == 1
    assert PUSHES[0]["user_id"] == alice.user.pk and PUSHES[0]["kind"] == "contact.joined"
    assert PUSHES[0]["data"] == {"user_id": str(dave.user.pk)}
    assert "Dave" in PUSHES[0]["body"]


def test_signup_through_otp_verify_runs_the_hook(discovery, register, settings, django_capture_on_commit_callbacks):
    settings.OTP_TEST_NUMBERS = ["+4477009"]
    alice = register()
    number = next_phone()
    sync(alice.client, discovery, [number])
    otp_request(phone=number, client_ip="127.0.0.1")
    with django_capture_on_commit_callbacks(execute=True):
        signed_in = otp_verify(phone=number, code=settings.OTP_TEST_CODE, device_name="P", platform="ios",
                               client_ip="127.0.0.1")
    assert signed_in.is_new_user
    assert PhoneIndex.objects.filter(user=signed_in.user.pk, pepper_id=discovery.pepper_id).exists()
    assert [e["data"]["user"]["id"] for e in _joined_events(alice)] == [str(signed_in.user.pk)]


# --- Account deletion --------------------------------------------------------------------------------


def test_deletion_drops_index_and_book_and_unlinks_others(discovery, register):
    alice, bob = register(), register()
    sync(alice.client, discovery, [bob.user.phone])
    sync(bob.client, discovery, [alice.user.phone, next_phone()])
    number = bob.user.phone
    user_delete(user=bob.user)
    assert not PhoneIndex.objects.filter(user=bob.user.pk).exists()
    assert not BookEntry.objects.filter(owner=bob.user.pk).exists()
    assert not has_in_address_book(owner_id=alice.user.pk, other_id=bob.user.pk)
    assert BookEntry.objects.filter(owner=alice.user.pk).count() == 1  # alice keeps the number
    # The number, registered again by someone else, is matched to the new owner.
    again = register(phone=number)
    assert has_in_address_book(owner_id=alice.user.pk, other_id=again.user.pk)


# --- Cost ---------------------------------------------------------------------------------------


def test_sync_of_a_full_book_costs_a_fixed_number_of_queries(discovery, register):
    alice = register()
    friends = [register() for _ in range(5)]
    book = [f.user.phone for f in friends] + [next_phone() for _ in range(4995)]
    with CaptureQueriesContext(connection) as first:
        assert sync(alice.client, discovery, book).status_code == 200
    with CaptureQueriesContext(connection) as again:
        body = sync(alice.client, discovery, book).json()
    assert len(body["matches"]) == 5 and body["stored"] == 5000
    assert len(first) <= 14 and len(again) <= 14
    match_queries = [q["sql"] for q in again if "contacts_phoneindex" in q["sql"]]
    assert len(match_queries) == 1 and "unnest" in match_queries[0]


def test_resync_after_rotation_charges_only_numbers_not_already_known_contacts(discovery, register, settings):
    settings.CONTACTS_DAILY_NEW_HASHES = 4
    owner = register()
    friends = [register().user.phone for _ in range(3)]
    stranger = next_phone()
    assert sync(owner.client, discovery, [*friends, stranger]).status_code == 200  # spends all 4
    services.pepper_rotate(force=True)
    fresh = discovery_of(owner.client)
    # Under the new pepper the stranger's hash is new again (the server cannot tell), the friends are not.
    assert sync(owner.client, fresh, [*friends, stranger], mode="add").status_code == 429
    body = sync(owner.client, fresh, friends, mode="add").json()
    assert len(body["matches"]) == 3 and body["stored"] == 7


def test_rotation_is_scheduled_on_celery_beat(settings):
    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["contacts-rotate-pepper"]
    assert entry["task"] == "contacts.rotate_pepper" and entry["schedule"] > 0
    assert {"contacts.rotate_pepper", "contacts.notify_contact_joined"} <= set(app.tasks)
