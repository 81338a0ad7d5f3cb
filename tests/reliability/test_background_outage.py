"""Background work survives a database outage of a minute and a broker that is down at enqueue time.

A private PostgreSQL and Redis (tests/reliability/services.py), a real Celery worker
and beat. Every task family that makes something a user expects gets a cause
(tests/reliability/background_work.py): contact.joined, a big group's fan-out, a
push, a thumbnail, an export, a red packet refund, a call's ring timeout.

Database: the causes commit and their tasks wait in the broker; PostgreSQL stops;
the worker and beat start and hit the dead database for OUTAGE_SECONDS (60 s);
PostgreSQL starts again. Within RECOVERY_SECONDS every effect exists exactly once.

Broker: Redis is down when the causes commit. The requests still succeed (the
enqueue after commit never raises into them) and the work waits in the outbox (or
in its own queryable rows); once Redis, a worker and beat are up, the sweeps run it,
exactly once.

Retries back off up to TASK_RETRY_BACKOFF_MAX (300 s in production; 10 s here so
the bound after recovery stays short) and the sweeps run every few seconds here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import Worker, wait_for
from tests.reliability.services import ROOT, PrivatePostgres, PrivateRedis, django_env, manage

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

OUTAGE_SECONDS = float(os.environ.get("OUTAGE_SECONDS", "60"))
RECOVERY_SECONDS = 120
FAMILIES = ["contact_joined", "fanout", "push", "thumbnail", "export", "red_packet_refund", "call_timeout"]
# Work that the broker test covers: its cause writes an outbox row or a row its sweep finds
# within seconds (exports are found after 10 minutes; refunds and ring timeouts are enqueued by
# beat sweeps, which need the broker anyway).
# Causes that need no cache: a message send does (its spam screen), so with Redis down the
# send itself fails before writing anything, and the client retries it.
BROKER_FAMILIES = ["contact_joined", "fanout_rename", "push_notify", "thumbnail"]


class Beat:
    """`celery -A config beat` in its own process group."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.log = (directory / "beat.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
             "--schedule", str(directory / "beat-schedule")],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        self.log.close()


@dataclass
class Stack:
    postgres: PrivatePostgres
    redis: PrivateRedis
    env: dict[str, str]
    directory: Path

    def step(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "tests.reliability.background_work", *args,],
                                cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    @property
    def state_path(self) -> str:
        return str(self.directory / "state.json")

    def state(self) -> dict:
        return json.loads(Path(self.state_path).read_text())

    def check(self) -> dict:
        return json.loads(self.step("check", self.state_path).strip().splitlines()[-1])


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    postgres = PrivatePostgres()
    postgres.start()
    postgres.create_database("background")
    redis_server = PrivateRedis()
    redis_server.start()
    media = tmp_path / "media"
    media.mkdir()
    env = django_env(
        DATABASE_URL=postgres.url("background"), REDIS_URL=redis_server.url, SECRET_KEY="background-outage",
        DB_CONNECT_TIMEOUT="2", LOG_LEVEL="WARNING", MEDIA_ROOT=str(media), PUSH_BACKEND="log",
        PAYMENTS_BACKEND="test", MESSAGING_INLINE_FANOUT_MAX="3", MESSAGING_SEND_LIMIT="0",
        CALLS_RING_TIMEOUT_SECONDS="5", CALLS_SWEEP_SECONDS="5",
        TASK_RETRY_BACKOFF_MAX="10", OUTBOX_SWEEP_SECONDS="5", OUTBOX_RESEND_SECONDS="10",
    )
    manage("migrate", "--noinput", env=env)
    try:
        yield Stack(postgres, redis_server, env, tmp_path)
    finally:
        redis_server.kill()
        postgres.destroy()


def wait_until_exactly_once(stack: Stack, families: list[str], *, timeout: float, logs: str) -> dict:
    """Poll the effects until every family has each expected effect; then each must be exactly one."""
    started = time.monotonic()
    deadline = started + timeout
    seen: dict = {}
    first: dict[str, float] = {}
    while time.monotonic() < deadline:
        try:
            seen = stack.check()
        except AssertionError:
            seen = {}
        for family in families:
            if family in seen and min(seen[family]) >= 1:
                first.setdefault(family, round(time.monotonic() - started))
        if len(first) == len(families):
            print(f"seconds until done, per family: {first}")
            break
        time.sleep(2)
    else:
        raise AssertionError(f"not everything happened within {timeout:.0f} s: {seen}\n{logs}")
    time.sleep(8)  # any duplicate a late retry or a sweep would make has time to show
    return stack.check()


def assert_exactly_once(seen: dict, families: list[str]) -> None:
    for family in families:
        assert seen[family] and all(count == 1 for count in seen[family]), (family, seen[family])
    assert seen["outbox"]["failed"] == 0 and seen["outbox"]["pending"] == 0, seen["outbox"]


def logs(directory: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(directory.glob("*.log")))


def test_every_task_family_runs_exactly_once_after_a_database_outage_of_a_minute(stack: Stack) -> None:
    stack.step("prepare", stack.state_path)
    stack.step("cause", stack.state_path, ",".join(FAMILIES))
    assert all(error is None for error in stack.state()["raised"].values()), stack.state()["raised"]

    stack.postgres.stop("immediate")
    stopped = time.monotonic()
    worker = Worker(stack.env, pool="solo", log_path=stack.directory / "worker.log")
    beat = Beat(stack.env, stack.directory)
    try:
        # The work is due (queued tasks, the ring timeout, the refund) and meets a dead database.
        wait_for(lambda: "hit an outage" in worker.output(), timeout=OUTAGE_SECONDS + 60, interval=0.5,
                 message="the worker to meet the outage")
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        stack.postgres.start()
        recovered = time.monotonic()
        seen = wait_until_exactly_once(stack, FAMILIES, timeout=RECOVERY_SECONDS, logs=logs(stack.directory))
        took = time.monotonic() - recovered
    finally:
        beat.stop()
        worker.stop()
    print(f"database outage {OUTAGE_SECONDS:.0f} s: everything done {took:.0f} s after recovery: {seen}")
    assert_exactly_once(seen, FAMILIES)


def test_work_caused_while_the_broker_is_down_runs_once_after_it_is_back(stack: Stack) -> None:
    stack.step("prepare", stack.state_path)
    stack.redis.kill()
    stack.step("cause", stack.state_path, ",".join(BROKER_FAMILIES))
    raised = stack.state()["raised"]
    # Every cause committed without seeing the broker's outage (the enqueue after commit never raises).
    assert all(error is None for error in raised.values()), raised
    assert stack.check()["outbox"]["pending"] == 3, "contact.joined, the thumbnail and the push wait in the outbox"

    stack.redis.start()
    worker = Worker(stack.env, pool="solo", log_path=stack.directory / "worker.log")
    beat = Beat(stack.env, stack.directory)
    try:
        seen = wait_until_exactly_once(stack, BROKER_FAMILIES, timeout=RECOVERY_SECONDS, logs=logs(stack.directory))
    finally:
        beat.stop()
        worker.stop()
    assert_exactly_once(seen, BROKER_FAMILIES)
