"""Reads for contacts: peppers, matching, contact lists, blocks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import User, Visibility
from contacts import bulk
from contacts.models import Block, BookEntry, DiscoveryPepper
from core.errors import ApplicationError


class StalePepper(ApplicationError):
    status = 409
    code = "stale_pepper"
    default_message = "This pepper is no longer accepted; fetch /contacts/discovery and hash again."


# --- Peppers ------------------------------------------------------------------------


def pepper_current() -> DiscoveryPepper | None:
    return DiscoveryPepper.objects.filter(is_current=True).first()


def pepper_for_upload(*, pepper_id: str) -> DiscoveryPepper:
    """The current pepper, or a retired one still within its grace period; else StalePepper.

    An unknown id gets the same answer as a stale one: the client's remedy
    (fetch discovery, hash again) is the same.
    """
    pepper = DiscoveryPepper.objects.filter(pk=pepper_id, activated_at__isnull=False).first()
    if pepper is None:
        raise StalePepper("Unknown pepper_id; fetch /contacts/discovery and hash again.",
                          details={"pepper_id": pepper_id})
    if pepper.is_current:
        return pepper
    grace = timedelta(days=settings.CONTACTS_PEPPER_GRACE_DAYS)
    if pepper.retired_at is None or pepper.retired_at + grace <= timezone.now() or pepper.index_dropped_at:
        raise StalePepper(details={"pepper_id": pepper_id})
    return pepper


# --- Matching and contact lists -----------------------------------------------------------


def discoverable_by(*, viewer_id: object) -> Q:
    """Users whose `discoverable` setting lets `viewer` find them (on a User queryset).

    "contacts" means the viewer's number is in the user's own stored book.
    """
    viewer_in_their_book = BookEntry.objects.filter(owner=OuterRef("pk"), contact_user=viewer_id)
    return Q(discoverable=Visibility.EVERYONE) | (Q(discoverable=Visibility.CONTACTS) & Exists(viewer_in_their_book))


@dataclass(frozen=True)
class Match:
    digest: bytes
    user: bulk.PublicUser
    visible: bool  # whether the viewer may be told of it (the link itself is kept either way)


def index_match(*, viewer_id: object, pepper_id: str, digests: list[bytes]) -> list[Match]:
    """Registered users among `digests` under the pepper, in one indexed query.

    Every registered match is returned so the stored book can link to it;
    `visible` says whether the user's `discoverable` setting lets the
    viewer see it.
    """
    return [Match(digest=row[0], user=bulk.public_user(row), visible=row[5])
            for row in bulk.index_match(viewer_id=viewer_id, pepper_id=pepper_id, digests=digests)]


def contact_list(*, viewer_id: object) -> QuerySet[User]:
    """Registered users in the viewer's book that the viewer may see (one query).

    Each carries `mutual` (they have the viewer in their book too) and
    `last_seen_visible` (the same rule as accounts.selectors.last_seen_visible_to:
    their last_seen setting allows the viewer and they have not blocked the viewer).
    """
    in_book = BookEntry.objects.filter(owner=viewer_id, contact_user=OuterRef("pk"))
    has_viewer = Exists(BookEntry.objects.filter(owner=OuterRef("pk"), contact_user=viewer_id))
    blocked_viewer = Exists(Block.objects.filter(blocker=OuterRef("pk"), blocked=viewer_id))
    last_seen_allows = Q(last_seen_visibility=Visibility.EVERYONE) | (
        Q(last_seen_visibility=Visibility.CONTACTS) & has_viewer
    )
    return (
        User.objects.filter(Exists(in_book), is_active=True)
        .exclude(pk=viewer_id)
        .filter(discoverable_by(viewer_id=viewer_id))
        .annotate(
            mutual=has_viewer,
            last_seen_visible=ExpressionWrapper(last_seen_allows & ~blocked_viewer, output_field=BooleanField()),
        )
        .order_by("display_name", "pk")
    )


def has_in_address_book(*, owner_id: object, other_id: object) -> bool:
    """Whether `other`'s number is in `owner`'s uploaded address book."""
    return BookEntry.objects.filter(owner=owner_id, contact_user=other_id).exists()


def owners_holding(*, other_id: object, owner_ids: Iterable[object]) -> set[str]:
    """Ids among `owner_ids` whose uploaded address book holds `other`'s number (one indexed query)."""
    owners = _ids(owner_ids)
    if not owners:
        return set()
    return {str(owner) for owner in BookEntry.objects.filter(contact_user=other_id, owner__in=owners)
            .values_list("owner_id", flat=True).distinct()}


