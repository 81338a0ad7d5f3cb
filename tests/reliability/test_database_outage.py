"""PostgreSQL unavailable for a few seconds: 503 in the error shape, fast, and recovery without a restart."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from websockets.sync.client import connect

from tests.reliability.services import (
    AsgiServer,
    PrivatePostgres,
    PrivateRedis,
    django_env,
    manage,
    sign_in_over_http,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def outage_stack():
    postgres = PrivatePostgres()
    postgres.start()
    postgres.create_database("outage")
    redis_server = PrivateRedis()  # not a db of the shared Redis: other runs may be using it
    redis_server.start()
    env = django_env(DATABASE_URL=postgres.url("outage"), REDIS_URL=redis_server.url, OTP_TEST_NUMBERS="+1555",
                     DB_CONNECT_TIMEOUT="2", SECRET_KEY="outage-test")
    manage("migrate", "--noinput", env=env)
    server = AsgiServer(env)
    server.start()
    yield postgres, server
    server.kill()
    redis_server.kill()
    postgres.destroy()


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_requests_get_503_while_the_database_is_down_and_recover_after(outage_stack):
    postgres, server = outage_stack
    token = sign_in_over_http(server, "+15550100321")["token"]
    with server.client(token) as http:
        assert http.get("/api/v1/me").status_code == 200

        postgres.stop("immediate")
        for path in ("/api/v1/me", "/api/v1/devices"):
            response, took = timed(lambda path=path: http.get(path))
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "service_unavailable"
            assert response.json()["error"]["details"] == {"check": "database"}
            assert took < 6, f"{path} hung for {took:.1f} s"
        response, took = timed(lambda: http.post("/api/v1/auth/otp/request", json={"phone": "+15550100322"}))
        assert response.status_code == 503 and took < 6
        health, took = timed(lambda: http.get("/healthz"))
        assert health.status_code == 503 and took < 6
        assert health.json()["status"] == "error"
        assert health.json()["checks"]["database"].startswith("error")
        assert health.json()["checks"]["channel_layer"] == "ok"
        assert health.json()["checks"]["broker"] == "ok"

        postgres.start()
        wait_until(lambda: http.get("/api/v1/me").status_code == 200, timeout=20, interval=0.5,
                   what="service resumed")
        # No Celery worker in this stack: `degraded` (200), not `error`.
        health = http.get("/healthz")
        assert health.status_code == 200 and health.json()["checks"]["database"] == "ok"


def test_a_socket_send_that_hits_the_dead_database_gets_an_error_frame_not_a_hang(outage_stack):
    postgres, server = outage_stack
    signed_in = sign_in_over_http(server, "+15550100323")
    token = signed_in["token"]
    with server.client(token) as http:
        conversation = http.post("/api/v1/conversations", json={"type": "group", "title": "t", "member_ids": []})
        assert conversation.status_code == 201, conversation.text
    with connect(server.ws, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send(json.dumps({"type": "hello", "cursor": "0"}))
        while json.loads(ws.recv(timeout=10)).get("event", {}).get("type") != "conversation.created":
            pass  # the replay is done (it would close 1011 if it hit the dead database)
        time.sleep(0.5)
        postgres.stop("immediate")
        started = time.monotonic()
        ws.send(json.dumps({"type": "message.send", "ref": "r", "conversation_id": conversation.json()["id"],
                            "message": {"client_id": str(uuid.uuid4()), "type": "text", "text": "anyone?"}}))
        while True:
            frame = json.loads(ws.recv(timeout=10))
            if frame.get("ref") == "r":
                break
        assert frame["type"] == "error" and frame["code"] == "service_unavailable", frame
        assert time.monotonic() - started < 6
        ws.send(json.dumps({"type": "ping"}))  # the socket is still usable
        while json.loads(ws.recv(timeout=5))["type"] != "pong":
            pass
        postgres.start()
