from __future__ import annotations

from django.db import models
from django.db.models import Q

from accounts.models import Device


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"        # waiting for its (collapse window's) delivery task
    SENDING = "sending"        # claimed by a task that is talking to the provider
    SENT = "sent"
    COLLAPSED = "collapsed"    # carried by a later push to the same device and conversation
    SKIPPED = "skipped"        # the device came online, lost its token, or was revoked
    TOKEN_GONE = "token_gone"  # noqa: S105 - the provider said the token is dead; it was removed
    FAILED = "failed"          # permanent provider error, or retries exhausted


OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


class PushDelivery(models.Model):
    """One push for one device. The unique (dedupe_key, device) pair makes every retry,
    redelivery or re-run of the fan-out land on the same row, so a push is sent once."""

    dedupe_key = models.CharField(max_length=200)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32)
    conversation_id = models.CharField(max_length=64, blank=True, default="")
    message_id = models.CharField(max_length=64, blank=True, default="")
    # The alert text is kept only while the push is open, then erased (see push_deliver).
    title = models.CharField(max_length=256, blank=True, default="")
    body = models.TextField(blank=True, default="")
    muted = models.BooleanField(default=False)
    collapse_key = models.CharField(max_length=200, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    # Events this push stands for: 1, or more once later ones in its window collapsed into it.
    count = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The Celery task id that holds a SENDING row, so a redelivery of that same task resumes it.
    claim = models.CharField(max_length=64, blank=True, default="")
    claimed_at = models.DateTimeField(null=True, blank=True)
    # A retry's countdown: the sweep leaves the row alone until then.
    not_before = models.DateTimeField(null=True, blank=True)
    collapsed_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_error = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key", "device"], name="push_delivery_once_per_device"),
        ]
        indexes = [
            models.Index(
                fields=["device", "conversation_id", "kind"],
                condition=Q(status__in=["pending", "sending"]),
                name="push_delivery_open_idx",
            ),
            models.Index(fields=["status", "updated_at"], name="push_delivery_status_idx"),
            models.Index(fields=["claim"], condition=Q(status="sending"), name="push_delivery_claim_idx"),
        ]

    def __str__(self) -> str:
        return f"push {self.pk} {self.kind} {self.status}"
