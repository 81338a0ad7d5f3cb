"""Conversations and their members: create, rename, add, remove, roles, mute, account deletion."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.serializers import timestamp
from messaging import events, integrations
from messaging.models import (
    ADMIN_ROLES,
    Conversation,
    ConversationType,
    DeviceCursor,
    Membership,
    Message,
    Role,
)
from messaging.selectors import (
    as_uuid,
    conversation_detail,
    conversation_get_for_member,
)
from messaging.services import invitations
from messaging.services.fanout import emit_to_members
from streams.services import PendingEvent, stream_append

# --- Conversations ---------------------------------------------------------------------


def _snapshot(conversation: Conversation) -> dict[str, Any]:
    """The Conversation shape as a member who just joined sees it."""
    from messaging.selectors import _listed_members_filter

    members = [
        {"user_id": str(u), "role": r}
        for u, r in Membership.objects.filter(_listed_members_filter(), conversation=conversation)
        .order_by("joined_at", "pk").values_list("user_id", "role")
    ]
    return {
        "id": str(conversation.pk), "type": conversation.type, "title": conversation.title,
        "avatar_url": conversation.avatar_url,
        "members": members, "member_count": conversation.member_count, "last_seq": conversation.last_seq,
        "last_message": None, "unread_count": 0, "read_seq": conversation.last_seq, "muted_until": None,
        "created_at": timestamp(conversation.created_at), "updated_at": timestamp(conversation.updated_at),
    }


def _users_group_add(user_ids: Iterable[object], *, field: str) -> dict[str, str]:
    """{user id: their group_add setting} for active users; ValidationFailed if one is not."""
    ids = {str(u) for u in user_ids}
    found = {str(u): rule for u, rule in
             User.objects.filter(pk__in=ids, is_active=True).values_list("pk", "group_add")}
    if found.keys() != ids:
        raise ValidationFailed(details={field: ["One or more users do not exist."]})
    return found


def _users_active(user_ids: Iterable[object], *, field: str) -> list[str]:
    return sorted(_users_group_add(user_ids, field=field))


def _lock_user(user: User) -> None:
    """The adder's row lock, taken first (users before conversations, as account deletion
    does): it serialises one adder's invitations so the daily allowance holds."""
    User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()


def conversation_create(*, creator: User, type: str, user_id: object = None, title: str = "",
                        member_ids: Iterable[object] = ()) -> tuple[dict[str, Any], bool]:
    """Create a conversation; (Conversation for the creator, created).

    Direct conversations are one per pair: the unique `direct_key` turns a
    concurrent second creation into an IntegrityError, answered with the first.
    Groups and broadcasts take in directly only the users whose `group_add` lets the
    creator add them; the others are invited and listed under `invited`.
    """
    if type == ConversationType.DIRECT:
        conversation, created = _direct_get_or_create(creator=creator, other_id=user_id)
        return {**conversation, "invited": []}, created
    limit = (settings.MESSAGING_BROADCAST_MAX_MEMBERS if type == ConversationType.BROADCAST
             else settings.MESSAGING_GROUP_MAX_MEMBERS)
    requested = _users_group_add(member_ids, field="member_ids")
    requested.pop(str(creator.pk), None)
    if len(requested) + 1 > limit:
        raise ValidationFailed(details={"member_ids": [f"At most {limit} members."]})
    with transaction.atomic():
        _lock_user(creator)
        others, invited, undelivered = invitations.group_add_split(adder_id=creator.pk, group_add=requested)
        conversation = Conversation.objects.create(type=type, title=title.strip(), created_by=creator,
                                                   member_count=len(others) + 1)
        Membership.objects.bulk_create(
            [Membership(conversation=conversation, user=creator, role=Role.OWNER)]
            + [Membership(conversation=conversation, user_id=u, role=Role.MEMBER) for u in others]
        )
        pending = emit_to_members(conversation=conversation, type=events.CONVERSATION_CREATED,
                                  data=events.conversation_created(_snapshot(conversation)), actor_id=creator.pk)
        pending += invitations.invitations_send(conversation=conversation, inviter_id=creator.pk,
                                                invitee_ids=invited, undelivered=undelivered,
                                                now=conversation.created_at)
        stream_append(pending)
    return {**conversation_detail(user_id=creator.pk, conversation_id=conversation.pk), "invited": invited}, True


