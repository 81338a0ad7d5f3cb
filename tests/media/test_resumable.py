"""Resumable uploads (tus 1.0: core, creation, termination, expiration) as a client sees them.

These go through Django's test client (the DRF view); tests/media/test_resumable_server.py
drives the streaming PATCH of a real uvicorn server with connections cut mid-body.
"""

from __future__ import annotations

import base64
import os
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from media import resumable
from media.models import Attachment, ResumableUpload, UploadPiece, UploadState
from tests.media import mediafiles

pytestmark = pytest.mark.django_db

TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}


def metadata(**pairs: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())


_capture = None


def _committed(call, *args, **kwargs):
    """Run one request the way a server would: its on-commit work (tasks, deletions) runs at its end."""
    with _capture(execute=True):
        return call(*args, **kwargs)


def create(who, length: int, **meta: str):
    extra = {"HTTP_UPLOAD_LENGTH": str(length), **TUS}
    if meta:
        extra["HTTP_UPLOAD_METADATA"] = metadata(**meta)
    return _committed(who.client.post, "/api/v1/uploads", **extra)


def patch(who, url: str, data: bytes, offset: int, **extra: str):
    headers = {"HTTP_UPLOAD_OFFSET": str(offset), **TUS, **extra}
    return _committed(who.client.generic, "PATCH", url, data, content_type="application/offset+octet-stream",
                      **headers)


def head(who, url: str):
    return who.client.head(url, **TUS)


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


@pytest.fixture(autouse=True)
def run_on_commit(django_capture_on_commit_callbacks):
    """Tasks and piece deletions enqueued on commit run (eagerly) at the end of each request."""
    global _capture
    _capture = django_capture_on_commit_callbacks
    yield
    _capture = None


def test_options_advertises_the_protocol_without_credentials(api):
    response = api.options("/api/v1/uploads")

    assert response.status_code == 204
    assert response["Tus-Resumable"] == "1.0.0"
    assert response["Tus-Version"] == "1.0.0"
    assert set(response["Tus-Extension"].split(",")) == {"creation", "termination", "expiration"}
    assert int(response["Tus-Max-Size"]) == 100 * 1024 * 1024


def test_upload_in_pieces_becomes_an_attachment(alice, run_on_commit, stored_files, settings):
    data = os.urandom(300_000)
    created = create(alice, len(data), filename="notes.bin", kind="file")

    assert created.status_code == 201, created.content
    url = created["Location"]
    assert url.startswith("http://testserver/api/v1/uploads/")
    assert created["Tus-Resumable"] == "1.0.0"
    assert created["Upload-Expires"].endswith("GMT")
    assert created.json()["offset"] == 0 and created.json()["state"] == "receiving"

    first = patch(alice, url, data[:100_000], 0)
    assert first.status_code == 204 and first["Upload-Offset"] == "100000"
    assert head(alice, url)["Upload-Offset"] == "100000"
    second = patch(alice, url, data[100_000:], 100_000)

    assert second.status_code == 204, second.content
    assert second["Upload-Offset"] == str(len(data))
    attachment = Attachment.objects.get(pk=second["Attachment-Id"])
    assert (attachment.kind, attachment.original_name, attachment.uploader_id) == ("file", "notes.bin", alice.user.pk)
    content = alice.client.get(f"/api/v1/attachments/{attachment.pk}/content")
    assert b"".join(content.streaming_content) == data
    detail = alice.client.get(url, **TUS).json()
    assert detail["state"] == "done" and detail["attachment"]["id"] == str(attachment.pk)
    # The pieces are gone; only the attachment is stored.
    assert stored_files() == [attachment.storage_name]
    assert not UploadPiece.objects.exists()


