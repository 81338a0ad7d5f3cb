"""Red packets: a packet, its shares (drawn when it is sent), and its refund.

A packet's shares are drawn at send time and stored, one row each; a claim
takes one unclaimed share row with `SELECT ... FOR UPDATE SKIP LOCKED`, so
concurrent claimers each lock a different share and nobody waits on a
packet-wide lock. A share is in exactly one state: open, claimed (by one user,
unique per packet: nobody claims twice) or refunded; the row lock makes a
claim and a refund of the same share exclude each other.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class PacketMode(models.TextChoices):
    RANDOM = "random"
    FIXED = "fixed"


OPEN, EMPTY, EXPIRED = "open", "empty", "expired"
PACKET_STATUSES = [(OPEN, "open"), (EMPTY, "empty"), (EXPIRED, "expired")]


class Packet(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # PROTECT: money hangs off it.
    conversation = models.ForeignKey("messaging.Conversation", on_delete=models.PROTECT, related_name="+")
    client_id = models.UUIDField()
    mode = models.CharField(max_length=6, choices=PacketMode.choices)
    total = models.PositiveIntegerField()
    count = models.PositiveSmallIntegerField()
    greeting = models.CharField(max_length=200, blank=True, default="")
    currency = models.CharField(max_length=3)
    # The `red_packet` chat message that carries it is the sender's message with the same
    # client_id, posted in the same transaction.
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # When what was left went back to the sender (or nothing was left): the packet is done.
    settled_at = models.DateTimeField(null=True, blank=True)
    # When the sweep last enqueued its refund task (a lease: re-enqueued if it never finished).
    refund_enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sender", "client_id"], name="packet_sender_client_id_uniq"),
            models.CheckConstraint(condition=Q(count__gte=1) & Q(total__gte=models.F("count")),
                                   name="packet_a_cent_per_share"),
        ]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(settled_at__isnull=True), name="packet_unsettled_idx"),
            models.Index(fields=["sender", "-created_at"], name="packet_sender_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"red packet {self.pk}"


class Share(models.Model):
    id = models.BigAutoField(primary_key=True)
    packet = models.ForeignKey(Packet, on_delete=models.PROTECT, related_name="shares")
    # Draw order: claimers take the open share with the lowest index.
    index = models.PositiveSmallIntegerField()
    amount = models.PositiveIntegerField()
    claimed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    claimed_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["packet", "index"], name="share_packet_index_uniq"),
            # Nobody claims twice, even from two devices at once: the second insert of the pair
            # waits for the first transaction and fails if it committed.
            models.UniqueConstraint(fields=["packet", "claimed_by"], name="share_one_claim_per_user"),
            models.CheckConstraint(condition=Q(amount__gte=1), name="share_at_least_a_cent"),
            models.CheckConstraint(condition=Q(claimed_by__isnull=True) | Q(refunded_at__isnull=True),
                                   name="share_claimed_or_refunded"),
        ]
        indexes = [
            models.Index(fields=["packet", "index"], condition=Q(claimed_by__isnull=True, refunded_at__isnull=True),
                         name="share_open_idx"),
            models.Index(fields=["claimed_by", "-claimed_at"], condition=Q(claimed_by__isnull=False),
                         name="share_claimed_by_idx"),
        ]

    def __str__(self) -> str:
        return f"share {self.index} of {self.packet_id}"


class Refund(models.Model):
    """What went back to the sender at expiry: at most one per packet."""

    id = models.BigAutoField(primary_key=True)
    packet = models.OneToOneField(Packet, on_delete=models.PROTECT, related_name="refund")
    amount = models.PositiveIntegerField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"refund of {self.packet_id}"
