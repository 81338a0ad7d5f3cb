"""Reads for contacts. Placeholder bodies until the contacts issue lands its models."""

from __future__ import annotations


def has_in_address_book(*, owner_id: object, other_id: object) -> bool:
    """Whether `other`'s number is in `owner`'s uploaded address book."""
    return False


def is_blocked(*, blocker_id: object, blocked_id: object) -> bool:
    """Whether `blocker` has blocked `blocked`."""
    return False
