"""Abuse reports and suspensions.

A report names a message (and so its sender) or a user. Staff work through
open reports in the admin; a suspension is a row of its own (who, by whom, why,
when lifted) beside the flag on the user that the token checks read.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class ReportReason(models.TextChoices):
    SPAM = "spam"
    ABUSE = "abuse"
    OTHER = "other"


class ReportStatus(models.TextChoices):
    OPEN = "open"
    ACTIONED = "actioned"  # staff suspended the user or removed the message
    DISMISSED = "dismissed"


class Report(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reports_filed")
    reason = models.CharField(max_length=8, choices=ReportReason.choices)
    # A message report also names its sender in reported_user, so reports per user are one index away.
    message = models.ForeignKey("messaging.Message", on_delete=models.CASCADE, null=True, blank=True,
                                related_name="reports")
    reported_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                      related_name="reports_received")
    text = models.CharField(max_length=1000, blank=True, default="")
    status = models.CharField(max_length=10, choices=ReportStatus.choices, default=ReportStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="reports_handled")
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "-created_at"], name="report_queue_idx"),
            models.Index(fields=["reported_user", "-created_at"], name="report_target_idx"),
        ]
        constraints = [
            # One open report per reporter and target: a repeat returns the first.
            models.UniqueConstraint(fields=["reporter", "message"], condition=Q(status="open", message__isnull=False),
                                    name="report_one_open_per_message"),
            models.UniqueConstraint(fields=["reporter", "reported_user"],
                                    condition=Q(status="open", message__isnull=True),
                                    name="report_one_open_per_user"),
        ]

    def __str__(self) -> str:
        return f"report {self.pk} ({self.reason}, {self.status})"


class Suspension(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="suspensions")
    reason = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=Q(lifted_at__isnull=True),
                                    name="suspension_one_active_per_user"),
        ]

    def __str__(self) -> str:
        return f"suspension of {self.user_id}"
