"""The push for a new message (title, body, mute), for the send path and the fan-out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from messaging import events, integrations
from messaging.models import Message

# What a push says for a message without text (the push app drops it when previews are off).
_PUSH_LABELS = {"image": "Photo", "voice": "Voice message", "video": "Video", "file": "File",
                "location": "Location", "sticker": "Sticker", "call": "Call", "red_packet": "Red packet"}


def push_message_new(*, user_id: object, sender_name: str, message: dict[str, Any], muted: bool) -> None:
    """Enqueue the push of a public Message to one recipient (on commit, when in a transaction)."""
    if not settings.MESSAGING_PUSH_NOTIFY:
        return
    integrations.push_notify(
        user_id=user_id, kind=events.MESSAGE_NEW, title=sender_name,
        body=(message.get("text") or "")[:200] or _PUSH_LABELS.get(message["type"], ""),
        conversation_id=message["conversation_id"], message_id=message["id"], muted=muted,
        collapse_key=message["conversation_id"],
    )


def push_new_message(message: Message, recipients: Iterable[tuple[str, datetime | None]]) -> None:
    """Call inside the transaction that wrote the message; recipients are (user id, muted_until)."""
    now = timezone.now()
    shape = {"id": str(message.pk), "conversation_id": str(message.conversation_id), "type": message.type,
             "text": message.text}
    for user_id, muted_until in recipients:
        push_message_new(user_id=user_id, sender_name=message.sender.display_name, message=shape,
                         muted=bool(muted_until and muted_until > now))
