"""Celery tasks of core: the outbox sweep (see core.durable)."""

from __future__ import annotations

from celery import shared_task

from core import durable


@shared_task(name="core.outbox_sweep", time_limit=120, soft_time_limit=100)
def outbox_sweep() -> dict[str, int]:
    """Beat: re-send outbox rows whose task was lost; forget old done rows."""
    return durable.outbox_sweep()
