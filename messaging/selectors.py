"""Reads for messaging, shaped for their callers and N+1-free.

Selectors that take a conversation id authorise: a non-member (or a malformed
id) gets NotFound, never a hint that the conversation exists.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from core.compiled import per_user_instances, per_user_values
from core.db import replica_ok
from core.errors import NotFound, ValidationFailed
from core.serializers import timestamp
from messaging import integrations
from messaging.models import (
    Conversation,
    ConversationType,
    DeviceCursor,
    Membership,
    Message,
    MessageHidden,
    Role,
)
from streams.cursors import cursor_encode
from streams.selectors import stream_head


def as_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def is_inline(conversation: Conversation) -> bool:
    """Events of conversations this small are appended in the change's own
    transaction; bigger ones fan out in Celery batches."""
    return conversation.member_count <= settings.MESSAGING_INLINE_FANOUT_MAX


def is_small(conversation: Conversation) -> bool:
    """Small non-broadcast conversations also get per-member receipts and presence."""
    return conversation.type != ConversationType.BROADCAST and is_inline(conversation)


# --- Messages ----------------------------------------------------------------------


def message_public(message: Message, *, attachments: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The contract's Message shape (plus `location`). A recalled message keeps
    its place (seq) but loses its content."""
    attachment = None
    if message.attachment_id and message.deleted_at is None:
        if attachments is None:
            attachments = integrations.attachments_public([message.attachment_id])
        attachment = attachments.get(str(message.attachment_id))
    return message_public_values(
        id=message.pk, conversation_id=message.conversation_id, seq=message.seq, sender_id=message.sender_id,
        client_id=message.client_id, type=message.type, text=message.text, attachment=attachment,
        location=message.location, reply_to=message.reply_to_id, created_at=timestamp(message.created_at),
        edited_at=timestamp(message.edited_at), deleted=message.deleted_at is not None, content=message.content)


def message_public_values(*, id: object, conversation_id: object, seq: int, sender_id: object, client_id: object,
                          type: str, text: str, attachment: dict[str, Any] | None, location: dict | None,
                          reply_to: object, created_at: str, edited_at: str | None, deleted: bool,
                          content: dict[str, Any] | None) -> dict[str, Any]:
    """The one place the Message shape is built (from a model row, or from what the send
    path just wrote); timestamps come already formatted."""
    return {
        "id": str(id),
        "conversation_id": str(conversation_id),
        "seq": seq,
        "sender_id": str(sender_id),
        "client_id": str(client_id),
        "type": type,
        "text": "" if deleted else text,
        "attachment": None if deleted else attachment,
        "location": None if deleted else location,
        "reply_to": str(reply_to) if reply_to else None,
        "created_at": created_at,
        "edited_at": edited_at,
        "deleted": deleted,
        # A server-made type's payload under its own key ("call", "red_packet").
        **(content if content and not deleted else {}),
    }


def messages_public(messages: Iterable[Message]) -> list[dict[str, Any]]:
    messages = list(messages)
    attachments = integrations.attachments_public(m.attachment_id for m in messages if m.deleted_at is None)
    return [message_public(m, attachments=attachments) for m in messages]


