"""The Contacts section of the contract, through HTTP, on real PostgreSQL and Redis."""

from __future__ import annotations

import base64
import uuid

import pytest

from contacts.models import BookEntry, DiscoveryPepper
from contacts.selectors import has_in_address_book
from tests.contacts.conftest import discovery_of, sync
from tests.factories import next_phone

pytestmark = pytest.mark.django_db


def _entries(user) -> int:
    return BookEntry.objects.filter(owner=user.user.pk).count()


# --- Discovery ------------------------------------------------------------------------------


def test_discovery_serves_current_pepper(alice):
    response = alice.client.get("/api/v1/contacts/discovery")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"algorithm", "pepper_id", "pepper", "normalization", "max_batch"}
    assert body["algorithm"] == "hmac-sha256" and body["normalization"] == "E.164" and body["max_batch"] == 5000
    key = base64.urlsafe_b64decode(body["pepper"] + "=" * (-len(body["pepper"]) % 4))
    assert len(key) == 32
    assert DiscoveryPepper.objects.get(is_current=True).pk == body["pepper_id"]
    assert alice.client.get("/api/v1/contacts/discovery").json() == body


def test_contacts_endpoints_need_auth(api):
    for path in ("/api/v1/contacts/discovery", "/api/v1/contacts", "/api/v1/blocks"):
        assert api.get(path).status_code == 401
    assert api.post("/api/v1/contacts/sync", {}, format="json").status_code == 401


# --- Sync -------------------------------------------------------------------------------------


def test_sync_replace_matches_registered_numbers_only(alice, discovery, register):
    bob = register(display_name="Bob")
    stranger = next_phone()
    response = sync(alice.client, discovery, [bob.user.phone, stranger, alice.user.phone])
    assert response.status_code == 200
    body = response.json()
    assert body["stored"] == 3
    assert body["matches"] == [{
        "hash": discovery.hash(bob.user.phone),
        "user": {"id": str(bob.user.pk), "display_name": "Bob", "about": "", "avatar_url": ""},
    }]
    assert has_in_address_book(owner_id=alice.user.pk, other_id=bob.user.pk)


def test_sync_accepts_upper_case_hex(alice, discovery, register):
    bob = register()
    response = alice.client.post("/api/v1/contacts/sync", {
        "pepper_id": discovery.pepper_id, "mode": "replace", "hashes": [discovery.hash(bob.user.phone).upper()],
    }, format="json")
    assert response.status_code == 200
    assert response.json()["matches"][0]["hash"] == discovery.hash(bob.user.phone)


def test_sync_add_and_remove_are_deltas(alice, discovery, register):
    bob, carol = register(), register()
    assert sync(alice.client, discovery, [bob.user.phone], mode="add").json()["stored"] == 1
    body = sync(alice.client, discovery, [carol.user.phone, next_phone()], mode="add").json()
    assert body["stored"] == 3
    assert [m["user"]["id"] for m in body["matches"]] == [str(carol.user.pk)]
    body = sync(alice.client, discovery, [bob.user.phone], mode="remove").json()
    assert body == {"matches": [], "stored": 2}
    assert not has_in_address_book(owner_id=alice.user.pk, other_id=bob.user.pk)
    assert has_in_address_book(owner_id=alice.user.pk, other_id=carol.user.pk)


def test_sync_replace_drops_numbers_not_in_the_new_book(alice, discovery, register):
    bob, carol = register(), register()
    sync(alice.client, discovery, [bob.user.phone, carol.user.phone])
    body = sync(alice.client, discovery, [carol.user.phone]).json()
    assert body["stored"] == 1
    assert not has_in_address_book(owner_id=alice.user.pk, other_id=bob.user.pk)
    assert sync(alice.client, discovery, []).json() == {"matches": [], "stored": 0}


def test_stored_book_holds_no_client_hash_or_number(alice, discovery):
    number = next_phone()
    sync(alice.client, discovery, [number])
    entry = BookEntry.objects.get(owner=alice.user.pk)
    assert bytes(entry.key) != bytes.fromhex(discovery.hash(number))
    assert number.encode() not in bytes(entry.key)


