"""Celery tasks of red packets: thin, take ids, safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from core.durable import resilient_task
from redpackets import services


# The expired, unrefunded packet is the durable record: refund_due finds it every minute.
# An outage retries without end (core.durable.ResilientTask); other database errors (a
# serialization failure) a bounded number of times.
@resilient_task(
    name="redpackets.refund",
    acks_late=True,  # idempotent: a redelivered refund finds the packet settled and does nothing
    reject_on_worker_lost=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=10,
    soft_time_limit=50,
    time_limit=60,
)
def refund(packet_id: str) -> int | None:
    """Give an expired packet's remainder back to its sender (once)."""
    return services.packet_refund(packet_id=packet_id)


@shared_task(name="redpackets.refund_due", acks_late=True, soft_time_limit=50, time_limit=60)
def refund_due() -> int:
    """Beat: enqueue a refund for every expired, unsettled packet not already queued."""
    packet_ids = services.packets_refund_due()
    for packet_id in packet_ids:
        refund.delay(packet_id)
    return len(packet_ids)
