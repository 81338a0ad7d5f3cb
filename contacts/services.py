"""Writes for contacts: pepper rotation, address-book sync, contact.joined, blocks."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import User, Visibility
from contacts import bulk, events, selectors
from contacts.bulk import PublicUser
from contacts.hashing import book_keys, discovery_digest
from contacts.models import Block, BookEntry, DiscoveryPepper, JoinedNotified, PhoneIndex
from core import metrics, ratelimit
from core.errors import NotFound, ValidationFailed
from streams.services import stream_append

logger = logging.getLogger(__name__)

SYNC_MODES = ("replace", "add", "remove")
DAY = 86400
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX_RUN = re.compile(r"[0-9a-f]*")
_MAX_DETAIL_ERRORS = 20


# --- Peppers and the registered-number index ------------------------------------------------


def _new_pepper_id() -> str:
    return secrets.token_urlsafe(6)


def pepper_index_build(*, pepper: DiscoveryPepper, batch_size: int | None = None) -> int:
    """Index every active user with a number under `pepper`, in batches; safe to rerun.

    Users who register while this runs are added by `contacts_user_registered`,
    which indexes under every pepper whose index is live (building ones too).
    """
    size = batch_size or settings.CONTACTS_INDEX_BATCH
    secret = bytes(pepper.secret)
    total = 0
    last_id = None
    users = User.objects.filter(is_active=True, phone__isnull=False).order_by("pk")
    for _ in range(1_000_000):  # bounded: one batch per pass, keyset-paged by id
        page = users if last_id is None else users.filter(pk__gt=last_id)
        batch = list(page.values_list("pk", "phone")[:size])
        if not batch:
            break
        PhoneIndex.objects.bulk_create(
            [PhoneIndex(pepper_id=pepper.pk, digest=discovery_digest(secret, phone), user_id=pk)
             for pk, phone in batch],
            ignore_conflicts=True,
        )
        total += len(batch)
        last_id = batch[-1][0]
        if len(batch) < size:
            break
    return total


def pepper_ensure_current() -> DiscoveryPepper:
    """The current pepper; the very first one is made (and indexed) on first use."""
    pepper = selectors.pepper_current()
    if pepper is not None:
        return pepper
    try:
        with transaction.atomic():
            pepper = DiscoveryPepper.objects.create(
                id=_new_pepper_id(), secret=secrets.token_bytes(32), is_current=True, activated_at=timezone.now()
            )
            pepper_index_build(pepper=pepper)
    except IntegrityError:  # another request made it first (one current pepper, by constraint)
        pepper = selectors.pepper_current()
        if pepper is None:
            raise
    return pepper


def pepper_rotate(*, force: bool = False, now: datetime | None = None) -> DiscoveryPepper | None:
    """Rotate when the current pepper is older than the rotation interval (or when forced).

    No downtime: the new pepper's index is built while the current one
    serves, then the switch is one short transaction; the old pepper stays
    accepted for the grace period. Returns the new pepper, or None when not due.
    """
    now = now or timezone.now()
    current = selectors.pepper_current()
    building = DiscoveryPepper.objects.filter(activated_at__isnull=True).order_by("created_at").first()
    if building is None:
        due = current is None or current.activated_at is None or (
            now - current.activated_at >= timedelta(days=settings.CONTACTS_PEPPER_ROTATION_DAYS)
        )
        if not (force or due):
            pepper_drop_expired(now=now)
            return None
        # Committed before the build, so the registration hook sees it and indexes newcomers.
        building = DiscoveryPepper.objects.create(id=_new_pepper_id(), secret=secrets.token_bytes(32))
    count = pepper_index_build(pepper=building)
    with transaction.atomic():
        locked = list(DiscoveryPepper.objects.select_for_update().filter(is_current=True))
        DiscoveryPepper.objects.filter(pk__in=[p.pk for p in locked]).update(is_current=False, retired_at=now)
        DiscoveryPepper.objects.filter(pk=building.pk).update(is_current=True, activated_at=now)
    logger.info("Discovery pepper rotated: %s is current, %d users indexed", building.pk, count)
    pepper_drop_expired(now=now)
    building.refresh_from_db()
    return building


def pepper_drop_expired(*, now: datetime | None = None) -> int:
    """Drop the registered-number index of peppers past their grace period.

    The pepper row and its secret stay: books stored under it are still
    matched when a number registers. Returns the number of index rows dropped.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.CONTACTS_PEPPER_GRACE_DAYS)
    DiscoveryPepper.objects.filter(
        is_current=False, retired_at__isnull=False, retired_at__lte=cutoff, index_dropped_at__isnull=True
    ).update(index_dropped_at=now)
    dropped = 0
    for pepper_id in DiscoveryPepper.objects.filter(index_dropped_at__isnull=False).values_list("pk", flat=True):
        for _ in range(100_000):  # bounded: each pass deletes a batch
            ids = list(PhoneIndex.objects.filter(pepper_id=pepper_id).values_list("pk", flat=True)
                       [: settings.CONTACTS_INDEX_BATCH])
            if not ids:
                break
            dropped += PhoneIndex.objects.filter(pk__in=ids).delete()[0]
    return dropped


