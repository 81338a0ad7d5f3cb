"""Conversations, their members and messages.

`Conversation.last_seq` is the per-conversation message counter: the send path
bumps it with `UPDATE ... RETURNING`, whose row lock orders concurrent
senders, so committed seqs are always gapless. Membership rows are kept (with
`left_at`) when someone leaves, so "was a member when it was sent" can be
answered for attachments.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class ConversationType(models.TextChoices):
    DIRECT = "direct"
    GROUP = "group"
    BROADCAST = "broadcast"


class Role(models.TextChoices):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


# Who may administer a group or post in a broadcast.
ADMIN_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class MessageType(models.TextChoices):
    TEXT = "text"
    IMAGE = "image"
    VOICE = "voice"
    VIDEO = "video"
    FILE = "file"
    LOCATION = "location"
    STICKER = "sticker"
    # Made by the server, never sent by clients: the call log and red packets post these
    # through `messaging.services.message_post`, with their payload in `Message.content`.
    CALL = "call"
    RED_PACKET = "red_packet"


CLIENT_MESSAGE_TYPES = [t for t in MessageType if t not in (MessageType.CALL, MessageType.RED_PACKET)]
SERVER_MESSAGE_TYPES = [MessageType.CALL, MessageType.RED_PACKET]


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=9, choices=ConversationType.choices)
    title = models.CharField(max_length=128, blank=True, default="")
    # The group's picture, a path on this server (media.Avatar; set by admins), "" for none.
    avatar_url = models.CharField(max_length=500, blank=True, default="")
    # "<smaller user id>:<larger user id>" for direct conversations: the unique
    # constraint makes "exactly one per pair" hold under concurrent creation.
    direct_key = models.CharField(max_length=80, unique=True, null=True, blank=True)
    last_seq = models.BigIntegerField(default=0)
    # Set in the same UPDATE that allocates the seq; the FK is deferred, so it
    # may point at the message inserted right after in the same transaction.
    # No index and no database constraint: the send path rewrites this on every message, and an
    # indexed column would make each of those updates a non-HOT one (messages are never deleted).
    last_message = models.ForeignKey("Message", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+", db_index=False, db_constraint=False)
    member_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Last activity (message, title or membership change): the list is sorted by it.
    updated_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.type} {self.pk}"


class Membership(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=6, choices=Role.choices, default=Role.MEMBER)
    read_seq = models.BigIntegerField(default=0)
    delivered_seq = models.BigIntegerField(default=0)
    # When delivered_seq / read_seq last moved forward (NULL: never since they were
    # recorded). Only the pointers are kept, not one time per message, so for a message
    # at or below the pointer this is when it was delivered/read *at the latest*
    # (exact for the message that moved the pointer). GET /messages/{id}/receipts.
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    muted_until = models.DateTimeField(null=True, blank=True)
    joined_at = models.DateTimeField(auto_now_add=True)
    # Set when the user leaves or is removed; NULL means a current member.
    left_at = models.DateTimeField(null=True, blank=True)
    left_seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "user"], name="membership_conversation_user_uniq"),
        ]
        indexes = [
            models.Index(fields=["user"], condition=Q(left_at__isnull=True), name="membership_user_active_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.conversation_id} ({self.role})"


class Message(models.Model):
    # The hot table: the send path (messaging_send_batch) checks membership, senders and replies
    # itself under the conversation lock, so its foreign keys carry no database constraint (each
    # would cost a trigger per row at commit); users and conversations are never deleted.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages",
                                     db_index=False, db_constraint=False)
    seq = models.BigIntegerField()
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                               db_index=False, db_constraint=False)
    client_id = models.UUIDField()
    type = models.CharField(max_length=16, choices=MessageType.choices)
    text = models.TextField(blank=True, default="")
    # The payload of a server-made type, as it appears in the public Message:
    # {"call": {...}} or {"red_packet": {...}}. NULL for client messages.
    content = models.JSONField(null=True, blank=True)
    # No FK: the media app owns attachments and may land after this one.
    attachment_id = models.UUIDField(null=True, blank=True)
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 db_index=False, db_constraint=False)
    location = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    edited_at = models.DateTimeField(null=True, blank=True)
    # Recalled for everyone (or the sender's account was deleted).
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_conversation_seq_uniq"),
            models.UniqueConstraint(fields=["sender", "client_id"], name="message_sender_client_id_uniq"),
        ]
        indexes = [
            models.Index(fields=["attachment_id"], condition=Q(attachment_id__isnull=False),
                         name="message_attachment_idx"),
            models.Index(fields=["reply_to"], condition=Q(reply_to__isnull=False), name="message_reply_to_idx"),
        ]

    def __str__(self) -> str:
        return f"message {self.conversation_id}#{self.seq}"


class MessageHidden(models.Model):
    """A message one user does not see: deleted for them, or from someone they blocked."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                             db_index=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "message"], name="message_hidden_uniq")]

    def __str__(self) -> str:
        return f"{self.message_id} hidden for {self.user_id}"


