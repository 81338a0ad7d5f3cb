"""Calls: one row per call (its state machine) and one per rung or joined person.

The server signals, rings and keeps the log; media flows between the peers
(WebRTC), never through here. A call moves `ringing -> active -> ended` or
`ringing -> ended`; `calls.services` owns every transition, each one
transaction that locks the call row and changes it with a conditional UPDATE.

The devices "engaged" in a call are the caller's offering device and the
device each callee answered on (`CallParticipant.device` of joined rows):
only they exchange `call.answer`, `call.ice` and `call.update`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Media(models.TextChoices):
    AUDIO = "audio"
    VIDEO = "video"
    SCREEN = "screen"


class CallState(models.TextChoices):
    RINGING = "ringing"
    ACTIVE = "active"
    ENDED = "ended"


class EndReason(models.TextChoices):
    """Why a call ended, as `call.ended` says it."""

    HANGUP = "hangup"
    REJECTED = "rejected"
    MISSED = "missed"
    BUSY = "busy"
    FAILED = "failed"


class Outcome(models.TextChoices):
    """What the call log message says."""

    COMPLETED = "completed"
    MISSED = "missed"
    REJECTED = "rejected"
    BUSY = "busy"
    FAILED = "failed"


class Call(models.Model):
    # The caller's own `call_id`: a retried offer finds the same row.
    id = models.UUIDField(primary_key=True)
    conversation = models.ForeignKey("messaging.Conversation", on_delete=models.CASCADE, related_name="+")
    caller = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    caller_device = models.ForeignKey("accounts.Device", null=True, on_delete=models.SET_NULL, related_name="+")
    is_group = models.BooleanField(default=False)
    media = models.CharField(max_length=6, choices=Media.choices)
    # Switched mid-call by call.update.
    current_media = models.CharField(max_length=6, choices=Media.choices)
    # Remote assistance: asked for in the offer, granted (or not) in the answer, revocable.
    remote_control = models.BooleanField(default=False)
    control_granted = models.BooleanField(default=False)
    state = models.CharField(max_length=7, choices=CallState.choices, default=CallState.RINGING)
    end_reason = models.CharField(max_length=8, choices=EndReason.choices, blank=True, default="")
    outcome = models.CharField(max_length=9, choices=Outcome.choices, blank=True, default="")
    # The device whose answer took the caller's ringing offer: the caller's peer in a direct
    # call, and where ICE candidates held while ringing go.
    first_device = models.ForeignKey("accounts.Device", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created_at = models.DateTimeField()
    ring_expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The beat sweep: calls not yet ended, oldest ring first.
            models.Index(fields=["ring_expires_at"], condition=~Q(state="ended"), name="call_open_idx"),
            models.Index(fields=["conversation", "-created_at"], name="call_conversation_idx"),
        ]

    def __str__(self) -> str:
        return f"call {self.pk} ({self.state})"


class ParticipantRole(models.TextChoices):
    CALLER = "caller"
    CALLEE = "callee"


class ParticipantState(models.TextChoices):
    RINGING = "ringing"
    JOINED = "joined"
    LEFT = "left"
    DECLINED = "declined"
    MISSED = "missed"
    BUSY = "busy"


class CallParticipant(models.Model):
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=6, choices=ParticipantRole.choices)
    state = models.CharField(max_length=8, choices=ParticipantState.choices)
    # A callee who blocked the caller is "rung" silently: nothing reaches them, and the
    # caller sees an unanswered call, as with any callee who does not pick up.
    silenced = models.BooleanField(default=False)
    # The engaged device once joined (the caller's offering device for the caller).
    device = models.ForeignKey("accounts.Device", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    joined_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)
    # Set when the engaged device's last socket closed in an active call; cleared when it
    # reconnects. Past CALLS_RECONNECT_GRACE_SECONDS the call fails (or, in a group, the
    # device leaves).
    dropped_at = models.DateTimeField(null=True, blank=True)
    # The call's created_at, copied so a user's log pages on one index.
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["call", "user"], name="call_participant_uniq")]
        indexes = [
            models.Index(fields=["user", "-created_at", "-call"], name="call_participant_log_idx"),
            # Busy check: is this user joined in a call right now?
            models.Index(fields=["user"], condition=Q(state="joined"), name="call_participant_joined_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.call_id} ({self.state})"


class HeldCandidate(models.Model):
    """An ICE candidate the caller's device sent while the call was still ringing, held
    for the device that will answer (bounded by CALLS_ICE_HELD_MAX per call)."""

    id = models.BigAutoField(primary_key=True)
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey("accounts.Device", on_delete=models.CASCADE, related_name="+")
    # NULL is the end of candidates (a null `candidate` in the frame).
    candidate = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["call", "id"], name="held_candidate_call_idx")]

    def __str__(self) -> str:
        return f"candidate for {self.call_id}"
