"""Every event payload messaging puts into users' streams, built in one place.

Payloads are plain JSON types (strings and numbers): they travel through
msgpack on the channel layer and are stored as JSON.
"""

from __future__ import annotations

from typing import Any

MESSAGE_NEW = "message.new"
MESSAGE_EDITED = "message.edited"
MESSAGE_DELETED = "message.deleted"
RECEIPT_DELIVERED = "receipt.delivered"
RECEIPT_READ = "receipt.read"
RECEIPT_PLAYED = "receipt.played"
CONVERSATION_CREATED = "conversation.created"
CONVERSATION_UPDATED = "conversation.updated"
MEMBER_ADDED = "member.added"
MEMBER_REMOVED = "member.removed"
GROUP_INVITED = "group.invited"


def message_new(message: dict[str, Any]) -> dict[str, Any]:
    """The public Message (it carries `conversation_id`)."""
    return message


def message_edited(message: dict[str, Any]) -> dict[str, Any]:
    return message


def message_deleted(*, conversation_id: str, message_id: str, seq: int, scope: str) -> dict[str, Any]:
    """`for` is "everyone" (recalled) or "me" (hidden on the user's own devices only)."""
    return {"conversation_id": conversation_id, "message_id": message_id, "seq": seq, "for": scope}


def receipt(*, conversation_id: str, user_id: str, seq: int) -> dict[str, Any]:
    """`user_id` has received (or read) every message up to `seq`."""
    return {"conversation_id": conversation_id, "user_id": user_id, "seq": seq}


def receipt_played(*, conversation_id: str, message_id: str, seq: int, user_id: str) -> dict[str, Any]:
    """`user_id` has played the voice note `message_id` (one message, unlike the pointer receipts)."""
    return {"conversation_id": conversation_id, "message_id": message_id, "seq": seq, "user_id": user_id}


def conversation_created(conversation: dict[str, Any]) -> dict[str, Any]:
    return conversation


def conversation_updated(*, conversation_id: str, **changes: Any) -> dict[str, Any]:
    """Only the changed fields: `title`, `avatar_url`, or for the user's own devices `read_seq`,
    `unread_count`, `muted_until`."""
    return {"conversation_id": conversation_id, **changes}


def member_added(*, conversation_id: str, user_id: str, role: str, by: str | None) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "user_id": user_id, "role": role, "by": by}


def member_removed(*, conversation_id: str, user_id: str, by: str | None) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "user_id": user_id, "by": by}


def group_invited(*, conversation_id: str, type: str, title: str, avatar_url: str, member_count: int, by: str,
                  expires_at: str) -> dict[str, Any]:
    """To the invitee only: enough to show the invitation, since the conversation itself stays
    hidden (404) until they join."""
    return {"conversation_id": conversation_id, "type": type, "title": title, "avatar_url": avatar_url,
            "member_count": member_count, "by": by, "expires_at": expires_at}