# --- Registration and deletion hooks ---------------------------------------------------------


def contacts_user_registered(*, user_id: object) -> None:
    """ACCOUNT_REGISTERED_HOOKS: index the new number, then announce it from a Celery task."""
    user = User.objects.filter(pk=user_id, is_active=True, phone__isnull=False).only("pk", "phone").first()
    if user is None:
        return
    with transaction.atomic():
        peppers = DiscoveryPepper.objects.filter(index_dropped_at__isnull=True).only("pk", "secret")
        PhoneIndex.objects.bulk_create(
            [PhoneIndex(pepper_id=p.pk, digest=discovery_digest(bytes(p.secret), user.phone), user_id=user.pk)
             for p in peppers],
            ignore_conflicts=True,
        )
        _announce_joined(user.pk)


def _announce_joined(user_id: object) -> None:
    """Promise the contact.joined announcement in the caller's transaction (an outbox row,
    core.durable): it runs once the database and the broker are up, even if either is down
    when the signup commits. A rerun for the same user tells only owners not yet told."""
    from core.durable import outbox_enqueue

    outbox_enqueue("contacts.announce_joined", key=f"contacts.joined:{user_id}", kwargs={"user_id": str(user_id)})


def contacts_user_deleted(*, user_id: object) -> None:
    """ACCOUNT_DELETION_STEPS: forget the user's number, stored book, notices and blocks.

    Others' book entries for the number are unlinked, not deleted: the
    number may be registered again by someone else, who is then matched.
    """
    PhoneIndex.objects.filter(user=user_id).delete()
    BookEntry.objects.filter(owner=user_id).delete()
    BookEntry.objects.filter(contact_user=user_id).update(contact_user=None)
    JoinedNotified.objects.filter(owner=user_id).delete()
    JoinedNotified.objects.filter(joined_user=user_id).delete()
    Block.objects.filter(blocker=user_id).delete()
    Block.objects.filter(blocked=user_id).delete()


# --- Address-book sync ---------------------------------------------------------------------


@dataclass
class SyncResult:
    matches: list[tuple[str, PublicUser]] = field(default_factory=list)
    stored: int = 0
    new_hashes: int = 0


def _clean_hashes(hashes: object) -> list[str]:
    if not isinstance(hashes, list):
        raise ValidationFailed(details={"hashes": ["Must be a list of hex strings."]})
    if len(hashes) > settings.CONTACTS_MAX_BATCH:
        raise ValidationFailed(details={"hashes": [f"At most {settings.CONTACTS_MAX_BATCH} hashes per request."]})
    # Fast path: C-level checks over the whole book; the loop below only names the bad items.
    if all(type(value) is str and len(value) == 64 for value in hashes):
        lowered = [value.lower() for value in hashes]
        if _HEX_RUN.fullmatch("".join(lowered)) and len(set(lowered)) == len(lowered):
            return lowered
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    cleaned = []
    for index, value in enumerate(hashes):
        text = value.lower() if isinstance(value, str) else None
        if text is None or not _HEX64.fullmatch(text):
            errors[f"hashes.{index}"] = ["Must be 64 hexadecimal characters."]
        elif text in seen:
            errors[f"hashes.{index}"] = ["Duplicate hash."]
        else:
            seen.add(text)
            cleaned.append(text)
        if len(errors) >= _MAX_DETAIL_ERRORS:
            break
    if errors:
        raise ValidationFailed(details=errors)
    return cleaned


def _check_budget(*, user_id: object, client_ip: str, cost: int) -> None:
    if cost <= 0:
        return
    ratelimit.ensure_not_exhausted("contacts-new-user", str(user_id), (settings.CONTACTS_DAILY_NEW_HASHES, DAY),
                                   cost=cost)
    ratelimit.ensure_not_exhausted("contacts-new-ip", client_ip, (settings.CONTACTS_DAILY_NEW_HASHES_PER_IP, DAY),
                                   cost=cost)


