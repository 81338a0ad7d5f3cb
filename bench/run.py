"""`make bench`: the real stack end to end against the bare relay, as a table, JSON and plots.

    .venv/bin/python -m bench.run [--quick] [--only throughput,latency,...]

Starts its own stack on 127.0.0.1: PostgreSQL and Redis as in the tests (a
separate database `messenger_bench` and Redis db 9), uvicorn processes, one
Celery worker; the load client (bench/loadclient.py) runs as a separate process,
pinned with taskset to the other core where the scenario says so. Every scenario
is bounded in time and count. Results: a table on stdout, bench/results/latest.json
and bench/results/*.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
BIN = Path(PY).parent
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/messenger_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
CONTACTS_DATABASE_URL = os.environ.get("BENCH_CONTACTS_DATABASE_URL",
                                       "postgres://postgres@127.0.0.1:5432/messenger_bench_contacts")
SERVER_CPU, CLIENT_CPU = 0, 1


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} did not open")


def pinned(cpu: int | None, command: list[str]) -> list[str]:
    if cpu is None or not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        return command
    return ["taskset", "-c", str(cpu), *command]


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def server_env(database_url: str = DATABASE_URL) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "bench-secret-key",
        "DEBUG": "",
        "LOG_LEVEL": "WARNING",
        "WS_FRAME_RATE": "100000",
        "WS_FRAME_BURST": "100000",
        "OTP_TEST_NUMBERS": "+1555",
        "OTP_VERIFY_LIMIT_PER_IP": "100000000",
        "PUSH_BACKEND": "log",
        "MESSAGING_SEND_LIMIT": "0",  # the per-sender flood limit would cap the load generator
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    })
    return env


def run_checked(command: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> str:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


def reset_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


def rss_kib(pid: int) -> int:
    total = 0
    for candidate in [pid, *children_of(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children_of(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


# --- Processes -------------------------------------------------------------------------------


class Stack:
    """uvicorn processes (one port each) and, optionally, a Celery worker."""

    def __init__(self, processes: int, cpu: int | None, worker: bool = True,
                 env_extra: dict[str, str] | None = None) -> None:
        self.env_extra = env_extra or {}
        self.ports = [free_port() for _ in range(processes)]
        self.cpu = cpu
        self.worker = worker
        self.procs: list[subprocess.Popen] = []
        self.server_pids: list[int] = []
        self.logs = RESULTS / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    @property
    def urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{port}/ws/v1" for port in self.ports]

    @property
    def http(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def __enter__(self) -> Stack:
        env = {**server_env(), **self.env_extra}
        for port in self.ports:
            proc = subprocess.Popen(
                pinned(self.cpu, [str(BIN / "uvicorn"), "config.asgi:application", "--host", "127.0.0.1",
                                  "--port", str(port), "--ws", os.environ.get("BENCH_WS", "websockets-sansio"),
                                  "--ws-per-message-deflate", "false", "--lifespan", "off",
                                  "--no-access-log", "--log-level", "warning", "--backlog", "8192"]),
                cwd=ROOT, env=env, stdout=(self.logs / f"uvicorn-{port}.log").open("w"), stderr=subprocess.STDOUT,
                preexec_fn=raise_fd_limit,
            )
            self.procs.append(proc)
            self.server_pids.append(proc.pid)
        if self.worker:
            self.procs.append(subprocess.Popen(
                pinned(self.cpu, [str(BIN / "celery"), "-A", "config", "worker", "--loglevel", "WARNING",
                                  "--concurrency", "1", "--pool", "solo"]),
                cwd=ROOT, env=env, stdout=(self.logs / "worker.log").open("w"), stderr=subprocess.STDOUT,
            ))
        for port in self.ports:
            wait_port(port)
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def relay(cpu: int | None):
    port = free_port()
    proc = subprocess.Popen(pinned(cpu, [PY, "-m", "bench.relay", "--port", str(port)]), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=raise_fd_limit)
    wait_port(port)
    try:
        yield [f"ws://127.0.0.1:{port}/ws/v1"], proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def client(scenario: str, spec: dict[str, Any], cpu: int | None, timeout: float = 300) -> dict[str, Any]:
    spec_file = RESULTS / f"spec-{scenario}.json"
    spec_file.write_text(json.dumps(spec))
    proc = subprocess.run(
        pinned(cpu, [PY, "-c", "import json,sys; from bench import loadclient; "
                     f"sys.argv=['x', {scenario!r}, open({str(spec_file)!r}).read()]; loadclient.main()"]),
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, preexec_fn=raise_fd_limit,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith('{"result"'):
            return json.loads(line)["result"]
    raise RuntimeError(f"load client {scenario} failed:\n{proc.stderr[-3000:]}")


def relay_pairs(count: int) -> list[dict[str, str]]:
    return [{"sender": f"s{i}", "receiver": f"r{i}", "conversation_id": f"pair:s{i}:r{i}"} for i in range(count)]


# --- Scenarios ---------------------------------------------------------------------------------


def scenario_throughput(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    seconds, pairs, window = args.seconds, args.pairs, args.window
    spec = {"pairs": relay_pairs(pairs), "window": window, "seconds": seconds, "warmup": 3}
    with relay(SERVER_CPU) as (urls, _):
        results["relay_throughput"] = client("throughput", {**spec, "urls": urls}, CLIENT_CPU)
    log(f"relay: {results['relay_throughput']['delivered_per_s']:.0f} msgs/s")
    spec["pairs"] = seeds["pairs"][:pairs]
    with Stack(1, SERVER_CPU) as stack:
        results["throughput_1core"] = client("throughput", {**spec, "urls": stack.urls, "resume_at_head": True},
                                             CLIENT_CPU)
    log(f"server 1 core: {results['throughput_1core']['delivered_per_s']:.0f} msgs/s")
    with Stack(2, None) as stack:
        results["throughput_default"] = client("throughput", {**spec, "urls": stack.urls, "resume_at_head": True},
                                               None)
    log(f"server default deployment: {results['throughput_default']['delivered_per_s']:.0f} msgs/s")


def scenario_latency(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    maximum = results.get("throughput_1core", {}).get("delivered_per_s") or 1000
    rates = [500, max(50, int(maximum / 2))]
    pairs = seeds["pairs"][: args.pairs]
    results["latency"] = {}
    results["relay_latency"] = {}
    for rate in rates:
        spec = {"pairs": relay_pairs(args.pairs), "rate": rate, "seconds": args.latency_seconds}
        with relay(SERVER_CPU) as (urls, _):
            results["relay_latency"][str(rate)] = client("latency", {**spec, "urls": urls}, CLIENT_CPU)
        with Stack(1, SERVER_CPU) as stack:
            results["latency"][str(rate)] = client(
                "latency", {**spec, "pairs": pairs, "urls": stack.urls, "resume_at_head": True}, CLIENT_CPU)
        log(f"latency at {rate}/s: p99 {results['latency'][str(rate)]['latency_ms']['p99']:.2f} ms")


def hold_idle(urls: list[str], tokens: list[str], pid: int) -> tuple[int, int, dict[str, Any]]:
    """Open every socket at once (a connect burst), hold them idle, measure the server's RSS."""
    spec_file = RESULTS / "spec-idle.json"
    spec_file.write_text(json.dumps({"urls": urls, "tokens": tokens, "settle": 3}))
    before = rss_kib(pid)
    proc = subprocess.Popen(
        pinned(CLIENT_CPU, [PY, "-c", "import sys; from bench import loadclient; "
                            f"sys.argv=['x', 'idle', open({str(spec_file)!r}).read()]; loadclient.main()"]),
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=raise_fd_limit,
    )
    ready = proc.stdout.readline()
    if '"ready"' not in ready:
        proc.kill()
        raise RuntimeError(f"idle client failed: {proc.stderr.read()[-2000:]}")
    report = json.loads(ready)
    time.sleep(2)
    after = rss_kib(pid)
    proc.stdin.close()
    proc.wait(timeout=120)
    return before, after, report