def messages_public_by_id(message_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stream's renderer for message.new events: {id: Message as it stands now}, in two queries."""
    return {public["id"]: public for public in messages_public(Message.objects.filter(pk__in=message_ids))}


def _hidden_for(user_id: object) -> Exists:
    return Exists(MessageHidden.objects.filter(message=OuterRef("pk"), user_id=user_id))


@replica_ok  # a history page may be a moment behind (core.db)
def message_history(*, user_id: object, conversation_id: object, before_seq: int | None = None,
                    after_seq: int | None = None, limit: int = 50) -> tuple[list[Message], bool]:
    """A page of history, oldest first. `after_seq` reads forward from there;
    otherwise the newest messages before `before_seq` (or the latest)."""
    conversation_get_for_member(user_id=user_id, conversation_id=conversation_id)
    qs = Message.objects.filter(conversation_id=conversation_id).exclude(_hidden_for(user_id))
    if after_seq is not None:
        qs = qs.filter(seq__gt=after_seq)
        if before_seq is not None:
            qs = qs.filter(seq__lt=before_seq)
        rows = list(qs.order_by("seq")[: limit + 1])
        return rows[:limit], len(rows) > limit
    if before_seq is not None:
        qs = qs.filter(seq__lt=before_seq)
    rows = list(qs.order_by("-seq")[: limit + 1])
    return list(reversed(rows[:limit])), len(rows) > limit


def message_get_for_member(*, user_id: object, message_id: object, for_update: bool = False) -> Message:
    """A message in a conversation the user is a member of, else NotFound."""
    pk = as_uuid(message_id)
    if pk is None:
        raise NotFound()
    qs = Message.objects.select_related("conversation").filter(
        pk=pk,
        conversation__memberships__user_id=user_id,
        conversation__memberships__left_at__isnull=True,
    )
    if for_update:
        qs = qs.select_for_update(of=("self",))
    message = qs.first()
    if message is None:
        raise NotFound()
    return message


# --- Conversations --------------------------------------------------------------


def conversation_get_for_member(*, user_id: object, conversation_id: object) -> Membership:
    """The caller's current membership, with its conversation; NotFound otherwise."""
    pk = as_uuid(conversation_id)
    if pk is None:
        raise NotFound()
    membership = (
        Membership.objects.select_related("conversation")
        .filter(conversation_id=pk, user_id=user_id, left_at__isnull=True)
        .first()
    )
    if membership is None:
        raise NotFound()
    return membership


def _listed_members_filter() -> Q:
    # A broadcast can have a huge audience: it lists only its owner and admins.
    return Q(left_at__isnull=True) & (
        ~Q(conversation__type=ConversationType.BROADCAST) | Q(role__in=[Role.OWNER, Role.ADMIN])
    )


def _unread_subquery(user_id: object) -> Any:
    """Per membership row: messages after its read pointer that are not the
    user's own, not recalled and not hidden for them."""
    return (
        Message.objects.filter(conversation_id=OuterRef("conversation_id"), seq__gt=OuterRef("read_seq"),
                               deleted_at__isnull=True)
        .exclude(sender_id=user_id)
        .exclude(_hidden_for(user_id))
        .order_by()
        .values("conversation_id")
        .annotate(n=Count("pk"))
        .values("n")
    )


def _annotated_memberships(user_id: object) -> Any:
    unread = _unread_subquery(user_id)
    last_visible = (
        Message.objects.filter(conversation_id=OuterRef("conversation_id"))
        .exclude(_hidden_for(user_id))
        .order_by("-seq")
        .values("pk")[:1]
    )
    return (
        Membership.objects.filter(user_id=user_id, left_at__isnull=True)
        .select_related("conversation")
        .annotate(unread_count=Coalesce(Subquery(unread, output_field=IntegerField()), 0),
                  last_visible_id=Subquery(last_visible))
    )


def conversations_public(memberships: list[Membership]) -> list[dict[str, Any]]:
    """Render the caller's annotated memberships: three queries whatever the count."""
    conversation_ids = [m.conversation_id for m in memberships]
    members: dict[Any, list[dict[str, str]]] = {cid: [] for cid in conversation_ids}
    for cid, member_id, role in (
        Membership.objects.filter(_listed_members_filter(), conversation_id__in=conversation_ids)
        .order_by("joined_at", "pk")
        .values_list("conversation_id", "user_id", "role")
    ):
        members[cid].append({"user_id": str(member_id), "role": role})
    last_ids = [m.last_visible_id for m in memberships if getattr(m, "last_visible_id", None)]
    last_messages = {m.pk: m for m in Message.objects.filter(pk__in=last_ids)} if last_ids else {}
    rendered = messages_public(last_messages.values())
    last_public = {uuid.UUID(r["id"]): r for r in rendered}
    out = []
    for m in memberships:
        c = m.conversation
        out.append({
            "id": str(c.pk),
            "type": c.type,
            "title": c.title,
            "avatar_url": c.avatar_url,
            "members": members[c.pk],
            "member_count": c.member_count,
            "last_seq": c.last_seq,
            "last_message": last_public.get(getattr(m, "last_visible_id", None)),
            "unread_count": getattr(m, "unread_count", 0),
            "read_seq": m.read_seq,
            "muted_until": timestamp(m.muted_until),
            "created_at": timestamp(c.created_at),
            "updated_at": timestamp(c.updated_at),
        })
    return out


@dataclass(frozen=True)
class ConversationListCursor:
    """Where a walk of the conversation list stands (opaque to clients).

    The walk pages one *window* of activity at a time: conversations whose last
    activity is in (`after`, `upto`], newest first, keyset on (activity, id)
    past `at`/`id`. The first window is everything up to the moment of the first
    page. A conversation with new activity during the walk leaves its place (no
    duplicate, no hole among the others) and is met again in the next window,
    which the walk enters when the current one is exhausted; so a walk that ends
    (`has_more` false) has reached every conversation the user had when it began.
    The last cursor of a walk, used later, returns what changed since.
    """

    upto: datetime | None = None  # None: the moment the page is read
    after: datetime | None = None
    at: datetime | None = None
    id: uuid.UUID | None = None

    def encode(self) -> str:
        values = [self.upto.isoformat() if self.upto else None, self.after.isoformat() if self.after else None,
                  self.at.isoformat() if self.at else None, str(self.id) if self.id else None]
        return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, raw: str) -> ConversationListCursor:
        """Raises ValueError for anything this server did not hand out."""
        if len(raw) > 400:
            raise ValueError("cursor too long")
        try:
            upto, after, at, pk = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (ValueError, TypeError) as exc:
            raise ValueError("malformed cursor") from exc

        def moment(value: object) -> datetime | None:
            if value is None:
                return None
            parsed = datetime.fromisoformat(str(value))
            if parsed.tzinfo is None:
                raise ValueError("naive time")
            return parsed

        upto_at = moment(upto)
        if (at is None) != (pk is None) or (at is not None and upto_at is None):
            raise ValueError("incomplete cursor")
        return cls(upto=upto_at, after=moment(after), at=moment(at), id=uuid.UUID(str(pk)) if pk else None)


