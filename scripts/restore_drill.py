"""`make restore-drill`: back up PostgreSQL, lose it, restore it, and prove nothing was lost.

On a private PostgreSQL and Redis (free ports; the shared services are never touched):
1. traffic: users send into a group and direct conversations (REST and socket), with client_ids;
2. `pg_dump --format=custom` of the database (what deploy/backup.md schedules);
3. the database is dropped (the disaster) and created empty;
4. `pg_restore` of the dump;
5. the server starts on the restored database, and the reliability suite's check runs: every
   message acknowledged before the dump is in every member's stream exactly once and in order
   (GET /sync paging); a resend of an acknowledged client_id returns the original (200); and new
   sends continue the sequence.
Exit status 0 when all holds; a JSON summary is printed either way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.reliability.chat import Sender, assert_exactly_once_in_order, sync_all  # noqa: E402
from tests.reliability.services import (  # noqa: E402
    PG_BIN,
    AsgiServer,
    PrivatePostgres,
    PrivateRedis,
    django_env,
    manage,
    sign_in_over_http,
)

USERS = 4


def log(message: str) -> None:
    print(f"[restore-drill {time.strftime('%H:%M:%S')}] {message}", flush=True)


def psql(postgres: PrivatePostgres, statement: str) -> None:
    subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", "-d",
                    "postgres", "-v", "ON_ERROR_STOP=1", "-qc", statement], check=True, capture_output=True)


def main() -> int:
    seconds = 15
    postgres, redis_server = PrivatePostgres(), PrivateRedis()
    server: AsgiServer | None = None
    summary: dict = {}
    try:
        postgres.start()
        postgres.create_database("drill")
        redis_server.start()
        env = django_env(DATABASE_URL=postgres.url("drill"), REDIS_URL=redis_server.url, OTP_TEST_NUMBERS="+1555",
                         SECRET_KEY="restore-drill", LOG_LEVEL="WARNING", PUSH_BACKEND="log",  # noqa: S106
                         MESSAGING_SEND_LIMIT="0")
        manage("migrate", "--noinput", env=env)
        server = AsgiServer(env)
        server.start()
        people = [sign_in_over_http(server, f"+155504{i:05d}") for i in range(USERS)]
        tokens = [p["token"] for p in people]
        with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=20) as http:
            group = http.post("/api/v1/conversations", json={
                "type": "group", "title": "drill", "member_ids": [p["user"]["id"] for p in people[1:]]}).json()["id"]
            directs = {i: http.post("/api/v1/conversations", json={
                "type": "direct", "user_id": people[i]["user"]["id"]}).json()["id"] for i in range(1, USERS)}
        conversations = {group: list(range(USERS)), **{d: [0, i] for i, d in directs.items()}}
        deadline = time.monotonic() + seconds
        senders = [Sender(tokens[i], group, [server.base], count=seconds * 5, via="rest" if i % 2 else "socket",
                          pace=0.05, name=f"g{i}") for i in range(USERS)]
        senders += [Sender(tokens[i], d, [server.base], count=seconds * 3, via="socket", pace=0.1, name=f"d{i}")
                    for i, d in directs.items()]
        threads = [threading.Thread(target=s.run, args=(deadline,), daemon=True) for s in senders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 60)
        acked: dict[str, dict] = {c: {} for c in conversations}
        for sender in senders:
            acked[sender.conversation_id].update(sender.acked)
        summary["acknowledged_before_backup"] = sum(len(a) for a in acked.values())
        server.kill()
        log(f"{summary['acknowledged_before_backup']} messages acknowledged; dumping")

        dump = postgres.dir / "drill.dump"
        started = time.monotonic()
        subprocess.run([str(PG_BIN / "pg_dump"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres",
                        "--format=custom", "--file", str(dump), "drill"], check=True, capture_output=True)
        summary["dump_seconds"] = round(time.monotonic() - started, 2)
        summary["dump_bytes"] = dump.stat().st_size
        psql(postgres, "DROP DATABASE drill WITH (FORCE)")
        psql(postgres, "CREATE DATABASE drill")
        log("database dropped and created empty; restoring")
        started = time.monotonic()
        subprocess.run([str(PG_BIN / "pg_restore"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres",
                        "--dbname", "drill", "--exit-on-error", "--no-owner", str(dump)], check=True,
                       capture_output=True)
        summary["restore_seconds"] = round(time.monotonic() - started, 2)

        server = AsgiServer(env)
        server.start()
        for conversation, members in conversations.items():
            for member in members:
                assert_exactly_once_in_order(
                    sync_all(server.base, tokens[member]), acked[conversation], conversation,
                    who=f"user {member} after restore",
                    order_without_sender=people[member]["user"]["id"] if conversation == group else None)
        some_client_id, original = next(iter(acked[group].items()))
        with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=20) as http:
            sender_index = next(i for i, s in enumerate(senders) if some_client_id in s.acked)
            retry = httpx.post(f"{server.base}/api/v1/conversations/{group}/messages",
                               headers={"Authorization": f"Bearer {tokens[sender_index]}"},
                               json={"client_id": some_client_id, "type": "text", "text": "again"}, timeout=20)
            assert retry.status_code == 200 and retry.json()["id"] == original["id"], retry.text
            fresh = http.post(f"/api/v1/conversations/{group}/messages",
                              json={"client_id": str(uuid.uuid4()), "type": "text", "text": "after the restore"})
            assert fresh.status_code == 201, fresh.text
            last_seq = max(m["seq"] for m in acked[group].values())
            assert fresh.json()["seq"] == last_seq + 1, (fresh.json()["seq"], last_seq)
        summary["result"] = "ok: every acknowledged message restored, exactly once, in order; sequences continue"
        return 0
    except AssertionError as error:
        summary["result"] = f"FAILED: {error}"
        return 1
    finally:
        print(json.dumps(summary, indent=2), flush=True)
        if server is not None:
            server.kill()
        redis_server.kill()
        postgres.destroy()


if __name__ == "__main__":
    sys.exit(main())