def scenario_connections(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    tokens = seeds["idle"][: args.idle]
    with relay(SERVER_CPU) as (urls, pid):
        before, after, report = hold_idle(urls, [f"u{i}" for i in range(len(tokens))], pid)
    results["relay_idle"] = {"sockets": report["ready"], "failed": report["failed"], "burst_s": report["served_s"],
                             "rss_before_kib": before, "rss_after_kib": after,
                             "kib_per_socket": (after - before) / max(1, report["ready"])}
    with Stack(1, SERVER_CPU, worker=False) as stack:
        before, after, report = hold_idle(stack.urls, tokens, stack.server_pids[0])
    results["idle"] = {"sockets": report["ready"], "failed": report["failed"], "burst_s": report["served_s"],
                       "failures": report.get("reasons"),
                       "rss_before_kib": before, "rss_after_kib": after,
                       "kib_per_socket": (after - before) / max(1, report["ready"])}
    log(f"idle: {results['idle']['kib_per_socket']:.1f} KiB per socket ({report['ready']} sockets, "
        f"{report['failed']} failed, all served after {report['served_s']:.2f} s)")


def scenario_fanout(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    group = seeds["group"]
    members = group["members"][: args.group]
    with relay(SERVER_CPU) as (urls, _):
        results["relay_fanout"] = client("fanout", {
            "urls": urls, "members": [f"m{i}" for i in range(len(members))], "sender": "owner",
            "conversation_id": "group:bench", "groups": ["group:bench"], "rounds": 5,
        }, CLIENT_CPU)
    with Stack(2, None) as stack:
        results["fanout"] = client("fanout", {
            "urls": stack.urls, "members": members, "sender": group["sender"],
            "conversation_id": group["conversation_id"], "rounds": 5,
        }, None)
    log(f"fan-out to {len(members)}: last p50 {results['fanout']['last_ms']['p50']:.1f} ms")


def scenario_catchup(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    with Stack(1, SERVER_CPU, worker=False) as stack:
        results["catchup"] = client("catchup", {"urls": stack.urls, **seeds["catchup"], "rounds": 3}, CLIENT_CPU)
    log(f"catch-up of {seeds['catchup']['events']}: p50 {results['catchup']['ms']['p50']:.0f} ms")


def scenario_signup(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    with Stack(2, None, worker=False) as stack:
        spec = {"bases": stack.http, "prefix": seeds["signup_prefix"], "seconds": args.signup_seconds,
                "concurrency": 32}
        results["signup"] = client("signup", spec, None)
    log(f"signups: {results['signup']['per_s']:.0f}/s")


def scenario_contacts(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    env = server_env(CONTACTS_DATABASE_URL)
    ensure_database(CONTACTS_DATABASE_URL)
    run_checked([PY, "manage.py", "migrate", "--noinput", "-v", "0"], env=env)
    seeded = run_checked([PY, "-c", "import django,os; django.setup(); "
                          "from contacts.management.commands.contacts_seed import SEED_NAME; "
                          "from accounts.models import User; "
                          "print(User.objects.filter(display_name=SEED_NAME).count())"], env=env).strip()
    if int(seeded.splitlines()[-1]) < args.contacts_users:
        log(f"seeding {args.contacts_users} registered users for the contacts scenario (once)")
        run_checked([PY, "manage.py", "contacts_seed", "--users", str(args.contacts_users)], env=env, timeout=900)
    output = run_checked([PY, "bench/contacts_sync.py", "--runs", str(args.contacts_runs)], env=env, timeout=900)
    cases = {}
    for line in output.splitlines():
        match = re.match(r"(.+?)\s+n=(\d+)\s+p50=\s*([\d.]+) ms\s+p95=\s*([\d.]+) ms", line.strip())
        if match:
            cases[match.group(1).strip()] = {"p50_ms": float(match.group(3)), "p95_ms": float(match.group(4))}
    results["contacts"] = {"users": args.contacts_users, "cases": cases, "raw": output[-4000:]}
    log(f"contacts: {cases}")


def scenario_redpackets(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    from bench import redpackets

    redpackets.scenario(seeds, args, results)


def scenario_moments(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    from bench import moments

    moments.scenario(seeds, args, results)


def scenario_media_upload(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    """Upload throughput (MiB/s): the resumable tus path against one plain multipart POST."""
    import tempfile

    from bench import media_upload

    with tempfile.TemporaryDirectory(prefix="bench-media-") as media_root:
        os.environ["MEDIA_ROOT"] = media_root  # read by server_env() for the stack below
        try:
            with Stack(1, None, worker=False) as stack:
                results["media_upload"] = media_upload.measure(
                    stack.http[0], mib=args.media_mib, runs=args.media_runs,
                    phone=f"+1555{int(time.time()) % 10_000_000:07d}")
        finally:
            os.environ.pop("MEDIA_ROOT", None)
    figures = results["media_upload"]
    log("media upload (MiB/s): plain POST {:.0f}, tus one PATCH {:.0f}, tus 8 MiB PATCHes {:.0f}".format(
        figures["plain_post"]["mib_per_s"], figures["tus_one_patch"]["mib_per_s"],
        figures["tus_8mib_patches"]["mib_per_s"]))
def scenario_cluster(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    """The `make cluster` layout through nginx (bench/cluster_bench.py): msgs/s for 1-3 processes, faults."""
    from bench import cluster_bench

    results["cluster"] = cluster_bench.run(pairs=50, seconds=5 if args.quick else 15,
                                           fault_seconds=20 if args.quick else 40, rounds=1 if args.quick else 2)
    log(f"cluster: {results['cluster']['throughput_msgs_per_s_by_processes']['best']} msgs/s by processes; "
        f"faults: {results['cluster']['faults']['result']}")


SCENARIOS = {
    "throughput": scenario_throughput,
    "latency": scenario_latency,
    "connections": scenario_connections,
    "fanout": scenario_fanout,
    "catchup": scenario_catchup,
    "signup": scenario_signup,
    "contacts": scenario_contacts,
    "redpackets": scenario_redpackets,
    "moments": scenario_moments,
    "media_upload": scenario_media_upload,
    "cluster": scenario_cluster,  # its own private services (scripts/cluster.py); needs no seeds
}
# Scenarios that need none of bench/seed.py's users (they seed their own, or nothing):
# run alone, they skip the shared seeding.
UNSEEDED = {"contacts", "redpackets", "moments", "media_upload", "cluster"}


# --- Report -------------------------------------------------------------------------------------


def ratio(value: float | None, reference: float | None) -> str:
    if not value or not reference:
        return "-"
    return f"{value / reference:.2f}"


def table(results: dict) -> str:
    rows = [("scenario", "server", "bare relay", "ratio", "target")]

    def add(name: str, server: Any, reference: Any, target: str, fmt: str = "{:.0f}", invert: bool = False) -> None:
        server_text = fmt.format(server) if server is not None else "-"
        reference_text = fmt.format(reference) if reference is not None else "-"
        rows.append((name, server_text, reference_text,
                     ratio(reference, server) if invert else ratio(server, reference), target))

    get = lambda *keys: _dig(results, keys)  # noqa: E731
    add("1. throughput, 1 core (msgs/s)", get("throughput_1core", "delivered_per_s"),
        get("relay_throughput", "delivered_per_s"), ">= 10,000")
    add("1. throughput, default 2 procs (msgs/s)", get("throughput_default", "delivered_per_s"),
        get("relay_throughput", "delivered_per_s"), "(reported)")
    add("2. latency p50 at 500/s (ms)", get("latency", "500", "latency_ms", "p50"),
        get("relay_latency", "500", "latency_ms", "p50"), "(reported)", "{:.2f}", invert=True)
    for rate, label in ((500, "2. latency p99 at 500/s (ms)"),):
        add(label, get("latency", str(rate), "latency_ms", "p99"), get("relay_latency", str(rate), "latency_ms", "p99"),
            "<= 5", "{:.2f}", invert=True)
    others = [rate for rate in (results.get("latency") or {}) if rate != "500"]
    for rate in others:
        add(f"2. latency p99 at half max, {rate}/s (ms)", get("latency", rate, "latency_ms", "p99"),
            get("relay_latency", rate, "latency_ms", "p99"), "<= 20", "{:.2f}", invert=True)
    add("3. memory per idle socket (KiB)", get("idle", "kib_per_socket"), get("relay_idle", "kib_per_socket"),
        "<= 30", "{:.1f}", invert=True)
    add(f"3. {get('idle', 'sockets') or 0:,} sockets connecting + hello at once: all served after (s)",
        get("idle", "burst_s"), get("relay_idle", "burst_s"), "<= 5, no error", "{:.2f}", invert=True)
    add("3. ... of which failed", get("idle", "failed"), get("relay_idle", "failed"), "0")
    add("4. 500-member fan-out, last delivery p50 (ms)", get("fanout", "last_ms", "p50"),
        get("relay_fanout", "last_ms", "p50"), "< 200", "{:.1f}", invert=True)
    add("5. catch-up of 10,000 events (ms)", get("catchup", "ms", "p50"), None, "< 1000")
    contacts = get("contacts", "cases") or {}
    for case, figures in contacts.items():
        add(f"6. contacts: {case} p50 (ms)", figures["p50_ms"], None, "< 100", "{:.1f}")
    add("7. signups (OTP request + verify per s, 2 processes)", get("signup", "per_s"), None, ">= 300")
    add("8. red packet: 100 shares, 1,000 claimants, empty after (ms)", get("redpackets", "empty_ms"), None,
        "(reported)")
    add("8. red packet: successful claims per s", get("redpackets", "claims_per_s"), None, "(reported)")
    add("9. moments: timeline page, 2,000 friends / 100,000 posts, p50 (ms)", get("moments", "first_page_ms", "p50"),
        None, "< 30", "{:.1f}")
    add("9. moments: a page deep in the feed, p50 (ms)", get("moments", "deep_page_ms", "p50"), None, "< 30",
        "{:.1f}")
    add("8. upload MiB/s: tus, one PATCH (vs one plain POST)", get("media_upload", "tus_one_patch", "mib_per_s"),
        get("media_upload", "plain_post", "mib_per_s"), "(reported)")
    add("8. upload MiB/s: tus, 8 MiB PATCHes (vs plain POST)", get("media_upload", "tus_8mib_patches", "mib_per_s"),
        get("media_upload", "plain_post", "mib_per_s"), "(reported)")
    for processes, figure in (get("cluster", "throughput_msgs_per_s_by_processes", "best") or {}).items():
        add(f"8. through nginx, {processes} uvicorn process(es) (msgs/s)", figure, None, "(reported)")
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    lines = [" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _dig(data: Any, keys: tuple) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def plots(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {name: _dig(results, (name, "per_second")) for name in
              ("relay_throughput", "throughput_1core", "throughput_default")}
    if any(series.values()):
        figure, axis = plt.subplots(figsize=(7, 4))
        for name, values in series.items():
            if values:
                axis.plot(range(1, len(values) + 1), values, label=name)
        axis.set_xlabel("second")
        axis.set_ylabel("messages delivered per second")
        axis.set_title("Scenario 1: delivery throughput")
        axis.legend()
        figure.tight_layout()
        figure.savefig(RESULTS / "throughput.png", dpi=110)
        plt.close(figure)
    labels, server, reference = [], [], []
    for key, label in (("throughput_1core", "throughput"),):
        if _dig(results, (key, "delivered_per_s")) and _dig(results, ("relay_throughput", "delivered_per_s")):
            labels.append(label)
            server.append(results[key]["delivered_per_s"])
            reference.append(results["relay_throughput"]["delivered_per_s"])
    latency = results.get("latency") or {}
    if latency:
        figure, axis = plt.subplots(figsize=(7, 4))
        rates = sorted(latency, key=int)
        for index, percentile in enumerate(("p50", "p95", "p99")):
            axis.bar([i + index * 0.25 for i in range(len(rates))],
                     [latency[rate]["latency_ms"][percentile] for rate in rates], width=0.25, label=percentile)
        axis.set_xticks([i + 0.25 for i in range(len(rates))], [f"{rate}/s" for rate in rates])
        axis.set_ylabel("send-to-receive latency (ms)")
        axis.set_title("Scenario 2: latency at a fixed offered rate")
        axis.legend()
        figure.tight_layout()
        figure.savefig(RESULTS / "latency.png", dpi=110)
        plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="shorter runs, smaller counts (a smoke test)")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--latency-seconds", type=int, default=8)
    parser.add_argument("--signup-seconds", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--group", type=int, default=500)
    parser.add_argument("--catchup", type=int, default=10000)
    parser.add_argument("--contacts-users", type=int, default=1_000_000)
    parser.add_argument("--contacts-runs", type=int, default=10)
    parser.add_argument("--rp-members", type=int, default=1000, help="red packets: claimants pressing at once")
    parser.add_argument("--rp-shares", type=int, default=100)
    parser.add_argument("--rp-rounds", type=int, default=3)
    parser.add_argument("--mo-friends", type=int, default=2000, help="moments: the viewer's friends")
    parser.add_argument("--mo-posts", type=int, default=100_000, help="moments: posts by those friends")
    parser.add_argument("--mo-runs", type=int, default=200, help="moments: timed pages per kind")
    parser.add_argument("--media-mib", type=int, default=64, help="size of the file the upload scenario sends")
    parser.add_argument("--media-runs", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.latency_seconds, args.signup_seconds = 5, 3, 3
        args.idle, args.catchup, args.contacts_users, args.contacts_runs = 500, 2000, 20000, 3
        args.rp_rounds = 1
        args.media_mib, args.media_runs = 16, 1
        args.mo_runs = 50
    started = time.monotonic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    raise_fd_limit()
    seeds: dict[str, Any] = {}
    if set(args.only.split(",")) - UNSEEDED:
        log("preparing the bench database")
        reset_database(DATABASE_URL)
        flush_redis()
        env = server_env()
        run_checked([PY, "manage.py", "migrate", "--noinput", "-v", "0"], env=env)
        seeds = json.loads(run_checked(
            [PY, "bench/seed.py", "--pairs", str(args.pairs), "--idle", str(args.idle), "--group", str(args.group),
             "--catchup", str(args.catchup)], env={**env, "LOG_LEVEL": "ERROR"}, timeout=600,
        ).strip().splitlines()[-1])
        flush_redis()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "processor": _cpu_model()},
        "parameters": vars(args),
    }
    for name in args.only.split(","):
        log(f"scenario {name}")
        try:
            SCENARIOS[name](seeds, args, results)
        except Exception as exc:  # one broken scenario must not hide the others' figures
            results.setdefault("errors", {})[name] = repr(exc)[:2000]
            log(f"scenario {name} failed: {exc!r}"[:500])
    results["elapsed_s"] = time.monotonic() - started
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    plots(results)
    print(table(results))
    print(f"\n(results in {RESULTS / 'latest.json'}, plots in {RESULTS}; {results['elapsed_s']:.0f} s)")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