@replica_ok  # the list may be a moment behind (core.db)
def conversation_list(*, user_id: object, limit: int = 100,
                      cursor: ConversationListCursor | None = None) -> dict[str, Any]:
    """The caller's conversations, most recent activity first, one page of a stable walk
    (see ConversationListCursor): `{"conversations", "cursor", "has_more"}`."""
    if cursor is None:
        cursor = ConversationListCursor()
    if cursor.upto is None:
        cursor = replace(cursor, upto=timezone.now())
    qs = _annotated_memberships(user_id).filter(conversation__updated_at__lte=cursor.upto)
    if cursor.after is not None:
        qs = qs.filter(conversation__updated_at__gt=cursor.after)
    if cursor.at is not None:
        qs = qs.filter(Q(conversation__updated_at__lt=cursor.at)
                       | Q(conversation__updated_at=cursor.at, conversation_id__lt=cursor.id))
    memberships = list(qs.order_by("-conversation__updated_at", "-conversation_id")[: limit + 1])
    if len(memberships) > limit:
        memberships = memberships[:limit]
        last = memberships[-1]
        following = replace(cursor, at=last.conversation.updated_at, id=last.conversation_id)
        has_more = True
    else:
        # This window is done; the next one holds what moved during the walk (if anything),
        # up to the moment it is read.
        has_more = Membership.objects.filter(user_id=user_id, left_at__isnull=True,
                                             conversation__updated_at__gt=cursor.upto).exists()
        following = ConversationListCursor(after=cursor.upto)
    return {"conversations": conversations_public(memberships), "cursor": following.encode(),
            "has_more": has_more}


def conversation_detail(*, user_id: object, conversation_id: object) -> dict[str, Any]:
    pk = as_uuid(conversation_id)
    membership = _annotated_memberships(user_id).filter(conversation_id=pk).first() if pk else None
    if membership is None:
        raise NotFound()
    return conversations_public([membership])[0]


def conversation_receipts(*, user_id: object, conversation_id: object) -> list[dict[str, Any]]:
    """Where the other members' delivered and read pointers stand (extension), so a client
    that reloads can draw its ticks without replaying every receipt event.

    Only small conversations keep per-member receipts (as for the events); bigger ones
    answer an empty list. The same privacy as `receipt.read`: no read pointer for a member
    who turned read receipts off, and nothing at all across a block in either direction.
    """
    membership = conversation_get_for_member(user_id=user_id, conversation_id=conversation_id)
    if not is_small(membership.conversation):
        return []
    rows = list(
        Membership.objects.filter(conversation_id=membership.conversation_id, left_at__isnull=True)
        .exclude(user_id=user_id)
        .order_by("joined_at", "pk")
        .values_list("user_id", "delivered_seq", "read_seq", "user__read_receipts")
    )
    hidden = integrations.blocked_either_way(user_id=user_id, other_ids=[row[0] for row in rows])
    out = []
    for member_id, delivered_seq, read_seq, read_receipts in rows:
        blocked = str(member_id) in hidden
        out.append({
            "user_id": str(member_id),
            "delivered_seq": None if blocked else delivered_seq,
            "read_seq": None if blocked or not read_receipts else read_seq,
        })
    return out


