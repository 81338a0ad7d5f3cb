"""The attachments endpoints as a client sees them: upload, probe, serve, authorise."""

from __future__ import annotations

import io
import random
import uuid
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.core.files.storage import FileSystemStorage
from PIL import Image

from media import services
from media.models import Attachment
from tests.media import mediafiles

pytestmark = pytest.mark.django_db


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


def allow_members(*, user_id, attachment_id) -> bool:
    """Stands in for messaging.selectors.user_can_see_attachment: only users in allowed_users."""
    return str(user_id) in allowed_users


allowed_users: set[str] = set()


@pytest.fixture
def access_check(settings):
    allowed_users.clear()
    settings.MEDIA_ACCESS_CHECK = f"{__name__}.allow_members"
    yield allowed_users
    allowed_users.clear()


# --- Each kind ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_upload_image_reports_size_and_type_from_bytes(alice, upload, fmt, content_type):
    response = upload(alice, mediafiles.image_bytes(fmt, (120, 80)), name="photo", content_type="text/plain")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"id", "kind", "content_type", "size", "url", "thumbnail_url", "width", "height",
                         "duration_ms", "name", "waveform", "compat_url"}
    assert body["kind"] == "image"
    assert body["content_type"] == content_type
    assert (body["width"], body["height"]) == (120, 80)
    assert body["duration_ms"] is None
    assert body["url"] == f"http://testserver/api/v1/attachments/{body['id']}/content"
    stored = Attachment.objects.get(pk=body["id"])
    assert stored.size == body["size"] > 0
    assert stored.uploader_id == alice.user.pk


def test_upload_heic_is_decoded_and_served_as_jpeg(alice, upload):
    response = upload(alice, mediafiles.heic_bytes((64, 48)), name="IMG_0001.HEIC", kind="image")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["kind"], body["content_type"]) == ("image", "image/jpeg")
    assert (body["width"], body["height"]) == (64, 48)
    content = body_of(alice.client.get(body["url"]))
    assert content.startswith(b"\xff\xd8\xff")


def test_upload_animated_gif_keeps_its_frames(alice, upload):
    response = upload(alice, mediafiles.animated_gif(frames=3), name="party.gif")

    assert response.status_code == 201
    served = Image.open(io.BytesIO(body_of(alice.client.get(response.json()["url"]))))
    assert served.n_frames == 3


@pytest.mark.parametrize(
    ("data", "content_type", "duration_ms"),
    [
        (mediafiles.wav_bytes(seconds=1.5), "audio/wav", 1500),
        (mediafiles.audio_bytes("opus", 2.0), "audio/ogg", 2000),
        (mediafiles.audio_bytes("webm", 2.0), "audio/webm", 2000),
        (mediafiles.audio_bytes("amr", 2.0), "audio/amr", 2000),
        (mediafiles.audio_bytes("m4a", 4.2), "audio/mp4", 4200),
        (mediafiles.audio_bytes("mp3", 2.6), "audio/mpeg", 2600),
        (mediafiles.audio_bytes("aac", 2.3), "audio/aac", 2300),
    ],
    ids=["wav", "ogg-opus", "webm-opus", "amr", "m4a", "mp3", "aac"],
)
def test_upload_voice_reads_duration_from_the_container(alice, upload, data, content_type, duration_ms):
    response = upload(alice, data, name="note", kind="voice", duration_ms="999999")

    assert response.status_code == 400  # duration_ms is not the client's to say
    assert response.json()["error"]["details"] == {"duration_ms": ["Unknown field."]}

    response = upload(alice, data, name="note", kind="voice")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["kind"], body["content_type"]) == ("voice", content_type)
    # From the packets: encoders add a frame of priming or padding (at most ~90 ms here).
    assert body["duration_ms"] == pytest.approx(duration_ms, abs=90)
    assert body["width"] is None and body["thumbnail_url"] is None
    served = body_of(alice.client.get(body["url"]))
    assert mediafiles.duration_of(served) == pytest.approx(duration_ms / 1000, abs=0.1)


