"""Celery queues by kind: the routes, and a worker per queue (a real worker, JSON logs, shared metrics)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import redis
from django.conf import settings
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from config.celery import app
from core.logging import request_id_var
from tests.processes import ROOT, current_database_url, wait_for

EXPECTED = {
    "notifications.push_fanout": "push", "notifications.push_deliver": "push", "notifications.push_sweep": "push",
    "messaging.fanout": "fanout", "messaging.fanout_sweep": "fanout", "messaging.receipt_counts": "fanout",
    "contacts.notify_contact_joined": "fanout",
    "exports.announce_batch": "fanout", "contacts.announce_joined": "fanout",
    "notifications.push_fanout_outbox": "push",
    "media.thumbnail": "media", "media.waveform": "media", "media.transcode": "media",
    "core.outbox_sweep": "default",
    "media.make_thumbnail": "media", "media.delete_unreferenced": "media", "media.make_waveform": "media",
    "media.transcode_video": "media", "media.finish_upload": "media", "media.resumable_sweep": "media",
    "exports.build": "exports", "exports.expire": "exports", "exports.recover": "exports",
    "exports.announce_due": "exports",
    "accounts.send_otp_sms": "default", "contacts.rotate_pepper": "default",
    "calls.ring_timeout": "default", "calls.drop_check": "default", "calls.sweep": "default",
    "payments.reconcile_topups": "default", "redpackets.refund": "default", "redpackets.refund_due": "default",
}


def test_every_task_is_routed_to_the_queue_of_its_kind():
    app.loader.import_default_modules()
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    assert ours == set(EXPECTED), "a new task needs a line in EXPECTED (and maybe a route)"
    for name, queue in EXPECTED.items():
        assert app.amqp.router.route({}, name)["queue"].name == queue, name
    assert set(settings.CELERY_QUEUE_NAMES) == {"default", "push", "fanout", "media", "exports"}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_for_one_queue_takes_only_that_queue_and_logs_json_with_the_request_id():
    if not settings.REDIS_URL:
        pytest.fail("needs REDIS_URL")
    from media.tasks import delete_unreferenced
    from notifications.tasks import push_sweep

    app.conf.task_always_eager = False
    broker = redis.Redis.from_url(settings.REDIS_URL)
    token = request_id_var.set("req-for-the-worker")
    try:
        delete_unreferenced.delay()
        push_sweep.delay()
    finally:
        request_id_var.reset(token)
    assert (broker.llen("media"), broker.llen("push")) == (1, 1)
    metrics_dir = tempfile.mkdtemp(prefix="metrics-")
    log = Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1])
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
           "DATABASE_URL": current_database_url(), "REDIS_URL": settings.REDIS_URL, "SECRET_KEY": settings.SECRET_KEY,
           "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "media",
                               "--loglevel", "INFO", "--pool", "solo", "--without-heartbeat", "--without-mingle",
                               "--without-gossip"],
                              cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_for(lambda: '"event": "task"' in log.read_text(errors="replace"), timeout=60, message="the task ran")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)
    assert broker.llen("media") == 0 and broker.llen("push") == 1  # the push task waits for a push worker
    broker.delete("push")
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    [task] = [line for line in lines if line.get("event") == "task"]
    assert (task["task"], task["state"], task["queue"], task["request_id"]) == (
        "media.delete_unreferenced", "success", "media", "req-for-the-worker")
    assert task["wait_ms"] >= 0 and task["duration_ms"] >= 0
    # The worker's metrics are in the host's shared directory, for any web process to expose.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)
    assert registry.get_sample_value("messenger_celery_task_seconds_count",
                                     {"task": "media.delete_unreferenced", "phase": "wait"}) == 1
    assert registry.get_sample_value("messenger_celery_tasks_total",
                                     {"task": "media.delete_unreferenced", "state": "success"}) == 1