# --- Privacy: discoverable, both ways ------------------------------------------------------------


def test_discoverable_nobody_is_never_matched_nor_listed(alice, discovery, register):
    hidden = register(discoverable="nobody")
    sync(hidden.client, discovery, [alice.user.phone])  # even with alice in their own book
    assert sync(alice.client, discovery, [hidden.user.phone]).json()["matches"] == []
    assert alice.client.get("/api/v1/contacts").json() == []
    # The link is kept: if they open up, they appear without a re-upload.
    hidden.user.discoverable = "everyone"
    hidden.user.save()
    assert [c["user"]["id"] for c in alice.client.get("/api/v1/contacts").json()] == [str(hidden.user.pk)]


def test_discoverable_contacts_needs_the_caller_in_the_targets_book(discovery, register):
    alice = register()
    dana = register(discoverable="contacts")
    assert sync(alice.client, discovery, [dana.user.phone]).json()["matches"] == []
    assert alice.client.get("/api/v1/contacts").json() == []
    # Dana (contacts-only) sees alice (everyone) at once, and alice now sees dana too.
    dana_matches = sync(dana.client, discovery, [alice.user.phone]).json()["matches"]
    assert [m["user"]["id"] for m in dana_matches] == [str(alice.user.pk)]
    assert [m["user"]["id"] for m in sync(alice.client, discovery, [dana.user.phone]).json()["matches"]] == [
        str(dana.user.pk)]
    listed = alice.client.get("/api/v1/contacts").json()
    # Dana's last_seen is "contacts" (the default) and alice is in her book, so it is shown.
    assert listed == [{"user": {"id": str(dana.user.pk), "display_name": "", "about": "", "avatar_url": "",
                                "last_seen": None}, "mutual": True}]


def test_discoverable_everyone_is_matched_without_being_mutual(discovery, register):
    alice, bob = register(), register(discoverable="everyone")
    assert len(sync(alice.client, discovery, [bob.user.phone]).json()["matches"]) == 1
    assert alice.client.get("/api/v1/contacts").json()[0]["mutual"] is False
    # Bob has no book: alice appears nowhere for him.
    assert bob.client.get("/api/v1/contacts").json() == []


def test_mutual_is_true_both_ways_only_when_each_has_the_other(discovery, register):
    alice, bob = register(display_name="A"), register(display_name="B")
    sync(alice.client, discovery, [bob.user.phone])
    assert [(c["user"]["id"], c["mutual"]) for c in alice.client.get("/api/v1/contacts").json()] == [
        (str(bob.user.pk), False)]
    sync(bob.client, discovery, [alice.user.phone])
    assert [(c["user"]["id"], c["mutual"]) for c in alice.client.get("/api/v1/contacts").json()] == [
        (str(bob.user.pk), True)]
    assert [(c["user"]["id"], c["mutual"]) for c in bob.client.get("/api/v1/contacts").json()] == [
        (str(alice.user.pk), True)]
    sync(bob.client, discovery, [alice.user.phone], mode="remove")
    assert alice.client.get("/api/v1/contacts").json()[0]["mutual"] is False


def test_contact_list_shows_last_seen_only_where_its_privacy_allows(discovery, register):
    from django.utils import timezone

    from contacts.services import block_create

    alice = register()
    seen = timezone.now()
    open_one = register(display_name="A", last_seen_visibility="everyone", last_seen_at=seen)
    private = register(display_name="B", last_seen_visibility="nobody", last_seen_at=seen)
    contacts_only = register(display_name="C", last_seen_visibility="contacts", last_seen_at=seen)
    blocker = register(display_name="D", last_seen_visibility="everyone", last_seen_at=seen)
    block_create(blocker=blocker.user, blocked_id=alice.user.pk)
    sync(alice.client, discovery, [u.user.phone for u in (open_one, private, contacts_only, blocker)])
    shown = {c["user"]["display_name"]: "last_seen" in c["user"] for c in alice.client.get("/api/v1/contacts").json()}
    assert shown == {"A": True, "B": False, "C": False, "D": False}
    sync(contacts_only.client, discovery, [alice.user.phone])
    listed = {c["user"]["display_name"]: c["user"] for c in alice.client.get("/api/v1/contacts").json()}
    assert listed["C"]["last_seen"].endswith("Z")


