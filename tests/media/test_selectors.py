"""The seams messaging uses: attachment_for_message and attachment_public."""

from __future__ import annotations

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIRequestFactory

from core.errors import NotFound, ValidationFailed
from media import selectors, services
from media.tasks import make_thumbnail
from tests.media import mediafiles

pytestmark = pytest.mark.django_db


def _create(who, data: bytes, kind: str | None = None):
    return services.attachment_create(uploader=who.user, upload=SimpleUploadedFile("n.bin", data), kind=kind)


def test_attachment_for_message_returns_the_senders_attachment_of_that_kind(alice):
    voice = _create(alice, mediafiles.wav_bytes())

    found = selectors.attachment_for_message(attachment_id=str(voice.pk), sender_id=alice.user.pk, kind="voice")

    assert found.pk == voice.pk


@pytest.mark.parametrize("case", ["foreign", "wrong_kind", "unknown", "malformed", "not_a_string"])
def test_attachment_for_message_refuses_with_field_details(alice, bob, case):
    voice = _create(alice, mediafiles.wav_bytes())
    attachment_id, sender, kind = str(voice.pk), alice.user.pk, "voice"
    if case == "foreign":
        sender = bob.user.pk
    elif case == "wrong_kind":
        kind = "image"
    elif case == "unknown":
        attachment_id = str(uuid.uuid4())
    elif case == "malformed":
        attachment_id = "../../etc"
    else:
        attachment_id = {"id": attachment_id}

    with pytest.raises(ValidationFailed) as raised:
        selectors.attachment_for_message(attachment_id=attachment_id, sender_id=sender, kind=kind)

    assert list(raised.value.details) == ["attachment_id"]


def test_attachment_public_without_a_request_has_relative_urls(alice):
    image = _create(alice, mediafiles.image_bytes("PNG", (30, 20)))

    before = selectors.attachment_public(image)
    make_thumbnail(str(image.pk))
    image.refresh_from_db()
    after = selectors.attachment_public(image)

    assert before == {
        "id": str(image.pk), "kind": "image", "content_type": "image/png", "size": image.size,
        "url": f"/api/v1/attachments/{image.pk}/content", "thumbnail_url": None,
        "width": 30, "height": 20, "duration_ms": None, "name": "n.bin", "waveform": None, "compat_url": None,
    }
    assert after["thumbnail_url"] == f"/api/v1/attachments/{image.pk}/thumbnail"


def test_attachment_public_with_a_request_has_absolute_urls(alice, settings):
    settings.ALLOWED_HOSTS = ["chat.example.org"]
    voice = _create(alice, mediafiles.wav_bytes())
    request = APIRequestFactory().get("/", HTTP_HOST="chat.example.org", secure=True)

    shape = selectors.attachment_public(voice, request=request)

    assert shape["url"] == f"https://chat.example.org/api/v1/attachments/{voice.pk}/content"
    assert shape["duration_ms"] == 1500


def test_get_for_viewer_asks_the_access_check_with_ids(alice, bob, settings):
    settings.MEDIA_ACCESS_CHECK = "tests.media.test_selectors.record_and_allow"
    recorded_calls.clear()
    voice = _create(alice, mediafiles.wav_bytes())

    assert selectors.attachment_get_for_viewer(attachment_id=str(voice.pk), user_id=bob.user.pk) == voice
    assert recorded_calls == [(str(bob.user.pk), str(voice.pk))]
    # The uploader never needs the check.
    selectors.attachment_get_for_viewer(attachment_id=str(voice.pk), user_id=alice.user.pk)
    assert len(recorded_calls) == 1


def test_get_for_viewer_is_not_found_when_the_check_says_no(alice, bob, settings):
    settings.MEDIA_ACCESS_CHECK = "tests.media.test_selectors.deny"
    voice = _create(alice, mediafiles.wav_bytes())

    with pytest.raises(NotFound):
        selectors.attachment_get_for_viewer(attachment_id=str(voice.pk), user_id=bob.user.pk)


recorded_calls: list[tuple[str, str]] = []


def record_and_allow(*, user_id, attachment_id) -> bool:
    recorded_calls.append((str(user_id), str(attachment_id)))
    return True


def deny(*, user_id, attachment_id) -> bool:
    return False
