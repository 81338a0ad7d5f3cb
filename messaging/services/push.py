"""The push for a new message (title, body, mute), for the send path and the fan-out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext

from messaging import events, integrations
from messaging.models import Message

# What a push says for a message without text (the push app drops it when previews are off).
_PUSH_LABELS = {"image": "Photo", "voice": "Voice message", "video": "Video", "file": "File",
                "location": "Location", "sticker": "Sticker", "call": "Call", "red_packet": "Red packet"}


def message_push_title(*, sender_name: str | None, conversation_title: str | None) -> str:
    """The one rule for a message push's title: the sender's display name, else the
    conversation's title, else a localisable "New message". Never the phone number
    (a user without a display name has only that to show, so it is not shown)."""
    return (sender_name or "").strip() or (conversation_title or "").strip() or gettext("New message")


def push_message_new(*, user_id: object, sender_name: str, conversation_title: str, message: dict[str, Any],
                     muted: bool) -> None:
    """Enqueue the push of a public Message to one recipient (on commit, when in a transaction)."""
    if not settings.MESSAGING_PUSH_NOTIFY:
        return
    integrations.push_notify(
        user_id=user_id, kind=events.MESSAGE_NEW,
        title=message_push_title(sender_name=sender_name, conversation_title=conversation_title),
        body=(message.get("text") or "")[:200] or _PUSH_LABELS.get(message["type"], ""),
        conversation_id=message["conversation_id"], message_id=message["id"], muted=muted,
        collapse_key=message["conversation_id"],
    )


def push_new_message(message: Message, recipients: Iterable[tuple[str, datetime | None]]) -> None:
    """Call inside the transaction that wrote the message; recipients are (user id, muted_until)."""
    now = timezone.now()
    shape = {"id": str(message.pk), "conversation_id": str(message.conversation_id), "type": message.type,
             "text": message.text}
    recipients = list(recipients)
    if not recipients:
        return
    sender_name, conversation_title = message.sender.display_name, message.conversation.title
    for user_id, muted_until in recipients:
        push_message_new(user_id=user_id, sender_name=sender_name, conversation_title=conversation_title,
                         message=shape, muted=bool(muted_until and muted_until > now))
