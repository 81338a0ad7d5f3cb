"""`make run`'s embedded default: with no DATABASE_URL and no REDIS_URL every migration applies on
SQLite and the server signs a user in (the suite itself runs on PostgreSQL and Redis)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.reliability.services import ROOT, AsgiServer, django_env

pytestmark = pytest.mark.slow


def embedded_env(tmp_path: Path) -> dict[str, str]:
    env = django_env(SQLITE_PATH=str(tmp_path / "db.sqlite3"), DEBUG="1", OTP_TEST_NUMBERS="+1555",
                     MEDIA_ROOT=str(tmp_path / "media"))
    for name in ("DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL", "CHANNEL_REDIS_URLS"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory: pytest.TempPathFactory):
    env = embedded_env(tmp_path_factory.mktemp("embedded"))
    migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-3000:]
    server = AsgiServer(env)
    server.start()
    yield server
    server.kill()


def sign_in(http: httpx.Client, phone: str) -> dict:
    assert http.post("/api/v1/auth/otp/request", json={"phone": phone}).status_code == 202
    verified = http.post("/api/v1/auth/otp/verify", json={
        "phone": phone, "code": "000000", "device": {"name": "laptop", "platform": "web"}})
    assert verified.status_code == 200, verified.text
    return verified.json()


def test_migrations_apply_on_sqlite_and_the_server_signs_a_user_in(embedded_server: AsgiServer):
    with httpx.Client(base_url=embedded_server.base, timeout=20) as http:
        token = sign_in(http, "+15550001234")["token"]
        me = http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["phone"] == "+15550001234", me.text


def test_presence_on_sqlite(embedded_server: AsgiServer):
    """The presence queries compile on SQLite too (a UNION member may not carry a LIMIT there:
    every connect's presence failed on `make run`)."""
    with httpx.Client(base_url=embedded_server.base, timeout=20) as http:
        alice, bob = sign_in(http, "+15550002001"), sign_in(http, "+15550002002")
        for who in (alice, bob):
            changed = http.patch("/api/v1/me", headers={"Authorization": f"Bearer {who['token']}"},
                                 json={"settings": {"last_seen": "everyone"}})
            assert changed.status_code == 200, changed.text
        created = http.post("/api/v1/conversations", headers={"Authorization": f"Bearer {alice['token']}"},
                            json={"type": "direct", "user_id": bob["user"]["id"]})
        assert created.status_code in (200, 201), created.text
    with connect(f"{embedded_server.ws}?token={bob['token']}", open_timeout=10) as bob_ws:
        bob_ws.send(json.dumps({"type": "hello", "cursor": ""}))
        with connect(f"{embedded_server.ws}?token={alice['token']}", open_timeout=10) as alice_ws:
            alice_ws.send(json.dumps({"type": "hello", "cursor": ""}))
            seen = []
            while not any(f.get("type") == "presence" and f.get("user_id") == alice["user"]["id"]
                          and f.get("state") == "online" for f in seen):
                frame = json.loads(bob_ws.recv(timeout=10))
                assert frame.get("type") != "error", frame
                seen.append(frame)
            # and alice's snapshot after her hello shows bob online
            while True:
                frame = json.loads(alice_ws.recv(timeout=10))
                assert frame.get("type") != "error", frame
                if frame.get("type") == "presence" and frame.get("user_id") == bob["user"]["id"]:
                    assert frame["state"] == "online"
                    break
