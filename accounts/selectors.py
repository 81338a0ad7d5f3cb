"""Reads for accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from accounts.models import Device, User, Visibility
from core.crypto import token_digest
from core.errors import NotFound
from core.ids import uuid_or_not_found


def device_get_by_token(*, token: str) -> Device | None:
    """The active device holding this bearer token, with its user, or None."""
    if not token or len(token) > 256:
        return None
    return (
        Device.objects.select_related("user")
        .filter(token_hash=token_digest(token), revoked_at__isnull=True, user__is_active=True,
                user__suspended_at__isnull=True)
        .first()
    )


def device_is_active(*, device_id: object) -> bool:
    return Device.objects.filter(pk=device_id, revoked_at__isnull=True, user__is_active=True,
                                 user__suspended_at__isnull=True).exists()


def has_push_device(user_field: str = "user_id") -> Exists:
    """An expression: the user in `user_field` has an active device with a push token.

    Senders annotate recipients with it in the query they already make, so users
    who could never get a push (web or desktop only) cost no push task.
    """
    return Exists(
        Device.objects.filter(user_id=OuterRef(user_field), revoked_at__isnull=True).exclude(push_token="")
    )


def device_list(*, user: User) -> QuerySet[Device]:
    return Device.objects.filter(user=user, revoked_at__isnull=True).order_by("created_at")


def user_get_active(*, user_id: object) -> User:
    try:
        return User.objects.get(pk=uuid_or_not_found(user_id), is_active=True)
    except User.DoesNotExist as exc:
        raise NotFound() from exc


def user_settings(user: User) -> dict[str, Any]:
    return {
        "discoverable": user.discoverable,
        "last_seen": user.last_seen_visibility,
        "read_receipts": user.read_receipts,
        "message_preview_in_push": user.message_preview_in_push,
        "moments_window": user.moments_window,
        "moments_notifications": user.moments_notifications,
        "group_add": user.group_add,
    }


def last_seen_visible_to(*, target: User, viewer_id: object) -> bool:
    """Whether `viewer` may see `target`'s presence and last_seen.

    "contacts" means the viewer is in the target's address book; a target
    who blocked the viewer shows nothing.
    """
    from contacts.selectors import has_in_address_book, is_blocked  # the one upward edge: privacy

    if str(target.pk) == str(viewer_id):
        return True
    if target.last_seen_visibility == Visibility.NOBODY:
        return False
    if is_blocked(blocker_id=target.pk, blocked_id=viewer_id):
        return False
    if target.last_seen_visibility == Visibility.EVERYONE:
        return True
    return has_in_address_book(owner_id=target.pk, other_id=viewer_id)


def user_get_public(*, user_id: object, viewer_id: object) -> tuple[User, datetime | None, bool]:
    """(user, last_seen or None, last_seen_visible) for the public profile."""
    user = user_get_active(user_id=user_id)
    visible = last_seen_visible_to(target=user, viewer_id=viewer_id)
    return user, (user.last_seen_at if visible else None), visible
