"""Horizontal scale: real ASGI server processes (uvicorn) share PostgreSQL and Redis.

A client connected to process A talks to a client connected to process B;
the only link between the processes is the channel layer (Redis) and the
database. A third process is killed with a client connected, who then gets
what he missed from another process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from messaging import services as messaging_services
from streams.selectors import stream_head
from tests.processes import current_database_url
from tests.reliability.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
UVICORN = Path(sys.executable).with_name("uvicorn")


def wait_until_serving(port: int, process: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


@pytest.fixture(scope="module")
def servers(django_db_setup: None, django_db_blocker) -> Iterator[list[tuple[int, subprocess.Popen]]]:
    """Three uvicorn processes on free ports, shared by this module's tests; the last
    one is killed by the last test."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.fail("this test needs the real stack: DATABASE_URL (PostgreSQL) and REDIS_URL")
    with django_db_blocker.unblock():
        database_url = current_database_url()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": settings.REDIS_URL,
           "SECRET_KEY": settings.SECRET_KEY, "DEBUG": "0", "LOG_LEVEL": "WARNING"}
    ports = [free_port(), free_port(), free_port()]
    processes = [start_server(port, env) for port in ports]
    try:
        deadline = time.monotonic() + 30
        for port, process in zip(ports, processes, strict=True):
            wait_until_serving(port, process, deadline)
        yield list(zip(ports, processes, strict=True))
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(UVICORN), "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--ws", "websockets-sansio", "--ws-per-message-deflate", "false", "--lifespan", "off",
         "--no-access-log"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def open_socket(port: int, token: str) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{port}/ws/v1", additional_headers={"Authorization": f"Bearer {token}"},
                   open_timeout=10)


def receive(ws: ClientConnection, type_: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if frame["type"] == type_:
            return frame


def hello_at_head(ws: ClientConnection, who) -> None:
    ws.send(json.dumps({"type": "hello", "cursor": str(stream_head(user_id=who.user.pk))}))
    ws.send(json.dumps({"type": "ping"}))
    receive(ws, "pong")


def test_message_sent_through_one_process_reaches_a_client_of_the_other(servers, alice, bob):
    conversation, _ = messaging_services.conversation_create(creator=alice.user, type="direct", user_id=bob.user.pk)
    (port_a, _), (port_b, _), _ = servers
    with open_socket(port_a, alice.token) as alice_ws, open_socket(port_b, bob.token) as bob_ws:
        hello_at_head(alice_ws, alice)
        hello_at_head(bob_ws, bob)

        body = {"client_id": str(uuid.uuid4()), "type": "text", "text": "across processes"}
        alice_ws.send(json.dumps({"type": "message.send", "ref": "1", "conversation_id": conversation["id"],
                                  "message": body}))
        sent = receive(alice_ws, "message.sent")
        event = receive(bob_ws, "event")["event"]
        assert event["type"] == "message.new"
        assert event["data"]["id"] == sent["message"]["id"]
        assert event["data"]["text"] == "across processes"

        # And back, with typing first: relays cross processes too.
        bob_ws.send(json.dumps({"type": "typing", "conversation_id": conversation["id"], "state": "start"}))
        assert receive(alice_ws, "typing")["user_id"] == str(bob.user.pk)
        bob_ws.send(json.dumps({"type": "message.send", "ref": "2", "conversation_id": conversation["id"],
                                "message": {**body, "client_id": str(uuid.uuid4()), "text": "got it"}}))
        reply = receive(alice_ws, "event")["event"]
        while reply["type"] != "message.new":  # alice's own message.new and bob's receipts come first
            reply = receive(alice_ws, "event")["event"]
        assert reply["data"]["text"] == "got it"


def test_device_revoked_through_one_process_closes_its_socket_on_the_other(servers, alice):
    with open_socket(servers[1][0], alice.token) as ws:
        hello_at_head(ws, alice)
        from accounts.services import device_revoke

        device_revoke(user=alice.user, device_id=alice.device.pk)
        deadline = time.monotonic() + 10
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() < deadline:
                ws.recv(timeout=deadline - time.monotonic())
        assert closed.value.rcvd.code == 4001


def test_client_of_a_killed_process_gets_what_it_missed_from_another(servers, alice, bob):
    """Process C dies (SIGKILL) with bob connected; what is sent meanwhile comes with his next hello."""
    conversation, _ = messaging_services.conversation_create(creator=alice.user, type="direct", user_id=bob.user.pk)
    (port_a, _), _, (port_c, process_c) = servers
    body = {"type": "text", "text": "first"}
    with open_socket(port_a, alice.token) as alice_ws, open_socket(port_c, bob.token) as bob_ws:
        hello_at_head(alice_ws, alice)
        hello_at_head(bob_ws, bob)
        alice_ws.send(json.dumps({"type": "message.send", "ref": "1", "conversation_id": conversation["id"],
                                  "message": {**body, "client_id": str(uuid.uuid4())}}))
        last = receive(bob_ws, "event")["event"]
        assert last["data"]["text"] == "first"

        process_c.kill()
        process_c.wait(timeout=10)
        for text in ("second", "third"):
            alice_ws.send(json.dumps({"type": "message.send", "ref": text, "conversation_id": conversation["id"],
                                      "message": {**body, "client_id": str(uuid.uuid4()), "text": text}}))
            receive(alice_ws, "message.sent")

    with open_socket(port_a, bob.token) as bob_again:
        bob_again.send(json.dumps({"type": "hello", "cursor": last["cursor"]}))
        missed = [receive(bob_again, "event")["event"] for _ in range(2)]
        assert [e["data"]["text"] for e in missed] == ["second", "third"]
        bob_again.send(json.dumps({"type": "ping"}))
        until_pong = []
        while not until_pong or until_pong[-1]["type"] != "pong":
            until_pong.append(json.loads(bob_again.recv(timeout=5)))
        assert [f for f in until_pong if f["type"] == "event"] == []  # each exactly once
