"""The authorisation matrix: every endpoint and frame that names an object, tried by an outsider.

Each object kind has an owner (alice), a member (bob) and an outsider (mallory).
The outsider gets 404 `not_found` (never 403, which would confirm the object
exists), and nothing about the object reaches the outsider by any other path:
not `/sync`, not presence or typing frames, not a push.

Calls are in the matrix too: a call between alice and bob, named by mallory in every
call frame and in `GET /calls/{id}`, is `not_found`, and nothing of it (ring, SDP,
log message, push) reaches her.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.services import device_push_set
from calls import services as call_services
from messaging import services as messaging_services
from tests.factories import SignedInDevice, sign_in
from tests.media.mediafiles import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_TEXT = "the launch code is 0000"
SECRET_TITLE = "Project Nightingale"
SECRET_SDP = "a=fingerprint:sha-256 5E:CR:E7"


@pytest.fixture
def world(settings: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any) -> dict[str, Any]:
    """alice (owner) and bob (member) share a group and a direct conversation, a message and
    an attachment; mallory is an outsider with a push token on her only device."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.MEDIA_STORAGE_ALIAS = "default"
    settings.PUSH_BACKEND = "file"
    settings.PUSH_FILE_PATH = str(tmp_path / "push.jsonl")
    settings.PUSH_COLLAPSE_SECONDS = 0
    alice = sign_in(display_name="Alice")
    bob = sign_in(display_name="Bob")
    mallory = sign_in(display_name="Mallory")
    device_push_set(device=mallory.device, provider="fcm", token="mallory-push-token")
    with django_capture_on_commit_callbacks(execute=True):
        upload = alice.client.post("/api/v1/attachments", {
            "file": SimpleUploadedFile("p.png", image_bytes("PNG"), content_type="image/png")}, format="multipart")
    assert upload.status_code == 201, upload.content
    attachment = upload.json()
    group, _ = messaging_services.conversation_create(creator=alice.user, type="group", title=SECRET_TITLE,
                                                      member_ids=[bob.user.pk])
    direct, _ = messaging_services.conversation_create(creator=alice.user, type="direct", user_id=bob.user.pk)
    with django_capture_on_commit_callbacks(execute=True):
        message, _ = messaging_services.message_send(
            sender=alice.user, conversation_id=group["id"],
            payload={"client_id": str(uuid.uuid4()), "type": "image", "text": SECRET_TEXT,
                     "attachment_id": attachment["id"]})
    call_id = uuid.uuid4()
    with django_capture_on_commit_callbacks(execute=True):
        call_services.call_offer(user=alice.user, device_id=alice.device.pk, call_id=call_id,
                                 conversation_id=direct["id"], media="video", remote_control=False,
                                 sdp=f"v=0 {SECRET_SDP}")
    return {"alice": alice, "bob": bob, "mallory": mallory, "group": group["id"], "direct": direct["id"],
            "message": message["id"], "attachment": attachment, "push_path": Path(settings.PUSH_FILE_PATH),
            "call": str(call_id)}