def _direct_get_or_create(*, creator: User, other_id: object) -> tuple[dict[str, Any], bool]:
    other = _users_active([other_id], field="user_id")[0]
    if other == str(creator.pk):
        raise ValidationFailed(details={"user_id": ["A direct conversation needs another user."]})
    key = ":".join(sorted([str(creator.pk), other]))
    existing = Conversation.objects.filter(direct_key=key).values_list("pk", flat=True).first()
    if existing:
        return conversation_detail(user_id=creator.pk, conversation_id=existing), False
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(type=ConversationType.DIRECT, direct_key=key,
                                                       created_by=creator, member_count=2)
            Membership.objects.bulk_create([Membership(conversation=conversation, user_id=u, role=Role.MEMBER)
                                            for u in sorted([str(creator.pk), other])])
            # Someone who blocked the creator is not told; the conversation
            # simply exists for them, empty of the creator's messages.
            audience = [str(creator.pk)]
            if not integrations.blockers_of(user_id=creator.pk, candidate_ids=[other]):
                audience.append(other)
            snapshot = events.conversation_created(_snapshot(conversation))
            stream_append([PendingEvent(u, events.CONVERSATION_CREATED, snapshot) for u in audience])
    except IntegrityError:
        existing = Conversation.objects.filter(direct_key=key).values_list("pk", flat=True).first()
        if existing is None:
            raise
        return conversation_detail(user_id=creator.pk, conversation_id=existing), False
    return conversation_detail(user_id=creator.pk, conversation_id=conversation.pk), True


def _locked_for_admin(*, actor: User, conversation_id: object) -> tuple[Conversation, Membership]:
    """The conversation row, locked, and the actor's membership; 404 for non-members,
    403 for members who are not admins, 400 for direct conversations."""
    membership = conversation_get_for_member(user_id=actor.pk, conversation_id=conversation_id)
    conversation = Conversation.objects.select_for_update().get(pk=membership.conversation_id)
    if conversation.type == ConversationType.DIRECT:
        raise ValidationFailed("A direct conversation has exactly two members and no title.",
                               details={"conversation_id": ["Not allowed for a direct conversation."]})
    membership.refresh_from_db(fields=["role", "left_at"])
    if membership.left_at is not None:
        raise NotFound()
    if membership.role not in ADMIN_ROLES:
        raise Forbidden("Only the conversation's admins may do this.")
    return conversation, membership


def conversation_update(*, actor: User, conversation_id: object, title: str) -> dict[str, Any]:
    if not title.strip():
        raise ValidationFailed(details={"title": ["This field may not be blank."]})
    with transaction.atomic():
        conversation, _ = _locked_for_admin(actor=actor, conversation_id=conversation_id)
        conversation.title = title.strip()
        conversation.updated_at = timezone.now()
        conversation.save(update_fields=["title", "updated_at"])
        stream_append(emit_to_members(
            conversation=conversation, type=events.CONVERSATION_UPDATED, actor_id=actor.pk,
            data=events.conversation_updated(conversation_id=str(conversation.pk), title=conversation.title)))
    return conversation_detail(user_id=actor.pk, conversation_id=conversation.pk)


