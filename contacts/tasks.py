"""Celery tasks: thin callers of contacts.services, ids as arguments, safe to rerun."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from contacts import services
from core.durable import durable_task, resilient_task

ROTATION_LOCK = "contacts:rotate-pepper"


@durable_task(name="contacts.announce_joined", soft_time_limit=600, time_limit=660, lease_seconds=720)
def announce_joined(user_id: str) -> None:
    """From the outbox row written at signup (or a sync): link stored books to the new user and
    send contact.joined. Commits in batches; idempotent per owner (JoinedNotified is unique)."""
    services.contact_joined_notify(user_id=user_id)


@resilient_task(name="contacts.notify_contact_joined", autoretry_for=(Exception,),
                retry_backoff=True, retry_backoff_max=300, retry_jitter=True, max_retries=5,
                soft_time_limit=600, time_limit=660)
def notify_contact_joined(user_id: str) -> int:
    """The same by user id (messages queued before the outbox, direct calls)."""
    return services.contact_joined_notify(user_id=user_id)


@shared_task(name="contacts.rotate_pepper", acks_late=True, autoretry_for=(Exception,),
             retry_backoff=True, retry_backoff_max=600, retry_jitter=True, max_retries=3,
             soft_time_limit=3300, time_limit=3600)
def rotate_pepper(force: bool = False) -> str | None:
    """Beat: rotate the discovery pepper when due (resumes an interrupted build), drop expired indexes."""
    # One rotation at a time across workers; the lock outlives the hard time limit.
    if not cache.add(ROTATION_LOCK, "1", timeout=3700):
        return None
    try:
        pepper = services.pepper_rotate(force=force)
    finally:
        cache.delete(ROTATION_LOCK)
    return pepper.pk if pepper is not None else None
