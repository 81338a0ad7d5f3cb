"""Editing, recalling and hiding messages."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from messaging import events
from messaging.models import (
    ADMIN_ROLES,
    ConversationType,
    Membership,
    Message,
    MessageHidden,
)
from messaging.selectors import (
    as_uuid,
    message_get_for_member,
    message_public,
)
from messaging.services.fanout import emit_to_members
from streams.services import PendingEvent, stream_append

# --- Editing, recalling, hiding ---------------------------------------------------------------


def message_edit(*, user: User, message_id: object, text: str) -> dict[str, Any]:
    """The sender edits within MESSAGING_EDIT_WINDOW."""
    with transaction.atomic():
        message = message_get_for_member(user_id=user.pk, message_id=message_id, for_update=True)
        if message.sender_id != user.pk:
            raise Forbidden("Only the sender edits a message.")
        if message.deleted_at is not None:
            raise Conflict("The message was recalled.")
        if timezone.now() - message.created_at > settings.MESSAGING_EDIT_WINDOW:
            raise Forbidden("The edit window has passed.")
        if message.type in {"location", "sticker"}:
            raise ValidationFailed(details={"text": [f"A {message.type} message has no text to edit."]})
        if message.type == "text" and not text.strip():
            raise ValidationFailed(details={"text": ["A text message needs text."]})
        message.text = text
        message.edited_at = timezone.now()
        message.save(update_fields=["text", "edited_at"])
        public = message_public(message)
        stream_append(emit_to_members(conversation=message.conversation, type=events.MESSAGE_EDITED,
                                       actor_id=user.pk, data=events.message_edited(public), message=message))
    return public


def message_delete(*, user: User, message_id: object, scope: str) -> None:
    """`everyone`: recall (sender within MESSAGING_RECALL_WINDOW, or a group admin
    at any time); `me`: hide it on the user's own devices. Repeats are no-ops."""
    if scope not in {"everyone", "me"}:
        raise ValidationFailed(details={"for": ["Expected everyone or me."]})
    with transaction.atomic():
        message = message_get_for_member(user_id=user.pk, message_id=message_id, for_update=scope == "everyone")
        data = events.message_deleted(conversation_id=str(message.conversation_id), message_id=str(message.pk),
                                      seq=message.seq, scope=scope)
        if scope == "me":
            _, created = MessageHidden.objects.get_or_create(message=message, user=user)
            if created:
                stream_append([PendingEvent(user.pk, events.MESSAGE_DELETED, data)])
            return
        if message.deleted_at is not None:
            return
        role = Membership.objects.filter(conversation_id=message.conversation_id, user=user).values_list(
            "role", flat=True).first()
        is_admin = role in ADMIN_ROLES and message.conversation.type != ConversationType.DIRECT
        in_window = timezone.now() - message.created_at <= settings.MESSAGING_RECALL_WINDOW
        if not (is_admin or (message.sender_id == user.pk and in_window)):
            raise Forbidden("Only the sender within the recall window, or an admin, recalls a message.")
        message.deleted_at = timezone.now()
        message.text, message.attachment_id, message.location = "", None, None
        message.save(update_fields=["deleted_at", "text", "attachment_id", "location"])
        stream_append(emit_to_members(conversation=message.conversation, type=events.MESSAGE_DELETED,
                                       actor_id=user.pk, data=data, message=message))


def message_remove(*, message_id: object) -> bool:
    """Staff removal (moderation): the message becomes deleted for everyone, as a recall does,
    whoever sent it and however old it is; its members get `message.deleted`. False when it
    was already deleted (nothing emitted). NotFound for an unknown id."""
    with transaction.atomic():
        message = (Message.objects.select_for_update(of=("self",)).select_related("conversation")
                   .filter(pk=as_uuid(str(message_id))).first())
        if message is None:
            raise NotFound()
        if message.deleted_at is not None:
            return False
        data = events.message_deleted(conversation_id=str(message.conversation_id), message_id=str(message.pk),
                                      seq=message.seq, scope="everyone")
        message.deleted_at = timezone.now()
        message.text, message.attachment_id, message.location = "", None, None
        message.save(update_fields=["deleted_at", "text", "attachment_id", "location"])
        stream_append(emit_to_members(conversation=message.conversation, type=events.MESSAGE_DELETED,
                                      actor_id=None, data=data, message=message))
    return True
