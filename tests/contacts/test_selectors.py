"""The selectors other apps call (see /work/interfaces.md), and their cost."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.selectors import last_seen_visible_to
from contacts.selectors import (
    blocked_either_way,
    blockers_of,
    contact_list,
    has_in_address_book,
    is_blocked,
)
from contacts.services import block_create, block_delete
from tests.contacts.conftest import sync

pytestmark = pytest.mark.django_db


def test_is_blocked_is_one_way(alice, bob):
    block_create(blocker=alice.user, blocked_id=bob.user.pk)
    assert is_blocked(blocker_id=alice.user.pk, blocked_id=bob.user.pk)
    assert not is_blocked(blocker_id=bob.user.pk, blocked_id=alice.user.pk)
    block_delete(blocker=alice.user, blocked_id=bob.user.pk)
    assert not is_blocked(blocker_id=alice.user.pk, blocked_id=bob.user.pk)


def test_blocked_either_way_and_blockers_of_in_one_query_each(alice, bob, carol, user_factory):
    dave = user_factory()
    block_create(blocker=alice.user, blocked_id=bob.user.pk)    # alice blocked bob
    block_create(blocker=carol.user, blocked_id=alice.user.pk)  # carol blocked alice
    block_create(blocker=bob.user, blocked_id=carol.user.pk)    # unrelated to alice
    others = [bob.user.pk, str(carol.user.pk), dave.user.pk, "not-a-uuid", uuid.uuid4()]
    with CaptureQueriesContext(connection) as queries:
        either = blocked_either_way(user_id=alice.user.pk, other_ids=others)
        blockers = blockers_of(user_id=alice.user.pk, candidate_ids=others)
    assert either == {str(bob.user.pk), str(carol.user.pk)}
    assert blockers == {str(carol.user.pk)}
    assert len(queries) == 2
    assert blocked_either_way(user_id=alice.user.pk, other_ids=[]) == set()
    assert blockers_of(user_id=alice.user.pk, candidate_ids=[]) == set()


def test_has_in_address_book_is_one_way(discovery, register):
    alice, bob = register(), register()
    sync(alice.client, discovery, [bob.user.phone])
    assert has_in_address_book(owner_id=alice.user.pk, other_id=bob.user.pk)
    assert not has_in_address_book(owner_id=bob.user.pk, other_id=alice.user.pk)


def test_last_seen_contacts_setting_follows_the_uploaded_book(discovery, register):
    alice, bob = register(), register()
    alice.user.last_seen_visibility = "contacts"
    alice.user.save()
    assert not last_seen_visible_to(target=alice.user, viewer_id=bob.user.pk)
    sync(alice.client, discovery, [bob.user.phone])
    assert last_seen_visible_to(target=alice.user, viewer_id=bob.user.pk)
    block_create(blocker=alice.user, blocked_id=bob.user.pk)
    assert not last_seen_visible_to(target=alice.user, viewer_id=bob.user.pk)


def test_contact_list_is_one_query_whatever_its_length(discovery, register):
    alice = register()
    friends = [register() for _ in range(6)]
    sync(alice.client, discovery, [f.user.phone for f in friends])
    for friend in friends[:3]:
        sync(friend.client, discovery, [alice.user.phone])
    with CaptureQueriesContext(connection) as queries:
        contacts = [(str(user.pk), user.mutual) for user in contact_list(viewer_id=alice.user.pk)]
    assert len(queries) == 1
    assert sorted(contacts) == sorted([(str(f.user.pk), i < 3) for i, f in enumerate(friends)])