def message_receipts(*, user_id: object, message_id: object, cursor: str | None,
                     limit: int = 100) -> dict[str, Any]:
    """GET /messages/{id}/receipts: who got and who read one message (the sender only;
    anyone else, members included, gets NotFound).

    The recipients are the members when it was sent (joined before it, not left before
    its seq), the sender left out, ordered by user id; `cursor` is the last user id of
    the previous page. `delivered_at`/`read_at` are null until the member's pointer
    passes the message; otherwise the time that pointer last moved, so "by then at the
    latest" (only pointers are kept, not a time per message). No `read_at` for a member
    who turned read receipts off; neither time across a block in either direction.
    A broadcast answers counts only: `receipts` empty, plus `delivered_count`/`read_count`.
    """
    pk = as_uuid(message_id)
    message = (Message.objects.select_related("conversation").filter(pk=pk, sender_id=user_id).first()
               if pk else None)
    if message is None or not Membership.objects.filter(
            conversation_id=message.conversation_id, user_id=user_id, left_at__isnull=True).exists():
        raise NotFound()
    after = None
    if cursor:
        after = as_uuid(cursor)
        if after is None:
            raise ValidationFailed(details={"cursor": ["Not a cursor returned by this server."]})
    recipients = (Membership.objects.filter(conversation_id=message.conversation_id,
                                            joined_at__lte=message.created_at)
                  .filter(Q(left_seq__isnull=True) | Q(left_seq__gte=message.seq))
                  .exclude(user_id=user_id))
    if message.conversation.type == ConversationType.BROADCAST:
        counts = recipients.aggregate(
            delivered=Count("pk", filter=Q(delivered_seq__gte=message.seq)),
            read=Count("pk", filter=Q(read_seq__gte=message.seq, user__read_receipts=True)))
        return {"receipts": [], "cursor": None, "has_more": False,
                "delivered_count": counts["delivered"], "read_count": counts["read"]}
    if after is not None:
        recipients = recipients.filter(user_id__gt=after)
    rows = list(recipients.order_by("user_id")[:limit + 1]
                .values_list("user_id", "delivered_seq", "delivered_at", "read_seq", "read_at",
                             "user__read_receipts"))
    has_more = len(rows) > limit
    rows = rows[:limit]
    hidden = integrations.blocked_either_way(user_id=user_id, other_ids=[str(r[0]) for r in rows])
    receipts = []
    for member_id, delivered_seq, delivered_at, read_seq, read_at, read_receipts in rows:
        blocked = str(member_id) in hidden
        delivered = not blocked and delivered_seq >= message.seq
        read = not blocked and read_receipts and read_seq >= message.seq
        receipts.append({
            "user_id": str(member_id),
            "delivered_at": timestamp(delivered_at) if delivered else None,
            "read_at": timestamp(read_at) if read else None,
        })
    return {"receipts": receipts, "cursor": receipts[-1]["user_id"] if has_more else None, "has_more": has_more}


def conversation_member_ids(*, user_id: object, conversation_id: object) -> list[str]:
    """Current member ids (NotFound when user_id is not a member). For typing."""
    membership = conversation_get_for_member(user_id=user_id, conversation_id=conversation_id)
    return [str(u) for u in Membership.objects.filter(conversation_id=membership.conversation_id,
                                                      left_at__isnull=True).values_list("user_id", flat=True)]


def _conversation_peers(*, user_id: object) -> QuerySet[Membership]:
    """The user ids (a values subquery) of the members of user_id's direct and small group
    conversations. Broadcasts and big groups are left out: their members are not peers, and
    telling thousands of sockets about every reconnect would be a storm."""
    mine = Membership.objects.filter(
        user_id=user_id, left_at__isnull=True,
        conversation__member_count__lte=settings.MESSAGING_INLINE_FANOUT_MAX,
    ).exclude(conversation__type=ConversationType.BROADCAST).values("conversation_id")
    return (Membership.objects.filter(conversation_id__in=Subquery(mine), left_at__isnull=True)
            .exclude(user_id=user_id).values("user_id"))


def presence_audience(*, user_id: object) -> list[str]:
    """Users who share a direct or small group conversation with user_id."""
    return [str(u) for u in _conversation_peers(user_id=user_id).values_list("user_id", flat=True).distinct()]


