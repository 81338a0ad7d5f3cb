"""Background work of every task family, made and checked in a process of its own.

Run against a private stack (tests/reliability/test_background_outage.py):

    python -m tests.reliability.background_work prepare STATE   # users, books, conversations
    python -m tests.reliability.background_work cause STATE     # the causes: tasks due now
    python -m tests.reliability.background_work check STATE     # prints what happened, as JSON

STATE is a JSON file the steps share. Everything goes through the services and the
REST API (in-process test client), as the real server does.
"""

from __future__ import annotations

import io
import json
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
django.setup()

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.utils import timezone  # noqa: E402
from PIL import Image  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from accounts.models import Device, User  # noqa: E402
from accounts.services import device_create  # noqa: E402

FAMILIES = ["contact_joined", "fanout", "push", "thumbnail", "export", "red_packet_refund", "call_timeout"]
# Causes that need no cache (the send path's spam screen does): for a broker (Redis) that is down.
BROKER_FAMILIES = ["contact_joined", "fanout_rename", "push_notify", "thumbnail"]


def client(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def person(name: str, phone: str | None = None) -> dict[str, str]:
    from tests.factories import next_phone

    # Anyone may add these people to a group (the default is contacts only; the test's group
    # members are not the creator's contacts, and would be invited instead of added).
    user = User.objects.create_user(phone=phone or next_phone(), display_name=name, group_add="everyone")
    device, token = device_create(user=user, name="Phone", platform="android")
    return {"user": str(user.pk), "device": str(device.pk), "token": token}


def prepare(state: dict[str, Any]) -> None:
    from contacts.services import pepper_ensure_current
    from messaging import services as messaging
    from payments.services import topup_create
    from tests.contacts.conftest import discovery_of, sync

    pepper_ensure_current()
    state["newcomer_phone"] = f"+4477008{uuid.uuid4().int % 100000:05d}"
    state["owners"] = [person(f"Owner {i}") for i in range(3)]
    for owner in state["owners"]:
        response = sync(client(owner["token"]), discovery_of(client(owner["token"])), [state["newcomer_phone"]])
        assert response.status_code == 200, response.content
    alice, bob = person("Alice"), person("Bob")
    response = client(bob["token"]).put("/api/v1/devices/current/push", {"provider": "fcm", "token": "bob-fcm"},
                                        format="json")
    assert response.status_code in (200, 204), response.content
    state["alice"], state["bob"] = alice, bob
    state["direct"] = client(alice["token"]).post(
        "/api/v1/conversations", {"type": "direct", "user_id": bob["user"]}, format="json").json()["id"]
    members = [person(f"Member {i}") for i in range(6)]
    state["members"] = members
    group, _ = messaging.conversation_create(creator=User.objects.get(pk=alice["user"]), type="group",
                                             title="big", member_ids=[m["user"] for m in members])
    state["group"] = group["id"]
    topup_create(user=User.objects.get(pk=alice["user"]), client_id=uuid.uuid4(), amount=1000)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _attempt(state: dict[str, Any], family: str, work: Any) -> None:
    """Run one cause; record whether it raised (a broker outage must not reach the caller)."""
    try:
        work()
        state.setdefault("raised", {})[family] = None
    except Exception as exc:
        import traceback

        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "site-packages" not in f.filename]
        where = " <- ".join(f"{'/'.join(f.filename.split('/')[-2:])}:{f.lineno}" for f in reversed(frames[-6:]))
        state.setdefault("raised", {})[family] = f"{type(exc).__name__}: {str(exc)[:200]} at {where}"