def requests(w: dict[str, Any]) -> list[tuple[str, str, dict | None]]:
    """(method, path, body) naming each object the outsider has no right to."""
    group, direct, message, attachment = w["group"], w["direct"], w["message"], w["attachment"]["id"]
    alice_id, bob_id = str(w["alice"].user.pk), str(w["bob"].user.pk)
    text = {"client_id": str(uuid.uuid4()), "type": "text", "text": "hi"}
    rows = []
    for conversation in (group, direct):
        rows += [
            ("get", f"/api/v1/conversations/{conversation}", None),
            ("patch", f"/api/v1/conversations/{conversation}", {"title": "mine now"}),
            ("post", f"/api/v1/conversations/{conversation}/members", {"user_ids": [str(w["mallory"].user.pk)]}),
            ("patch", f"/api/v1/conversations/{conversation}/members/{bob_id}", {"role": "admin"}),
            ("delete", f"/api/v1/conversations/{conversation}/members/{bob_id}", None),
            ("delete", f"/api/v1/conversations/{conversation}/members/{alice_id}", None),
            ("put", f"/api/v1/conversations/{conversation}/mute", {"until": None}),
            ("post", f"/api/v1/conversations/{conversation}/read", {"seq": 1}),
            ("get", f"/api/v1/conversations/{conversation}/messages", None),
            ("get", f"/api/v1/conversations/{conversation}/messages?after_seq=0", None),
            ("post", f"/api/v1/conversations/{conversation}/messages", text),
        ]
    rows += [
        ("patch", f"/api/v1/messages/{message}", {"text": "edited by mallory"}),
        ("delete", f"/api/v1/messages/{message}?for=everyone", None),
        ("delete", f"/api/v1/messages/{message}?for=me", None),
        ("get", f"/api/v1/attachments/{attachment}", None),
        ("get", f"/api/v1/attachments/{attachment}/content", None),
        ("get", f"/api/v1/attachments/{attachment}/thumbnail", None),
        ("get", f"/api/v1/attachments/{attachment}/signed", None),
        ("delete", f"/api/v1/devices/{w['alice'].device.pk}", None),
        ("delete", f"/api/v1/devices/{w['bob'].device.pk}", None),
        ("get", f"/api/v1/calls/{w['call']}", None),
    ]
    return rows


def call(who: SignedInDevice, method: str, path: str, body: dict | None) -> Any:
    return getattr(who.client, method)(path, body, format="json") if body is not None else \
        getattr(who.client, method)(path)


def test_every_rest_endpoint_naming_a_foreign_object_answers_the_outsider_404(world):
    mallory = world["mallory"]
    for method, path, body in requests(world):
        response = call(mallory, method, path, body)
        assert response.status_code == 404, (method, path, response.status_code, response.content[:200])
        error = response.json()["error"]
        assert error["code"] == "not_found", (method, path, error)
        assert SECRET_TITLE not in response.content.decode() and SECRET_TEXT not in response.content.decode()


def test_the_member_gets_through_where_the_outsider_does_not(world):
    """The matrix is not vacuous: the same requests succeed for someone with rights."""
    bob = world["bob"]
    assert bob.client.get(f"/api/v1/conversations/{world['group']}").status_code == 200
    page = bob.client.get(f"/api/v1/conversations/{world['group']}/messages").json()
    assert [m["text"] for m in page["messages"]] == [SECRET_TEXT]
    assert bob.client.get(f"/api/v1/attachments/{world['attachment']['id']}/content").status_code == 200
    assert world["alice"].client.patch(f"/api/v1/messages/{world['message']}", {"text": "x"},
                                       format="json").status_code == 200


def test_the_outsider_learns_nothing_through_sync_lists_or_push(world):
    mallory = world["mallory"]
    # Everything the objects went through afterwards: more messages, edits, membership changes.
    messaging_services.message_send(sender=world["bob"].user, conversation_id=world["direct"],
                                    payload={"client_id": str(uuid.uuid4()), "type": "text", "text": SECRET_TEXT})
    sync = mallory.client.get("/api/v1/sync?cursor=0&limit=500").json()
    assert sync["events"] == []
    everything = json.dumps([sync, mallory.client.get("/api/v1/conversations").json(),
                             mallory.client.get("/api/v1/contacts").json()])
    assert SECRET_TEXT not in everything and SECRET_TITLE not in everything
    assert world["group"] not in everything and world["message"] not in everything
    pushed = world["push_path"].read_text().splitlines() if world["push_path"].exists() else []
    assert [line for line in pushed if "mallory-push-token" in line or str(mallory.device.pk) in line] == []
    calls = json.dumps([mallory.client.get("/api/v1/calls").json(), sync])
    assert world["call"] not in calls and SECRET_SDP not in calls