def _presence_circle(*, user_id: object) -> QuerySet[Any]:
    """The user ids (a subquery) of user_id's conversation peers and its WS_PRESENCE_CONTACTS_MAX most
    recently seen friends (mutual contacts, no block), the people presence is about. A UNION, not
    `pk IN (a) OR pk IN (b)`, which PostgreSQL can only answer by scanning every user."""
    friends = integrations.friends_recently_active(user_id=user_id, limit=settings.WS_PRESENCE_CONTACTS_MAX)
    # The LIMIT inside a subquery of its own: SQLite (`make run`) refuses one on a UNION's member.
    recent_friends = User.objects.filter(pk__in=friends).values_list("pk", flat=True)
    return _conversation_peers(user_id=user_id).values_list("user_id", flat=True).union(recent_friends)


def _presence_shape(*extra: object) -> tuple[object, ...]:
    """The settings the presence queries read: their compiled SQL is kept per these values."""
    return (settings.MESSAGING_INLINE_FANOUT_MAX, settings.WS_PRESENCE_CONTACTS_MAX, *extra)


def _presence_viewers_query(user_id: uuid.UUID) -> QuerySet[User]:
    return (User.objects.filter(pk__in=_presence_circle(user_id=user_id), is_active=True)
            .exclude(pk=user_id)
            .filter(integrations.may_see_presence_of(target_id=user_id))
            .values_list("pk", flat=True))


def presence_viewers(*, user_id: object) -> list[str]:
    """Who may see user_id's online state and last_seen, in one query: its presence circle
    (conversation peers and recently seen friends), as far as its last_seen setting allows,
    with no block either way. Compiled once (it runs on every connect and disconnect)."""
    rows = per_user_values(_presence_viewers_query, user_id=user_id, shape=_presence_shape(), model=User)
    return [str(uuid.UUID(str(pk))) for pk, in rows]


def _presence_visible_peers_query(user_id: uuid.UUID, limit: int) -> QuerySet[User]:
    return (User.objects.filter(pk__in=_presence_circle(user_id=user_id), is_active=True)
            .exclude(pk=user_id)
            .filter(integrations.presence_visible_to(viewer_id=user_id))
            .only("pk", "last_seen_at")
            .order_by(F("last_seen_at").desc(nulls_last=True), "pk")[:limit])


def presence_visible_peers(*, user_id: object, limit: int) -> list[User]:
    """The people of user_id's presence circle whose online state and last_seen it may see
    (their last_seen setting, no block either way), at most `limit`, in one query, compiled
    once per limit (it runs on every hello)."""
    return per_user_instances(_presence_visible_peers_query, user_id=user_id, args=(limit,),
                              shape=_presence_shape(), model=User)


def unread_total(*, user_id: object) -> int:
    """Unread messages across the user's conversations that are not muted (push badge)."""
    now = timezone.now()
    return (
        Membership.objects.filter(user_id=user_id, left_at__isnull=True)
        .filter(Q(muted_until__isnull=True) | Q(muted_until__lte=now))
        .annotate(unread=Coalesce(Subquery(_unread_subquery(user_id), output_field=IntegerField()), 0))
        .aggregate(total=Sum("unread"))["total"]
        or 0
    )


def user_can_see_attachment(*, user_id: object, attachment_id: object) -> bool:
    """True when the attachment was sent into a conversation the user is, or was
    when it was sent, a member of (and the message is not recalled)."""
    pk = as_uuid(attachment_id)
    if pk is None:
        return False
    member_then = Membership.objects.filter(conversation_id=OuterRef("conversation_id"), user_id=user_id).filter(
        Q(left_at__isnull=True) | Q(left_seq__gte=OuterRef("seq"))
    )
    return Message.objects.filter(attachment_id=pk, deleted_at__isnull=True).filter(Exists(member_then)).exists()


def sync_head(*, user_id: object) -> str:
    """The cursor of the newest event in the user's stream ("" when it is empty)."""
    position = stream_head(user_id=user_id)
    return cursor_encode(position) if position else ""


def device_cursor_position(*, device_id: object) -> int:
    """Where a device's next `hello` without a cursor resumes (0 when it never acked)."""
    return DeviceCursor.objects.filter(device_id=device_id).values_list("position", flat=True).first() or 0


def device_cursor_get(*, device_id: object) -> str:
    """The same, as a cursor ("" when the device never acked)."""
    position = device_cursor_position(device_id=device_id)
    return cursor_encode(position) if position else ""



def user_can_see_conversation_avatar(*, user_id: object, conversation_id: object) -> bool:
    """MEDIA_AVATAR_ACCESS_CHECK: a group's picture is for its current members."""
    return Membership.objects.filter(conversation_id=conversation_id, user_id=user_id, left_at__isnull=True).exists()