def test_a_finished_upload_goes_through_the_attachment_checks(alice, run_on_commit):
    voice = mediafiles.audio_bytes("webm", 2.0, metadata={"location": "+51.5-000.1/"})
    url = create(alice, len(voice), filename="note.webm", kind="voice")["Location"]

    response = patch(alice, url, voice, 0)

    attachment = Attachment.objects.get(pk=response["Attachment-Id"])
    assert (attachment.kind, attachment.content_type) == ("voice", "audio/webm")
    assert attachment.duration_ms == pytest.approx(2000, abs=60)
    assert len(attachment.waveform) == 64  # the waveform task ran on commit
    stored = b"".join(alice.client.get(f"/api/v1/attachments/{attachment.pk}/content").streaming_content)
    assert "location" not in mediafiles.tags_of(stored)


def test_bytes_of_another_kind_are_refused_at_the_last_byte_and_nothing_is_kept(alice, run_on_commit,
                                                                                stored_files):
    data = mediafiles.image_bytes("PNG")
    url = create(alice, len(data), kind="voice")["Location"]

    error = _error(patch(alice, url, data, 0), 415, "unsupported_media_type")

    assert "kind" in error["details"]
    assert stored_files() == [] and not Attachment.objects.exists()
    detail = alice.client.get(url, **TUS).json()
    assert detail["state"] == "failed" and detail["error"]["code"] == "unsupported_media_type"
    assert head(alice, url)["Upload-Offset"] == str(len(data))
    # Asking again gives the same answer, not a second attempt.
    _error(patch(alice, url, b"", len(data)), 409, "conflict")


def test_a_voice_note_over_the_cap_is_refused_like_a_plain_upload(alice, run_on_commit, settings, stored_files):
    settings.VOICE_MAX_SECONDS = 1
    data = mediafiles.audio_bytes("opus", 3.0)
    url = create(alice, len(data))["Location"]

    error = _error(patch(alice, url, data, 0), 400, "validation_error")

    assert error["details"] == {"file": ["The voice note is longer than 1 seconds."]}
    assert stored_files() == []


def test_wrong_offset_is_409_with_the_offset_to_resume_from(alice, run_on_commit):
    url = create(alice, 1000, kind="file")["Location"]
    patch(alice, url, b"a" * 400, 0)

    for wrong in (0, 399, 401, 1000):
        error = _error(patch(alice, url, b"b" * 10, wrong), 409, "conflict")
        assert error["details"]["offset"] == 400
    assert head(alice, url)["Upload-Offset"] == "400"


def test_another_users_upload_is_404_for_every_method(alice, bob, run_on_commit):
    url = create(alice, 1000, kind="file")["Location"]
    patch(alice, url, b"a" * 10, 0)

    _error(patch(bob, url, b"b" * 10, 10), 404, "not_found")
    assert head(bob, url).status_code == 404
    _error(bob.client.get(url, **TUS), 404, "not_found")
    _error(bob.client.delete(url, **TUS), 404, "not_found")
    assert head(alice, url)["Upload-Offset"] == "10"


def test_unknown_and_malformed_ids_are_404(alice):
    for upload_id in (str(uuid.uuid4()), "not-a-uuid"):
        assert head(alice, f"/api/v1/uploads/{upload_id}").status_code == 404


def test_bytes_past_the_declared_length_are_413_and_not_stored(alice, run_on_commit):
    url = create(alice, 100, kind="file")["Location"]

    _error(patch(alice, url, b"x" * 101, 0), 413, "payload_too_large")

    assert head(alice, url)["Upload-Offset"] == "0"


