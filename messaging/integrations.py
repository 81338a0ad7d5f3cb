"""Seams to the apps built in parallel (contacts, media, notifications).

Each function calls the agreed function from /work/interfaces.md when the
other app provides it, and otherwise behaves as "that app has nothing to say"
(no blocks, no attachment metadata, no push). They are the only places
messaging touches those apps, so the merge wires them here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


def blockers_of(*, user_id: object, candidate_ids: Iterable[object]) -> set[str]:
    """Ids among candidate_ids that have blocked user_id (contacts, one query)."""
    candidates = [str(c) for c in candidate_ids if str(c) != str(user_id)]
    if not candidates:
        return set()
    from contacts import selectors

    func = getattr(selectors, "blockers_of", None)
    if func is not None:
        return {str(x) for x in func(user_id=user_id, candidate_ids=candidates)}
    # Seam: before the contacts branch lands only `is_blocked` exists.
    return {c for c in candidates if selectors.is_blocked(blocker_id=c, blocked_id=user_id)}


def blocked_either_way(*, user_id: object, other_ids: Iterable[object]) -> set[str]:
    """Ids among other_ids that user blocked or that blocked user (contacts, one query)."""
    others = [str(o) for o in other_ids if str(o) != str(user_id)]
    if not others:
        return set()
    from contacts import selectors

    func = getattr(selectors, "blocked_either_way", None)
    if func is not None:
        return {str(x) for x in func(user_id=user_id, other_ids=others)}
    # Seam: before the contacts branch lands only `is_blocked` exists.
    return {o for o in others if selectors.is_blocked(blocker_id=o, blocked_id=user_id)
            or selectors.is_blocked(blocker_id=user_id, blocked_id=o)}


def attachment_validate(*, attachment_id: object, sender_id: object, kind: str) -> None:
    """The sender's own attachment of that kind, or ValidationFailed (media)."""
    try:
        from media.selectors import attachment_for_message
    except ImportError:  # Seam: media not merged yet; the id is stored as given.
        return
    attachment_for_message(attachment_id=attachment_id, sender_id=sender_id, kind=kind)


def attachment_mark_used(*, attachment_id: object) -> None:
    try:
        from media.services import attachment_mark_used as mark
    except ImportError:  # Seam: media not merged yet.
        return
    mark(attachment_id=attachment_id)


def attachments_public(attachment_ids: Iterable[object]) -> dict[str, dict[str, Any]]:
    """The contract's attachment shape per id, in one query; {} until media lands."""
    ids = {str(a) for a in attachment_ids if a}
    if not ids:
        return {}
    try:
        from media.models import Attachment
        from media.selectors import attachment_public
    except ImportError:  # Seam: media not merged yet; messages render "attachment": null.
        return {}
    return {str(a.pk): attachment_public(a) for a in Attachment.objects.filter(pk__in=ids)}


def push_notify(**kwargs: Any) -> None:
    """notifications.services.push_notify through MESSAGING_PUSH_NOTIFY (empty: no push)."""
    path = getattr(settings, "MESSAGING_PUSH_NOTIFY", "")
    if path:
        import_string(path)(**kwargs)
