"""Discovery peppers, the registered-number index, stored address books and blocks.

Nothing here holds a phone number in clear: the index holds the same
pepper hashes clients upload, and stored books hold keyed hashes under a
server secret that is not in the database (see docs/contacts.md).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q


class EqualityIndex(models.Index):
    """A hash index on PostgreSQL, a btree elsewhere (the embedded SQLite).

    For random 32-byte keys looked up by equality only: a third of a
    btree's size, so the thousands of scattered inserts of an upload touch
    fewer pages.
    """

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.vendor == "postgresql":
            using = " USING hash"
        return super().create_sql(model, schema_editor, using=using, **kwargs)


class DiscoveryPepper(models.Model):
    """A key clients hash their address book with.

    Life cycle: building (index being filled, unknown to clients) -> current
    (served by discovery, exactly one) -> retired (still accepted for uploads
    during the grace period; its index is dropped after it). The secret is
    kept after that so books stored under it can still be matched when a
    number registers.
    """

    id = models.CharField(primary_key=True, max_length=16)
    secret = models.BinaryField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    is_current = models.BooleanField(default=False)
    index_dropped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["is_current"], condition=Q(is_current=True),
                                    name="pepper_one_current"),
        ]

    def __str__(self) -> str:
        return f"pepper {self.id}"


class PhoneIndex(models.Model):
    """hmac(pepper, E.164) of one registered user, per pepper with a live index."""

    id = models.BigAutoField(primary_key=True)
    pepper = models.ForeignKey(DiscoveryPepper, on_delete=models.CASCADE, related_name="+", db_index=False)
    digest = models.BinaryField(max_length=32)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                             db_index=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "pepper"], name="phoneindex_user_pepper_uniq")]
        indexes = [models.Index(fields=["pepper", "digest"], name="phoneindex_pepper_digest_idx")]

    def __str__(self) -> str:
        return f"index {self.pepper_id}/{self.user_id}"


class BookEntry(models.Model):
    """One number of one user's uploaded address book, as keyed hash only.

    `key` = HMAC(book secret, "<pepper_id>:<client hash>"); `contact_user`
    is the registered user the number belongs to, kept current on sync, on
    registration and on account deletion, so that contact lists, `mutual`
    and `has_in_address_book` are single indexed reads.
    """

    # (owner, key) is the primary key: no surrogate id, one index fewer to
    # write for every one of the 5,000 rows a first upload inserts.
    pk = models.CompositePrimaryKey("owner", "key")
    # No database-level FK constraints (Sentry does the same on its big tables):
    # they are deferred triggers that re-check 2 x 5,000 user rows at the commit
    # of a first upload. Both ids come from rows the sync just read (the
    # caller's locked row, the index join), users are never hard-deleted, and
    # account deletion clears these rows itself (contacts_user_deleted).
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                              db_index=False, db_constraint=False)
    key = models.BinaryField(max_length=32)
    contact_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+", db_index=False, db_constraint=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            EqualityIndex(fields=["key"], name="bookentry_key_idx"),
            models.Index(fields=["owner", "contact_user"], condition=Q(contact_user__isnull=False),
                         name="bookentry_owner_contact_idx"),
            models.Index(fields=["contact_user", "owner"], condition=Q(contact_user__isnull=False),
                         name="bookentry_contact_owner_idx"),
        ]

    def __str__(self) -> str:
        return f"book entry of {self.owner_id}"


class JoinedNotified(models.Model):
    """`owner` was told that `joined_user` joined: a rerun of the task sends nothing twice."""

    id = models.BigAutoField(primary_key=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                              db_index=False)
    joined_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                                    db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["joined_user", "owner"], name="joinednotified_uniq")]
        indexes = [models.Index(fields=["owner"], name="joinednotified_owner_idx")]

    def __str__(self) -> str:
        return f"{self.owner_id} told of {self.joined_user_id}"


class Block(models.Model):
    """`blocker` receives nothing from `blocked` (messages, typing, presence, calls)."""

    id = models.BigAutoField(primary_key=True)
    blocker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                                db_index=False)
    blocked = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                                db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["blocker", "blocked"], name="block_pair_uniq")]
        indexes = [models.Index(fields=["blocked", "blocker"], name="block_blocked_idx")]

    def __str__(self) -> str:
        return f"{self.blocker_id} blocks {self.blocked_id}"
