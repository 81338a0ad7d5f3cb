"""The push for a new message (title, body, mute), for the send path and the fan-out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from messaging import events, integrations
from messaging.models import Message

# What a push says for a message without text (the push app drops it when previews are off).
_PUSH_LABELS = {"image": "Photo", "voice": "Voice message", "video": "Video", "file": "File",
                "location": "Location", "sticker": "Sticker", "call": "Call", "red_packet": "Red packet"}


def push_new_message(message: Message, recipients: Iterable[tuple[str, datetime | None]]) -> None:
    """Call inside the transaction that wrote the message; recipients are (user id, muted_until)."""
    if not settings.MESSAGING_PUSH_NOTIFY:
        return
    now = timezone.now()
    for user_id, muted_until in recipients:
        integrations.push_notify(
            user_id=user_id, kind=events.MESSAGE_NEW, title=message.sender.display_name,
            body=message.text[:200] or _PUSH_LABELS.get(message.type, ""), conversation_id=str(message.conversation_id),
            message_id=str(message.pk), muted=bool(muted_until and muted_until > now),
            collapse_key=str(message.conversation_id),
        )
