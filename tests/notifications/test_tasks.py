"""End to end with a real Celery worker process and real Redis: enqueue on commit, collapse, survive a kill."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from accounts.services import device_push_set
from notifications.models import DeliveryStatus, PushDelivery
from notifications.services import push_notify
from tests.factories import sign_in
from tests.notifications.conftest import read_lines
from tests.processes import Worker, celery_worker, current_database_url, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker():
    """Tasks go to Redis for a worker process to run, not eagerly in this one."""
    from config.celery import app

    app.conf.task_always_eager = False
    assert settings.REDIS_URL, "real-worker tests need REDIS_URL"
    return app


def worker_env(push_path: Path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": current_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PUSH_BACKEND": "file",
        "PUSH_FILE_PATH": str(push_path),
        "PUSH_BADGE_COUNTER": "",
        **extra,
    }


def offline_phone():
    person = sign_in(display_name="Bob")
    device_push_set(device=person.device, provider="fcm", token="fcm-token-e2e")
    return person


def send_message(user, *, text: str, conversation_id: str = "c-1") -> str:
    """What messaging does: the push is requested inside the message's transaction."""
    message_id = str(uuid.uuid4())
    with transaction.atomic():
        push_notify(user_id=user.pk, kind="message.new", title="Alice", body=text,
                    conversation_id=conversation_id, message_id=message_id)
    return message_id


def test_message_to_an_offline_device_reaches_the_file_backend_through_the_worker(broker, tmp_path):
    bob = offline_phone()
    push_path = tmp_path / "push.jsonl"
    with celery_worker(worker_env(push_path, PUSH_COLLAPSE_SECONDS="1"), log_path=tmp_path / "worker.log") as worker:
        message_id = send_message(bob.user, text="Are you there?")
        lines = wait_for(lambda: read_lines(push_path), timeout=30, message="a push line")
        assert worker.process.poll() is None, worker.output()

    [line] = lines
    assert (line["device_id"], line["token"], line["message_id"]) == (str(bob.device.pk), "fcm-token-e2e", message_id)
    assert (line["title"], line["body"], line["kind"]) == ("Alice", "Are you there?", "message.new")
    assert PushDelivery.objects.get().status == DeliveryStatus.SENT


def test_burst_of_messages_collapses_into_one_notification(broker, tmp_path):
    bob = offline_phone()
    push_path = tmp_path / "push.jsonl"
    # Queued before the worker starts, so a slow machine cannot stretch the burst past the window.
    ids = [send_message(bob.user, text=f"message {n}") for n in range(3)]
    send_message(bob.user, text="elsewhere", conversation_id="c-2")
    with celery_worker(worker_env(push_path, PUSH_COLLAPSE_SECONDS="2"), log_path=tmp_path / "worker.log"):
        wait_for(lambda: len(read_lines(push_path)) >= 2, timeout=30, message="two push lines")
        time.sleep(2.5)  # a third notification would have come by now

    lines = {line["conversation_id"]: line for line in read_lines(push_path)}
    assert len(read_lines(push_path)) == 2
    assert (lines["c-1"]["message_id"], lines["c-1"]["body"], lines["c-1"]["count"]) == (ids[-1], "message 2", 3)
    assert lines["c-2"]["count"] == 1


def test_push_survives_a_worker_killed_mid_send_and_is_sent_once(broker, tmp_path):
    """The first worker is SIGKILLed while it is inside the provider call; the push is
    redelivered (acks_late) to a new worker and appears exactly once."""
    bob = offline_phone()
    push_path = tmp_path / "push.jsonl"
    # A FIFO with no reader blocks the file backend's open(): the worker is provably mid-send.
    os.mkfifo(push_path)
    visibility = 2
    env = worker_env(push_path, PUSH_COLLAPSE_SECONDS="0")
    first = Worker(env, log_path=tmp_path / "worker-1.log")
    try:
        send_message(bob.user, text="Still there?")
        wait_for(lambda: PushDelivery.objects.filter(status=DeliveryStatus.SENDING).exists(), timeout=30,
                 message="the first worker to claim the push")
        first.kill()
    finally:
        first.stop()
    assert read_lines_or_none(push_path) is None  # nothing was written
    # The push service "recovers": the next open() gets a plain file.
    push_path.unlink()
    # The broker hands an unacknowledged task to another worker once it is older than the
    # visibility timeout; the new worker sweeps for such tasks when it starts.
    time.sleep(visibility + 0.5)
    with celery_worker({**env, "CELERY_VISIBILITY_TIMEOUT": str(visibility)}, log_path=tmp_path / "worker-2.log"):
        wait_for(lambda: read_lines(push_path), timeout=30, message="the redelivered push")
        time.sleep(1.0)

    assert len(read_lines(push_path)) == 1
    delivery = PushDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)


def read_lines_or_none(path: Path):
    return read_lines(path) if path.is_file() else None


def test_transient_provider_error_is_retried_by_the_worker_with_backoff(broker, tmp_path, fcm_settings):
    """A 503 then a 429 from the (local) FCM server, then success: one push, three attempts."""
    from tests.notifications.servers import Reply

    send_path = "/v1/projects/demo-project/messages:send"
    fcm_settings.script(
        send_path,
        Reply(503, {"error": {"code": 503, "status": "UNAVAILABLE"}}),
        Reply(429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}, headers={"Retry-After": "1"}),
        Reply(200, {"name": "projects/demo-project/messages/1"}),
    )
    bob = offline_phone()
    env = worker_env(tmp_path / "unused.jsonl", PUSH_BACKEND="real", PUSH_PROVIDERS="fcm", PUSH_COLLAPSE_SECONDS="0",
                     PUSH_FCM_CREDENTIALS_JSON=settings.PUSH_FCM_CREDENTIALS_JSON,
                     PUSH_FCM_ENDPOINT=settings.PUSH_FCM_ENDPOINT, PUSH_RETRY_BASE_SECONDS="1")
    with celery_worker(env, log_path=tmp_path / "worker.log") as worker:
        send_message(bob.user, text="retry me")
        wait_for(lambda: PushDelivery.objects.filter(status=DeliveryStatus.SENT).exists(), timeout=40,
                 message=f"the push to be sent after retries\n{worker.output()[-2000:]}")

    sends = fcm_settings.requests_to(send_path)
    assert len(sends) == 3
    assert {request.json()["message"]["token"] for request in sends} == {"fcm-token-e2e"}
    delivery = PushDelivery.objects.get()
    assert delivery.attempts == 3
