"""Voice and video through FFmpeg's libraries: probe, caps, metadata stripping, posters, waveforms, transcoding.

Every file is made by PyAV in the test (tests/media/mediafiles.py), and what the
server stores is read back with PyAV too.
"""

from __future__ import annotations

import io

import av
import pytest
from PIL import Image

from media.models import Attachment
from tests.media import mediafiles

pytestmark = pytest.mark.django_db

LOCATION = "+51.5074-000.1278/"


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


# --- Metadata --------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "content_type"), [("mp4", "video/mp4"), ("mov", "video/quicktime"),
                                                    ("webm", "video/webm")])
def test_video_location_and_device_tags_do_not_survive(alice, upload, fmt, content_type):
    original = mediafiles.video_bytes(fmt, metadata={"location": LOCATION, "make": "PhoneMaker",
                                                     "com.apple.quicktime.location.ISO6709": LOCATION})
    assert mediafiles.tags_of(original).get("location") == LOCATION  # the test's premise

    body = upload(alice, original, name=f"clip.{fmt}").json()
    served = body_of(alice.client.get(body["url"]))

    assert body["content_type"] == content_type
    tags = mediafiles.tags_of(served)
    assert not [key for key in tags if "location" in key or "make" in key or "iso6709" in key], tags
    assert LOCATION.encode() not in served and b"PhoneMaker" not in served
    # Remuxed, not re-encoded: the same packets in a fresh container.
    with av.open(io.BytesIO(original)) as source, av.open(io.BytesIO(served)) as stored:
        assert [bytes(p) for p in source.demux(source.streams.video[0]) if p.size] == \
               [bytes(p) for p in stored.demux(stored.streams.video[0]) if p.size]
    assert body["size"] == len(served)


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "opus", "webm"])
def test_voice_note_tags_do_not_survive(alice, upload, fmt):
    original = mediafiles.audio_bytes(fmt, metadata={"title": "Meeting with Bob", "location": LOCATION})
    assert any("location" in key for key in mediafiles.tags_of(original))

    body = upload(alice, original, name="note", kind="voice").json()
    served = body_of(alice.client.get(body["url"]))

    assert not [key for key in mediafiles.tags_of(served) if "location" in key or "title" in key]
    assert b"Meeting with Bob" not in served


# --- Caps and bad input --------------------------------------------------------------------


def test_voice_note_over_the_cap_is_refused_and_nothing_stored(alice, upload, settings, stored_files):
    settings.VOICE_MAX_SECONDS = 3

    error = _error(upload(alice, mediafiles.audio_bytes("webm", 5.0), name="long.webm", kind="voice"),
                   400, "validation_error")

    assert error["details"] == {"file": ["The voice note is longer than 3 seconds."]}
    assert stored_files() == [] and not Attachment.objects.exists()
    assert upload(alice, mediafiles.audio_bytes("webm", 2.0), name="ok.webm", kind="voice").status_code == 201


def test_video_over_the_cap_is_refused(alice, upload, settings, stored_files):
    settings.VIDEO_MAX_SECONDS = 2

    error = _error(upload(alice, mediafiles.video_bytes("mp4", 4.0), name="long.mp4"), 400, "validation_error")

    assert error["details"] == {"file": ["The video is longer than 2 seconds."]}
    assert stored_files() == []


def test_default_caps_are_five_minutes_of_voice_and_ten_of_video(settings):
    assert (settings.VOICE_MAX_SECONDS, settings.VIDEO_MAX_SECONDS) == (300, 600)


def test_a_header_that_lies_about_the_duration_is_refused(alice, upload, settings, stored_files):
    honest = mediafiles.video_bytes("mp4", 2.0)
    lying = mediafiles.mp4_with_lying_duration(honest, claimed_seconds=36_000)

    error = _error(upload(alice, lying, name="lie.mp4"), 400, "validation_error")

    assert error["details"] == {"file": ["The recording's header claims a duration its content does not have."]}
    assert stored_files() == []


