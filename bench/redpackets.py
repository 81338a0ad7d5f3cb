"""Bench scenario `redpackets`: a 100-share packet emptied by 1,000 members pressing at once.

    make bench BENCH_ARGS="--only redpackets"

bench/run.py calls `scenario()`: it seeds a group of `--rp-members` members and
a sender (this file run as `seed`, in a Django process against the bench
database), starts the default deployment (2 uvicorn processes, a Celery worker,
PAYMENTS_BACKEND=test), and for each of `--rp-rounds` rounds the sender tops up
and sends a packet of `--rp-shares` shares over HTTP; then every member claims
at once (this file run as `load`, a separate process: asyncio + httpx, one
connection per claimant, all parked on one start line). Figures per round:

- empty_ms: from the start line to the response of the last successful claim;
- answered_ms: until every claimant has an answer (200 or 410 red_packet_empty);
- claims_per_s: successful claims / empty time; requests_per_s: answers / answered time.

The rounds' medians go to results["redpackets"]; `manage.py ledger_check` must pass afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

SERVER_ENV = {"PAYMENTS_BACKEND": "test", "MESSAGING_GROUP_MAX_MEMBERS": "100000", "RED_PACKET_PUSH": ""}


# --- Seeding (a Django process) ---------------------------------------------------------------------


def seed(members: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from bench.seed import make_users
    from config.celery import app
    from messaging.services import conversation_create

    app.conf.task_always_eager = True  # the group's own fan-out runs here, not in the bench worker
    digits = str(int(uuid.uuid4().hex[:4], 16) % 900 + 100)
    (sender, sender_token), = make_users(f"+1555{digits}8", 1)
    claimants = make_users(f"+1555{digits}9", members)
    group, _ = conversation_create(creator=sender, type="group", title="Red packet bench",
                                   member_ids=[user.pk for user, _ in claimants])
    return {"group_id": group["id"], "sender_token": sender_token, "tokens": [token for _, token in claimants]}


# --- The load (a separate process) -------------------------------------------------------------------


async def press(bases: list[str], tokens: list[str], packet_id: str) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=0)
    clients = [httpx.AsyncClient(base_url=base, timeout=300, limits=limits) for base in bases]
    start = asyncio.Event()
    began = 0.0

    async def one(index: int, token: str) -> tuple[int, float, int | None]:
        await start.wait()
        response = await clients[index % len(clients)].post(f"/api/v1/red-packets/{packet_id}/claim",
                                                            headers={"Authorization": f"Bearer {token}"})
        body = response.json()
        return response.status_code, time.monotonic() - began, body.get("amount")

    try:
        tasks = [asyncio.create_task(one(i, token)) for i, token in enumerate(tokens)]
        await asyncio.sleep(0.5)
        began = time.monotonic()
        start.set()
        answers = await asyncio.gather(*tasks)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    won = [(at, amount) for status, at, amount in answers if status == 200]
    statuses: dict[str, int] = {}
    for status, _, _ in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    empty_s = max(at for at, _ in won) if won else None
    answered_s = max(at for _, at, _ in answers)
    return {
        "claimants": len(tokens), "won": len(won), "sum": sum(amount for _, amount in won), "statuses": statuses,
        "empty_ms": empty_s * 1000 if empty_s else None, "answered_ms": answered_s * 1000,
        "claims_per_s": len(won) / empty_s if empty_s else None, "requests_per_s": len(answers) / answered_s,
    }


def send_packet(base: str, token: str, group_id: str, total: int, shares: int) -> str:
    import httpx

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        topup = http.post("/api/v1/wallet/topups", json={"client_id": str(uuid.uuid4()), "amount": total})
        assert topup.status_code == 201, topup.text
        sent = http.post(f"/api/v1/conversations/{group_id}/red-packets", json={
            "client_id": str(uuid.uuid4()), "total": total, "count": shares, "mode": "random"})
        assert sent.status_code == 201, sent.text
        return sent.json()["id"]


def load(spec: dict[str, Any]) -> dict[str, Any]:
    rounds = []
    for _ in range(spec["rounds"]):
        packet_id = send_packet(spec["bases"][0], spec["sender_token"], spec["group_id"], spec["total"],
                                spec["shares"])
        time.sleep(1.0)  # the packet's message fan-out settles before the press
        rounds.append(asyncio.run(press(spec["bases"], spec["tokens"], packet_id)))
    return {"rounds": rounds}


# --- The scenario (called by bench/run.py) -------------------------------------------------------------


def scenario(seeds: dict, args: argparse.Namespace, results: dict) -> None:
    from bench import run

    env = {**run.server_env(), **SERVER_ENV}
    seeded = json.loads(run.run_checked([PY, str(Path(__file__)), "seed", "--members", str(args.rp_members)],
                                        env={**env, "LOG_LEVEL": "ERROR"}, timeout=900).strip().splitlines()[-1])
    run.flush_redis()
    with run.Stack(2, None, env_extra=SERVER_ENV) as stack:
        spec = {"bases": stack.http, "sender_token": seeded["sender_token"], "group_id": seeded["group_id"],
                "tokens": seeded["tokens"], "rounds": args.rp_rounds, "shares": args.rp_shares,
                "total": min(20000, 100 * args.rp_shares)}
        spec_file = run.RESULTS / "spec-redpackets.json"
        spec_file.write_text(json.dumps(spec))
        proc = subprocess.run([PY, str(Path(__file__)), "load", str(spec_file)], cwd=ROOT, capture_output=True,
                              text=True, timeout=1800, preexec_fn=run.raise_fd_limit)
    output = [line for line in proc.stdout.splitlines() if line.startswith('{"result"')]
    if not output:
        raise RuntimeError(f"red packet load failed:\n{proc.stderr[-3000:]}")
    rounds = json.loads(output[-1])["result"]["rounds"]
    check = subprocess.run([PY, "manage.py", "ledger_check"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)

    def median(key: str) -> float | None:
        values = [r[key] for r in rounds if r.get(key) is not None]
        return statistics.median(values) if values else None

    results["redpackets"] = {
        "members": args.rp_members, "shares": args.rp_shares, "processes": 2, "rounds": rounds,
        "empty_ms": median("empty_ms"), "answered_ms": median("answered_ms"),
        "claims_per_s": median("claims_per_s"), "requests_per_s": median("requests_per_s"),
        "exactly_once": all(r["won"] == args.rp_shares and r["sum"] == spec["total"] for r in rounds),
        "ledger_check": check.returncode == 0,
    }
    run.log(f"red packets: {args.rp_shares} shares among {args.rp_members}: empty after "
            f"{results['redpackets']['empty_ms']:.0f} ms ({results['redpackets']['claims_per_s']:.0f} claims/s), "
            f"all answered after {results['redpackets']['answered_ms']:.0f} ms; ledger_check "
            f"{'ok' if check.returncode == 0 else 'FAILED'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["seed", "load"])
    parser.add_argument("spec", nargs="?")
    parser.add_argument("--members", type=int, default=1000)
    args = parser.parse_args()
    if args.command == "seed":
        print(json.dumps(seed(args.members)))
    else:
        print(json.dumps({"result": load(json.loads(Path(args.spec).read_text()))}))


if __name__ == "__main__":
    main()