def book_size(*, owner_id: object) -> int:
    return BookEntry.objects.filter(owner=owner_id).count()


# --- Blocks -----------------------------------------------------------------------------


def _ids(values: Iterable[object]) -> list[str]:
    out = []
    for value in values:
        try:
            out.append(str(UUID(str(value))))
        except ValueError:
            continue
    return out


def is_blocked(*, blocker_id: object, blocked_id: object) -> bool:
    """Whether `blocker` has blocked `blocked`."""
    return Block.objects.filter(blocker=blocker_id, blocked=blocked_id).exists()


def blocked_either_way(*, user_id: object, other_ids: Iterable[object]) -> set[str]:
    """Ids among `other_ids` that `user` blocked or that blocked `user` (one query)."""
    others = _ids(other_ids)
    if not others:
        return set()
    rows = Block.objects.filter(
        Q(blocker=user_id, blocked__in=others) | Q(blocked=user_id, blocker__in=others)
    ).values_list("blocker_id", "blocked_id")
    me = str(user_id)
    return {str(blocked) if str(blocker) == me else str(blocker) for blocker, blocked in rows}


def blockers_of(*, user_id: object, candidate_ids: Iterable[object]) -> set[str]:
    """Ids among `candidate_ids` that have blocked `user` (one query)."""
    candidates = _ids(candidate_ids)
    if not candidates:
        return set()
    return {
        str(blocker)
        for blocker in Block.objects.filter(blocked=user_id, blocker__in=candidates).values_list(
            "blocker_id", flat=True
        )
    }


def blockers_of_many(*, user_ids: Iterable[object], candidate_ids: Iterable[object]) -> dict[str, set[str]]:
    """For each of `user_ids`, the ids among `candidate_ids` that have blocked it (one query for all)."""
    users, candidates = _ids(user_ids), _ids(candidate_ids)
    found: dict[str, set[str]] = {user: set() for user in users}
    if not users or not candidates:
        return found
    for blocker, blocked in Block.objects.filter(blocked__in=users, blocker__in=candidates).values_list(
        "blocker_id", "blocked_id"
    ):
        found[str(blocked)].add(str(blocker))
    return found


def block_list(*, blocker_id: object) -> QuerySet[Block]:
    return Block.objects.filter(blocker=blocker_id).select_related("blocked").order_by("-created_at", "-pk")


# --- Friends (mutual contacts, no block either way) ------------------------------------------


def friend_ids(*, user_id: object) -> QuerySet[BookEntry]:
    """The ids of `user`'s friends, as a flat values queryset (one indexed query, or a subquery).

    A friend is a mutual contact, each in the other's uploaded book, with no
    block either way. Computed from the books and blocks as they stand now,
    so unfriending (a number removed from a book) or a block takes effect at
    once for every reader. Deleted accounts have no book links left
    (`contacts_user_deleted`), so they are never anyone's friend.
    """
    # Uncorrelated subqueries: PostgreSQL hashes the (few thousand) owners whose books hold the user
    # and the user's blocks once, instead of probing an index per contact.
    have_user = BookEntry.objects.filter(contact_user=user_id).values("owner")
    blocked_by_user = Block.objects.filter(blocker=user_id).values("blocked")
    blocking_user = Block.objects.filter(blocked=user_id).values("blocker")
    return (
        BookEntry.objects.filter(owner=user_id, contact_user__isnull=False, contact_user__in=have_user)
        .exclude(contact_user=user_id)
        .exclude(contact_user__in=blocked_by_user)
        .exclude(contact_user__in=blocking_user)
        .values_list("contact_user_id", flat=True)
        .distinct()
    )


