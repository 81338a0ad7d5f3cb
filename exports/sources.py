"""What goes into an archive, read from the apps that own it.

Every reader here streams (`.iterator(chunk_size=...)`) or returns one small
row; nothing lists a user's messages. This is the one module of `exports`
that knows the other apps' models.

"Every message the user can see": the conversations the user is in, and
those the user has left up to the last message sent while they were a member
(what their phone showed them), minus messages hidden for them (deleted for
themselves, or from someone they blocked). Recalled messages keep their
place, marked deleted, without content; edits are as they stand.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from django.core.files.storage import Storage
from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.apis import me_data, public_user_data
from accounts.models import User
from contacts.selectors import contact_list
from core.serializers import timestamp
from media.models import Attachment
from media.selectors import attachment_public
from media.storage import attachment_storage
from messaging.integrations import attachments_public
from messaging.models import ConversationType, Membership, Message, MessageHidden, Role
from messaging.selectors import message_public
from moments.selectors import interactions_elsewhere, moments_of_author
from payments.selectors import wallet_get, wallet_statement_all
from redpackets.selectors import packets_claimed, packets_sent

CHUNK_SIZE = 2000
DELETED_NAME = "Deleted account"


def profile(*, user: User) -> dict[str, Any]:
    return me_data(user)


def profile_public(profile_data: dict[str, Any]) -> dict[str, Any]:
    """What the offline page shows of the owner (it never needs the phone number)."""
    return {"id": profile_data["id"], "display_name": profile_data["display_name"]}


def contacts(*, user_id: object) -> list[dict[str, Any]]:
    """Matched contacts as the API shows them: public profiles, never anyone's number."""
    return [{"user": public_user_data(user), "mutual": user.mutual} for user in contact_list(viewer_id=user_id)]


def _display_name(user: User | None) -> str:
    if user is None or not user.is_active:
        return DELETED_NAME
    return user.display_name


def conversations(*, user_id: object) -> Iterator[dict[str, Any]]:
    """The user's conversations, current and left, most recent activity first (two queries)."""
    memberships = list(
        Membership.objects.filter(user_id=user_id).select_related("conversation")
        .order_by("-conversation__updated_at", "conversation_id")
    )
    ids = [m.conversation_id for m in memberships]
    broadcasts = {m.conversation_id for m in memberships if m.conversation.type == ConversationType.BROADCAST}
    members: dict[Any, list[dict[str, Any]]] = {cid: [] for cid in ids}
    # A broadcast's audience can be huge and is private: only its owner and admins are listed.
    rows = (Membership.objects.filter(conversation_id__in=ids, left_at__isnull=True)
            .filter(~Q(conversation_id__in=broadcasts) | Q(role__in=[Role.OWNER, Role.ADMIN]) | Q(user_id=user_id))
            .select_related("user").only("conversation_id", "role", "user__id", "user__display_name",
                                         "user__is_active")
            .order_by("joined_at", "pk"))
    for row in rows:
        members[row.conversation_id].append(
            {"user_id": str(row.user_id), "display_name": _display_name(row.user), "role": row.role})
    for membership in memberships:
        conversation = membership.conversation
        listed = members[conversation.pk]
        title = conversation.title
        if conversation.type == ConversationType.DIRECT:
            others = [m["display_name"] for m in listed if m["user_id"] != str(user_id)]
            title = others[0] if others else DELETED_NAME
        yield {
            "id": str(conversation.pk),
            "type": conversation.type,
            "title": title or "Untitled",
            "members": listed,
            "created_at": timestamp(conversation.created_at),
            "joined_at": timestamp(membership.joined_at),
            "left_at": timestamp(membership.left_at),
            # Internal: where the user's view of a left conversation ends (dropped from the output).
            "_until_seq": membership.left_seq if membership.left_at else None,
        }


def _visible(*, user_id: object, conversation: dict[str, Any]) -> QuerySet[Message]:
    hidden = MessageHidden.objects.filter(message=OuterRef("pk"), user_id=user_id)
    messages = Message.objects.filter(conversation_id=conversation["id"]).exclude(Exists(hidden))
    if conversation.get("_until_seq") is not None:
        messages = messages.filter(seq__lte=conversation["_until_seq"])
    return messages


def message_count(*, user_id: object, conversation: dict[str, Any]) -> int:
    return _visible(user_id=user_id, conversation=conversation).count()


def messages(*, user_id: object, conversation: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The visible messages, oldest first, as the contract's Message shape. Streams in chunks."""
    rows = _visible(user_id=user_id, conversation=conversation).order_by("seq").iterator(chunk_size=CHUNK_SIZE)
    while True:
        chunk = list(islice(rows, CHUNK_SIZE))
        if not chunk:
            return
        attachments = attachments_public(m.attachment_id for m in chunk if m.deleted_at is None)
        for message in chunk:
            yield message_public(message, attachments=attachments)


def wallet(*, user_id: object) -> dict[str, Any]:
    """{"balance", "currency"} of the user's wallet."""
    return wallet_get(user_id=user_id)


def wallet_transactions(*, user_id: object) -> Iterator[dict[str, Any]]:
    """Every movement of the user's wallet, oldest first (amount signed: negative is money out)."""
    return wallet_statement_all(user_id=user_id, chunk_size=CHUNK_SIZE)


def red_packets_sent(*, user_id: object) -> Iterator[dict[str, Any]]:
    """The user's packets with their amounts, who claimed how much, and any refund."""
    return packets_sent(user_id=user_id)


def red_packets_claimed(*, user_id: object) -> Iterator[dict[str, Any]]:
    return packets_claimed(user_id=user_id, chunk_size=CHUNK_SIZE)


def moments(*, user_id: object) -> dict[str, Any]:
    """The user's own posts (oldest first, with the likes and comments on them) and the likes and
    comments they left on others' posts."""
    return {"posts": list(moments_of_author(user_id=user_id, chunk_size=CHUNK_SIZE)),
            **interactions_elsewhere(user_id=user_id)}


def own_attachments(*, user_id: object) -> Iterator[dict[str, Any]]:
    """Attachments the user uploaded and sent (unsent uploads are temporary and left out)."""
    uploads = Attachment.objects.filter(uploader_id=user_id, used_at__isnull=False).order_by("created_at")
    for attachment in uploads.iterator(chunk_size=CHUNK_SIZE):
        yield attachment_public(attachment)


def attachment_file(*, attachment_id: str) -> tuple[Storage, str] | None:
    """Where an attachment's bytes are. Callers pass only ids taken from what the user can see."""
    name = Attachment.objects.filter(pk=attachment_id).values_list("storage_name", flat=True).first()
    return (attachment_storage(), name) if name else None


class NameBook:
    """Display names of senders, looked up once each (bounded by distinct senders)."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def remember(self, user_id: object, name: str) -> None:
        self._names[str(user_id)] = name

    def name(self, user_id: object) -> str:
        if user_id is None:
            return ""
        key = str(user_id)
        if key not in self._names:
            self._names[key] = _display_name(
                User.objects.filter(pk=key).only("display_name", "is_active").first())
        return self._names[key]