@pytest.mark.parametrize("case", ["truncated-video", "garbage-after-ftyp", "truncated-ogg", "truncated-webm"])
def test_truncated_or_corrupt_containers_are_400(alice, upload, stored_files, case):
    video = mediafiles.video_bytes("mp4", 2.0)
    data = {
        "truncated-video": video[: len(video) // 2],
        "garbage-after-ftyp": video[:32] + bytes(range(256)) * 40,
        "truncated-ogg": mediafiles.audio_bytes("opus", 3.0)[:3000],
        "truncated-webm": mediafiles.audio_bytes("webm", 3.0)[:200],
    }[case]

    error = _error(upload(alice, data, name="x"), 400, "validation_error")

    assert error["details"]["file"][0].startswith("The recording")
    assert stored_files() == []


def test_a_webm_voice_note_claimed_as_an_image_is_415(alice, upload, stored_files):
    _error(upload(alice, mediafiles.audio_bytes("webm"), name="x.jpg", kind="image"), 415, "unsupported_media_type")
    assert stored_files() == []


def test_a_file_beyond_the_probe_limits_is_refused_and_the_server_keeps_serving(alice, upload, settings,
                                                                              stored_files):
    # 48 MiB of address space is too little for FFmpeg's libraries to even load: the child dies,
    # the request is answered, and the next one works.
    settings.MEDIA_AV_MEMORY_MB = 48

    error = _error(upload(alice, mediafiles.video_bytes("mp4"), name="x.mp4"), 400, "validation_error")

    assert error["details"] == {"file": ["The recording could not be processed within the server's limits."]}
    assert stored_files() == []
    settings.MEDIA_AV_MEMORY_MB = 1024
    assert upload(alice, mediafiles.video_bytes("mp4"), name="x.mp4").status_code == 201


def test_a_probe_past_its_time_is_refused(alice, upload, settings, stored_files):
    settings.MEDIA_AV_TIMEOUT_SECONDS = 0.01

    error = _error(upload(alice, mediafiles.audio_bytes("opus"), name="x.opus"), 400, "validation_error")

    assert error["details"] == {"file": ["The recording could not be processed within the server's limits."]}
    assert stored_files() == []


# --- Posters, waveforms, renditions ------------------------------------------------------------


def test_video_gets_a_poster_frame_thumbnail(alice, upload, settings):
    settings.MEDIA_THUMBNAIL_SIZE = 80
    body = upload(alice, mediafiles.video_bytes("mp4", size=(160, 120)), name="clip.mp4").json()

    detail = alice.client.get(f"/api/v1/attachments/{body['id']}").json()
    response = alice.client.get(detail["thumbnail_url"])

    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    poster = Image.open(io.BytesIO(body_of(response)))
    assert (poster.format, poster.size) == ("WEBP", (80, 60))
    red, green, blue = poster.convert("RGB").getpixel((5, 5))  # the yellow marker of every frame
    assert red > 200 and green > 200 and blue < 80


def test_portrait_video_reports_and_shows_its_displayed_orientation(alice, upload, settings):
    settings.MEDIA_THUMBNAIL_SIZE = 80
    # Phones store portrait video as landscape frames with a rotation in the display matrix.
    body = upload(alice, mediafiles.video_bytes("mp4", size=(160, 120), rotation=90), name="tall.mp4").json()

    assert (body["width"], body["height"]) == (120, 160)
    thumbnail = alice.client.get(f"/api/v1/attachments/{body['id']}").json()["thumbnail_url"]
    assert Image.open(io.BytesIO(body_of(alice.client.get(thumbnail)))).size == (60, 80)


def test_voice_note_waveform_is_computed_and_returned(alice, upload):
    # Loud for the first second of two, then silence.
    body = upload(alice, mediafiles.audio_bytes("opus", 2.0, loud_until=1.0), name="v.opus").json()

    waveform = alice.client.get(f"/api/v1/attachments/{body['id']}").json()["waveform"]

    assert len(waveform) == 64 and all(0 <= level <= 100 for level in waveform)
    assert max(waveform) == 100
    assert min(waveform[:28]) > 50  # the tone
    assert max(waveform[36:]) < 10  # the silence


def test_waveform_task_is_idempotent_and_only_for_voice(alice, upload):
    from media import services

    voice = upload(alice, mediafiles.audio_bytes("webm", 1.0), name="v.webm").json()
    video = upload(alice, mediafiles.video_bytes("mp4"), name="c.mp4").json()
    first = Attachment.objects.get(pk=voice["id"]).waveform

    assert services.attachment_make_waveform(attachment_id=voice["id"]) == first
    assert services.attachment_make_waveform(attachment_id=video["id"]) is None
    assert Attachment.objects.get(pk=video["id"]).waveform is None


def test_transcoding_is_off_by_default(alice, upload, settings):
    assert settings.MEDIA_VIDEO_TRANSCODE is False
    body = upload(alice, mediafiles.video_bytes("webm"), name="c.webm").json()

    assert alice.client.get(f"/api/v1/attachments/{body['id']}").json()["compat_url"] is None
    _error(alice.client.get(f"/api/v1/attachments/{body['id']}/compat"), 404, "not_found")


def test_transcoding_makes_an_h264_aac_rendition_of_a_webm_video(alice, bob, upload, settings):
    settings.MEDIA_VIDEO_TRANSCODE = True
    body = upload(alice, mediafiles.video_bytes("webm", size=(160, 120)), name="c.webm").json()

    compat_url = alice.client.get(f"/api/v1/attachments/{body['id']}").json()["compat_url"]
    response = alice.client.get(compat_url)

    assert response.status_code == 200 and response["Content-Type"] == "video/mp4"
    with av.open(io.BytesIO(body_of(response))) as rendition:
        assert rendition.streams.video[0].codec_context.name == "h264"
        assert rendition.streams.audio[0].codec_context.name == "aac"
        assert rendition.duration / 1_000_000 == pytest.approx(2.0, abs=0.15)
    assert bob.client.get(compat_url).status_code == 404  # the same access rule as the original


def test_a_video_that_plays_everywhere_is_not_transcoded(alice, upload, settings):
    settings.MEDIA_VIDEO_TRANSCODE = True
    body = upload(alice, mediafiles.video_bytes("mp4"), name="c.mp4").json()

    assert alice.client.get(f"/api/v1/attachments/{body['id']}").json()["compat_url"] is None
