"""Resumable uploads against a real uvicorn server: connections cut mid-body, then resumed.

The client speaks tus the way a phone on a train does: it sends a PATCH with the
whole remaining body announced, the connection dies after part of it, and it asks
(HEAD) where to continue. The server must keep what arrived, refuse a PATCH at a
stale offset (409) and anyone else's upload (404), and the finished file must be
byte for byte what the client had.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from django.conf import settings
from django.db import connection

from media.models import Attachment, ResumableUpload
from tests.factories import sign_in
from tests.processes import current_database_url
from tests.reliability.services import AsgiServer, django_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AsgiServer]:
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.fail("this test needs the real stack: DATABASE_URL (PostgreSQL) and REDIS_URL")
    media_root = tmp_path / "media"
    env = django_env(DATABASE_URL=current_database_url(), REDIS_URL=settings.REDIS_URL, SECRET_KEY=settings.SECRET_KEY,
                     DEBUG="0", LOG_LEVEL="WARNING", MEDIA_ROOT=str(media_root))
    process = AsgiServer(env)
    process.start()
    process.media_root = media_root  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        process.kill()


def patch_cut_off(server: AsgiServer, token: str, url: str, body: bytes, offset: int, send: int) -> None:
    """A PATCH announcing all of `body` whose connection dies after `send` bytes of it."""
    path = urlparse(url).path
    head = (f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        for start in range(0, send, 16 * 1024):
            sock.sendall(body[start:min(send, start + 16 * 1024)])
        time.sleep(0.3)  # the bytes are on their way; then the train enters a tunnel
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST


def settled_offset(http: httpx.Client, url: str) -> int:
    """HEAD until the offset stops moving (the server may still be storing what the dead connection sent)."""
    previous = -1
    for _ in range(50):
        response = http.head(url, headers=TUS)
        assert response.status_code == 200, response.text
        current = int(response.headers["Upload-Offset"])
        if current == previous:
            return current
        previous = current
        time.sleep(0.2)
    raise AssertionError("the offset never settled")


def test_an_upload_cut_off_three_times_resumes_to_a_byte_identical_file(server):
    alice = sign_in(display_name="Alice")
    data = os.urandom(3 * 1024 * 1024 + 12345)
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {alice.token}"}, timeout=30) as http:
        created = http.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(len(data)),
                                                        "Upload-Metadata": "filename dHJpcC5iaW4=,kind ZmlsZQ=="})
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        offsets = [0]
        for fraction in (0.3, 0.4, 0.5):  # of what is left, each time
            remaining = data[offsets[-1]:]
            patch_cut_off(server, alice.token, url, remaining, offsets[-1], int(len(remaining) * fraction))
            offsets.append(settled_offset(http, url))
            assert offsets[-1] > offsets[-2], offsets  # what arrived before the cut was kept

        # A resume from a stale offset is refused with the offset to use.
        stale = http.patch(url, content=data[offsets[1]:], headers={
            **TUS, "Upload-Offset": str(offsets[1]), "Content-Type": "application/offset+octet-stream"})
        assert stale.status_code == 409
        assert stale.json()["error"]["details"]["offset"] == offsets[-1]

        last = http.patch(url, content=data[offsets[-1]:], headers={
            **TUS, "Upload-Offset": str(offsets[-1]), "Content-Type": "application/offset+octet-stream"})
        assert last.status_code == 204, last.text
        assert last.headers["Upload-Offset"] == str(len(data))
        attachment_id = last.headers["Attachment-Id"]
        served = http.get(f"/api/v1/attachments/{attachment_id}/content")

    assert served.status_code == 200
    assert served.content == data
    attachment = Attachment.objects.get(pk=attachment_id)
    assert (attachment.kind, attachment.original_name, attachment.size) == ("file", "trip.bin", len(data))
    # Nothing of the pieces is left behind.
    stored = [p for p in server.media_root.rglob("*") if p.is_file()]  # type: ignore[attr-defined]
    assert [p.relative_to(server.media_root).as_posix() for p in stored] == [attachment.storage_name]  # type: ignore[attr-defined]


def test_the_streaming_patch_refuses_strangers_bad_headers_and_excess_bytes(server):
    alice, bob = sign_in(display_name="Alice"), sign_in(display_name="Bob")
    body_headers = {**TUS, "Content-Type": "application/offset+octet-stream"}
    with httpx.Client(base_url=server.base, timeout=30) as http:
        created = http.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "100",
                                                        "Authorization": f"Bearer {alice.token}"})
        url = created.headers["Location"]

        stranger = http.patch(url, content=b"x" * 10, headers={**body_headers, "Upload-Offset": "0",
                                                               "Authorization": f"Bearer {bob.token}"})
        nobody = http.patch(url, content=b"x" * 10, headers={**body_headers, "Upload-Offset": "0"})
        as_alice = {"Authorization": f"Bearer {alice.token}"}
        old_version = http.patch(url, content=b"x", headers={**body_headers, **as_alice, "Upload-Offset": "0",
                                                             "Tus-Resumable": "0.2.2"})
        wrong_type = http.patch(url, content=b"x", headers={**TUS, **as_alice, "Upload-Offset": "0",
                                                            "Content-Type": "text/plain"})
        too_much = http.patch(url, content=b"x" * 101, headers={**body_headers, **as_alice, "Upload-Offset": "0"})
        unknown = http.patch(url.rsplit("/", 1)[0] + "/" + "0" * 32, content=b"x",
                             headers={**body_headers, **as_alice, "Upload-Offset": "0"})

    assert (stranger.status_code, stranger.json()["error"]["code"]) == (404, "not_found")
    assert (nobody.status_code, nobody.json()["error"]["code"]) == (401, "unauthenticated")
    assert old_version.status_code == 412 and old_version.headers["Tus-Version"] == "1.0.0"
    assert wrong_type.status_code == 415
    assert (too_much.status_code, too_much.json()["error"]["code"]) == (413, "payload_too_large")
    assert unknown.status_code == 404
    assert all(r.headers["Tus-Resumable"] == "1.0.0" for r in (stranger, nobody, too_much, unknown))
    assert ResumableUpload.objects.get().offset == 0


def test_a_video_uploaded_over_the_resumable_path_is_probed_and_stripped(server):
    from tests.media import mediafiles

    alice = sign_in(display_name="Alice")
    video = mediafiles.video_bytes("mp4", 2.0, metadata={"location": "+51.5074-000.1278/"})
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {alice.token}"}, timeout=30) as http:
        url = http.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(len(video))}).headers["Location"]
        patch_cut_off(server, alice.token, url, video, 0, len(video) // 2)
        offset = settled_offset(http, url)
        done = http.patch(url, content=video[offset:], headers={
            **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
        assert done.status_code == 204, done.text
        attachment = http.get(f"/api/v1/attachments/{done.headers['Attachment-Id']}").json()
        served = http.get(attachment["url"]).content

    assert (attachment["kind"], attachment["content_type"]) == ("video", "video/mp4")
    assert attachment["duration_ms"] == pytest.approx(2000, abs=60)
    assert "location" not in mediafiles.tags_of(served)