async def test_every_call_frame_naming_a_foreign_call_or_conversation_gets_not_found(world, socket):
    mallory = await socket(world["mallory"].token)
    call = world["call"]
    frames = [
        {"type": "call.offer", "call_id": str(uuid.uuid4()), "conversation_id": world["direct"], "media": "audio",
         "sdp": "v=0"},
        {"type": "call.offer", "call_id": str(uuid.uuid4()), "conversation_id": world["group"], "media": "audio",
         "sdp": "v=0"},
        {"type": "call.offer", "call_id": call, "to": str(world["alice"].device.pk), "sdp": "v=0"},
        {"type": "call.answer", "call_id": call, "sdp": "v=0"},
        {"type": "call.ice", "call_id": call, "candidate": "candidate:1 1 udp 1 10.0.0.9 9 typ host"},
        {"type": "call.update", "call_id": call, "media": "video"},
        {"type": "call.reject", "call_id": call},
        {"type": "call.hangup", "call_id": call},
    ]
    for index, frame in enumerate(frames):
        await mallory.send({**frame, "ref": f"c{index}"})
        reply = await mallory.recv_type("error")
        assert (reply["code"], reply["ref"]) == ("not_found", f"c{index}"), frame
        assert SECRET_SDP not in json.dumps(reply)
    await mallory.send({"type": "ping"})
    assert await mallory.recv_type("pong") == {"type": "pong"}
    # The call was not touched: bob can still answer it.
    from channels.db import database_sync_to_async

    bob = world["bob"]
    reply = await database_sync_to_async(call_services.call_answer)(
        user=bob.user, device_id=bob.device.pk, call_id=uuid.UUID(call), sdp="v=0", grant_control=False)
    assert reply["state"] == "active"


async def test_socket_frames_naming_a_foreign_conversation_get_not_found(world, socket):
    mallory = await socket(world["mallory"].token)
    await mallory.send({"type": "hello", "cursor": "0"})
    for conversation in (world["group"], world["direct"], str(uuid.uuid4()), "not-a-uuid"):
        await mallory.send({"type": "message.send", "ref": "s", "conversation_id": conversation,
                            "message": {"client_id": str(uuid.uuid4()), "type": "text", "text": "let me in"}})
        reply = await mallory.recv_type("error")
        assert (reply["code"], reply["ref"]) == ("not_found", "s")
        await mallory.send({"type": "typing", "conversation_id": conversation, "state": "start"})
        assert (await mallory.recv_type("error"))["code"] in ("not_found", "validation_error")
    await mallory.send({"type": "ping"})
    assert await mallory.recv_type("pong") == {"type": "pong"}


async def test_outsider_socket_sees_no_presence_typing_or_events_of_others(world, socket):
    mallory = await socket(world["mallory"].token)
    await mallory.send({"type": "hello", "cursor": "0"})
    await mallory.send({"type": "ping"})
    await mallory.recv_type("pong")
    # Alice and bob come online, type, send, edit: all of it within their conversations.
    alice = await socket(world["alice"].token)
    bob = await socket(world["bob"].token)
    for client in (alice, bob):
        await client.send({"type": "hello", "cursor": "0"})
    await alice.send({"type": "typing", "conversation_id": world["group"], "state": "start"})
    await alice.send({"type": "message.send", "ref": "1", "conversation_id": world["group"],
                      "message": {"client_id": str(uuid.uuid4()), "type": "text", "text": SECRET_TEXT}})
    # Bob gets the typing relay: the test is not vacuous.
    seen = []
    for _ in range(50):
        frame = await bob.recv(timeout=5)
        seen.append(frame)
        if frame["type"] == "typing":
            break
    assert any(f["type"] == "typing" for f in seen)
    await alice.close()
    await bob.close()
    # Mallory got nothing: no presence of alice or bob, no typing, no event.
    leaked = []
    loop_frames = 0
    while loop_frames < 20 and not await mallory.ws.receive_nothing(0.5):
        leaked.append(await mallory.recv())
        loop_frames += 1
    assert leaked == [], leaked