class DeviceCursor(models.Model):
    """How far a device has stored its user's stream (its `ack`); only moves forward."""

    device = models.OneToOneField("accounts.Device", on_delete=models.CASCADE, primary_key=True,
                                  related_name="+")
    position = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.device_id} @ {self.position}"


class FanoutJob(models.Model):
    """A durable promise to append one event to every member of a big conversation.

    Written in the transaction of the change; the Celery task `messaging.fanout`
    appends in batches of members ordered by user id and advances
    `after_user_id` in the same transaction as each batch, so a rerun resumes
    and never appends twice.
    """

    id = models.BigAutoField(primary_key=True)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=48)
    data = models.JSONField()
    # Users who already got the event inline (the sender, for their other devices).
    exclude_user_ids = models.JSONField(default=list)
    # Recipients are members who joined at or before this moment.
    cutoff = models.DateTimeField()
    after_user_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Failures that were not outages; at MESSAGING_FANOUT_MAX_ATTEMPTS the job is a poison
    # input: failed_at is set, the sweep leaves it, the admin shows it (and can run it again).
    # Database defaults: messaging_send_batch (PL/pgSQL) inserts jobs without naming these.
    attempts = models.PositiveIntegerField(default=0, db_default=0)
    last_error = models.TextField(blank=True, default="", db_default="")
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"], condition=Q(finished_at__isnull=True),
                                name="fanoutjob_pending_idx")]

    def __str__(self) -> str:
        return f"fanout {self.event_type} in {self.conversation_id}"


class VoicePlayed(models.Model):
    """A voice note a recipient has played (`receipt.played`); one row per listener."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                             db_index=False)
    played_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "message"], name="voice_played_uniq")]

    def __str__(self) -> str:
        return f"{self.message_id} played by {self.user_id}"


class GroupInvitation(models.Model):
    """An invitation into a group or broadcast, made instead of adding a user whose
    `group_add` setting does not let the adder add them (`group.invited`, accepted with
    POST /conversations/{id}/join).

    One row per (conversation, invitee): a new invitation after the last one expired or was
    used refreshes it. An invitation to someone who blocked the inviter is stored too
    (`delivered` false) so that the inviter sees the same answer and spends the same daily
    allowance, but it never reaches the invitee and cannot be accepted.
    """

    id = models.BigAutoField(primary_key=True)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    invitee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                                db_index=False)
    inviter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                                db_index=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    delivered = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "invitee"], name="group_invitation_uniq"),
        ]
        indexes = [
            # The daily allowance: an inviter's recent invitations not yet accepted.
            models.Index(fields=["inviter", "created_at"], condition=Q(accepted_at__isnull=True),
                         name="group_invitation_inviter_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.invitee_id} invited to {self.conversation_id}"
