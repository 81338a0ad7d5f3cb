"""The apps wired together as deployed: messages carry attachments members can fetch,
offline devices get pushes with the unread badge, and contact.joined pushes too."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from streams.presence import device_online
from tests.contacts.conftest import discovery_of, sync
from tests.factories import sign_in


@pytest.fixture
def push_file(settings, tmp_path):
    settings.PUSH_BACKEND = "file"
    settings.PUSH_FILE_PATH = str(tmp_path / "push.jsonl")
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "push.jsonl"


def pushed(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.django_db
def test_image_message_is_fetchable_by_members_only(alice, bob, carol, push_file, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        upload = alice.client.post(
            "/api/v1/attachments", {"file": SimpleUploadedFile("p.png", png_bytes(), "image/png")}, format="multipart"
        )
    assert upload.status_code == 201, upload.json()
    conversation = alice.client.post("/api/v1/conversations", {"type": "direct", "user_id": str(bob.user.pk)},
                                     format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        sent = alice.client.post(
            f"/api/v1/conversations/{conversation['id']}/messages",
            {"client_id": str(uuid.uuid4()), "type": "image", "attachment_id": upload.json()["id"]},
            format="json",
        )
    assert sent.status_code == 201, sent.json()
    attachment = sent.json()["attachment"]
    assert attachment["id"] == upload.json()["id"] and attachment["width"] == 8
    content = f"/api/v1/attachments/{attachment['id']}/content"
    assert bob.client.get(content).status_code == 200
    assert carol.client.get(content).status_code == 404


@pytest.mark.django_db
def test_offline_devices_get_a_push_with_the_unread_badge_and_online_ones_do_not(
    alice, bob, push_file, django_capture_on_commit_callbacks
):
    bob.client.put("/api/v1/devices/current/push", {"provider": "fcm", "token": "bob-phone"}, format="json")
    tablet = bob.another_device()
    tablet.client.put("/api/v1/devices/current/push", {"provider": "apns", "token": "bob-tablet"}, format="json")
    device_online(user_id=bob.user.pk, device_id=tablet.device.pk)
    conversation = alice.client.post("/api/v1/conversations", {"type": "direct", "user_id": str(bob.user.pk)},
                                     format="json").json()
    for text in ("one", "two"):
        with django_capture_on_commit_callbacks(execute=True):
            alice.client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                              {"client_id": str(uuid.uuid4()), "type": "text", "text": text}, format="json")
    lines = pushed(push_file)
    assert {line["token"] for line in lines} == {"bob-phone"}
    assert lines[-1]["kind"] == "message.new"
    assert lines[-1]["conversation_id"] == conversation["id"]
    assert lines[-1]["badge"] == 2


@pytest.mark.django_db
def test_contact_joined_reaches_the_book_owner_as_a_push(alice, push_file, settings,
                                                        django_capture_on_commit_callbacks):
    from accounts.services import otp_request, otp_verify

    alice.client.put("/api/v1/devices/current/push", {"provider": "fcm", "token": "alice-phone"}, format="json")
    newcomer = "+447911123999"
    assert sync(alice.client, discovery_of(alice.client), [newcomer]).status_code == 200
    settings.OTP_TEST_NUMBERS = [newcomer]
    otp_request(phone=newcomer, client_ip="10.0.0.1")
    with django_capture_on_commit_callbacks(execute=True):
        otp_verify(phone=newcomer, code=settings.OTP_TEST_CODE, device_name="P", platform="ios", client_ip="10.0.0.1")
    assert [line["kind"] for line in pushed(push_file)] == ["contact.joined"]
    assert pushed(push_file)[0]["token"] == "alice-phone"
    # Nobody else was told.
    assert sign_in().client.get("/api/v1/sync").json()["events"] == []
