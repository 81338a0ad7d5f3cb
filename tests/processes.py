"""Start and stop real processes (a Celery worker) from tests, and wait for conditions with a deadline.

A test that starts a worker must commit its data (`django_db(transaction=True)`)
and turn eager mode off (`app.conf.task_always_eager = False`; the autouse
fixture in conftest resets it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.05,
             message: str = "condition") -> T:
    """Poll until `condition()` is truthy and return its value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def current_database_url() -> str:
    """The URL of the database pytest-django created for this run (test_<name>)."""
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


class Worker:
    """A `celery -A config worker` subprocess in its own process group (so kill() leaves no orphan)."""

    def __init__(self, env: Mapping[str, str], *, pool: str = "solo", log_path: Path | None = None) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", pool, "--concurrency", "1",
             "--loglevel", "INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): nothing gets to ack or clean up."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not subprocess.DEVNULL:
            self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


@contextmanager
def celery_worker(env: Mapping[str, str], **kwargs: object) -> Iterator[Worker]:
    """A worker for the duration of the block, always stopped afterwards."""
    worker = Worker(env, **kwargs)  # type: ignore[arg-type]
    try:
        yield worker
    finally:
        worker.stop()
