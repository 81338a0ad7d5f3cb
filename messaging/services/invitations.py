"""Who may add whom to a group or broadcast (`settings.group_add`), and the invitations
sent instead (`group.invited`, accepted with POST /conversations/{id}/join).

A user's `group_add` says who may put them straight into a group or broadcast:
`everyone`, `contacts` (the adder is in the user's own uploaded address book, one way,
as the contract defines "contacts") or `nobody`. Anyone else gets them listed under
`invited` and they get an invitation, valid for MESSAGING_GROUP_INVITATION_TTL.

Blocks: a user who blocked the adder is never added directly, whatever their setting;
the adder sees them under `invited` like anyone else, and the invitation is stored
(counting toward the adder's daily allowance) but never delivered and never accepted,
so nothing tells the adder about the block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.conf import settings

from accounts.models import Visibility
from core.errors import RateLimited
from core.serializers import timestamp
from messaging import events, integrations
from messaging.models import Conversation, GroupInvitation
from streams.services import PendingEvent

DAY = timedelta(days=1)


def group_add_split(*, adder_id: object, group_add: Mapping[str, str]) -> tuple[list[str], list[str], set[str]]:
    """Split would-be members ({user id: their group_add}) into those the adder may add
    now and those to invite; the third item is the invitees who blocked the adder
    (their invitations are not delivered). Two queries at most."""
    blockers = integrations.blockers_of(user_id=adder_id, candidate_ids=group_add)
    asks_contacts = [u for u, rule in group_add.items() if rule == Visibility.CONTACTS and u not in blockers]
    holders = integrations.holding_in_address_book(user_id=adder_id, owner_ids=asks_contacts) if asks_contacts \
        else set()
    added, invited = [], []
    for user_id in sorted(group_add):
        rule = group_add[user_id]
        allowed = user_id not in blockers and (
            rule == Visibility.EVERYONE or (rule == Visibility.CONTACTS and user_id in holders))
        (added if allowed else invited).append(user_id)
    return added, invited, blockers & set(invited)


def invitations_send(*, conversation: Conversation, inviter_id: object, invitee_ids: list[str],
                     undelivered: set[str], now: datetime) -> list[PendingEvent]:
    """Invite users into the conversation; returns the `group.invited` events to append.

    Call inside the transaction, holding the inviter's user row lock (so concurrent
    requests of one inviter cannot both pass the daily allowance). An invitee whose
    invitation is still open keeps it: nothing new is sent and nothing is spent. The
    whole request is refused (429 `rate_limited`) when it would take the inviter past
    MESSAGING_GROUP_INVITATIONS_PER_DAY unaccepted invitations in 24 hours.
    """
    if not invitee_ids:
        return []
    rows = {str(row.invitee_id): row for row in GroupInvitation.objects.select_for_update()
            .filter(conversation=conversation, invitee_id__in=invitee_ids)}
    # A new invitation unless one is open; an undelivered one is replaced once the block is gone.
    fresh = [u for u in invitee_ids
             if u not in rows or rows[u].accepted_at is not None or rows[u].expires_at <= now
             or (not rows[u].delivered and u not in undelivered)]
    if not fresh:
        return []
    _ensure_allowance(inviter_id=inviter_id, wanted=len(fresh), now=now)
    expires_at = now + settings.MESSAGING_GROUP_INVITATION_TTL
    created: list[GroupInvitation] = []
    for user_id in fresh:
        row = rows.get(user_id) or GroupInvitation(conversation=conversation, invitee_id=user_id)
        row.inviter_id = inviter_id
        row.created_at, row.expires_at, row.accepted_at = now, expires_at, None
        row.delivered = user_id not in undelivered
        if row.pk is None:
            created.append(row)
        else:
            row.save(update_fields=["inviter", "created_at", "expires_at", "accepted_at", "delivered"])
    GroupInvitation.objects.bulk_create(created)
    data = events.group_invited(
        conversation_id=str(conversation.pk), type=conversation.type, title=conversation.title,
        avatar_url=conversation.avatar_url, member_count=conversation.member_count, by=str(inviter_id),
        expires_at=timestamp(expires_at))
    return [PendingEvent(u, events.GROUP_INVITED, data) for u in fresh if u not in undelivered]


def _ensure_allowance(*, inviter_id: object, wanted: int, now: datetime) -> None:
    limit = settings.MESSAGING_GROUP_INVITATIONS_PER_DAY
    recent = list(GroupInvitation.objects.filter(inviter_id=inviter_id, accepted_at__isnull=True,
                                                 created_at__gt=now - DAY)
                  .order_by("created_at").values_list("created_at", flat=True))
    over = len(recent) + wanted - limit
    if over <= 0:
        return
    # The allowance frees up as the oldest of these invitations leave the 24-hour window.
    frees_at = recent[over - 1] + DAY if over <= len(recent) else now + DAY
    raise RateLimited(
        f"At most {limit} open group invitations a day.",
        retry_after=math.ceil((frees_at - now).total_seconds()),
        details={"limit": limit, "open": len(recent)},
    )


def invitations_close(*, conversation: Conversation, user_ids: list[str]) -> None:
    """The users became members another way (added by someone they allow): their open
    invitations are spent."""
    if user_ids:
        GroupInvitation.objects.filter(conversation=conversation, invitee_id__in=user_ids).delete()


def invitation_for_join(*, conversation: Conversation, user_id: object, now: datetime) -> GroupInvitation | None:
    """The user's open, delivered invitation to the conversation, locked; None otherwise."""
    return (GroupInvitation.objects.select_for_update()
            .filter(conversation=conversation, invitee_id=user_id, delivered=True, accepted_at__isnull=True,
                    expires_at__gt=now).first())