def test_uploads_spooled_to_disk_are_probed_and_stored_whole(alice, upload, settings, stored_files):
    # Past FILE_UPLOAD_MAX_MEMORY_SIZE Django streams the part to a temporary file.
    wav = mediafiles.wav_bytes(seconds=20)
    noise = Image.frombytes("RGB", (600, 600), random.Random(6).randbytes(600 * 600 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    assert min(len(wav), len(buffer.getvalue())) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE

    voice = upload(alice, wav, name="long.wav").json()
    image = upload(alice, buffer.getvalue(), name="noise.png").json()

    assert voice["duration_ms"] == 20_000
    served = body_of(alice.client.get(voice["url"]))
    # Remuxed without metadata: the same samples in a fresh WAV header.
    assert served[-len(wav) + 44:] == wav[44:] and voice["size"] == len(served)
    assert (image["width"], image["height"]) == (600, 600)
    assert len(stored_files()) == 3  # two originals and the image's thumbnail


def test_upload_video_reads_duration_and_size(alice, upload):
    response = upload(alice, mediafiles.video_bytes("mp4", 3.0, size=(320, 240)), name="clip.mp4")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["kind"], body["content_type"]) == ("video", "video/mp4")
    assert body["duration_ms"] == pytest.approx(3000, abs=60)
    assert (body["width"], body["height"]) == (320, 240)


def test_upload_without_kind_of_unknown_bytes_is_an_opaque_file(alice, upload):
    response = upload(alice, b"%PDF-1.4 not really\n", name="report.pdf", content_type="application/pdf")

    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["content_type"], body["name"]) == ("file", "application/octet-stream", "report.pdf")


def test_file_kind_is_always_served_as_a_download(alice, upload):
    html = b"<html><script>alert(document.cookie)</script></html>"
    body = upload(alice, html, name="page.html", content_type="text/html", kind="file").json()

    response = alice.client.get(body["url"])

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert 'filename="page.html"' in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert body_of(response) == html


def test_an_image_sent_as_file_kind_is_served_as_a_download(alice, upload):
    body = upload(alice, mediafiles.image_bytes("PNG"), name="scan.png", kind="file").json()

    assert (body["kind"], body["content_type"], body["width"]) == ("file", "application/octet-stream", None)
    assert alice.client.get(body["url"])["Content-Disposition"].startswith("attachment;")


# --- Thumbnails and EXIF --------------------------------------------------------------


def test_image_thumbnail_is_made_by_the_task_and_served(alice, upload, settings):
    settings.MEDIA_THUMBNAIL_SIZE = 100
    body = upload(alice, mediafiles.image_bytes("JPEG", (400, 200)), name="wide.jpg").json()

    assert body["thumbnail_url"] is None  # the response is built before the task runs
    detail = alice.client.get(f"/api/v1/attachments/{body['id']}").json()
    assert detail["thumbnail_url"] == f"http://testserver/api/v1/attachments/{body['id']}/thumbnail"

    response = alice.client.get(detail["thumbnail_url"])

    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    thumb = Image.open(io.BytesIO(body_of(response)))
    assert (thumb.format, thumb.size) == ("WEBP", (100, 50))


def test_thumbnail_is_404_until_it_is_made(alice, bob):
    attachment = _attachment_row(alice)

    assert alice.client.get(f"/api/v1/attachments/{attachment.pk}/thumbnail").status_code == 404


def test_exif_gps_is_stripped_from_what_is_served(alice, upload):
    original = mediafiles.jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(mediafiles.GPS_IFD)  # the test's premise
    assert b"GPSLatitude" in original

    body = upload(alice, original, name="holiday.jpg").json()
    served = body_of(alice.client.get(body["url"]))

    image = Image.open(io.BytesIO(served))
    assert not image.getexif().get_ifd(mediafiles.GPS_IFD)
    assert len(image.getexif()) == 0
    assert b"Exif" not in served and b"PhoneMaker" not in served
    assert b"GPSLatitude" not in served and b"xmpmeta" not in served
    assert body["size"] == len(served)


def test_exif_orientation_is_applied_to_the_pixels(alice, upload):
    # Orientation 6: the camera was turned; viewers rotate 90 degrees clockwise.
    body = upload(alice, mediafiles.jpeg_with_gps(size=(80, 40), orientation=6), name="turned.jpg").json()

    assert (body["width"], body["height"]) == (40, 80)
    image = Image.open(io.BytesIO(body_of(alice.client.get(body["url"]))))
    assert image.size == (40, 80)
    assert image.getexif().get(mediafiles.ORIENTATION) is None
    # The yellow marker from the top-left corner is now top-right.
    red, green, blue = image.getpixel((35, 3))
    assert red > 200 and green > 200 and blue < 80