def members_add(*, actor: User, conversation_id: object, user_ids: Iterable[object]) -> dict[str, Any]:
    """Add (or re-add) users; they start with nothing unread. Users whose `group_add`
    does not let the actor add them are invited instead and listed under `invited`."""
    with transaction.atomic():
        _lock_user(actor)
        conversation, _ = _locked_for_admin(actor=actor, conversation_id=conversation_id)
        wanted = _users_group_add(user_ids, field="user_ids")
        current = set(Membership.objects.filter(conversation=conversation, user_id__in=wanted, left_at__isnull=True)
                      .values_list("user_id", flat=True))
        for user_id in current:
            wanted.pop(str(user_id), None)
        direct, invited, undelivered = invitations.group_add_split(adder_id=actor.pk, group_add=wanted)
        now = timezone.now()
        pending = _memberships_add(conversation=conversation, user_ids=direct, by=str(actor.pk), now=now,
                                   field="user_ids")
        invitations.invitations_close(conversation=conversation, user_ids=direct)
        pending += invitations.invitations_send(conversation=conversation, inviter_id=actor.pk, invitee_ids=invited,
                                                undelivered=undelivered, now=now)
        stream_append(pending)
    return {**conversation_detail(user_id=actor.pk, conversation_id=conversation.pk), "invited": invited}


def _memberships_add(*, conversation: Conversation, user_ids: list[str], by: str, now: datetime,
                     field: str) -> list[PendingEvent]:
    """Make the users (none of them a current member) members; returns the events owed.
    Call holding the conversation row lock."""
    if not user_ids:
        return []
    limit = (settings.MESSAGING_BROADCAST_MAX_MEMBERS if conversation.type == ConversationType.BROADCAST
             else settings.MESSAGING_GROUP_MAX_MEMBERS)
    if conversation.member_count + len(user_ids) > limit:
        raise ValidationFailed(f"At most {limit} members.", details={field: [f"At most {limit} members."]})
    rows = {str(m.user_id): m for m in Membership.objects.filter(conversation=conversation, user_id__in=user_ids)}
    for user_id in user_ids:
        row = rows.get(user_id) or Membership(conversation=conversation, user_id=user_id)
        row.role, row.left_at, row.left_seq, row.joined_at = Role.MEMBER, None, None, now
        row.read_seq = row.delivered_seq = conversation.last_seq
        row.save()
    conversation.member_count += len(user_ids)
    conversation.updated_at = now
    conversation.save(update_fields=["member_count", "updated_at"])
    snapshot = events.conversation_created(_snapshot(conversation))
    pending = [PendingEvent(u, events.CONVERSATION_CREATED, snapshot) for u in user_ids]
    for user_id in user_ids:
        pending += _emit_member_change(
            conversation=conversation, type=events.MEMBER_ADDED, actor_id=by, affected=user_id,
            data=events.member_added(conversation_id=str(conversation.pk), user_id=user_id, role=Role.MEMBER, by=by))
    return pending


def conversation_join(*, user: User, conversation_id: object) -> dict[str, Any]:
    """Accept an open invitation (`group.invited`): the user becomes a member, as if the
    inviter had added them (`member.added` says `by` the inviter). Joining again is a no-op.

    Without an open invitation (none, expired, or from someone the user blocked) the
    conversation does not exist for the user: 404. A full group is 409 `conflict`.
    """
    target = as_uuid(conversation_id) if not isinstance(conversation_id, uuid.UUID) else conversation_id
    if target is None:
        raise NotFound()
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=target).first()
        if conversation is None:
            raise NotFound()
        if Membership.objects.filter(conversation=conversation, user=user, left_at__isnull=True).exists():
            return conversation_detail(user_id=user.pk, conversation_id=conversation.pk)
        now = timezone.now()
        invitation = invitations.invitation_for_join(conversation=conversation, user_id=user.pk, now=now)
        if invitation is None:
            raise NotFound()
        try:
            pending = _memberships_add(conversation=conversation, user_ids=[str(user.pk)],
                                       by=str(invitation.inviter_id), now=now, field="conversation_id")
        except ValidationFailed as full:
            raise Conflict("The conversation is full.") from full
        invitation.accepted_at = now
        invitation.save(update_fields=["accepted_at"])
        stream_append(pending)
    return conversation_detail(user_id=user.pk, conversation_id=conversation.pk)


