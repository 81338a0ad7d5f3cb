"""Durable background work: one row per piece of work a user expects (see core.durable)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class OutboxState(models.TextChoices):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # a poison input: failed `max_attempts` times for a reason other than an outage


class OutboxTask(models.Model):
    """A promise to run the Celery task `task` with `kwargs` once, written in the
    transaction of its cause. The beat sweep re-sends pending rows whose task was
    lost (never enqueued, retries exhausted, worker gone), so the work survives
    database and broker outages; the claim and the `done` state make it run once.
    """

    id = models.BigAutoField(primary_key=True)
    task = models.CharField(max_length=200)
    # Idempotency key of the work (e.g. "contacts.joined:<user id>"): enqueueing it
    # again while pending is a no-op; once done, it asks for another run.
    key = models.CharField(max_length=200, unique=True)
    kwargs = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=OutboxState.choices, default=OutboxState.PENDING)
    # Failures that were not outages (database or broker unavailable do not count).
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # The sweep re-sends a pending row once this has passed (and no live claim holds it).
    run_after = models.DateTimeField(default=timezone.now)
    claimed_by = models.CharField(max_length=255, blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["run_after"], condition=Q(state="pending"), name="outbox_pending_idx"),
            models.Index(fields=["state", "updated_at"], name="outbox_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.key} ({self.state})"
