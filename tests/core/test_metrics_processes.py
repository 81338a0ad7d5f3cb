"""Multiprocess metrics: any web process of a host exposes the sum of all its processes, and a
killed process's live sockets stop counting."""

from __future__ import annotations

import tempfile

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from tests.processes import wait_for
from tests.reliability.services import AsgiServer, PrivatePostgres, django_env, manage, sign_in_over_http

TOKEN = "multi-process-metrics"


def live_sockets(server: AsgiServer) -> float:
    response = httpx.get(f"{server.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        if family.name == "messenger_live_sockets":
            return sum(sample.value for sample in family.samples)
    raise AssertionError("messenger_live_sockets missing")


@pytest.mark.slow
def test_metrics_sum_every_process_of_the_host_and_forget_a_killed_one():
    postgres = PrivatePostgres()
    servers: list[AsgiServer] = []
    try:
        postgres.start()
        postgres.create_database("metrics")
        env = django_env(DATABASE_URL=postgres.url("metrics"), SECRET_KEY="metrics-test", OTP_TEST_NUMBERS="+1555",
                         LOG_LEVEL="WARNING", METRICS_TOKEN=TOKEN,
                         PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(prefix="metrics-"))
        env.pop("REDIS_URL", None)
        manage("migrate", "--noinput", env=env)
        servers = [AsgiServer(env), AsgiServer(env)]
        for server in servers:
            server.start()
        token = sign_in_over_http(servers[0], "+15550000009")["token"]
        with connect(servers[0].ws, additional_headers={"Authorization": f"Bearer {token}"}):
            wait_for(lambda: live_sockets(servers[1]) == 1, timeout=10, message="the other process counts it")
            servers[0].kill()  # SIGKILL: no disconnect, no cleanup
            wait_for(lambda: live_sockets(servers[1]) == 0, timeout=10, message="the dead process forgotten")
    finally:
        for server in servers:
            server.kill()
        postgres.destroy()
