"""Real processes for fault tests: a private PostgreSQL, a private Redis, ASGI servers.

Fault tests stop and start services by PID, so they run their own instances on
free ports instead of the shared ones the rest of the suite (and other runs on
this machine) depend on.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.processes import wait_for

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.1, what: str = "condition"
) -> None:
    """tests.processes.wait_for under the name these tests use (fails with AssertionError)."""
    wait_for(condition, timeout=timeout, interval=interval, message=what)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return True
    except OSError:
        return False


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PrivatePostgres:
    """A throwaway cluster (trust auth, fsync off) that a test may stop and start at will."""

    def __init__(self) -> None:
        if PG_BIN is None:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.dir = Path(tempfile.mkdtemp(prefix="pgfault-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "30",
                    "-l",
                    str(self.dir / "log"),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
            check=False,
            capture_output=True,
        )

    def create_database(self, name: str) -> None:
        subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-qc",
                f"CREATE DATABASE {name}",
            ],
            check=True,
            capture_output=True,
        )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A redis-server of our own, on a free port, persisting nothing."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), timeout=10, what="redis up")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


def servers_log(servers: list[AsgiServer], chars: int = 2000) -> str:
    """The end of each server's log, for a failing assertion's message."""
    return "".join(f"--- server {index}\n{server.log_tail(chars)}" for index, server in enumerate(servers))


def django_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.update({"PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "config.settings"})
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=180,
    )


class AsgiServer:
    """`uvicorn config.asgi:application` in its own process on a free port."""

    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.env = env
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="asgi-", suffix=".log")[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/v1"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--ws",
                "websockets-sansio",
                "--ws-per-message-deflate",
                "false",
                "--lifespan",
                "off",
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=ROOT,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: port_open(self.port) or self.process.poll() is not None, timeout=30, what="server up")
        if self.process.poll() is not None:
            raise RuntimeError(f"ASGI server exited: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=15)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=20)


def sign_in_over_http(server: AsgiServer, phone: str, code: str = "000000") -> dict:
    """OTP request + verify for a test number (OTP_TEST_NUMBERS must cover it)."""
    with server.client() as http:
        assert http.post("/api/v1/auth/otp/request", json={"phone": phone}).status_code == 202
        response = http.post(
            "/api/v1/auth/otp/verify", json={"phone": phone, "code": code, "device": {"name": "t", "platform": "web"}}
        )
        assert response.status_code == 200, response.text
        # Harness users build groups of strangers: let anyone add them (a real signup says "contacts").
        headers = {"Authorization": f"Bearer {response.json()['token']}"}
        patched = http.patch("/api/v1/me", json={"settings": {"group_add": "everyone"}}, headers=headers)
        assert patched.status_code == 200, patched.text
        return response.json()
