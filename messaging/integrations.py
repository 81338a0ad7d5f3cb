"""Messaging's edges to the apps below it (contacts, media, notifications).

The only places messaging touches those apps, each a thin adapter that turns
ids into the shapes messaging works with.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.module_loading import import_string

from contacts import selectors as contacts_selectors
from media import selectors as media_selectors
from media import services as media_services
from media.models import Attachment


def blockers_of(*, user_id: object, candidate_ids: Iterable[object]) -> set[str]:
    """Ids among candidate_ids that have blocked user_id (one query)."""
    candidates = [str(c) for c in candidate_ids if str(c) != str(user_id)]
    if not candidates:
        return set()
    return {str(x) for x in contacts_selectors.blockers_of(user_id=user_id, candidate_ids=candidates)}


def blockers_of_many(*, user_ids: Iterable[object], candidate_ids: Iterable[object]) -> dict[str, set[str]]:
    """For each of user_ids, the ids among candidate_ids that blocked it (one query for all)."""
    return contacts_selectors.blockers_of_many(user_ids=user_ids, candidate_ids=candidate_ids)


def blocked_either_way(*, user_id: object, other_ids: Iterable[object]) -> set[str]:
    """Ids among other_ids that user blocked or that blocked user (one query)."""
    others = [str(o) for o in other_ids if str(o) != str(user_id)]
    if not others:
        return set()
    return {str(x) for x in contacts_selectors.blocked_either_way(user_id=user_id, other_ids=others)}


def friends_recently_active(*, user_id: object, limit: int) -> QuerySet[Any]:
    """The pks of user_id's `limit` most recently seen friends (a subquery)."""
    return contacts_selectors.friends_recently_active(user_id=user_id, limit=limit)


def may_see_presence_of(*, target_id: object) -> Q:
    """On a User queryset: rows that target_id's last_seen setting and blocks let see its presence."""
    return contacts_selectors.may_see_presence_of(target_id=target_id)


def presence_visible_to(*, viewer_id: object) -> Q:
    """On a User queryset: rows whose presence viewer_id may see (their setting, blocks)."""
    return contacts_selectors.presence_visible_to(viewer_id=viewer_id)


def holding_in_address_book(*, user_id: object, owner_ids: Iterable[object]) -> set[str]:
    """Ids among owner_ids that have user_id in their uploaded address book (one query)."""
    return contacts_selectors.owners_holding(other_id=user_id, owner_ids=owner_ids)


def attachment_validate(*, attachment_id: object, sender_id: object, kind: str) -> None:
    """The sender's own attachment of that kind (row locked), or ValidationFailed."""
    media_selectors.attachment_for_message(attachment_id=attachment_id, sender_id=sender_id, kind=kind)


def attachment_mark_used(*, attachment_id: object) -> None:
    media_services.attachment_mark_used(attachment_id=attachment_id)


def attachments_public(attachment_ids: Iterable[object]) -> dict[str, dict[str, Any]]:
    """The contract's attachment shape per id, in one query."""
    ids = {str(a) for a in attachment_ids if a}
    if not ids:
        return {}
    return {str(a.pk): media_selectors.attachment_public(a) for a in Attachment.objects.filter(pk__in=ids)}


def push_notify(**kwargs: Any) -> None:
    """Enqueue a push on commit through MESSAGING_PUSH_NOTIFY (notifications.services.push_notify)."""
    path = getattr(settings, "MESSAGING_PUSH_NOTIFY", "")
    if path:
        import_string(path)(**kwargs)


class ScreenedSend(NamedTuple):
    """What a send screen sees of one send that passed the payload checks."""

    index: int
    sender_id: str
    conversation_id: str


def _screened(pending: list[Any]) -> list[ScreenedSend]:
    return [ScreenedSend(item.index, item.request.sender_id, str(item.conversation_id)) for item in pending]


def _apply_screen(pending: list[Any], results: list[Any], refused: dict[int, Any]) -> list[Any]:
    if not refused:
        return pending
    for index, error in refused.items():
        results[index] = error
    return [item for item in pending if item.index not in refused]


def sends_screen(pending: list[Any], results: list[Any]) -> list[Any]:
    """MESSAGING_SEND_SCREEN (moderation.spam.sends_screen): a higher app may refuse some sends
    of a batch (the spam throttle), before any write; a refused send gets its error in
    `results` and is dropped from the batch."""
    path = getattr(settings, "MESSAGING_SEND_SCREEN", "")
    if not path or not pending:
        return pending
    return _apply_screen(pending, results, import_string(path)(sends=_screened(pending)))


async def sends_screen_async(pending: list[Any], results: list[Any]) -> list[Any]:
    """The same from the event loop: MESSAGING_SEND_SCREEN_NEEDED answers in the process
    (established senders, and conversations a sender is known to pass, need no screening,
    no query); only otherwise does the screen run, on a thread."""
    path = getattr(settings, "MESSAGING_SEND_SCREEN", "")
    if not path or not pending:
        return pending
    sends = _screened(pending)
    needed = getattr(settings, "MESSAGING_SEND_SCREEN_NEEDED", "")
    if needed and not import_string(needed)(sends=sends):
        return pending
    from channels.db import database_sync_to_async

    # database_sync_to_async: the thread's connection goes back to the pool afterwards.
    refused = await database_sync_to_async(import_string(path), thread_sensitive=False)(sends=sends)
    return _apply_screen(pending, results, refused)