def _emit_member_change(*, conversation: Conversation, type: str, data: dict[str, Any], actor_id: object,
                        affected: str) -> list[PendingEvent]:
    """Member changes go to all members, except in broadcasts: there only to the
    admins and the affected user (the audience does not see each other)."""
    if conversation.type != ConversationType.BROADCAST:
        return emit_to_members(conversation=conversation, type=type, data=data, actor_id=actor_id,
                                extra_user_ids=[affected])
    admins = {str(u) for u in Membership.objects.filter(conversation=conversation, left_at__isnull=True,
                                                        role__in=ADMIN_ROLES).values_list("user_id", flat=True)}
    return [PendingEvent(u, type, data) for u in sorted(admins | {affected})]


def member_remove(*, actor: User, conversation_id: object, user_id: object) -> None:
    """Admins remove members (only the owner removes admins); anyone may leave."""
    with transaction.atomic():
        own = conversation_get_for_member(user_id=actor.pk, conversation_id=conversation_id)
        target_id = as_uuid(user_id) if not isinstance(user_id, uuid.UUID) else user_id
        if target_id is None:
            raise NotFound()
        if target_id == actor.pk:
            conversation = Conversation.objects.select_for_update().get(pk=own.conversation_id)
            if conversation.type == ConversationType.DIRECT:
                raise ValidationFailed("You cannot leave a direct conversation.",
                                       details={"user_id": ["Not allowed for a direct conversation."]})
            own.refresh_from_db()
            stream_append(_member_leave(conversation=conversation, membership=own, by=None))
            return
        conversation, actor_membership = _locked_for_admin(actor=actor, conversation_id=conversation_id)
        target = Membership.objects.filter(conversation=conversation, user_id=target_id, left_at__isnull=True).first()
        if target is None:
            raise NotFound()
        if target.role == Role.OWNER or (target.role == Role.ADMIN and actor_membership.role != Role.OWNER):
            raise Forbidden("Only the owner removes admins, and nobody removes the owner.")
        stream_append(_member_leave(conversation=conversation, membership=target, by=str(actor.pk)))


def _member_leave(*, conversation: Conversation, membership: Membership, by: str | None) -> list[PendingEvent]:
    """Call holding the conversation row lock. An owner who leaves hands over to
    the longest-standing admin, else the longest-standing member."""
    now = timezone.now()
    membership.left_at, membership.left_seq = now, conversation.last_seq
    was_owner = membership.role == Role.OWNER
    membership.save(update_fields=["left_at", "left_seq"])
    conversation.member_count = max(0, conversation.member_count - 1)
    conversation.updated_at = now
    conversation.save(update_fields=["member_count", "updated_at"])
    user_id = str(membership.user_id)
    pending = _emit_member_change(
        conversation=conversation, type=events.MEMBER_REMOVED, actor_id=by, affected=user_id,
        data=events.member_removed(conversation_id=str(conversation.pk), user_id=user_id, by=by))
    if was_owner:
        heir = (Membership.objects.filter(conversation=conversation, left_at__isnull=True)
                .order_by("role", "joined_at", "pk").first())  # "admin" sorts before "member"
        if heir is not None:
            heir.role = Role.OWNER
            heir.save(update_fields=["role"])
            data = events.conversation_updated(conversation_id=str(conversation.pk),
                                               member={"user_id": str(heir.user_id), "role": Role.OWNER})
            pending += emit_to_members(conversation=conversation, type=events.CONVERSATION_UPDATED, data=data)
    return pending


def member_role_set(*, actor: User, conversation_id: object, user_id: object, role: str) -> dict[str, Any]:
    """The owner makes members admins and back."""
    with transaction.atomic():
        conversation, actor_membership = _locked_for_admin(actor=actor, conversation_id=conversation_id)
        target_id = as_uuid(str(user_id))
        target = (Membership.objects.filter(conversation=conversation, user_id=target_id, left_at__isnull=True).first()
                  if target_id else None)
        if target is None:
            raise NotFound()
        if actor_membership.role != Role.OWNER or target.role == Role.OWNER:
            raise Forbidden("Only the owner changes roles, and the owner's own role is fixed.")
        if target.role != role:
            target.role = role
            target.save(update_fields=["role"])
            stream_append(emit_to_members(
                conversation=conversation, type=events.CONVERSATION_UPDATED, actor_id=actor.pk,
                data=events.conversation_updated(conversation_id=str(conversation.pk),
                                                 member={"user_id": str(target_id), "role": role})))
    return conversation_detail(user_id=actor.pk, conversation_id=conversation.pk)