def test_protocol_headers_are_checked(alice, run_on_commit):
    _error(alice.client.post("/api/v1/uploads", HTTP_UPLOAD_LENGTH="10"), 412, "tus_version_unsupported")
    assert alice.client.post("/api/v1/uploads", HTTP_UPLOAD_LENGTH="10",
                             HTTP_TUS_RESUMABLE="0.2.2")["Tus-Version"] == "1.0.0"
    _error(alice.client.post("/api/v1/uploads", **TUS), 400, "validation_error")
    for bad in ("-1", "ten", "1e3", "0"):
        _error(alice.client.post("/api/v1/uploads", HTTP_UPLOAD_LENGTH=bad, **TUS), 400, "validation_error")
    _error(alice.client.post("/api/v1/uploads", HTTP_UPLOAD_DEFER_LENGTH="1", **TUS), 400, "validation_error")
    for bad in ("kind YQ== YQ==", "kind !!!", "kind c3RpY2tlcg==", "a YQ==,a YQ==", "x " + "A" * 5000, ",,"):
        error = _error(alice.client.post("/api/v1/uploads", HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA=bad,
                                         **TUS), 400, "validation_error")
        assert "Upload-Metadata" in error["details"]
    url = create(alice, 10, kind="file")["Location"]
    _error(alice.client.generic("PATCH", url, b"x", content_type="application/json", HTTP_UPLOAD_OFFSET="0", **TUS),
           415, "unsupported_media_type")
    _error(patch(alice, url, b"x", 0, HTTP_UPLOAD_OFFSET="first"), 400, "validation_error")
    assert not ResumableUpload.objects.exclude(pk=url.rsplit("/", 1)[1]).exists()


def test_creation_is_capped_by_the_kinds_size_and_needs_auth(alice, api, settings):
    settings.MEDIA_MAX_SIZE = {"image": 1000, "voice": 2000, "video": 5000, "file": 3000}

    error = _error(create(alice, 2001, kind="voice"), 413, "payload_too_large")
    assert error["details"] == {"max_size": 2000}
    _error(create(alice, 5001), 413, "payload_too_large")
    assert create(alice, 5000).status_code == 201
    _error(api.post("/api/v1/uploads", HTTP_UPLOAD_LENGTH="10", **TUS), 401, "unauthenticated")


def test_quotas_bytes_in_flight_uploads_in_flight_and_per_hour(alice, bob, settings, run_on_commit):
    settings.MEDIA_RESUMABLE_MAX_BYTES_IN_FLIGHT = 10_000
    assert create(alice, 6_000, kind="file").status_code == 201
    error = _error(create(alice, 5_000, kind="file"), 429, "rate_limited")
    assert error["details"]["quota"] == "bytes_in_flight"
    assert create(bob, 5_000, kind="file").status_code == 201  # per user

    settings.MEDIA_RESUMABLE_MAX_BYTES_IN_FLIGHT = 10**9
    settings.MEDIA_RESUMABLE_MAX_IN_FLIGHT = 2
    url = create(alice, 10, kind="file")["Location"]
    error = _error(create(alice, 10, kind="file"), 429, "rate_limited")
    assert error["details"]["quota"] == "uploads_in_flight"
    patch(alice, url, b"0123456789", 0)  # finishing one frees its place
    assert create(alice, 10, kind="file").status_code == 201

    settings.MEDIA_UPLOAD_LIMIT = (1, 3600)  # shared with POST /attachments
    response = create(bob, 10, kind="file")
    _error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) > 0


def test_termination_deletes_the_upload_and_its_bytes(alice, run_on_commit, stored_files):
    url = create(alice, 1000, kind="file")["Location"]
    patch(alice, url, b"a" * 500, 0)
    assert stored_files() != []

    assert _committed(alice.client.delete, url, **TUS).status_code == 204

    assert stored_files() == []
    assert head(alice, url).status_code == 404
    _error(patch(alice, url, b"a", 500), 404, "not_found")


