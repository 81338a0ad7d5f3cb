"""`make run`'s embedded default: with no DATABASE_URL and no REDIS_URL every migration applies on
SQLite and the server signs a user in (the suite itself runs on PostgreSQL and Redis)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.reliability.services import ROOT, AsgiServer, django_env

pytestmark = pytest.mark.slow


def embedded_env(tmp_path: Path) -> dict[str, str]:
    env = django_env(SQLITE_PATH=str(tmp_path / "db.sqlite3"), DEBUG="1", OTP_TEST_NUMBERS="+1555",
                     MEDIA_ROOT=str(tmp_path / "media"))
    for name in ("DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL", "CHANNEL_REDIS_URLS"):
        env.pop(name, None)
    return env


def test_migrations_apply_on_sqlite_and_the_server_signs_a_user_in(tmp_path: Path):
    env = embedded_env(tmp_path)
    migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-3000:]

    server = AsgiServer(env)
    server.start()
    try:
        with httpx.Client(base_url=server.base, timeout=20) as http:
            assert http.post("/api/v1/auth/otp/request", json={"phone": "+15550001234"}).status_code == 202
            verified = http.post("/api/v1/auth/otp/verify", json={
                "phone": "+15550001234", "code": "000000", "device": {"name": "laptop", "platform": "web"}})
            assert verified.status_code == 200, verified.text
            me = http.get("/api/v1/me", headers={"Authorization": f"Bearer {verified.json()['token']}"})
            assert me.status_code == 200 and me.json()["phone"] == "+15550001234", me.text
    finally:
        server.kill()