def _spend_budget(*, user_id: object, client_ip: str, cost: int) -> None:
    if cost <= 0:
        return
    ratelimit.hit("contacts-new-user", str(user_id), (settings.CONTACTS_DAILY_NEW_HASHES, DAY), cost=cost)
    ratelimit.hit("contacts-new-ip", client_ip, (settings.CONTACTS_DAILY_NEW_HASHES_PER_IP, DAY), cost=cost)


def contacts_sync(*, user: User, pepper_id: object, mode: object, hashes: object,
                  client_ip: str = "unknown") -> SyncResult:
    """Replace, extend or shrink the caller's stored address book; report visible matches.

    The book is stored as book keys only (see contacts.hashing). Numbers the
    caller never uploaded before (and that are not already known contacts)
    spend the daily budgets; a request that would pass one is refused whole.
    Matching is one indexed query over the pepper's index.
    """
    if mode not in SYNC_MODES:
        raise ValidationFailed(details={"mode": [f"Must be one of {', '.join(SYNC_MODES)}."]})
    if not isinstance(pepper_id, str) or not pepper_id or len(pepper_id) > 16:
        raise ValidationFailed(details={"pepper_id": ["Must be a pepper_id from /contacts/discovery."]})
    cleaned = _clean_hashes(hashes)
    ratelimit.hit("contacts-sync-ip", client_ip, settings.CONTACTS_SYNC_LIMIT_PER_IP)
    pepper = selectors.pepper_for_upload(pepper_id=pepper_id)
    keys = book_keys(pepper.pk, cleaned)
    metrics.CONTACT_SYNCS.labels(mode).inc()
    metrics.CONTACT_SYNC_HASHES.observe(len(cleaned))
    result = SyncResult()

    with transaction.atomic():
        # One sync per user at a time: budgets and `replace` see a stable book.
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
        if mode == "remove":
            bulk.book_delete(owner_id=user.pk, keys=keys)
            result.stored = selectors.book_size(owner_id=user.pk)
            return result

        digests = [bytes.fromhex(text) for text in cleaned]
        matches = selectors.index_match(viewer_id=user.pk, pepper_id=pepper.pk, digests=digests)
        contact_by_digest = {match.digest: match.user.pk for match in matches}
        # `replace` reads the whole stored book (it must find what to drop anyway);
        # `add` probes only the uploaded keys.
        stored_rows = bulk.book_entries(owner_id=user.pk, keys=None if mode == "replace" else keys)
        stored_by_key = dict(stored_rows)
        if mode == "replace":
            known_contacts = {contact for contact in stored_by_key.values() if contact is not None}
        else:
            known_contacts = set(
                BookEntry.objects.filter(owner=user.pk, contact_user__in=set(contact_by_digest.values()))
                .values_list("contact_user_id", flat=True)
            ) if contact_by_digest else set()

        new_rows: list[tuple[bytes, Any]] = []
        relink: dict[Any, list[bytes]] = {}
        for key, digest in zip(keys, digests, strict=True):
            contact_id = contact_by_digest.get(digest)
            if key in stored_by_key:
                if contact_id is not None and stored_by_key[key] != contact_id:
                    relink.setdefault(contact_id, []).append(key)
                continue
            # A known contact uploaded under another pepper is not a discovery.
            if contact_id is None or contact_id not in known_contacts:
                result.new_hashes += 1
            new_rows.append((key, contact_id))

        _check_budget(user_id=user.pk, client_ip=client_ip, cost=result.new_hashes)
        if mode == "replace":
            wanted = set(keys)
            bulk.book_delete(owner_id=user.pk, keys=[key for key in stored_by_key if key not in wanted])
        bulk.book_insert(owner_id=user.pk, rows=new_rows)
        for contact_id, relinked in relink.items():
            BookEntry.objects.filter(owner=user.pk, key__in=relinked).update(contact_user=contact_id)
        result.stored = len(keys) if mode == "replace" else selectors.book_size(owner_id=user.pk)
        if result.stored > settings.CONTACTS_MAX_BOOK_SIZE:
            raise ValidationFailed(
                details={"hashes": [f"An address book holds at most {settings.CONTACTS_MAX_BOOK_SIZE} numbers."]}
            )
        _spend_budget(user_id=user.pk, client_ip=client_ip, cost=result.new_hashes)

        digest_hex = dict(zip(digests, cleaned, strict=True))
        result.matches = sorted(
            ((digest_hex[m.digest], m.user) for m in matches if m.visible and m.user.pk != user.pk),
            key=lambda pair: pair[0],
        )
        if user.discoverable == Visibility.CONTACTS and _within_announce_window(user):
            # A "contacts"-only newcomer is announced to owners once their own book holds them.
            _announce_joined(user.pk)
    return result


