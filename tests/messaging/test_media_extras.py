"""Group avatars (PUT|DELETE /conversations/{id}/avatar) and voice notes played (POST /messages/{id}/played)."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from contacts import services as contacts_services
from tests.media import mediafiles
from tests.messaging.conftest import new_direct, new_group, stream_events

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = str(root)
    return root


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)
    return run


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


# --- Group avatars -------------------------------------------------------------------------


def put_group_avatar(who, conversation_id: str, data: bytes):
    return who.client.put(f"/api/v1/conversations/{conversation_id}/avatar",
                          {"file": SimpleUploadedFile("g.png", data)}, format="multipart")


def test_an_admin_sets_the_group_picture_and_members_are_told(alice, bob, carol, committed, media_root):
    group = new_group(alice, bob)

    response = committed(put_group_avatar, alice, group, mediafiles.jpeg_with_gps(size=(500, 300)))

    assert response.status_code == 200, response.content
    url = response.json()["avatar_url"]
    assert url.startswith("/api/v1/avatars/")
    assert bob.client.get(f"/api/v1/conversations/{group}").json()["avatar_url"] == url
    for member in (alice, bob):
        updates = [data for _, data in stream_events(member, "conversation.updated") if "avatar_url" in data]
        assert updates == [{"conversation_id": group, "avatar_url": url}]
    served = b"".join(bob.client.get(url).streaming_content)
    assert Image.open(io.BytesIO(served)).size == (300, 300)
    assert b"Exif" not in served
    _error(carol.client.get(url), 404, "not_found")  # not a member


def test_only_admins_of_groups_and_broadcasts_set_the_picture(alice, bob, carol, committed, media_root):
    group = new_group(alice, bob)
    broadcast = new_group(alice, bob, type="broadcast", title="News")
    direct = new_direct(alice, bob)
    picture = mediafiles.image_bytes("PNG", (64, 64))

    _error(committed(put_group_avatar, bob, group, picture), 403, "forbidden")
    _error(committed(put_group_avatar, carol, group, picture), 404, "not_found")
    _error(committed(put_group_avatar, alice, direct, picture), 400, "validation_error")
    _error(committed(put_group_avatar, alice, str(uuid.uuid4()), picture), 404, "not_found")
    assert not [p for p in media_root.rglob("*") if p.is_file()]  # refused before anything was stored
    assert committed(put_group_avatar, alice, broadcast, picture).status_code == 200


def test_a_bad_group_picture_is_refused_and_nothing_changes(alice, bob, committed, media_root):
    group = new_group(alice, bob)

    _error(committed(put_group_avatar, alice, group, mediafiles.wav_bytes()), 415, "unsupported_media_type")

    assert alice.client.get(f"/api/v1/conversations/{group}").json()["avatar_url"] == ""
    assert not [p for p in media_root.rglob("*") if p.is_file()]


def test_removing_the_group_picture(alice, bob, committed, media_root):
    group = new_group(alice, bob)
    url = committed(put_group_avatar, alice, group, mediafiles.image_bytes("PNG", (64, 64))).json()["avatar_url"]

    response = committed(alice.client.delete, f"/api/v1/conversations/{group}/avatar")

    assert response.status_code == 200 and response.json()["avatar_url"] == ""
    assert stream_events(bob, "conversation.updated")[-1][1] == {"conversation_id": group, "avatar_url": ""}
    _error(alice.client.get(url), 404, "not_found")
    assert not [p for p in media_root.rglob("*") if p.is_file()]


def test_replacing_the_group_picture_deletes_the_old_files(alice, bob, committed, media_root):
    group = new_group(alice, bob)
    committed(put_group_avatar, alice, group, mediafiles.image_bytes("PNG", (64, 64)))
    committed(put_group_avatar, alice, group, mediafiles.image_bytes("JPEG", (64, 64)))

    assert len([p for p in media_root.rglob("*") if p.is_file()]) == 2  # large and small of the new one


# --- Voice notes played ---------------------------------------------------------------------


def send_voice_note(sender, conversation_id: str) -> str:
    attachment = sender.client.post("/api/v1/attachments", {
        "file": SimpleUploadedFile("v.webm", mediafiles.audio_bytes("webm", 1.0)), "kind": "voice"},
        format="multipart").json()
    response = sender.client.post(f"/api/v1/conversations/{conversation_id}/messages", {
        "client_id": str(uuid.uuid4()), "type": "voice", "attachment_id": attachment["id"]}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def played(who, message_id: str):
    return who.client.post(f"/api/v1/messages/{message_id}/played")


def test_playing_a_voice_note_tells_the_sender_and_the_listeners_devices(alice, bob):
    conversation = new_direct(alice, bob)
    message_id = send_voice_note(alice, conversation)

    assert played(bob, message_id).status_code == 204
    assert played(bob, message_id).status_code == 204  # again: nothing new

    seq = alice.client.get(f"/api/v1/conversations/{conversation}/messages").json()["messages"][-1]["seq"]
    expected = [("receipt.played", {"conversation_id": conversation, "message_id": message_id, "seq": seq,
                                    "user_id": str(bob.user.pk)})]
    assert stream_events(alice, "receipt.played") == expected
    assert stream_events(bob, "receipt.played") == expected


def test_played_honours_read_receipts_off(alice, bob):
    conversation = new_direct(alice, bob)
    message_id = send_voice_note(alice, conversation)
    bob.client.patch("/api/v1/me", {"settings": {"read_receipts": False}}, format="json")

    assert played(bob, message_id).status_code == 204

    assert stream_events(alice, "receipt.played") == []
    assert len(stream_events(bob, "receipt.played")) == 1  # bob's other devices still mark it played


def test_played_in_a_group_reaches_only_the_sender(alice, bob, carol):
    group = new_group(alice, bob, carol)
    message_id = send_voice_note(alice, group)

    played(carol, message_id)

    assert len(stream_events(alice, "receipt.played")) == 1
    assert stream_events(bob, "receipt.played") == []


def test_played_refusals(alice, bob, carol):
    conversation = new_direct(alice, bob)
    voice = send_voice_note(alice, conversation)
    text = alice.client.post(f"/api/v1/conversations/{conversation}/messages", {
        "client_id": str(uuid.uuid4()), "type": "text", "text": "hi"}, format="json").json()["id"]

    _error(played(bob, text), 400, "validation_error")
    _error(played(carol, voice), 404, "not_found")
    _error(played(bob, "not-a-uuid"), 404, "not_found")
    assert played(alice, voice).status_code == 204  # one's own note: nothing recorded
    assert stream_events(alice, "receipt.played") == []
    alice.client.delete(f"/api/v1/messages/{voice}?for=everyone")
    _error(played(bob, voice), 400, "validation_error")


def test_a_blocked_listener_tells_the_sender_nothing(alice, bob):
    conversation = new_direct(alice, bob)
    message_id = send_voice_note(alice, conversation)
    contacts_services.block_create(blocker=alice.user, blocked_id=bob.user.pk)

    played(bob, message_id)

    assert stream_events(alice, "receipt.played") == []
