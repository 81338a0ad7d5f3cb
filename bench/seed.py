"""Seed the bench database and print the load client's spec (tokens, conversation ids) as JSON.

Run by bench/run.py with DATABASE_URL / REDIS_URL pointing at the bench services.
Users, devices and conversations go through the real services (so the data is
what the server would have written), in bulk where the services allow it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from accounts.models import Device, User  # noqa: E402
from accounts.services import device_create  # noqa: E402
from core.crypto import new_token, token_digest  # noqa: E402
from messaging.services import SendRequest, conversation_create, message_send_many  # noqa: E402


def make_users(prefix: str, count: int) -> list[tuple[User, str]]:
    """`count` users with one device each, created in bulk; returns (user, token)."""
    users = User.objects.bulk_create(
        [User(phone=f"{prefix}{index:07d}", display_name=f"{prefix[-3:]}{index}", group_add="everyone")
         for index in range(count)],
        batch_size=2000,
    )
    tokens = [new_token() for _ in users]
    Device.objects.bulk_create(
        [Device(user=user, name="bench", platform="android", token_hash=token_digest(token))
         for user, token in zip(users, tokens, strict=True)],
        batch_size=2000,
    )
    return list(zip(users, tokens, strict=True))


def main() -> None:
    from config.celery import app

    app.conf.task_always_eager = True  # fan-out of the seeding itself runs here, not in the bench worker
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--group", type=int, default=500)
    parser.add_argument("--catchup", type=int, default=10000)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:4]
    digits = str(int(run, 16) % 900 + 100)

    senders = make_users(f"+1555{digits}1", args.pairs)
    receivers = make_users(f"+1555{digits}2", args.pairs)
    pairs = []
    for (sender, sender_token), (receiver, receiver_token) in zip(senders, receivers, strict=True):
        conversation, _ = conversation_create(creator=sender, type="direct", user_id=receiver.pk)
        pairs.append({"sender": sender_token, "receiver": receiver_token, "conversation_id": conversation["id"]})

    idle = [token for _, token in make_users(f"+1555{digits}3", args.idle)]

    members = make_users(f"+1555{digits}4", args.group)
    owner, owner_token = make_users(f"+1555{digits}5", 1)[0]
    group, _ = conversation_create(creator=owner, type="group", title="bench group",
                                member_ids=[user.pk for user, _ in members])

    # A device that was offline while `catchup` events reached its user.
    reader, reader_token = make_users(f"+1555{digits}6", 1)[0]
    writer = make_users(f"+1555{digits}7", 1)[0][0]
    chat, _ = conversation_create(creator=writer, type="direct", user_id=reader.pk)
    batch = 500
    for start in range(0, args.catchup, batch):
        results = message_send_many([
            SendRequest(sender=writer, conversation_id=chat["id"],
                        payload={"client_id": str(uuid.uuid4()), "type": "text", "text": f"backlog {index}"})
            for index in range(start, min(args.catchup, start + batch))
        ])
        failed = [result for result in results if isinstance(result, Exception)]
        if failed:
            raise SystemExit(f"seeding the backlog failed: {failed[0]!r}")
    _, catchup_token = device_create(user=reader, name="offline phone", platform="ios")
    del reader_token  # the first device stays unused; the catching-up device is a fresh one

    print(json.dumps({
        "pairs": pairs,
        "idle": idle,
        "group": {"conversation_id": group["id"], "sender": owner_token,
                  "members": [token for _, token in members]},
        "catchup": {"token": catchup_token, "events": args.catchup},
        "signup_prefix": "+15559",
    }))


if __name__ == "__main__":
    main()