def test_expired_uploads_answer_410_and_the_sweep_deletes_them(alice, run_on_commit, stored_files, settings):
    url = create(alice, 1000, kind="file")["Location"]
    patch(alice, url, b"a" * 500, 0)
    upload_id = url.rsplit("/", 1)[1]
    ResumableUpload.objects.filter(pk=upload_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert head(alice, url).status_code == 410
    _error(patch(alice, url, b"a" * 10, 500), 410, "upload_expired")

    assert _committed(resumable.uploads_sweep) == {"expired": 1, "finishing": 0}
    assert stored_files() == [] and not ResumableUpload.objects.exists()
    assert head(alice, url).status_code == 404


def test_each_write_extends_the_expiry(alice, run_on_commit, settings):
    url = create(alice, 1000, kind="file")["Location"]
    upload_id = url.rsplit("/", 1)[1]
    ResumableUpload.objects.filter(pk=upload_id).update(expires_at=timezone.now() + timedelta(seconds=5))

    patch(alice, url, b"a" * 10, 0)

    expires = ResumableUpload.objects.get(pk=upload_id).expires_at
    assert expires > timezone.now() + settings.MEDIA_RESUMABLE_TTL - timedelta(minutes=1)


def test_the_sweep_finishes_an_upload_whose_finisher_died(alice, run_on_commit, settings):
    data = b"z" * 100
    url = create(alice, len(data), kind="file")["Location"]
    upload_id = url.rsplit("/", 1)[1]
    # The last byte was stored, then the process died before making the attachment.
    writer = resumable.PieceWriter(upload=ResumableUpload.objects.get(pk=upload_id))
    writer.write(data)
    _committed(writer.flush)
    ResumableUpload.objects.filter(pk=upload_id).update(updated_at=timezone.now() - timedelta(minutes=5))

    assert _committed(resumable.uploads_sweep)["finishing"] == 1

    upload = ResumableUpload.objects.get(pk=upload_id)
    assert upload.state == UploadState.DONE
    assert b"".join(alice.client.get(f"/api/v1/attachments/{upload.attachment_id}/content").streaming_content) == data


def test_finishing_twice_gives_one_attachment(alice, run_on_commit):
    url = create(alice, 10, kind="file")["Location"]
    upload_id = url.rsplit("/", 1)[1]
    patch(alice, url, b"0123456789", 0)

    again = resumable.upload_finish(upload_id=upload_id)

    assert Attachment.objects.count() == 1 and str(again.pk) == head(alice, url)["Attachment-Id"]


def test_small_pieces_are_merged_so_a_flaky_network_leaves_few_objects(alice, run_on_commit, settings,
                                                                        stored_files):
    settings.MEDIA_RESUMABLE_MERGE_BELOW = 1000
    data = os.urandom(5000)
    url = create(alice, len(data), kind="file")["Location"]
    upload_id = url.rsplit("/", 1)[1]

    for start in range(0, 4000, 100):  # forty connections of 100 bytes each
        assert patch(alice, url, data[start:start + 100], start).status_code == 204

    pieces = list(UploadPiece.objects.filter(upload_id=upload_id).order_by("offset").values_list("offset", "size"))
    assert pieces == [(0, 1000), (1000, 1000), (2000, 1000), (3000, 1000)]
    assert len(stored_files()) == 4
    response = patch(alice, url, data[4000:], 4000)
    attachment = Attachment.objects.get(pk=response["Attachment-Id"])
    assert b"".join(alice.client.get(f"/api/v1/attachments/{attachment.pk}/content").streaming_content) == data


def test_a_racing_patch_at_a_stale_offset_stores_nothing(alice, run_on_commit, stored_files):
    url = create(alice, 100, kind="file")["Location"]
    upload = ResumableUpload.objects.get(pk=url.rsplit("/", 1)[1])
    late = resumable.PieceWriter(upload=upload)  # began at offset 0 ...
    patch(alice, url, b"a" * 40, 0)  # ... while another connection stored 40 bytes
    late.write(b"b" * 30)

    with pytest.raises(resumable.Conflict):
        _committed(late.flush)

    assert UploadPiece.objects.get().size == 40 and len(stored_files()) == 1
    assert ResumableUpload.objects.get(pk=upload.pk).offset == 40


def test_the_periodic_sweep_is_scheduled(settings):
    assert settings.CELERY_BEAT_SCHEDULE["media.resumable_sweep"]["task"] == "media.resumable_sweep"


def test_upload_as_json_has_the_protocol_state(alice, run_on_commit):
    url = create(alice, 10, kind="file", filename="a.txt")["Location"]

    body = alice.client.get(url, **TUS).json()

    assert set(body) == {"id", "url", "length", "offset", "state", "expires_at", "attachment", "error"}
    assert (body["url"], body["length"], body["offset"], body["attachment"]) == (url, 10, 0, None)
