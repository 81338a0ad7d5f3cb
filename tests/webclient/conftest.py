"""The real stack for the web client's browser tests: a uvicorn process and a Celery worker on the
suite's PostgreSQL test database and Redis, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.processes import Worker, current_database_url
from tests.reliability.services import AsgiServer, sign_in_over_http
from tests.webclient.browser import CHROMIUM_FLAGS, ensure_chromium, write_tone_wav

WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"


@dataclass
class WebStack:
    server: AsgiServer
    worker: Worker
    media_root: Path

    @property
    def base(self) -> str:
        return self.server.base

    def sign_in(self, phone: str, name: str | None = None) -> dict:
        """A user signed in over HTTP (a phone app, say); returns the verify response."""
        session = sign_in_over_http(self.server, phone)
        if name:
            with self.server.client(session["token"]) as http:
                assert http.patch("/api/v1/me", json={"display_name": name}).status_code == 200
        return session

    def befriend(self, *sessions: dict) -> None:
        """Each uploads the others' numbers (hashed over HTTP here; the browser path is in test_e2e)."""
        for session in sessions:
            with self.server.client(session["token"]) as http:
                discovery = http.get("/api/v1/contacts/discovery").json()
                pepper = base64.urlsafe_b64decode(discovery["pepper"] + "=" * (-len(discovery["pepper"]) % 4))
                hashes = [hmac.new(pepper, other["user"]["phone"].encode(), hashlib.sha256).hexdigest()
                          for other in sessions if other is not session]
                response = http.post("/api/v1/contacts/sync",
                                     json={"pepper_id": discovery["pepper_id"], "mode": "replace", "hashes": hashes})
                assert response.status_code == 200, response.text


@pytest.fixture
def web_stack(django_db_setup: None, django_db_blocker, tmp_path: Path) -> Iterator[WebStack]:
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.fail("the web client's browser tests need the real stack: DATABASE_URL (PostgreSQL) and REDIS_URL")
    if not (WEB_DIST / "index.html").exists():
        pytest.fail("web/dist is not built: run `make web`")
    with django_db_blocker.unblock():
        database_url = current_database_url()
    media_root = tmp_path / "media"
    for folder in ("media", "exports", "export-tmp"):
        (tmp_path / folder).mkdir()
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PYTEST")},
        "DATABASE_URL": database_url, "REDIS_URL": settings.REDIS_URL, "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0", "LOG_LEVEL": "WARNING", "OTP_TEST_NUMBERS": "+1555", "PUSH_BACKEND": "log",
        # Top-ups approved at once (the test provider), for the red packets.
        "PAYMENTS_BACKEND": "test",
        "MEDIA_ROOT": str(media_root), "EXPORT_ROOT": str(tmp_path / "exports"),
        "EXPORT_TEMP_DIR": str(tmp_path / "export-tmp"), "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    server = AsgiServer(env)
    worker = Worker(env, log_path=tmp_path / "worker.log")
    try:
        server.start()
        yield WebStack(server=server, worker=worker, media_root=media_root)
    finally:
        worker.stop()
        server.kill()


@pytest.fixture(scope="session")
def fake_microphone() -> Path:
    return write_tone_wav(Path(tempfile.mkdtemp(prefix="web-mic-")) / "tone.wav")


# Per module: Playwright's loop must be gone before any asyncio test of another module runs.
@pytest.fixture(scope="module")
def browser(fake_microphone: Path) -> Iterator[object]:
    executable = ensure_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; Django would take the
    # test's own (synchronous) database set-up and teardown for async code without this.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={fake_microphone}"],
        )
        yield browser
        browser.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