# --- Bad input: clear errors, nothing stored -------------------------------------------------------

GOOD = "a" * 64


@pytest.mark.parametrize(("hashes", "field"), [
    (["a" * 63], "hashes.0"),
    ([GOOD, "g" * 64], "hashes.1"),
    ([GOOD, "a" * 65], "hashes.1"),
    ([GOOD, 12], "hashes.1"),
    ([GOOD, None], "hashes.1"),
    ([GOOD, GOOD], "hashes.1"),
    ([GOOD, GOOD.upper()], "hashes.1"),
    ("abc", "hashes"),
    ({"a": 1}, "hashes"),
    ([f"{i:064x}" for i in range(5001)], "hashes"),
])
def test_sync_refuses_bad_hashes_and_stores_nothing(alice, discovery, hashes, field):
    sync(alice.client, discovery, [next_phone()])
    response = alice.client.post("/api/v1/contacts/sync",
                                 {"pepper_id": discovery.pepper_id, "mode": "add", "hashes": hashes}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]
    assert _entries(alice) == 1


@pytest.mark.parametrize("body", [
    {"mode": "replace", "hashes": []},
    {"pepper_id": "x", "hashes": []},
    {"pepper_id": "x", "mode": "merge", "hashes": []},
    {"pepper_id": 5, "mode": "add", "hashes": []},
    {"pepper_id": "x" * 40, "mode": "add", "hashes": []},
    {"pepper_id": "x", "mode": "add", "hashes": [], "extra": 1},
])
def test_sync_refuses_malformed_body(alice, discovery, body):
    if body.get("pepper_id") == "x":
        body = {**body, "pepper_id": discovery.pepper_id}
    response = alice.client.post("/api/v1/contacts/sync", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_sync_refuses_unknown_mode_with_field_detail(alice, discovery):
    response = sync(alice.client, discovery, [next_phone()], mode="merge")
    assert response.status_code == 400
    assert "mode" in response.json()["error"]["details"]
    assert _entries(alice) == 0


def test_sync_with_unknown_pepper_is_stale_pepper(alice, discovery):
    response = alice.client.post("/api/v1/contacts/sync",
                                 {"pepper_id": "nope", "mode": "replace", "hashes": [GOOD]}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_pepper"
    assert _entries(alice) == 0


def test_sync_refuses_a_book_over_the_size_cap(alice, discovery, settings):
    settings.CONTACTS_MAX_BOOK_SIZE = 3
    assert sync(alice.client, discovery, [next_phone() for _ in range(3)], mode="add").status_code == 200
    response = sync(alice.client, discovery, [next_phone()], mode="add")
    assert response.status_code == 400 and "hashes" in response.json()["error"]["details"]
    assert _entries(alice) == 3


# --- Anti-enumeration budgets ------------------------------------------------------------------


def test_daily_budget_counts_only_never_seen_hashes(alice, discovery, settings):
    settings.CONTACTS_DAILY_NEW_HASHES = 5
    book = [next_phone() for _ in range(5)]
    assert sync(alice.client, discovery, book).status_code == 200
    for _ in range(3):  # re-syncing the same book costs nothing
        assert sync(alice.client, discovery, book).status_code == 200
    assert sync(alice.client, discovery, book[:2], mode="add").status_code == 200
    response = sync(alice.client, discovery, [*book, next_phone()])
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 0 < int(response["Retry-After"]) <= 86401
    assert _entries(alice) == 5  # the refused replace stored nothing
    assert sync(alice.client, discovery, book[:1], mode="remove").status_code == 200  # removing is free


def test_daily_budget_refuses_the_whole_request(alice, discovery, settings):
    settings.CONTACTS_DAILY_NEW_HASHES = 3
    response = sync(alice.client, discovery, [next_phone() for _ in range(4)])
    assert response.status_code == 429
    assert _entries(alice) == 0
    assert sync(alice.client, discovery, [next_phone() for _ in range(3)]).status_code == 200


def test_per_ip_budget_spans_accounts(discovery, register, settings):
    settings.CONTACTS_DAILY_NEW_HASHES_PER_IP = 4
    first, second = register(), register()
    assert sync(first.client, discovery, [next_phone() for _ in range(3)]).status_code == 200
    response = sync(second.client, discovery, [next_phone() for _ in range(2)])
    assert response.status_code == 429 and response.has_header("Retry-After")
    assert _entries(second) == 0


def test_per_ip_request_limit(alice, discovery, settings):
    settings.CONTACTS_SYNC_LIMIT_PER_IP = (2, 3600)
    assert sync(alice.client, discovery, []).status_code == 200
    assert sync(alice.client, discovery, []).status_code == 200
    response = sync(alice.client, discovery, [])
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


# --- Contact list --------------------------------------------------------------------------------


def test_contact_list_omits_deleted_users(alice, discovery, register):
    bob = register()
    sync(alice.client, discovery, [bob.user.phone])
    assert bob.client.delete("/api/v1/me").status_code == 204
    assert alice.client.get("/api/v1/contacts").json() == []
    assert not has_in_address_book(owner_id=alice.user.pk, other_id=bob.user.pk)


# --- Blocks --------------------------------------------------------------------------------------


def test_block_list_unblock_roundtrip(alice, bob, carol):
    assert alice.client.post("/api/v1/blocks", {"user_id": str(bob.user.pk)}, format="json").status_code == 204
    assert alice.client.post("/api/v1/blocks", {"user_id": str(bob.user.pk)}, format="json").status_code == 204
    assert alice.client.post("/api/v1/blocks", {"user_id": str(carol.user.pk)}, format="json").status_code == 204
    listed = alice.client.get("/api/v1/blocks").json()
    assert [b["user"]["id"] for b in listed] == [str(carol.user.pk), str(bob.user.pk)]
    assert set(listed[0]) == {"user", "created_at"} and listed[0]["created_at"].endswith("Z")
    assert listed[1]["user"] == {"id": str(bob.user.pk), "display_name": "Bob", "about": "", "avatar_url": ""}
    assert bob.client.get("/api/v1/blocks").json() == []
    assert alice.client.delete(f"/api/v1/blocks/{bob.user.pk}").status_code == 204
    assert alice.client.delete(f"/api/v1/blocks/{bob.user.pk}").status_code == 204  # idempotent
    assert [b["user"]["id"] for b in alice.client.get("/api/v1/blocks").json()] == [str(carol.user.pk)]


def test_blocking_oneself_is_a_validation_error(alice):
    response = alice.client.post("/api/v1/blocks", {"user_id": str(alice.user.pk)}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "user_id" in response.json()["error"]["details"]
    assert alice.client.get("/api/v1/blocks").json() == []


def test_blocking_unknown_or_deleted_user_is_not_found(alice, bob):
    response = alice.client.post("/api/v1/blocks", {"user_id": str(uuid.uuid4())}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    bob.client.delete("/api/v1/me")
    assert alice.client.post("/api/v1/blocks", {"user_id": str(bob.user.pk)}, format="json").status_code == 404
    assert alice.client.get("/api/v1/blocks").json() == []


@pytest.mark.parametrize("body", [{"user_id": "not-a-uuid"}, {"user_id": 5}, {}, {"user_id": None},
                                  {"user_id": "00000000-0000-0000-0000-000000000000", "x": 1}])
def test_block_refuses_malformed_body(alice, body):
    response = alice.client.post("/api/v1/blocks", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_unblock_with_garbage_id_is_not_found(alice):
    response = alice.client.delete("/api/v1/blocks/not-a-uuid")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_rotated_discovery_is_served_to_clients(alice, discovery):
    from contacts.services import pepper_rotate

    pepper_rotate(force=True)
    fresh = discovery_of(alice.client)
    assert fresh.pepper_id != discovery.pepper_id and fresh.key != discovery.key
