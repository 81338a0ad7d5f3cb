"""Floods: message sends beyond the per-sender limit get 429 / `rate_limited`, REST and socket alike.

OTP requests (tests/accounts/test_otp.py), contact discovery (tests/contacts/test_apis.py)
and socket frame floods (tests/realtime/test_consumers.py, 4008) have their own tests;
that a flood does not slow other users down is checked against a real server in
tests/reliability/test_flood_latency.py.
"""

from __future__ import annotations

import uuid

import pytest

from messaging import services as messaging_services
from messaging.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def body(text: str = "hi", client_id: str | None = None) -> dict:
    return {"client_id": client_id or str(uuid.uuid4()), "type": "text", "text": text}


@pytest.fixture
def direct(alice, bob, settings):
    settings.MESSAGING_SEND_LIMIT = (5, 60)
    conversation, _ = messaging_services.conversation_create(creator=alice.user, type="direct", user_id=bob.user.pk)
    return conversation["id"]


def test_rest_sends_past_the_limit_get_429_with_retry_after_and_store_nothing(alice, bob, direct):
    url = f"/api/v1/conversations/{direct}/messages"
    statuses = [alice.client.post(url, body(str(i)), format="json").status_code for i in range(5)]
    assert statuses == [201] * 5
    refused = alice.client.post(url, body("six"), format="json")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert Message.objects.filter(sender=alice.user).count() == 5
    # Someone else is not affected, and a retry of a stored message is still answered.
    assert bob.client.post(url, body("bob"), format="json").status_code == 201
    first = Message.objects.filter(sender=alice.user).order_by("seq").first()
    replay = alice.client.post(url, body(first.text, client_id=str(first.client_id)), format="json")
    assert replay.status_code == 200 and replay.json()["id"] == str(first.pk)


async def test_socket_sends_past_the_limit_get_rate_limited_error_frames(alice, direct, socket):
    client = await socket(alice.token)
    for i in range(8):
        await client.send({"type": "message.send", "ref": str(i), "conversation_id": direct, "message": body(str(i))})
    replies = {}
    while len(replies) < 8:
        frame = await client.recv(timeout=5)
        if frame["type"] in ("message.sent", "error"):
            replies[frame["ref"]] = frame
    kinds = sorted((f["type"], f.get("code")) for f in replies.values())
    assert kinds == [("error", "rate_limited")] * 3 + [("message.sent", None)] * 5
    await client.send({"type": "ping"})
    assert await client.recv_type("pong") == {"type": "pong"}
