import time

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache

from core.workers import HEARTBEAT_KEY, heartbeat_beat
from tests.processes import celery_worker, current_database_url, wait_for


@pytest.fixture
def real_broker():
    """Tasks go to the broker (not eagerly), so /healthz looks for workers."""
    from config.celery import app

    app.conf.task_always_eager = False  # the autouse fixture restores it
    return app


@pytest.mark.django_db
def test_healthz_reports_every_check_ok(api):
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "channel_layer": "ok", "broker": "ok", "workers": "ok"},
    }


@pytest.mark.django_db
def test_healthz_is_degraded_but_200_when_no_worker_has_a_heartbeat(api, real_broker):
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "channel_layer": "ok", "broker": "ok", "workers": "degraded"},
    }


@pytest.mark.django_db
def test_healthz_workers_ok_after_a_recent_heartbeat_and_degraded_once_it_is_stale(api, real_broker, settings):
    heartbeat_beat()
    assert api.get("/healthz").json()["checks"]["workers"] == "ok"
    cache.set(HEARTBEAT_KEY, time.time() - settings.WORKER_HEARTBEAT_STALE_SECONDS - 1)
    response = api.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "degraded"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_live_worker_keeps_the_workers_check_ok_and_a_stopped_one_turns_it_degraded(api, real_broker, settings,
                                                                                      tmp_path):
    settings.WORKER_HEARTBEAT_STALE_SECONDS = 4
    env = {"DATABASE_URL": current_database_url(), "REDIS_URL": django_settings.REDIS_URL,
           "WORKER_HEARTBEAT_SECONDS": "1", "LOG_LEVEL": "WARNING"}
    with celery_worker(env, log_path=tmp_path / "worker.log") as worker:
        wait_for(lambda: api.get("/healthz").json()["checks"]["workers"] == "ok", timeout=60, interval=0.5,
                 message=f"the worker's heartbeat; log: {worker.output()[-1500:]}")
    response = wait_for(lambda: (r := api.get("/healthz")).json()["status"] == "degraded" and r, timeout=15,
                        interval=0.5, message="workers degraded after the worker stopped")
    assert response.status_code == 200 and response.json()["checks"]["workers"] == "degraded"