def friends_among(*, user_id: object, candidate_ids: Iterable[object]) -> set[str]:
    """Ids among `candidate_ids` that are `user`'s friends now (one query)."""
    candidates = _ids(candidate_ids)
    if not candidates:
        return set()
    return {str(pk) for pk in friend_ids(user_id=user_id).filter(contact_user__in=candidates)}


def are_friends(*, user_id: object, other_id: object) -> bool:
    return bool(friends_among(user_id=user_id, candidate_ids=[other_id]))


def friend_of(*, user_id: object, other: str) -> ExpressionWrapper:
    """A boolean column for any queryset: the user in the row's `other` field is `user`'s friend
    (the rule of `friend_ids`, checked for those rows only)."""
    return ExpressionWrapper(mutual_with(user_id=user_id, other=other) & ~blocked_with(user_id=user_id, other=other),
                             output_field=BooleanField())


def mutual_with(*, user_id: object, other: str) -> ExpressionWrapper:
    """A boolean column for any queryset: `user` and the user in the row's `other` field have each other
    in their books (a friend when no block stands between them: `blocked_with`)."""
    ref = OuterRef(other)
    return ExpressionWrapper(Exists(BookEntry.objects.filter(owner=user_id, contact_user=ref))
                             & Exists(BookEntry.objects.filter(owner=ref, contact_user=user_id)),
                             output_field=BooleanField())


def blocked_with(*, user_id: object, other: str) -> Exists:
    """For any queryset: a block stands between `user` and the user in the row's `other` field."""
    ref = OuterRef(other)
    return Exists(Block.objects.filter(Q(blocker=user_id, blocked=ref) | Q(blocker=ref, blocked=user_id)))


# --- Presence (who may see whose online state and last_seen) -------------------------------


def friends_recently_active(*, user_id: object, limit: int) -> QuerySet[User]:
    """`user`'s friends (the rule of `friend_ids`), at most `limit`, the most recently seen first,
    as a pk values queryset to use as a subquery."""
    return (User.objects.filter(pk__in=friend_ids(user_id=user_id), is_active=True)
            .order_by(F("last_seen_at").desc(nulls_last=True), "pk").values("pk")[:limit])


def may_see_presence_of(*, target_id: object) -> Q:
    """For a User queryset of would-be viewers: `target`'s last_seen setting lets the row see
    target's presence, and no block stands between them (the rule of
    accounts.selectors.last_seen_visible_to, plus the viewer's own blocks, in SQL)."""
    target = User.objects.filter(pk=target_id)
    row_in_target_book = Exists(BookEntry.objects.filter(owner=target_id, contact_user=OuterRef("pk")))
    return (Q(Exists(target.filter(last_seen_visibility=Visibility.EVERYONE)))
            | (Q(Exists(target.filter(last_seen_visibility=Visibility.CONTACTS))) & Q(row_in_target_book))) \
        & ~Q(blocked_with(user_id=target_id, other="pk"))


def presence_visible_to(*, viewer_id: object) -> Q:
    """For a User queryset of peers: the row's last_seen setting lets `viewer` see its presence,
    and no block stands between them (`may_see_presence_of` seen from the viewer's side)."""
    viewer_in_row_book = Exists(BookEntry.objects.filter(owner=OuterRef("pk"), contact_user=viewer_id))
    return (Q(last_seen_visibility=Visibility.EVERYONE)
            | (Q(last_seen_visibility=Visibility.CONTACTS) & Q(viewer_in_row_book))) \
        & ~Q(blocked_with(user_id=viewer_id, other="pk"))