# --- Access control -------------------------------------------------------------------


def test_uploader_can_read_content_and_metadata(alice, upload):
    data = mediafiles.wav_bytes()
    body = upload(alice, data, name="note.wav").json()

    content = alice.client.get(body["url"])
    detail = alice.client.get(f"/api/v1/attachments/{body['id']}")

    assert content.status_code == 200
    assert content["Content-Type"] == "audio/wav"
    assert content["Accept-Ranges"] == "bytes"
    assert int(content["Content-Length"]) == len(data)
    assert body_of(content) == data
    assert detail.status_code == 200
    # The waveform task ran after the upload answered.
    assert body["waveform"] is None and len(detail.json()["waveform"]) == 64
    assert {**detail.json(), "waveform": None} == body


def test_another_device_of_the_uploader_can_read(alice, upload):
    body = upload(alice, mediafiles.wav_bytes(), name="note.wav").json()

    assert alice.another_device().client.get(body["url"]).status_code == 200


def test_non_member_gets_404_for_content_metadata_and_thumbnail(alice, bob, upload, access_check):
    body = upload(alice, mediafiles.image_bytes("PNG"), name="p.png").json()

    for path in ("content", "thumbnail", ""):
        response = bob.client.get(f"/api/v1/attachments/{body['id']}/{path}".rstrip("/"))
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_member_allowed_by_the_access_check_can_read(alice, bob, carol, upload, access_check):
    body = upload(alice, mediafiles.wav_bytes(), name="note.wav").json()
    access_check.add(str(bob.user.pk))

    assert bob.client.get(body["url"]).status_code == 200
    assert bob.client.get(f"/api/v1/attachments/{body['id']}").json()["id"] == body["id"]
    assert carol.client.get(body["url"]).status_code == 404


def test_without_an_access_check_only_the_uploader_can_read(alice, bob, upload, settings):
    settings.MEDIA_ACCESS_CHECK = ""
    body = upload(alice, mediafiles.wav_bytes(), name="note.wav").json()

    assert bob.client.get(body["url"]).status_code == 404


def test_content_needs_authentication(alice, upload, api):
    body = upload(alice, mediafiles.wav_bytes(), name="note.wav").json()

    response = api.get(body["url"])

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_unknown_or_malformed_id_is_404(alice):
    assert alice.client.get(f"/api/v1/attachments/{uuid.uuid4()}/content").status_code == 404
    assert alice.client.get("/api/v1/attachments/not-a-uuid/content").status_code == 404
    assert alice.client.get("/api/v1/attachments/not-a-uuid").status_code == 404


def test_content_ignores_the_players_accept_header(alice, upload):
    body = upload(alice, mediafiles.audio_bytes("opus"), name="v.opus").json()

    response = alice.client.get(body["url"], HTTP_ACCEPT="audio/ogg")

    assert response.status_code == 200
    assert response["Content-Type"] == "audio/ogg"


# --- Signed links (extension) ------------------------------------------------------------


def test_signed_link_works_without_a_bearer_header(alice, upload, api):
    data = mediafiles.wav_bytes()
    body = upload(alice, data, name="note.wav").json()

    links = alice.client.get(f"/api/v1/attachments/{body['id']}/signed").json()

    assert links["url"].startswith(body["url"] + "?token=")
    assert links["thumbnail_url"] is None and links["expires_at"].endswith("Z")
    response = api.get(links["url"], HTTP_RANGE="bytes=0-3")
    assert response.status_code == 206
    assert body_of(response) == data[:4]


def test_signed_thumbnail_link(alice, upload, api):
    body = upload(alice, mediafiles.image_bytes("PNG", (400, 400)), name="p.png").json()

    links = alice.client.get(f"/api/v1/attachments/{body['id']}/signed").json()

    response = api.get(links["thumbnail_url"])
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"


def test_signed_link_expires(alice, upload, api, settings):
    body = upload(alice, mediafiles.wav_bytes(), name="note.wav").json()
    links = alice.client.get(f"/api/v1/attachments/{body['id']}/signed").json()
    settings.MEDIA_SIGNED_URL_TTL = -1  # every token is now older than its lifetime

    _error(api.get(links["url"]), 401, "unauthenticated")


