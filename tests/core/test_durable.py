"""core.durable's outbox: a row per promised piece of work, run once, poison inputs surfaced.

The outage behaviour (retries that never give up on an outage, the sweep after a broker
outage) runs against real processes in tests/reliability/test_background_outage.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from config.celery import app
from core.durable import outbox_enqueue, outbox_retry, outbox_sweep
from core.models import OutboxState, OutboxTask

pytestmark = pytest.mark.django_db


def run(outbox_id: int, task: str = "contacts.announce_joined") -> str:
    app.loader.import_default_modules()
    return app.tasks[task].apply(args=[outbox_id]).get()


def test_an_outbox_row_runs_on_commit_once_and_a_second_run_is_skipped(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        outbox_enqueue("media.thumbnail", key="media.thumbnail:gone",
                       kwargs={"attachment_id": "00000000-0000-4000-8000-000000000000"})
    row = OutboxTask.objects.get(key="media.thumbnail:gone")
    assert (row.state, row.attempts, row.done_at is not None) == (OutboxState.DONE, 0, True)
    assert run(row.pk, "media.thumbnail") == "skipped"


def test_nothing_is_promised_when_the_cause_rolls_back(django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        outbox_enqueue("media.thumbnail", key="media.thumbnail:rolled-back", kwargs={"attachment_id": "x"})
        raise RuntimeError("the cause failed")
    assert not OutboxTask.objects.exists()


def test_a_poison_input_is_recorded_then_marked_failed_and_shown_in_the_admin(django_capture_on_commit_callbacks,
                                                                                client):
    with django_capture_on_commit_callbacks(execute=True):
        outbox_enqueue("contacts.announce_joined", key="contacts.joined:poison", kwargs={"user_id": "not-a-uuid"})
    row = OutboxTask.objects.get(key="contacts.joined:poison")
    assert (row.state, row.attempts) == (OutboxState.PENDING, 1)
    assert "ValidationError" in row.last_error
    for _ in range(3):
        assert run(row.pk) == "retry later"
    assert run(row.pk) == "failed"
    row.refresh_from_db()
    assert (row.state, row.attempts) == (OutboxState.FAILED, 5)
    assert run(row.pk) == "skipped"  # not retried forever

    OutboxTask.objects.filter(pk=row.pk).update(run_after=timezone.now() - timedelta(hours=1))
    assert outbox_sweep()["sent"] == 0  # the sweep leaves failed rows alone

    staff = User.objects.create_superuser(phone="+447911000998", password="pw-for-tests")
    client.force_login(staff)
    page = client.get("/admin/core/outboxtask/?state__exact=failed").content.decode()
    assert "contacts.joined:poison" in page and "ValidationError" in page


def test_run_again_puts_a_failed_row_back_and_it_runs(django_capture_on_commit_callbacks):
    row = OutboxTask.objects.create(task="media.thumbnail", key="media.thumbnail:fixed", state=OutboxState.FAILED,
                                    attempts=5, kwargs={"attachment_id": "00000000-0000-4000-8000-000000000001"})
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_retry(ids=[row.pk]) == 1
    row.refresh_from_db()
    assert (row.state, row.attempts) == (OutboxState.DONE, 0)


def test_the_sweep_sends_pending_rows_whose_task_was_lost_and_they_run_once():
    lost = OutboxTask.objects.create(task="media.thumbnail", key="media.thumbnail:lost",
                                     kwargs={"attachment_id": "00000000-0000-4000-8000-000000000002"},
                                     run_after=timezone.now() - timedelta(seconds=1))
    claimed = OutboxTask.objects.create(task="media.thumbnail", key="media.thumbnail:claimed",
                                        kwargs={"attachment_id": "00000000-0000-4000-8000-000000000003"},
                                        run_after=timezone.now() - timedelta(seconds=1), claimed_by="another-worker",
                                        claimed_until=timezone.now() + timedelta(minutes=5))
    assert outbox_sweep()["sent"] == 1
    lost.refresh_from_db()
    claimed.refresh_from_db()
    assert lost.state == OutboxState.DONE
    assert claimed.state == OutboxState.PENDING  # a live claim is left to its worker


def test_enqueueing_the_same_key_again_after_it_ran_asks_for_another_run(django_capture_on_commit_callbacks):
    kwargs = {"attachment_id": "00000000-0000-4000-8000-000000000004"}
    with django_capture_on_commit_callbacks(execute=False):
        outbox_enqueue("media.thumbnail", key="media.thumbnail:again", kwargs=kwargs)
        outbox_enqueue("media.thumbnail", key="media.thumbnail:again", kwargs=kwargs)
    assert OutboxTask.objects.filter(key="media.thumbnail:again").count() == 1
    OutboxTask.objects.filter(key="media.thumbnail:again").update(state=OutboxState.DONE)
    outbox_enqueue("media.thumbnail", key="media.thumbnail:again", kwargs=kwargs)
    assert OutboxTask.objects.get(key="media.thumbnail:again").state == OutboxState.PENDING
