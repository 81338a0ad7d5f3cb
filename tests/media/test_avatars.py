"""Profile pictures: PUT|DELETE /me/avatar, served to whoever may see the profile."""

from __future__ import annotations

import io
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from accounts import services as account_services
from media.models import Avatar
from tests.media import mediafiles

pytestmark = pytest.mark.django_db


def put_avatar(who, data: bytes, name: str = "me.jpg"):
    return who.client.put("/api/v1/me/avatar", {"file": SimpleUploadedFile(name, data)}, format="multipart")


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)
    return run


def test_avatar_is_cropped_square_in_two_sizes_without_exif(alice, bob, committed):
    photo = mediafiles.jpeg_with_gps(size=(1000, 700))

    response = committed(put_avatar, alice, photo)

    assert response.status_code == 200, response.content
    me = response.json()
    assert set(me) == {"id", "phone", "display_name", "about", "avatar_url", "created_at", "settings"}
    url = me["avatar_url"]
    assert url.startswith("/api/v1/avatars/")
    large = alice.client.get(url)
    small = alice.client.get(url, {"size": "small"})
    assert large.status_code == 200 and large["Content-Type"] == "image/webp"
    large_bytes, small_bytes = body_of(large), body_of(small)
    assert Image.open(io.BytesIO(large_bytes)).size == (640, 640)
    assert Image.open(io.BytesIO(small_bytes)).size == (160, 160)
    for served in (large_bytes, small_bytes):
        image = Image.open(io.BytesIO(served))
        assert len(image.getexif()) == 0
        assert b"Exif" not in served and b"PhoneMaker" not in served and b"GPSLatitude" not in served
    # Anyone who may see the profile may load the picture; the profile shows it.
    assert bob.client.get(url).status_code == 200
    assert bob.client.get(f"/api/v1/users/{alice.user.pk}").json()["avatar_url"] == url
    assert alice.client.get("/api/v1/me").json()["avatar_url"] == url


def test_a_small_picture_is_not_enlarged(alice, committed):
    url = committed(put_avatar, alice, mediafiles.image_bytes("PNG", (100, 60))).json()["avatar_url"]

    assert Image.open(io.BytesIO(body_of(alice.client.get(url)))).size == (60, 60)


def test_a_new_picture_replaces_the_old_one_and_its_files(alice, committed, stored_files):
    first = committed(put_avatar, alice, mediafiles.image_bytes("PNG", (300, 300))).json()["avatar_url"]
    second = committed(put_avatar, alice, mediafiles.image_bytes("JPEG", (300, 300), color=(0, 0, 255))).json()

    assert second["avatar_url"] != first
    _error(alice.client.get(first), 404, "not_found")
    assert alice.client.get(second["avatar_url"]).status_code == 200
    assert len(stored_files()) == 2 and Avatar.objects.count() == 1


def test_delete_removes_the_picture(alice, committed, stored_files):
    url = committed(put_avatar, alice, mediafiles.image_bytes("PNG", (300, 300))).json()["avatar_url"]

    response = committed(alice.client.delete, "/api/v1/me/avatar")

    assert response.status_code == 204
    assert alice.client.get("/api/v1/me").json()["avatar_url"] == ""
    _error(alice.client.get(url), 404, "not_found")
    assert stored_files() == []
    assert committed(alice.client.delete, "/api/v1/me/avatar").status_code == 204  # again: nothing to do


@pytest.mark.parametrize(("data", "status", "code"), [
    (mediafiles.wav_bytes(), 415, "unsupported_media_type"),
    (b"just text", 415, "unsupported_media_type"),
    (mediafiles.png_bomb_header(100_000, 100_000), 400, "validation_error"),
    (mediafiles.image_bytes("JPEG", (200, 200))[:300], 400, "validation_error"),
    (b"", 400, "validation_error"),
])
def test_bad_pictures_are_refused_and_nothing_is_stored(alice, committed, stored_files, data, status, code):
    _error(committed(put_avatar, alice, data), status, code)

    assert stored_files() == [] and not Avatar.objects.exists()
    assert alice.client.get("/api/v1/me").json()["avatar_url"] == ""


def test_a_picture_past_the_image_cap_is_413(alice, settings, stored_files):
    settings.MEDIA_MAX_SIZE = {**settings.MEDIA_MAX_SIZE, "image": 1000}

    noise = Image.frombytes("RGB", (100, 100), os.urandom(100 * 100 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")

    error = _error(put_avatar(alice, buffer.getvalue()), 413, "payload_too_large")

    assert error["details"] == {"max_size": 1000}
    assert stored_files() == []


def test_avatar_endpoints_need_authentication_and_a_known_size(alice, api, committed):
    url = committed(put_avatar, alice, mediafiles.image_bytes("PNG", (50, 50))).json()["avatar_url"]

    _error(api.get(url), 401, "unauthenticated")
    _error(api.put("/api/v1/me/avatar", {}, format="multipart"), 401, "unauthenticated")
    _error(alice.client.get(url, {"size": "huge"}), 400, "validation_error")
    _error(alice.client.get("/api/v1/avatars/not-a-uuid"), 404, "not_found")
    _error(alice.client.put("/api/v1/me/avatar", {}, format="multipart"), 400, "validation_error")


def test_avatar_changes_are_rate_limited(alice, settings, committed):
    settings.MEDIA_AVATAR_LIMIT = (1, 3600)
    assert committed(put_avatar, alice, mediafiles.image_bytes("PNG")).status_code == 200

    _error(committed(put_avatar, alice, mediafiles.image_bytes("PNG")), 429, "rate_limited")


def test_deleting_the_account_deletes_the_picture(alice, committed, stored_files):
    committed(put_avatar, alice, mediafiles.image_bytes("PNG", (80, 80)))
    assert stored_files()

    committed(account_services.user_delete, user=alice.user)

    assert stored_files() == [] and not Avatar.objects.exists()