def cause(state: dict[str, Any], families: list[str]) -> None:
    from calls import services as calls
    from contacts.services import contacts_user_registered
    from media import services as media
    from messaging import services as messaging
    from redpackets import services as redpackets
    from redpackets.models import Packet
    from tests.calls.conftest import SDP_OFFER

    alice = User.objects.get(pk=state["alice"]["user"])

    def contact_joined() -> None:
        newcomer = person("Newcomer", phone=state["newcomer_phone"])
        state["newcomer"] = newcomer
        contacts_user_registered(user_id=newcomer["user"])

    def fanout() -> None:
        # The message is found by client_id: with the broker down the send commits and then
        # reports the failed doorbell (a client retries with the same client_id).
        state["group_client_id"] = str(uuid.uuid4())
        messaging.message_send(sender=alice, conversation_id=state["group"],
                               payload={"client_id": state["group_client_id"], "type": "text", "text": "all"})

    def push() -> None:
        state["direct_client_id"] = str(uuid.uuid4())
        messaging.message_send(sender=alice, conversation_id=state["direct"],
                               payload={"client_id": state["direct_client_id"], "type": "text", "text": "hi"})

    def fanout_rename() -> None:
        # A big group's rename reaches every member through a fan-out job, like a message.
        messaging.conversation_update(actor=alice, conversation_id=state["group"], title="renamed")
        state["renamed"] = True

    def push_notify() -> None:
        # The push API every app uses (calls, red packets, contacts): its enqueue after commit.
        from django.db import transaction

        from notifications.services import push_notify as notify

        with transaction.atomic():
            notify(user_id=state["bob"]["user"], kind="test.notice", title="Hello", body="there",
                   dedupe_key=f"test.notice:{uuid.uuid4()}")
        state["pushed"] = True

    def thumbnail() -> None:
        # The upload service past its rate limit (kept in Redis, so it needs Redis up).
        upload = SimpleUploadedFile("red.png", _png(), content_type="image/png")
        state["attachment"] = str(media.attachment_create_from_file(uploader=alice, upload=upload).pk)

    def export() -> None:
        response = client(state["bob"]["token"]).post("/api/v1/me/exports")
        assert response.status_code in (200, 201, 202), response.content
        state["export"] = response.json()["id"]

    def red_packet_refund() -> None:
        packet, _ = redpackets.packet_send(sender=alice, conversation_id=state["group"], client_id=uuid.uuid4(),
                                           total=300, count=3, mode="random")
        Packet.objects.filter(pk=packet["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
        state["packet"] = packet["id"]

    def call_timeout() -> None:
        call_id = uuid.uuid4()
        calls.call_offer(user=alice, device_id=state["alice"]["device"], call_id=call_id,
                         conversation_id=state["direct"], media="audio", remote_control=False, sdp=SDP_OFFER)
        state["call"] = str(call_id)

    work = {"contact_joined": contact_joined, "fanout": fanout, "push": push, "thumbnail": thumbnail,
            "fanout_rename": fanout_rename, "push_notify": push_notify,
            "export": export, "red_packet_refund": red_packet_refund, "call_timeout": call_timeout}
    for family in families:
        _attempt(state, family, work[family])


def check(state: dict[str, Any]) -> dict[str, Any]:
    """Per family: how many of each expected effect exist (1 everywhere means exactly once)."""
    from django.db.models import Q

    from calls.models import Call
    from core.models import OutboxTask
    from exports.models import Export
    from media.models import Attachment
    from messaging.models import Message
    from notifications.models import PushDelivery
    from redpackets.models import Refund
    from streams.models import Event

    seen: dict[str, Any] = {}
    if "newcomer" in state:
        seen["contact_joined"] = [
            Event.objects.filter(user_id=o["user"], type="contact.joined").count() for o in state["owners"]]
    group_message = Message.objects.filter(client_id=state.get("group_client_id")).first()
    if group_message is not None:
        seen["fanout"] = [Event.objects.filter(user_id=m["user"], type="message.new",
                                               ref_id=group_message.pk).count() for m in state["members"]]
    direct_message = Message.objects.filter(client_id=state.get("direct_client_id")).first()
    if direct_message is not None:
        bob_device = Device.objects.get(pk=state["bob"]["device"])
        rows = PushDelivery.objects.filter(device=bob_device, message_id=direct_message.pk)
        # Sent itself, or carried by a later push to the same device and conversation that was sent
        # (the call's ring or missed-call push collapses it, as it would on a phone).
        delivered = rows.filter(Q(status="sent") | Q(status="collapsed", collapsed_into__status="sent"))
        seen["push"] = [delivered.count(), rows.count()]
    if "renamed" in state:
        seen["fanout_rename"] = [Event.objects.filter(user_id=m["user"], type="conversation.updated",
                                                      data__title="renamed").count() for m in state["members"]]
    if "pushed" in state:
        rows = PushDelivery.objects.filter(device_id=state["bob"]["device"], kind="test.notice")
        seen["push_notify"] = [rows.filter(status="sent").count(), rows.count()]
    if "attachment" in state:
        seen["thumbnail"] = [int(bool(Attachment.objects.get(pk=state["attachment"]).thumbnail_name))]
    if "export" in state:
        seen["export"] = [Export.objects.filter(pk=state["export"], status="ready").count(),
                          Event.objects.filter(user_id=state["bob"]["user"], type="export.ready").count()]
    if "packet" in state:
        seen["red_packet_refund"] = [Refund.objects.filter(packet_id=state["packet"]).count()]
    if "call" in state:
        call = Call.objects.get(pk=state["call"])
        seen["call_timeout"] = [int(call.state == "ended" and call.end_reason == "missed"),
                                Message.objects.filter(conversation_id=state["direct"], type="call").count()]
    seen["outbox"] = {s: OutboxTask.objects.filter(state=s).count() for s in ("pending", "done", "failed")}
    return seen


def main() -> None:
    step, path = sys.argv[1], Path(sys.argv[2])
    state = json.loads(path.read_text()) if path.exists() else {}
    if step == "prepare":
        prepare(state)
    elif step == "cause":
        cause(state, sys.argv[3].split(",") if len(sys.argv) > 3 else FAMILIES)
    elif step == "check":
        print(json.dumps(check(state)))
        return
    path.write_text(json.dumps(state))


if __name__ == "__main__":
    main()
