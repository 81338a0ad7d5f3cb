"""The soak: a bounded mixed load with faults injected, then the exactly-once check.

    make soak                    # 10 minutes
    SOAK_SECONDS=120 make soak   # shorter

Everything runs on 127.0.0.1 in private instances (a PostgreSQL cluster and a
redis-server on free ports, two uvicorn processes, a Celery worker): the shared
services are never touched. Users send into a big group (fanned out by the
Celery worker: MESSAGING_INLINE_FANOUT_MAX=3) and into direct conversations,
over the socket and REST, retrying unacknowledged client_ids; every user follows
their stream on a socket by cursor, acking. On a schedule the soak SIGKILLs Redis
(and starts it again on the same port), SIGKILLs one ASGI process (and restarts
it), and SIGKILLs the worker (and starts a new one). At the end every
acknowledged message must be in every member's stream exactly once and in seq
order, both by GET /sync paging and as the following sockets saw it.
Exit status 0 when all holds; a JSON summary is printed either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.processes import Worker  # noqa: E402
from tests.reliability.chat import Follower, Sender, assert_exactly_once_in_order, sync_all  # noqa: E402
from tests.reliability.services import (  # noqa: E402
    AsgiServer,
    PrivatePostgres,
    PrivateRedis,
    django_env,
    manage,
    sign_in_over_http,
)

USERS = 6


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    seconds = int(os.environ.get("SOAK_SECONDS", "600"))
    fault_every = max(10, seconds // 9)
    postgres, redis_server = PrivatePostgres(), PrivateRedis()
    servers: list[AsgiServer] = []
    worker: Worker | None = None
    workdir = Path(postgres.dir)
    summary: dict = {"seconds": seconds, "faults": []}
    try:
        postgres.start()
        postgres.create_database("soak")
        redis_server.start()
        env = django_env(DATABASE_URL=postgres.url("soak"), REDIS_URL=redis_server.url, OTP_TEST_NUMBERS="+1555",
                         SECRET_KEY="soak-test",  # noqa: S106 (a throwaway stack)
                         LOG_LEVEL="WARNING", PUSH_BACKEND="log", DB_CONNECT_TIMEOUT="2",
                         MESSAGING_INLINE_FANOUT_MAX="3", MESSAGING_SEND_LIMIT="2000",
                         CELERY_VISIBILITY_TIMEOUT="5", WS_SEND_TIMEOUT_SECONDS="5")
        manage("migrate", "--noinput", env=env)
        servers = [AsgiServer(env), AsgiServer(env)]
        for server in servers:
            server.start()
        worker = Worker(env, log_path=workdir / "worker.log")
        bases = [s.base for s in servers]

        people = [sign_in_over_http(servers[0], f"+155501009{i:02d}") for i in range(USERS)]
        tokens = [p["token"] for p in people]
        with httpx.Client(base_url=bases[0], headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=10) as http:
            group = http.post("/api/v1/conversations", json={
                "type": "group", "title": "soak", "member_ids": [p["user"]["id"] for p in people[1:]]}).json()["id"]
            directs = {}
            for i in range(1, USERS):
                directs[i] = http.post("/api/v1/conversations", json={
                    "type": "direct", "user_id": people[i]["user"]["id"]}).json()["id"]
        conversations = {group: list(range(USERS)), **{d: [0, i] for i, d in directs.items()}}

        def own(conversation: str, member: int) -> str | None:
            """The group is fanned out by Celery: its senders see their own messages early."""
            return people[member]["user"]["id"] if conversation == group else None

        deadline = time.monotonic() + seconds
        senders = [Sender(tokens[i], group, bases, count=seconds * 10 + 10, via="rest" if i % 3 == 2 else "socket",
                          pace=0.1, name=f"g{i}") for i in range(USERS)]
        senders += [Sender(tokens[i], d, bases, count=seconds * 5 + 10, via="socket", pace=0.2, name=f"d{i}")
                    for i, d in directs.items()]
        followers = [Follower(token, bases) for token in tokens]
        stop = threading.Event()
        threads = [threading.Thread(target=s.run, args=(deadline, stop), daemon=True) for s in senders]
        threads += [threading.Thread(target=f.run, args=(stop, deadline + 120), daemon=True) for f in followers]
        for thread in threads:
            thread.start()
        log(f"traffic started: {len(senders)} senders, {len(followers)} followers, faults every {fault_every} s")

        kinds = ["redis", "asgi", "worker"]
        index = 0
        while time.monotonic() + fault_every < deadline:
            time.sleep(fault_every)
            kind = kinds[index % 3]
            index += 1
            if kind == "redis":
                redis_server.kill()
                time.sleep(2)
                redis_server.start()
            elif kind == "asgi":
                victim = servers[index % 2]
                victim.kill()
                time.sleep(2)
                victim.start()
            else:
                worker.kill()
                time.sleep(2)
                worker = Worker(env, log_path=workdir / "worker.log")
            acked = sum(len(s.acked) for s in senders)
            summary["faults"].append(kind)
            log(f"fault {kind} injected and recovered; {acked} messages acknowledged so far")

        for thread in threads[:len(senders)]:
            thread.join(timeout=max(1, deadline - time.monotonic()) + 30)
        log("traffic stopped; waiting for fan-out and followers to settle")
        acked_by_conversation: dict[str, dict] = {c: {} for c in conversations}
        for sender in senders:
            acked_by_conversation[sender.conversation_id].update(sender.acked)
        summary["acknowledged"] = sum(len(a) for a in acked_by_conversation.values())
        summary["send_failures_retried"] = sum(s.failures for s in senders)

        # Fan-out jobs whose enqueue was lost while Redis was down wait for the sweep (beat,
        # once a minute, jobs older than a minute); the soak runs the sweep's rerun at once.
        settle_deadline = time.monotonic() + 180
        missing = True
        while missing and time.monotonic() < settle_deadline:
            rerun_stalled_fanout(env)
            time.sleep(5)
            missing = False
            for conversation, members in conversations.items():
                for member in members:
                    ids = {e["data"]["id"] for e in sync_all(bases[0], tokens[member])
                           if e["type"] == "message.new" and e["data"]["conversation_id"] == conversation}
                    if {m["id"] for m in acked_by_conversation[conversation].values()} - ids:
                        missing = True
        stop.set()
        for thread in threads[len(senders):]:
            thread.join(timeout=10)

        for conversation, members in conversations.items():
            acked = acked_by_conversation[conversation]
            for member in members:
                assert_exactly_once_in_order(sync_all(bases[member % 2], tokens[member]), acked, conversation,
                                             who=f"user {member} /sync", order_without_sender=own(conversation, member))
        for member, follower in enumerate(followers):
            follower.catch_up(bases[0])
            for conversation, members in conversations.items():
                if member in members:
                    assert_exactly_once_in_order(
                        follower.events, acked_by_conversation[conversation], conversation,
                        who=f"user {member} socket", order_without_sender=own(conversation, member))
        summary["follower_reconnects"] = sum(f.reconnects for f in followers)
        summary["result"] = "ok: every acknowledged message exactly once, in order, in every stream"
        return 0
    except AssertionError as error:
        summary["result"] = f"FAILED: {error}"
        return 1
    finally:
        print(json.dumps(summary, indent=2), flush=True)
        if worker is not None:
            worker.stop()
        for server in servers:
            server.kill()
        redis_server.kill()
        postgres.destroy()


def rerun_stalled_fanout(env: dict[str, str]) -> None:
    code = ("from messaging import services; from messaging.tasks import fanout; "
            "[fanout.delay(j) for j in services.fanout_jobs_stalled(older_than_seconds=0)]")
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", code], env=env, cwd=ROOT,
                   capture_output=True, timeout=60, check=False)


if __name__ == "__main__":
    sys.exit(main())