def conversation_mute(*, user: User, conversation_id: object, until: datetime | None) -> dict[str, Any]:
    with transaction.atomic():
        membership = conversation_get_for_member(user_id=user.pk, conversation_id=conversation_id)
        Membership.objects.filter(pk=membership.pk).update(muted_until=until)
        stream_append([PendingEvent(user.pk, events.CONVERSATION_UPDATED, events.conversation_updated(
            conversation_id=str(membership.conversation_id), muted_until=timestamp(until)))])
    return conversation_detail(user_id=user.pk, conversation_id=membership.conversation_id)


# --- Account deletion ----------------------------------------------------------------


def user_messages_erase(*, user_id: object) -> None:
    """ACCOUNT_DELETION_STEPS: the user's messages become deleted for everyone
    (content erased) and they leave every conversation."""
    now = timezone.now()
    Message.objects.filter(sender_id=user_id, deleted_at__isnull=True).update(
        deleted_at=now, text="", attachment_id=None, location=None)
    conversation_ids = sorted(Membership.objects.filter(user_id=user_id, left_at__isnull=True)
                              .values_list("conversation_id", flat=True), key=str)
    pending: list[PendingEvent] = []
    for conversation_id in conversation_ids:
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        membership = Membership.objects.get(conversation=conversation, user_id=user_id)
        pending += _member_leave(conversation=conversation, membership=membership, by=None)
    stream_append(pending)
    DeviceCursor.objects.filter(device__user_id=user_id).delete()


# --- Group avatars ------------------------------------------------------------------------


def conversation_avatar_set(*, actor: User, conversation_id: object, upload: Any) -> dict[str, Any]:
    """A group's or broadcast's picture (admins): stored by media, announced as `conversation.updated`.

    The image is checked and cropped before any lock is taken; the admin check runs
    before that (so a stranger's upload costs nothing) and again under the lock.
    """
    from media import services as media_services

    _locked_for_admin_check(actor=actor, conversation_id=conversation_id)
    files = media_services.conversation_avatar_files(upload=upload, actor_id=actor.pk)
    try:
        return _conversation_avatar_apply(actor=actor, conversation_id=conversation_id, files=files)
    except BaseException:
        media_services.avatar_files_discard(files)
        raise


def conversation_avatar_delete(*, actor: User, conversation_id: object) -> dict[str, Any]:
    return _conversation_avatar_apply(actor=actor, conversation_id=conversation_id, files=None)


def _locked_for_admin_check(*, actor: User, conversation_id: object) -> None:
    with transaction.atomic():
        _locked_for_admin(actor=actor, conversation_id=conversation_id)


def _conversation_avatar_apply(*, actor: User, conversation_id: object,
                               files: dict[str, str] | None) -> dict[str, Any]:
    from media import services as media_services

    with transaction.atomic():
        conversation, _ = _locked_for_admin(actor=actor, conversation_id=conversation_id)
        if files is None and not conversation.avatar_url:
            return conversation_detail(user_id=actor.pk, conversation_id=conversation.pk)
        conversation.avatar_url = media_services.conversation_avatar_replace(conversation_id=conversation.pk,
                                                                             files=files)
        conversation.updated_at = timezone.now()
        conversation.save(update_fields=["avatar_url", "updated_at"])
        stream_append(emit_to_members(
            conversation=conversation, type=events.CONVERSATION_UPDATED, actor_id=actor.pk,
            data=events.conversation_updated(conversation_id=str(conversation.pk),
                                             avatar_url=conversation.avatar_url)))
    return conversation_detail(user_id=actor.pk, conversation_id=conversation.pk)