# --- contact.joined ---------------------------------------------------------------------------


def _within_announce_window(user: User) -> bool:
    return timezone.now() - user.created_at <= timedelta(days=settings.CONTACTS_JOINED_ANNOUNCE_DAYS)


# Books that took the number up to this long after signup still count as
# "holding it when they joined" (an upload racing the index insert).
JOIN_SLACK = timedelta(minutes=5)


def _link_book_entries(*, user: User) -> int:
    """Point every stored entry for the user's number at the user, in batches."""
    peppers = DiscoveryPepper.objects.filter(activated_at__isnull=False).only("pk", "secret")
    keys: list[bytes] = []
    for pepper in peppers:
        keys.extend(book_keys(pepper.pk, [discovery_digest(bytes(pepper.secret), user.phone).hex()]))
    if not keys:
        return 0
    linked = 0
    for _ in range(100_000):  # bounded: each pass links one batch
        unlinked = BookEntry.objects.filter(key__in=keys, contact_user__isnull=True)
        owners = list(unlinked.values_list("owner_id", flat=True)[:5000])
        if not owners:
            break
        linked += unlinked.filter(owner__in=owners).update(contact_user=user.pk)
    return linked


def contact_joined_notify(*, user_id: object) -> int:
    """Tell every owner whose book held the user's number at signup that the user joined.

    Runs in batches of CONTACTS_JOINED_BATCH owners, one transaction each,
    and is safe to rerun: JoinedNotified (unique per pair) records who was
    told, and runs for one user are serialised on the user's row.
    Honours the user's `discoverable` setting (for "contacts": only owners in
    the user's own book, re-checked when the user syncs) and skips owners who
    blocked the user. Returns the number of owners told.
    """
    user = User.objects.filter(pk=user_id, is_active=True, phone__isnull=False).first()
    if user is None:
        return 0
    _link_book_entries(user=user)
    if user.discoverable == Visibility.NOBODY or not _within_announce_window(user):
        return 0

    owners = (
        BookEntry.objects.filter(contact_user=user.pk, created_at__lte=user.created_at + JOIN_SLACK,
                                 owner__is_active=True)
        .exclude(owner=user.pk)
        .exclude(Exists(JoinedNotified.objects.filter(owner=OuterRef("owner_id"), joined_user=user.pk)))
        .exclude(Exists(Block.objects.filter(blocker=OuterRef("owner_id"), blocked=user.pk)))
    )
    if user.discoverable == Visibility.CONTACTS:
        owners = owners.filter(Exists(BookEntry.objects.filter(owner=user.pk, contact_user=OuterRef("owner_id"))))
    owner_ids = owners.values_list("owner_id", flat=True).distinct().order_by("owner_id")

    push = import_string(settings.CONTACT_JOINED_PUSH) if settings.CONTACT_JOINED_PUSH else None
    told = 0
    last = None
    for _ in range(100_000):  # bounded: each pass tells one batch
        with transaction.atomic():
            User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
            page = owner_ids if last is None else owner_ids.filter(owner_id__gt=last)
            batch = list(page[: settings.CONTACTS_JOINED_BATCH])
            if not batch:
                break
            JoinedNotified.objects.bulk_create([JoinedNotified(owner_id=owner, joined_user_id=user.pk)
                                                for owner in batch])
            stream_append([events.contact_joined(owner_id=owner, joined=user) for owner in batch])
            if push is not None:
                name = user.display_name or "One of your contacts"
                for owner in batch:
                    push(user_id=owner, kind=events.CONTACT_JOINED, title="New contact",
                         body=f"{name} joined", collapse_key=f"contact.joined:{user.pk}",
                         data={"user_id": str(user.pk)})
        told += len(batch)
        last = batch[-1]
        if len(batch) < settings.CONTACTS_JOINED_BATCH:
            break
    return told


# --- Blocks --------------------------------------------------------------------------------


def block_create(*, blocker: User, blocked_id: object) -> Block:
    """Block a user; blocking again is a no-op. Oneself: 400; unknown user: 404."""
    if str(blocked_id) == str(blocker.pk):
        raise ValidationFailed(details={"user_id": ["You cannot block yourself."]})
    if not User.objects.filter(pk=blocked_id, is_active=True).exists():
        raise NotFound("No such user.")
    with transaction.atomic():
        block, _ = Block.objects.get_or_create(blocker_id=blocker.pk, blocked_id=blocked_id)
    return block


def block_delete(*, blocker: User, blocked_id: object) -> None:
    """Unblock; idempotent, so a retried DELETE is 204 too."""
    Block.objects.filter(blocker_id=blocker.pk, blocked_id=blocked_id).delete()

