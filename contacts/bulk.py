"""The few set-at-a-time statements a 5,000-hash sync is made of.

On PostgreSQL each is one statement whose lists travel as ONE binary array
parameter (server-side binding), joined through `unnest`: Django's default
client-side binding spends ~30 ms quoting 5,000 bytea values into the SQL
text, and `col = ANY(<5,000-item array>)` in a WHERE clause makes the planner
pick a sequential scan, while an `unnest` join probes the index per hash.
Other databases (the embedded SQLite default) take the plain ORM route.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from django.db import connection
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import Visibility
from contacts.models import BookEntry, PhoneIndex

# (digest, user id, display_name, about, avatar_url, visible)
MatchRow = tuple[bytes, UUID, str, str, str, bool]
# (key, contact user id or None)
EntryRow = tuple[bytes, UUID | None]


def _postgres() -> bool:
    return connection.vendor == "postgresql"


class _UnpreparedCursor(psycopg.Cursor):
    """Server-side binding without psycopg's automatic prepared statements.

    Prepared statements would outlive a migration in a long-running worker
    and do not survive a transaction-pooling proxy; planning these queries
    costs well under a millisecond.
    """

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                binary: bool | None = None) -> Any:
        return super().execute(query, params, prepare=False, binary=binary)


@contextmanager
def binary_cursor() -> Iterator[CursorWrapper]:
    """A server-side-binding cursor on Django's own connection (same transaction, same query logging)."""
    connection.ensure_connection()
    raw = _UnpreparedCursor(connection.connection)
    wrapper = CursorDebugWrapper if connection.queries_logged else CursorWrapper
    with wrapper(raw, connection) as cursor:
        yield cursor


def _uuid(value: object) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def index_match(*, viewer_id: object, pepper_id: str, digests: Sequence[bytes]) -> list[MatchRow]:
    """Registered, active users among `digests` under the pepper, with whether `viewer` may see each."""
    if not digests:
        return []
    if _postgres():
        with binary_cursor() as cursor:
            cursor.execute(
                "SELECT pi.digest, u.id, u.display_name, u.about, u.avatar_url, "
                "  (u.discoverable = %b OR (u.discoverable = %b AND EXISTS ("
                "     SELECT 1 FROM contacts_bookentry b WHERE b.owner_id = u.id AND b.contact_user_id = %b))) "
                "FROM unnest(%b::bytea[]) AS q(d) "
                "JOIN contacts_phoneindex pi ON pi.pepper_id = %b AND pi.digest = q.d "
                "JOIN accounts_user u ON u.id = pi.user_id "
                "WHERE u.is_active",
                [Visibility.EVERYONE.value, Visibility.CONTACTS.value, _uuid(viewer_id), sorted(digests), pepper_id],
            )
            return [(bytes(d), _uuid(uid), name, about, avatar, bool(visible))
                    for d, uid, name, about, avatar, visible in cursor.fetchall()]
    viewer_in_their_book = BookEntry.objects.filter(owner=OuterRef("user_id"), contact_user=viewer_id)
    rows = (
        PhoneIndex.objects.filter(pepper_id=pepper_id, digest__in=list(digests), user__is_active=True)
        .annotate(in_book=Exists(viewer_in_their_book))
        .values_list("digest", "user_id", "user__display_name", "user__about", "user__avatar_url",
                     "user__discoverable", "in_book")
    )
    return [(bytes(d), _uuid(uid), name, about, avatar,
             disc == Visibility.EVERYONE or (disc == Visibility.CONTACTS and in_book))
            for d, uid, name, about, avatar, disc, in_book in rows]


def book_entries(*, owner_id: object, keys: Sequence[bytes] | None = None) -> list[EntryRow]:
    """The owner's stored entries: all of them, or those among `keys`."""
    if keys is not None and not keys:
        return []
    if _postgres():
        with binary_cursor() as cursor:
            if keys is None:
                cursor.execute("SELECT key, contact_user_id FROM contacts_bookentry WHERE owner_id = %b",
                               [_uuid(owner_id)])
            else:
                cursor.execute(
                    "SELECT b.key, b.contact_user_id FROM unnest(%b::bytea[]) AS q(k) "
                    "JOIN contacts_bookentry b ON b.owner_id = %b AND b.key = q.k",
                    [sorted(keys), _uuid(owner_id)],
                )
            rows = cursor.fetchall()
    else:
        queryset = BookEntry.objects.filter(owner=owner_id)
        if keys is not None:
            queryset = queryset.filter(key__in=list(keys))
        rows = list(queryset.values_list("key", "contact_user_id"))
    return [(bytes(key), _uuid(contact) if contact is not None else None) for key, contact in rows]


def book_insert(*, owner_id: object, rows: Sequence[tuple[bytes, UUID | None]]) -> None:
    """Store new entries (key, contact user or None); keys already stored are skipped."""
    if not rows:
        return
    if _postgres():
        rows = sorted(rows, key=lambda row: row[0])  # in index order: neighbouring keys share leaf pages
        with binary_cursor() as cursor:
            cursor.execute(
                "INSERT INTO contacts_bookentry (owner_id, key, contact_user_id, created_at) "
                "SELECT %b, k, c, %b FROM unnest(%b::bytea[], %b::uuid[]) AS t(k, c) "
                "ON CONFLICT (owner_id, key) DO NOTHING",
                [_uuid(owner_id), timezone.now(), [key for key, _ in rows], [contact for _, contact in rows]],
            )
        return
    BookEntry.objects.bulk_create(
        [BookEntry(owner_id=owner_id, key=key, contact_user_id=contact) for key, contact in rows],
        ignore_conflicts=True, batch_size=500,
    )


def book_delete(*, owner_id: object, keys: Sequence[bytes]) -> None:
    """Delete the owner's entries with these keys."""
    if not keys:
        return
    if _postgres():
        with binary_cursor() as cursor:
            cursor.execute("DELETE FROM contacts_bookentry b USING unnest(%b::bytea[]) AS q(k) "
                           "WHERE b.owner_id = %b AND b.key = q.k", [sorted(keys), _uuid(owner_id)])
        return
    for start in range(0, len(keys), 500):
        BookEntry.objects.filter(owner=owner_id, key__in=list(keys[start:start + 500])).delete()


@dataclass(frozen=True, slots=True)
class PublicUser:
    """The public fields of a matched user, all accounts.apis.public_user_data reads.

    Building 500 model instances per sync cost more than the query behind them.
    """

    pk: UUID
    display_name: str
    about: str
    avatar_url: str


def public_user(row: MatchRow) -> PublicUser:
    _, user_id, display_name, about, avatar_url, _ = row
    return PublicUser(pk=user_id, display_name=display_name, about=about, avatar_url=avatar_url)

