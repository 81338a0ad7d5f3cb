"""`make cluster`: the production layout on one machine, on private services and free ports.

    nginx (WebSocket-aware load balancer, least_conn)  :8080 (CLUSTER_PORT)
      -> 3 uvicorn processes                            (CLUSTER_WEB)
    PgBouncer (transaction mode) -> PostgreSQL          (a private cluster, database `cluster`)
    Redis: one for the cache and the Celery broker, 2 channel-layer shards (CHANNEL_REDIS_URLS)
    Celery: a worker per queue (default, push, fanout, media, exports) and beat
    Metrics: every process writes to one PROMETHEUS_MULTIPROC_DIR; GET /metrics with the token

nginx and PgBouncer come from Debian (installed with apt-get when missing); PostgreSQL and
Redis are the machine's binaries, run as private instances: the shared services on 5432/6379
are never used nor stopped. Everything lives in a cluster-* directory under the system temp
directory (kept with CLUSTER_KEEP_LOGS=1) and stops with Ctrl-C.

    python scripts/cluster.py up        # run until Ctrl-C (what `make cluster` does)
    python scripts/cluster.py check     # bring it up, sign in through nginx, send, receive, stop

The same `Cluster` class is what `make cluster-bench` (bench/cluster_bench.py) drives.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.reliability.services import (  # noqa: E402
    AsgiServer,
    PrivatePostgres,
    PrivateRedis,
    django_env,
    free_port,
    manage,
    port_open,
    wait_until,
)

NGINX = Path("/usr/sbin/nginx")
PGBOUNCER = Path("/usr/sbin/pgbouncer")
QUEUES = ["default", "push", "fanout", "media", "exports"]
METRICS_TOKEN = "cluster-metrics-token"  # noqa: S105 - a throwaway local stack


def log(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_debian_packages() -> None:
    """nginx and PgBouncer from Debian, installed when missing (without starting their system services)."""
    missing = [name for name, path in (("nginx", NGINX), ("pgbouncer", PGBOUNCER)) if not path.exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"{' and '.join(missing)} missing: run `sudo apt-get install {' '.join(missing)}`")
    log(f"installing {', '.join(missing)} from Debian")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)
    # Debian starts the packaged services where it can; this stack runs its own instances.
    for service in missing:
        subprocess.run(["service", service, "stop"], check=False, capture_output=True)


def _as_postgres_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PgBouncer:
    """PgBouncer in transaction mode in front of one database (runs as the postgres user: it refuses root)."""

    def __init__(self, workdir: Path, postgres: PrivatePostgres, database: str) -> None:
        self.dir = workdir / "pgbouncer"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.database = database
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(f"""[databases]
{database} = host=127.0.0.1 port={postgres.port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
reserve_pool_size = 5
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {self.dir}/pgbouncer.log
pidfile = {self.dir}/pgbouncer.pid
admin_users = postgres
""")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            for path in self.dir.iterdir():
                shutil.chown(path, "postgres", "postgres")
        self.process: subprocess.Popen | None = None

    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        output = (self.dir / "stderr.log").open("ab")
        self.process = subprocess.Popen(_as_postgres_user([str(PGBOUNCER), str(self.dir / "pgbouncer.ini")]),
                                        stdout=output, stderr=subprocess.STDOUT)
        output.close()
        try:
            wait_until(lambda: port_open(self.port), timeout=15, what="pgbouncer up")
        except Exception:
            said = [(self.dir / name).read_text(errors="replace")[-2000:]
                    for name in ("stderr.log", "pgbouncer.log") if (self.dir / name).exists()]
            log(f"pgbouncer did not come up (exit {self.process.poll()}): {' | '.join(said)}")
            raise

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Nginx:
    """nginx as the WebSocket-aware load balancer in front of the uvicorn processes."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.dir = workdir / "nginx"
        (self.dir / "temp").mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        (self.dir / "temp").chmod(0o777)
        self.port = port
        self.process: subprocess.Popen | None = None

    def configure(self, upstream_ports: list[int]) -> None:
        template = (ROOT / "deploy" / "nginx.conf").read_text()
        servers = "\n".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in upstream_ports)
        config = (template.replace("__UPSTREAM_SERVERS__", servers).replace("__LISTEN__", f"127.0.0.1:{self.port}")
                  .replace("/var/lib/nginx/messenger", str(self.dir / "temp")))
        head = (f"worker_processes 1;\npid {self.dir}/nginx.pid;\nerror_log {self.dir}/error.log warn;\n"
                + ("user nobody nogroup;\n" if os.geteuid() == 0 else ""))
        (self.dir / "nginx.conf").write_text(head + config.split("# --- http ---", 1)[1])

    def _command(self, *extra: str) -> list[str]:
        return [str(NGINX), "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), *extra]

    def start(self, upstream_ports: list[int]) -> None:
        self.configure(upstream_ports)
        subprocess.run(self._command("-t", "-q"), check=True, capture_output=True)
        self.process = subprocess.Popen(self._command("-g", "daemon off;"), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open(self.port), timeout=15, what="nginx up")

    def reload(self, upstream_ports: list[int]) -> None:
        """New upstream list; old workers finish their connections, new ones use the new list."""
        self.configure(upstream_ports)
        subprocess.run(self._command("-s", "reload"), check=True, capture_output=True)
        time.sleep(1.5)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Cluster:
    def __init__(self, *, web: int = 3, port: int | None = None, overrides: dict[str, str] | None = None) -> None:
        ensure_debian_packages()
        # In the system temp directory: PgBouncer runs as the postgres user, who may not be able to
        # reach into the checkout (a clone under `mktemp -d` is 0700).
        self.workdir = Path(tempfile.mkdtemp(prefix="cluster-"))
        self.workdir.chmod(0o755)
        self.postgres = PrivatePostgres()
        self.main_redis = PrivateRedis()
        self.shards = [PrivateRedis(), PrivateRedis()]
        self.web_count = web
        self.port = port or free_port()
        self.overrides = overrides or {}
        self.pgbouncer: PgBouncer | None = None
        self.nginx = Nginx(self.workdir, self.port)
        self.servers: list[AsgiServer] = []
        self.celery: list[subprocess.Popen] = []
        self.env: dict[str, str] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Cluster:
        log(f"starting in {self.workdir}")
        self.postgres.start()
        self.postgres.create_database("cluster")
        for redis_server in (self.main_redis, *self.shards):
            redis_server.start()
        self.pgbouncer = PgBouncer(self.workdir, self.postgres, "cluster")
        self.pgbouncer.start()
        metrics_dir = self.workdir / "metrics"
        metrics_dir.mkdir()
        self.env = django_env(
            DATABASE_URL=self.pgbouncer.url(), DB_PGBOUNCER="1", DB_POOL_MAX_SIZE="4", DB_POOL_MIN_SIZE="1",
            REDIS_URL=self.main_redis.url, CHANNEL_REDIS_URLS=",".join(s.url for s in self.shards),
            SECRET_KEY="cluster-" + uuid.uuid4().hex, LOG_FORMAT="json", LOG_LEVEL="WARNING",
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), METRICS_TOKEN=METRICS_TOKEN, TRUSTED_PROXY_COUNT="1",
            OTP_TEST_NUMBERS="+1555", PUSH_BACKEND="log", MEDIA_ROOT=str(self.workdir / "media"),
            EXPORT_ROOT=str(self.workdir / "exports"), DB_CONNECT_TIMEOUT="3",
            **self.overrides,
        )
        # Migrations go straight to PostgreSQL (session features); the servers go through PgBouncer.
        manage("migrate", "--noinput", env={**self.env, "DATABASE_URL": self.postgres.url("cluster"),
                                            "DB_PGBOUNCER": ""})
        self.servers = [AsgiServer(self.env) for _ in range(self.web_count)]
        for server in self.servers:
            server.start()
        for queue in QUEUES:
            self.celery.append(self._celery("worker", "-Q", queue, "--pool", "solo", "-n", f"{queue}@%h",
                                            "--without-heartbeat", "--without-mingle", "--without-gossip",
                                            log=f"worker-{queue}.log"))
        self.celery.append(self._celery("beat", "--schedule", str(self.workdir / "beat-schedule"), log="beat.log"))
        self.nginx.start([s.port for s in self.servers])
        log(f"up: {self.base} (nginx) -> uvicorn {[s.port for s in self.servers]}; PgBouncer :{self.pgbouncer.port}"
            f" -> PostgreSQL :{self.postgres.port}; Redis main :{self.main_redis.port}, shards "
            f"{[s.port for s in self.shards]}; workers {QUEUES} and beat")
        return self

    def _celery(self, *args: str, log: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", *args, "--loglevel", "INFO"],
                                cwd=ROOT, env=self.env, stdout=(self.workdir / log).open("wb"),
                                stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        self.nginx.stop()
        for process in self.celery:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.celery:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for server in self.servers:
            server.kill(signal.SIGTERM)
        if self.pgbouncer is not None:
            self.pgbouncer.stop()
        for redis_server in (self.main_redis, *self.shards):
            redis_server.kill()
        self.postgres.destroy()
        if not os.environ.get("CLUSTER_KEEP_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        log("stopped")

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sign_in(base: str, phone: str) -> dict:
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.post("/api/v1/auth/otp/request", json={"phone": phone}).status_code == 202
        response = http.post("/api/v1/auth/otp/verify", json={
            "phone": phone, "code": "000000", "device": {"name": "cluster", "platform": "web"}})
        assert response.status_code == 200, response.text
        # Benchmark users build groups of strangers: let anyone add them (a real signup says "contacts").
        patched = http.patch("/api/v1/me", json={"settings": {"group_add": "everyone"}},
                             headers={"Authorization": f"Bearer {response.json()['token']}"})
        assert patched.status_code == 200, patched.text
        return response.json()


def smoke(cluster: Cluster) -> dict:
    """Through nginx: two users, a direct conversation, a message, the event on the other's socket,
    /healthz and /metrics."""
    from websockets.sync.client import connect

    alice, bob = sign_in(cluster.base, "+15550000001"), sign_in(cluster.base, "+15550000002")
    ws_url = cluster.base.replace("http://", "ws://") + "/ws/v1"
    with httpx.Client(base_url=cluster.base, headers={"Authorization": f"Bearer {alice['token']}"}, timeout=30) as http:
        health = http.get("/healthz").json()
        conversation = http.post("/api/v1/conversations", json={"type": "direct",
                                                                "user_id": bob["user"]["id"]}).json()["id"]
        with connect(ws_url, additional_headers={"Authorization": f"Bearer {bob['token']}"}) as ws:
            ws.send(json.dumps({"type": "hello", "cursor": ""}))
            sent = http.post(f"/api/v1/conversations/{conversation}/messages",
                             json={"client_id": str(uuid.uuid4()), "type": "text", "text": "through nginx"})
            assert sent.status_code == 201, sent.text
            while True:
                frame = json.loads(ws.recv(timeout=15))
                if frame["type"] == "event" and frame["event"]["type"] == "message.new":
                    break
        metrics = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert metrics.status_code == 200, (metrics.status_code, metrics.text[:300])
    return {"healthz": health, "delivered": frame["event"]["data"]["text"],
            "metrics_lines": len(metrics.text.splitlines())}


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    port = int(os.environ.get("CLUSTER_PORT", "8080"))
    web = int(os.environ.get("CLUSTER_WEB", "3"))
    with Cluster(web=web, port=port if command == "up" else None) as cluster:
        result = smoke(cluster)
        log(f"smoke test through nginx: {json.dumps(result)}")
        if command == "check":
            return 0
        log(f"open {cluster.base} (OTP test numbers +1555..., code 000000); metrics: "
            f"curl -H 'Authorization: Bearer {METRICS_TOKEN}' {cluster.base}/metrics; Ctrl-C stops")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