def test_signed_link_is_bound_to_its_attachment_and_cannot_be_forged(alice, upload, api):
    first = upload(alice, mediafiles.wav_bytes(), name="a.wav").json()
    second = upload(alice, mediafiles.wav_bytes(), name="b.wav").json()
    token = alice.client.get(f"/api/v1/attachments/{first['id']}/signed").json()["url"].split("token=")[1]

    _error(api.get(f"{second['url']}?token={token}"), 401, "unauthenticated")
    _error(api.get(f"{first['url']}?token={token[:-2]}xx"), 401, "unauthenticated")


def test_signed_link_stops_working_when_access_is_lost(alice, bob, upload, api, access_check):
    body = upload(alice, mediafiles.wav_bytes(), name="note.wav").json()
    access_check.add(str(bob.user.pk))
    links = bob.client.get(f"/api/v1/attachments/{body['id']}/signed").json()
    assert api.get(links["url"]).status_code == 200

    access_check.discard(str(bob.user.pk))  # bob left the conversation

    _error(api.get(links["url"]), 404, "not_found")


def test_non_member_cannot_get_signed_links(alice, bob, upload, access_check):
    body = upload(alice, mediafiles.wav_bytes(), name="note.wav").json()

    _error(bob.client.get(f"/api/v1/attachments/{body['id']}/signed"), 404, "not_found")


# --- Redirect to the object store (S3-compatible storage) -------------------------------------


class PresigningStorage(FileSystemStorage):
    """Local files with an S3-like `url(name, parameters, expire)`: what django-storages' S3Storage offers."""

    def url(self, name, parameters=None, expire=None, http_method=None):
        return f"https://bucket.example/{name}?{urlencode({**(parameters or {}), 'X-Amz-Expires': expire})}"


@pytest.fixture
def presigning_storage(settings):
    settings.STORAGES = {**settings.STORAGES, "presigning": {"BACKEND": f"{__name__}.PresigningStorage"}}
    settings.MEDIA_STORAGE_ALIAS = "presigning"
    settings.MEDIA_SERVE_REDIRECT = True


def test_redirect_mode_sends_members_to_a_presigned_url(alice, bob, upload, presigning_storage, settings,
                                                        access_check):
    body = upload(alice, b"%PDF-1.4", name="r.pdf", kind="file").json()
    storage_name = Attachment.objects.get(pk=body["id"]).storage_name

    response = alice.client.get(body["url"])

    assert response.status_code == 302
    target = urlparse(response["Location"])
    query = parse_qs(target.query)
    assert (target.netloc, target.path) == ("bucket.example", f"/{storage_name}")
    assert query["ResponseContentType"] == ["application/octet-stream"]
    assert query["ResponseContentDisposition"][0].startswith("attachment;")
    assert query["X-Amz-Expires"] == [str(settings.MEDIA_SIGNED_URL_TTL)]
    assert "no-store" in response["Cache-Control"]
    # Authorisation still happens here, before any URL is handed out.
    assert bob.client.get(body["url"]).status_code == 404


def test_redirect_mode_with_the_real_s3_backend_signs_the_url(alice, settings):
    """django-storages' S3Storage presigns locally (no network): check what a bucket would get."""
    settings.STORAGES = {**settings.STORAGES, "s3": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": "attachments", "endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1",
        "access_key": "test-key", "secret_key": "test-secret", "querystring_auth": True,
        "signature_version": "s3v4"}}}
    settings.MEDIA_STORAGE_ALIAS = "s3"
    settings.MEDIA_SERVE_REDIRECT = True
    attachment = _attachment_row(alice)

    response = alice.client.get(f"/api/v1/attachments/{attachment.pk}/content")

    assert response.status_code == 302
    target = urlparse(response["Location"])
    query = parse_qs(target.query)
    assert target.netloc == "127.0.0.1:9" and target.path == f"/attachments/{attachment.storage_name}"
    assert query["response-content-type"] == ["image/png"]
    assert query["X-Amz-Expires"] == [str(settings.MEDIA_SIGNED_URL_TTL)]
    assert "X-Amz-Signature" in query


# --- Range requests -------------------------------------------------------------------


@pytest.fixture
def voice_note(alice, upload):
    data = mediafiles.wav_bytes(seconds=1.0)
    return upload(alice, data, name="note.wav").json(), data


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-50", -50, None), ("bytes=10-999999", 10, None)],
)
def test_range_request_returns_206_with_the_slice(alice, voice_note, header, first, last):
    body, data = voice_note
    size = len(data)
    start = first if first >= 0 else size + first
    end = last if last is not None else size - 1

    response = alice.client.get(body["url"], HTTP_RANGE=header)

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert int(response["Content-Length"]) == end - start + 1
    assert body_of(response) == data[start:end + 1]


