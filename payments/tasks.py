"""Celery tasks of payments: thin callers of the services, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from payments import services


@shared_task(name="payments.reconcile_topups", acks_late=True, soft_time_limit=240, time_limit=300)
def reconcile_topups() -> int:
    """Beat: ask the provider about top-ups still pending (lost webhooks, creates that timed out)."""
    return services.topups_reconcile()
