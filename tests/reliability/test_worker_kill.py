"""A Celery worker SIGKILLed mid-task: the work is done, once, when a worker is back.

Push has its own test (tests/notifications/test_tasks.py). Here: the fan-out of a
big group's message (`messaging.fanout`) and the `contact.joined` announcement
(`contacts.notify_contact_joined`). Both run in batches; the test holds a row lock
on one recipient's stream counter, so the worker is provably stuck inside a later
batch after committing earlier ones, kills it (SIGKILL, whole process group),
releases the lock and starts a new worker. The broker redelivers the unacknowledged
task (acks_late, CELERY_VISIBILITY_TIMEOUT=2 s) and the rerun finishes the job
without appending anything twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import transaction

from contacts.models import JoinedNotified
from contacts.services import contacts_user_registered, pepper_ensure_current
from messaging import services as messaging_services
from messaging.models import FanoutJob
from streams.models import Event, UserStream
from tests.contacts.conftest import discovery_of, sync
from tests.factories import next_phone, sign_in
from tests.processes import Worker, celery_worker, current_database_url, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

VISIBILITY = 2


@pytest.fixture
def broker():
    from config.celery import app

    app.conf.task_always_eager = False
    assert settings.REDIS_URL, "real-worker tests need REDIS_URL"
    return app


def worker_env(**extra: str) -> dict[str, str]:
    return {"DATABASE_URL": current_database_url(), "REDIS_URL": settings.REDIS_URL, "PUSH_BACKEND": "log",
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY), "LOG_LEVEL": "WARNING", **extra}


@contextmanager
def stream_locked(user_id: object) -> Iterator[None]:
    """Hold the row lock of a user's stream counter from another connection: any append to
    that user's stream waits until the block ends."""
    UserStream.objects.get_or_create(user_id=user_id)
    with psycopg.connect(current_database_url(), autocommit=False) as conn:
        conn.execute("SELECT 1 FROM streams_userstream WHERE user_id = %s FOR UPDATE", [str(user_id)])
        yield
        conn.rollback()


def killed_mid_task_then_rerun(env: dict[str, str], tmp_path: Path, *, locked_user: object, start, started,
                               done) -> None:
    first = Worker(env, log_path=tmp_path / "worker-1.log")
    try:
        with stream_locked(locked_user):
            start()
            wait_for(started, timeout=30, message="the first worker to commit a batch and block on the next")
            time.sleep(0.3)
            first.kill()
    finally:
        first.stop()
    assert not done(), "the job finished although its worker was killed"
    time.sleep(VISIBILITY + 0.5)  # older than the visibility timeout: redelivered to the next worker
    with celery_worker(env, log_path=tmp_path / "worker-2.log") as second:
        wait_for(done, timeout=30, message=f"the rerun to finish; log: {second.output()[-1500:]}")
        time.sleep(0.5)


def test_fanout_finishes_once_after_its_worker_is_killed_mid_batch(broker, tmp_path, settings):
    owner = sign_in(display_name="Owner")
    members = [sign_in() for _ in range(14)]
    group, _ = messaging_services.conversation_create(creator=owner.user, type="group", title="big",
                                                      member_ids=[m.user.pk for m in members])
    settings.MESSAGING_INLINE_FANOUT_MAX = 3  # the send below goes through the fan-out task
    env = worker_env(MESSAGING_INLINE_FANOUT_MAX="3", MESSAGING_FANOUT_BATCH="4")
    ordered = sorted(str(m.user.pk) for m in members)
    message = {}

    def send() -> None:
        with transaction.atomic():
            message["m"], _ = messaging_services.message_send(
                sender=owner.user, conversation_id=group["id"],
                payload={"client_id": str(uuid.uuid4()), "type": "text", "text": "to many"})

    def delivered() -> int:
        return Event.objects.filter(type="message.new", ref_id=message.get("m", {}).get("id")).count()

    killed_mid_task_then_rerun(
        env, tmp_path, locked_user=ordered[9], start=send,
        started=lambda: delivered() >= 1 + 4,  # the sender's own event + a first batch
        done=lambda: FanoutJob.objects.filter(finished_at__isnull=False).exists() and delivered() >= 15)

    for person in [owner, *members]:
        mine = Event.objects.filter(user_id=person.user.pk, type="message.new", ref_id=message["m"]["id"])
        assert mine.count() == 1, (person.user.pk, mine.count())


def test_contact_joined_is_announced_once_after_its_worker_is_killed_mid_batch(broker, tmp_path, settings):
    pepper_ensure_current()
    phone = next_phone()
    owners = [sign_in() for _ in range(10)]
    for owner in owners:
        assert sync(owner.client, discovery_of(owner.client), [phone]).status_code == 200
    env = worker_env(CONTACTS_JOINED_BATCH="3")
    ordered = sorted(str(o.user.pk) for o in owners)
    joined = {}

    def sign_up() -> None:
        joined["user"] = sign_in(phone=phone, display_name="Newcomer")
        contacts_user_registered(user_id=joined["user"].user.pk)  # enqueues notify_contact_joined on commit

    def announced() -> int:
        return Event.objects.filter(type="contact.joined").count()

    killed_mid_task_then_rerun(env, tmp_path, locked_user=ordered[7], start=sign_up,
                               started=lambda: announced() >= 3, done=lambda: announced() >= 10)

    for owner in owners:
        assert Event.objects.filter(user_id=owner.user.pk, type="contact.joined").count() == 1
    assert JoinedNotified.objects.count() == 10