def test_range_past_the_end_is_416_with_the_error_shape(alice, voice_note):
    body, data = voice_note

    response = alice.client.get(body["url"], HTTP_RANGE=f"bytes={len(data)}-")

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(data)}"
    assert response.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize("header", ["bytes=5-1", "items=0-10", "bytes=0-1,5-6", "bytes=abc"])
def test_unusable_range_header_sends_the_whole_file(alice, voice_note, header):
    body, data = voice_note

    response = alice.client.get(body["url"], HTTP_RANGE=header)

    assert response.status_code == 200
    assert body_of(response) == data


def test_if_range_with_another_version_sends_the_whole_file(alice, voice_note):
    body, data = voice_note
    etag = alice.client.get(body["url"])["ETag"]

    stale = alice.client.get(body["url"], HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"other"')
    fresh = alice.client.get(body["url"], HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag)

    assert stale.status_code == 200 and body_of(stale) == data
    assert fresh.status_code == 206 and body_of(fresh) == data[:10]


def test_non_member_range_request_is_404(alice, bob, voice_note, access_check):
    body, _ = voice_note

    assert bob.client.get(body["url"], HTTP_RANGE="bytes=0-9").status_code == 404


# --- Bad input: a clear error and nothing left on disk -------------------------------


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


def test_bytes_that_do_not_match_the_claimed_kind_are_415(alice, upload, stored_files):
    error = _error(upload(alice, mediafiles.wav_bytes(), name="cat.jpg", content_type="image/jpeg", kind="image"),
                   415, "unsupported_media_type")
    assert "kind" in error["details"]
    _error(upload(alice, b"just some text", name="cat.jpg", content_type="image/jpeg", kind="image"),
           415, "unsupported_media_type")
    _error(upload(alice, mediafiles.image_bytes("PNG"), name="a.mp4", kind="video"), 415, "unsupported_media_type")
    # An audio-only MP4 is a voice note, not a video.
    _error(upload(alice, mediafiles.audio_bytes("m4a"), name="a.mp4", kind="video"), 415, "unsupported_media_type")
    _error(upload(alice, mediafiles.audio_bytes("webm"), name="a.webm", kind="video"), 415, "unsupported_media_type")
    assert stored_files() == []
    assert not Attachment.objects.exists()


def test_name_and_header_do_not_decide_the_type(alice, upload):
    body = upload(alice, mediafiles.image_bytes("PNG"), name="photo.jpg", content_type="image/jpeg").json()

    assert body["content_type"] == "image/png"


def test_zero_byte_file_is_400(alice, upload, stored_files):
    error = _error(upload(alice, b"", name="empty.jpg", kind="image"), 400, "validation_error")

    assert "file" in error["details"]
    assert stored_files() == []


def test_truncated_image_is_400(alice, upload, stored_files):
    whole = mediafiles.image_bytes("JPEG", (200, 200))
    error = _error(upload(alice, whole[: len(whole) // 2], name="cut.jpg"), 400, "validation_error")

    assert error["details"] == {"file": ["The image is truncated or corrupt."]}
    whole_png = mediafiles.image_bytes("PNG", (200, 200))
    _error(upload(alice, whole_png[:-40], name="cut.png"), 400, "validation_error")
    assert stored_files() == []
    assert not Attachment.objects.exists()


def test_decompression_bomb_is_refused_before_decoding(alice, upload, stored_files):
    error = _error(upload(alice, mediafiles.png_bomb_header(100_000, 100_000), name="bomb.png"),
                   400, "validation_error")

    assert error["details"] == {"file": ["The image has too many pixels."]}
    assert stored_files() == []


def test_image_over_the_pixel_setting_is_refused(alice, upload, settings, stored_files):
    settings.MEDIA_IMAGE_MAX_PIXELS = 100 * 100

    _error(upload(alice, mediafiles.image_bytes("PNG", (101, 100)), name="big.png"), 400, "validation_error")
    assert upload(alice, mediafiles.image_bytes("PNG", (100, 100)), name="ok.png").status_code == 201


def test_animation_with_too_many_frames_or_pixels_is_refused(alice, upload, settings, stored_files):
    settings.MEDIA_IMAGE_MAX_FRAMES = 2
    error = _error(upload(alice, mediafiles.animated_gif(frames=3), name="a.gif"), 400, "validation_error")
    assert error["details"] == {"file": ["The image has too many frames."]}

    settings.MEDIA_IMAGE_MAX_FRAMES = 300
    settings.MEDIA_IMAGE_MAX_PIXELS = 32 * 32 * 2  # one frame fits; three frames in total do not
    error = _error(upload(alice, mediafiles.animated_gif(frames=3), name="a.gif"), 400, "validation_error")
    assert error["details"] == {"file": ["The image has too many pixels."]}
    assert stored_files() == []


def test_jpeg_with_an_appended_zip_is_stored_without_the_payload(alice, upload):
    payload = b"PK\x03\x04" + b"evil.html<script>alert(1)</script>" * 10
    body = upload(alice, mediafiles.image_bytes("JPEG") + payload, name="polyglot.jpg").json()

    served = body_of(alice.client.get(body["url"]))

    assert body["kind"] == "image"
    assert b"PK\x03\x04" not in served and b"<script>" not in served
    Image.open(io.BytesIO(served)).verify()


def test_gif_with_a_script_comment_is_stored_without_it(alice, upload):
    image = Image.new("P", (16, 16), 3)
    buffer = io.BytesIO()
    image.save(buffer, format="GIF", comment=b"*/=alert(document.domain)//")
    assert b"alert" in buffer.getvalue()  # the test's premise

    body = upload(alice, buffer.getvalue(), name="x.gif").json()
    response = alice.client.get(body["url"])

    assert b"alert" not in body_of(response)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]


def test_html_behind_an_image_magic_is_refused(alice, upload, stored_files):
    _error(upload(alice, b"GIF89a<html><script>alert(1)</script></html>", name="x.gif"), 400, "validation_error")
    assert stored_files() == []


def test_corrupt_recording_is_400(alice, upload, stored_files):
    _error(upload(alice, b"#!AMR\n" + b"\xff" * 40, name="x.amr"), 400, "validation_error")
    _error(upload(alice, b"OggS" + b"\x00" * 100, name="x.opus", kind="voice"), 415, "unsupported_media_type")
    _error(upload(alice, mediafiles.video_bytes()[:60], name="x.mp4"), 400, "validation_error")
    _error(upload(alice, mediafiles.wav_bytes()[:30], name="x.wav"), 400, "validation_error")
    assert stored_files() == []


def test_empty_recording_is_400(alice, upload):
    error = _error(upload(alice, mediafiles.wav_bytes(seconds=0), name="x.wav"), 400, "validation_error")

    assert error["details"] == {"file": ["The recording has no duration."]}


def test_name_with_path_separators_is_reduced_to_a_display_name(alice, upload, media_root, stored_files):
    body = upload(alice, mediafiles.wav_bytes(), name="../../etc/cron.d/evil\x07.wav").json()

    assert body["name"] == "evil.wav"
    attachment = Attachment.objects.get(pk=body["id"])
    assert "evil" not in attachment.storage_name
    assert attachment.storage_name.startswith("attachments/")
    assert stored_files() == [attachment.storage_name]
    assert not (media_root.parent / "etc").exists()


def test_backslash_path_in_name_is_reduced_too(alice, upload):
    body = upload(alice, b"data", name="..\\..\\windows\\system32\\x.dll", kind="file").json()

    assert body["name"] == "x.dll"


def test_oversized_upload_is_413(alice, upload, settings, stored_files):
    settings.MEDIA_MAX_SIZE = {"image": 100_000, "voice": 2_000, "video": 100_000, "file": 100_000}

    error = _error(upload(alice, mediafiles.wav_bytes(seconds=1), name="long.wav"), 413, "payload_too_large")

    assert error["details"] == {"max_size": 2_000}
    assert stored_files() == []
    assert not Attachment.objects.exists()


def test_upload_past_the_largest_cap_is_cut_off_before_the_service(alice, upload, settings, monkeypatch,
                                                                    stored_files):
    settings.MEDIA_MAX_SIZE = {"image": 100_000, "voice": 2_000, "video": 100_000, "file": 100_000}

    def never_called(**kwargs):
        raise AssertionError("the body should have been refused while streaming")

    monkeypatch.setattr(services, "attachment_create", never_called)

    error = _error(upload(alice, b"x" * 200_000, name="huge.bin", kind="file"), 413, "payload_too_large")

    assert error["details"] == {"max_size": 100_000}
    assert stored_files() == []


def test_missing_file_field_is_400(alice, stored_files):
    response = alice.client.post("/api/v1/attachments", {"kind": "image"}, format="multipart")

    error = _error(response, 400, "validation_error")
    assert "file" in error["details"]


def test_two_files_are_400(alice, stored_files):
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [SimpleUploadedFile("a", b"aaa"), SimpleUploadedFile("b", b"bbb")]
    response = alice.client.post("/api/v1/attachments", {"file": files}, format="multipart")

    _error(response, 400, "validation_error")
    assert stored_files() == []


def test_unknown_kind_and_unknown_fields_are_400(alice, upload):
    error = _error(upload(alice, b"abc", name="a", kind="sticker"), 400, "validation_error")
    assert "kind" in error["details"]
    error = _error(upload(alice, b"abc", name="a", width="10"), 400, "validation_error")
    assert error["details"] == {"width": ["Unknown field."]}


def test_malformed_multipart_body_is_400(alice, stored_files):
    response = alice.client.generic("POST", "/api/v1/attachments", b"--nope\r\nContent-Disposition: form-data",
                                    content_type="multipart/form-data; boundary=")

    _error(response, 400, "validation_error")
    assert stored_files() == []


def test_json_body_is_415(alice):
    response = alice.client.post("/api/v1/attachments", {"file": "aGVsbG8="}, format="json")

    _error(response, 415, "unsupported_media_type")


def test_upload_needs_authentication(api, stored_files):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api.post("/api/v1/attachments", {"file": SimpleUploadedFile("a.wav", b"abc")}, format="multipart")

    _error(response, 401, "unauthenticated")
    assert stored_files() == []


def test_uploads_are_rate_limited_per_user(alice, upload, settings):
    settings.MEDIA_UPLOAD_LIMIT = (2, 3600)

    assert upload(alice, b"one", name="1", kind="file").status_code == 201
    assert upload(alice, b"two", name="2", kind="file").status_code == 201
    response = upload(alice, b"three", name="3", kind="file")

    _error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) > 0


def _attachment_row(who) -> Attachment:
    return Attachment.objects.create(uploader=who.user, kind="image", content_type="image/png", size=1,
                                     storage_name=f"attachments/x/{uuid.uuid4().hex}", sha256="0" * 64)


@pytest.mark.parametrize("if_range", ['W/"{etag}"', "Wed, 21 Oct 2015 07:28:00 GMT", '"{etag}-t"', "{etag}"])
def test_if_range_that_is_not_the_current_strong_etag_restarts_the_download(alice, voice_note, if_range):
    body, data = voice_note
    etag = alice.client.get(body["url"])["ETag"].strip('"')

    response = alice.client.get(body["url"], HTTP_RANGE="bytes=10-19", HTTP_IF_RANGE=if_range.format(etag=etag))

    assert response.status_code == 200
    assert body_of(response) == data


def test_if_range_mismatch_ignores_even_an_unsatisfiable_range(alice, voice_note):
    body, data = voice_note

    response = alice.client.get(body["url"], HTTP_RANGE=f"bytes={len(data) + 10}-", HTTP_IF_RANGE='"old"')

    assert response.status_code == 200 and body_of(response) == data


def test_each_file_of_an_attachment_has_its_own_etag(alice, upload):
    body = upload(alice, mediafiles.image_bytes("PNG", (300, 300)), name="p.png").json()
    thumbnail_url = alice.client.get(f"/api/v1/attachments/{body['id']}").json()["thumbnail_url"]
    content_etag = alice.client.get(body["url"])["ETag"]

    thumbnail = alice.client.get(thumbnail_url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=content_etag)

    assert thumbnail["ETag"] != content_etag
    assert thumbnail.status_code == 200  # a resumed download never splices two files


def test_if_none_match_answers_304(alice, voice_note):
    body, _ = voice_note
    etag = alice.client.get(body["url"])["ETag"]

    response = alice.client.get(body["url"], HTTP_IF_NONE_MATCH=f'"x", W/{etag}')

    assert response.status_code == 304 and response["ETag"] == etag
