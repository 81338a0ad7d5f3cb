"""Export a user with 1,000,000 messages and report the worker's peak memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/msg_exports REDIS_URL=redis://127.0.0.1:6379/7 \
        .venv/bin/python bench/export_memory.py [--messages 1000000] [--conversations 10] [--reseed]

Seeds (once; reused on later runs) a user whose messages are spread over
`--conversations` direct chats, written with PostgreSQL COPY into the
database of DATABASE_URL (run it against a bench database, never the test
one). Then runs the `exports.build` task in a child process, the way a worker
would, and samples the child's resident memory from /proc every 100 ms; the
peak comes from getrusage(RUSAGE_CHILDREN). The goal is a flat profile under
200 MB whatever the message count.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

OWNER_PHONE = "+447700900980"
PEER_PHONE_PREFIX = "+4477009009"  # + two digits per conversation

CHILD = """
import os, sys, time
import django
django.setup()
from exports.tasks import build_export
def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
print(f"child-ready rss={rss_mb():.1f}", flush=True)
started = time.monotonic()
result = build_export.apply(args=[sys.argv[1]]).result
print(f"child-done result={result} seconds={time.monotonic() - started:.1f}", flush=True)
"""


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def seed(total: int, conversations: int, reseed: bool) -> str:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import User
    from messaging.models import Conversation, Membership, Message

    call_command("migrate", verbosity=0)
    owner, _ = User.objects.get_or_create(phone=OWNER_PHONE, defaults={"display_name": "Bench exporter"})
    existing = Message.objects.filter(conversation__memberships__user=owner).count()
    if existing == total and not reseed:
        print(f"seed: reusing {existing:,} messages of the bench user")
        return str(owner.pk)
    Conversation.objects.filter(memberships__user=owner).delete()
    per_conversation = total // conversations
    started = time.monotonic()
    base_time = timezone.now() - timedelta(days=365)
    for number in range(conversations):
        peer, _ = User.objects.get_or_create(phone=f"{PEER_PHONE_PREFIX}{number:02d}",
                                             defaults={"display_name": f"Peer {number}"})
        count = per_conversation if number < conversations - 1 else total - per_conversation * number
        with transaction.atomic():
            low, high = sorted([str(owner.pk), str(peer.pk)])
            conversation = Conversation.objects.create(type="direct", direct_key=f"{low}:{high}",
                                                       member_count=2, last_seq=count, created_by=owner)
            Membership.objects.bulk_create([Membership(conversation=conversation, user=owner, role="member"),
                                            Membership(conversation=conversation, user=peer, role="member")])
            with connection.cursor() as cursor, cursor.cursor.copy(
                "COPY messaging_message (id, conversation_id, seq, sender_id, client_id, type, text, created_at) "
                "FROM STDIN"
            ) as copy:
                for seq in range(1, count + 1):
                    sender = owner.pk if seq % 2 else peer.pk
                    copy.write_row((uuid.uuid4(), conversation.pk, seq, sender, uuid.uuid4(), "text",
                                    f"Message number {seq} in conversation {number}: the quick brown fox.",
                                    base_time + timedelta(seconds=seq)))
        print(f"seed: conversation {number + 1}/{conversations} ({count:,} messages)", flush=True)
    print(f"seed: {total:,} messages in {time.monotonic() - started:.0f} s")
    return str(owner.pk)


def run_export(user_id: str, export_root: str) -> dict[str, float]:
    from exports.models import Export

    Export.objects.filter(user_id=user_id).delete()  # the bench ignores the once-a-day limit
    export = Export.objects.create(user_id=user_id)
    env = {**os.environ, "EXPORT_ROOT": export_root, "EXPORT_READY_PUSH": "", "EXPORT_TEMP_DIR": export_root,
           "EXPORT_TASK_TIME_LIMIT": "7200"}
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(export.pk)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    deadline = started + 7200
    while child.poll() is None and time.monotonic() < deadline:
        rss = _rss_mb(child.pid)
        if rss is not None:
            samples.append((time.monotonic() - started, rss))
        time.sleep(0.1)
    if child.poll() is None:
        child.kill()
        raise SystemExit("export did not finish within 2 hours")
    output = child.stdout.read() if child.stdout else ""
    elapsed = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    export.refresh_from_db()
    print(output.strip())
    if export.status != "ready":
        raise SystemExit(f"export {export.status}: {export.error}")
    ready = next((float(part.split("=")[1]) for part in output.split() if part.startswith("rss=")), 0.0)
    quarter = [rss for t, rss in samples if t >= elapsed / 4] or [0.0]
    return {"seconds": elapsed, "peak_mb": peak_mb, "start_mb": ready, "min_after_warmup_mb": min(quarter),
            "max_after_warmup_mb": max(quarter), "archive_mb": (export.size or 0) / 1024 / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the archive (path printed)")
    args = parser.parse_args()
    if "test_" in os.environ.get("DATABASE_URL", "") or not os.environ.get("DATABASE_URL"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL bench database (not the test database).")
    user_id = seed(args.messages, args.conversations, args.reseed)
    export_root = tempfile.mkdtemp(prefix="export-bench-")
    result = run_export(user_id, export_root)
    print(f"exported {args.messages:,} messages in {result['seconds']:.1f} s "
          f"({args.messages / result['seconds']:,.0f} messages/s); archive {result['archive_mb']:.1f} MB")
    print(f"worker RSS: {result['start_mb']:.1f} MB after Django start-up, "
          f"{result['min_after_warmup_mb']:.1f}-{result['max_after_warmup_mb']:.1f} MB from 25% of the run on, "
          f"peak {result['peak_mb']:.1f} MB")
    if not args.keep:
        import shutil

        shutil.rmtree(export_root, ignore_errors=True)
    else:
        print(f"archive kept under {export_root}")


if __name__ == "__main__":
    main()
