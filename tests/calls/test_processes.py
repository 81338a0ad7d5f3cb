"""Faults with real processes (uvicorn servers and a Celery worker; timeouts shortened).

- The caller's server process is SIGKILLed while the call rings: the ring is already in the
  callee's stream; the ring timeout still fires from the Celery worker (its countdown task
  was queued at commit, before the kill); the call ends once, as missed, with one log message.
- A callee's socket drops in an active call and does not come back: the close hook starts
  the grace, the worker's countdown task ends the call as failed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from websockets.sync.client import ClientConnection, connect

from calls.models import Call
from messaging.models import Message
from streams.models import Event
from tests.processes import celery_worker, current_database_url, wait_for
from tests.reliability.services import AsgiServer, django_env, sign_in_over_http

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RING_SECONDS = 4
GRACE_SECONDS = 2


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from config.celery import app

    app.conf.task_always_eager = False  # the worker process runs the tasks (reset by conftest)
    env = django_env(DATABASE_URL=current_database_url(), REDIS_URL=settings.REDIS_URL, SECRET_KEY=settings.SECRET_KEY,
                     DEBUG="0", LOG_LEVEL="WARNING", OTP_TEST_NUMBERS="+1555", DB_POOL_MIN_SIZE="1",
                     CALLS_RING_TIMEOUT_SECONDS=str(RING_SECONDS),
                     CALLS_RECONNECT_GRACE_SECONDS=str(GRACE_SECONDS), PUSH_BACKEND="log")
    doomed, survivor = AsgiServer(env), AsgiServer(env)
    try:
        doomed.start()
        survivor.start()
        with celery_worker(env, log_path=tmp_path / "worker.log") as worker:
            yield {"doomed": doomed, "survivor": survivor, "worker": worker}
    finally:
        doomed.kill()
        survivor.kill()


def socket(server: AsgiServer, token: str) -> ClientConnection:
    return connect(server.ws, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10)


def frames_until(ws: ClientConnection, done: Any, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    seen: list[dict] = []
    while not done(seen):
        seen.append(json.loads(ws.recv(timeout=max(0.05, deadline - time.monotonic()))))
    return seen


def test_a_ring_outlives_the_callers_server_and_ends_missed_once(stack):
    doomed, survivor = stack["doomed"], stack["survivor"]
    caller = sign_in_over_http(survivor, "+15550100601")
    callee = sign_in_over_http(survivor, "+15550100602")
    with survivor.client(caller["token"]) as http:
        conversation_id = http.post("/api/v1/conversations",
                                    json={"type": "direct", "user_id": callee["user"]["id"]}).json()["id"]
    call_id = str(uuid.uuid4())
    with socket(survivor, callee["token"]) as callee_ws, socket(doomed, caller["token"]) as caller_ws:
        callee_ws.send(json.dumps({"type": "hello", "cursor": ""}))
        caller_ws.send(json.dumps({"type": "call.offer", "ref": "o", "call_id": call_id,
                                   "conversation_id": conversation_id, "media": "audio", "sdp": "v=0\r\n"}))
        ok = frames_until(caller_ws, lambda seen: seen and seen[-1]["type"] in ("call.ok", "error"))[-1]
        assert ok["type"] == "call.ok", ok
        doomed.kill()  # SIGKILL mid-ring: no close hook, no cleanup

        def ended(seen: list[dict]) -> bool:
            return any(f["type"] == "event" and f["event"]["type"] == "call.ended" for f in seen)

        seen = frames_until(callee_ws, ended, timeout=RING_SECONDS + 30)
        events = [f["event"] for f in seen if f["type"] == "event"]
        ring = [e for e in events if e["type"] == "call.ring"]
        assert [e["data"]["call_id"] for e in ring] == [call_id]
        stored_end = next(e for e in events if e["type"] == "call.ended")["data"]
        assert stored_end == {"call_id": call_id, "reason": "missed", "duration_ms": 0}

    wait_for(lambda: Message.objects.filter(conversation_id=conversation_id, type="call").exists(), timeout=10,
             message=f"the call's log message\n{stack['worker'].output()[-2000:]}")
    time.sleep(1)  # anything that would end it a second time has had its chance
    call = Call.objects.get(pk=call_id)
    assert (call.state, call.end_reason, call.outcome) == ("ended", "missed", "missed")
    messages = list(Message.objects.filter(conversation_id=conversation_id, type="call"))
    assert len(messages) == 1 and messages[0].content["call"]["outcome"] == "missed"
    assert Event.objects.filter(user_id=callee["user"]["id"], type="call.ended").count() == 1
    assert Event.objects.filter(user_id=caller["user"]["id"], type="call.ended").count() == 1
    assert "calls.ring_timeout" in stack["worker"].output()


def test_a_callee_socket_that_drops_and_stays_away_fails_the_call(stack):
    server = stack["survivor"]
    caller = sign_in_over_http(server, "+15550100611")
    callee = sign_in_over_http(server, "+15550100612")
    with server.client(caller["token"]) as http:
        conversation_id = http.post("/api/v1/conversations",
                                    json={"type": "direct", "user_id": callee["user"]["id"]}).json()["id"]
    call_id = str(uuid.uuid4())
    with socket(server, caller["token"]) as caller_ws:
        with socket(server, callee["token"]) as callee_ws:
            callee_ws.send(json.dumps({"type": "hello", "cursor": ""}))
            caller_ws.send(json.dumps({"type": "call.offer", "ref": "o", "call_id": call_id,
                                       "conversation_id": conversation_id, "media": "audio", "sdp": "v=0\r\n"}))
            frames_until(callee_ws, lambda seen: any(f["type"] == "event" and f["event"]["type"] == "call.ring"
                                                     for f in seen))
            callee_ws.send(json.dumps({"type": "call.answer", "ref": "a", "call_id": call_id, "sdp": "v=0\r\n"}))
            frames_until(caller_ws, lambda seen: any(f["type"] == "call.answer" for f in seen))
        # The callee's socket is gone (its phone lost the network, say) and does not come back.
        ended = frames_until(caller_ws, lambda seen: any(f["type"] == "call.ended" for f in seen),
                             timeout=GRACE_SECONDS + 30)
        frame = next(f for f in ended if f["type"] == "call.ended")
        assert (frame["call_id"], frame["reason"]) == (call_id, "failed")
    call = Call.objects.get(pk=call_id)
    assert (call.state, call.outcome) == ("ended", "failed")
    assert Message.objects.filter(conversation_id=conversation_id, type="call").count() == 1
    assert "calls.drop_check" in stack["worker"].output()
