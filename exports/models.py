"""Data exports (a user's archive of everything) and the operator's sunset schedule."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class ExportStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"
    EXPIRED = "expired"


ACTIVE_STATUSES = (ExportStatus.PENDING, ExportStatus.RUNNING)


class Export(models.Model):
    """One requested archive. At most one pending or running per user (partial unique index)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=ExportStatus.choices, default=ExportStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent, 0-100.")
    size = models.BigIntegerField(null=True, blank=True)
    storage_name = models.CharField(max_length=255, blank=True, default="")
    error = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Touched while a worker builds; a stale heartbeat means that worker died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(status__in=["pending", "running"]),
                name="export_one_active_per_user",
            )
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="export_user_latest_idx"),
            models.Index(fields=["status", "expires_at"], name="export_status_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.status})"


class Sunset(models.Model):
    """The operator's shutdown schedule. The latest row rules; an older one is history."""

    announce_at = models.DateTimeField()
    read_only_at = models.DateTimeField()
    shutdown_at = models.DateTimeField()
    message = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Set once the announcement fan-out has been enqueued (the beat task's guard).
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(announce_at__lte=models.F("read_only_at")) & Q(read_only_at__lte=models.F("shutdown_at")),
                name="sunset_phases_in_order",
            )
        ]

    def __str__(self) -> str:
        return f"sunset at {self.shutdown_at:%Y-%m-%d %H:%M}"


class AnnouncementDelivery(models.Model):
    """Marks that a user got the announcement event and push, so a re-run skips them."""

    sunset = models.ForeignKey(Sunset, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    delivered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sunset", "user"], name="announcement_once_per_user")]

    def __str__(self) -> str:
        return f"announcement {self.sunset_id} to {self.user_id}"
