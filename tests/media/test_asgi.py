"""The ASGI guard stops an oversized upload before Django reads (and spools) its body."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from config.asgi import application


def _scope(headers: list[tuple[bytes, bytes]], path: str = "/api/v1/attachments") -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
    }


class Client:
    """Feeds body chunks to the app and records what it sends back."""

    def __init__(self, chunks: int, chunk_size: int) -> None:
        self.remaining = chunks
        self.chunk_size = chunk_size
        self.read = 0
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        if self.remaining <= 0:
            await asyncio.Event().wait()  # the client stays connected until the app is done
            return {"type": "http.disconnect"}
        self.remaining -= 1
        self.read += 1
        return {"type": "http.request", "body": b"x" * self.chunk_size, "more_body": self.remaining > 0}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")

    @property
    def body(self) -> dict:
        return orjson.loads(b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body"))


@pytest.fixture
def small_caps(settings):
    settings.MEDIA_MAX_SIZE = {"image": 10_000, "voice": 10_000, "video": 50_000, "file": 10_000}


# The sunset's read-only gate in front of every write reads the schedule (once a second per process).
@pytest.mark.django_db(transaction=True)
async def test_declared_length_past_the_cap_is_413_without_reading_the_body(small_caps):
    client = Client(chunks=1000, chunk_size=64 * 1024)

    await application(_scope([(b"content-length", str(2 * 1024**3).encode())]), client.receive, client.send)

    assert client.status == 413
    assert client.body["error"] == {"code": "payload_too_large", "message": "The file is larger than 50000 bytes.",
                                    "details": {"max_size": 50_000}}
    assert client.read == 0


@pytest.mark.django_db(transaction=True)
async def test_streamed_body_past_the_cap_is_cut_off(small_caps):
    client = Client(chunks=1000, chunk_size=16 * 1024)  # 16 MB, no Content-Length (chunked)

    await application(_scope([(b"content-type", b"multipart/form-data; boundary=xyz")]), client.receive,
                      client.send)

    assert client.status == 413
    assert client.body["error"]["code"] == "payload_too_large"
    # 50,000 + 64 KiB of envelope is passed within the eighth 16 KiB chunk; nothing after it is read.
    assert client.read == 8
    assert [m["type"] for m in client.sent] == ["http.response.start", "http.response.body"]


@pytest.mark.django_db(transaction=True)
async def test_other_paths_are_not_limited(small_caps):
    client = Client(chunks=10, chunk_size=16 * 1024)

    await application(_scope([(b"content-type", b"application/json")], path="/api/v1/auth/otp/request"),
                      client.receive, client.send)

    assert client.read == 10  # the whole body reached Django, whose view answered
    assert client.status == 400
    assert client.body["error"]["code"] == "validation_error"


@pytest.mark.django_db(transaction=True)
async def test_content_streams_ranges_block_by_block_under_asgi(alice, settings, tmp_path):
    from asgiref.sync import sync_to_async
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import AsyncClient

    from media import services
    from media.serving import BLOCK_SIZE
    from tests.media import mediafiles

    settings.MEDIA_ROOT = str(tmp_path)
    data = mediafiles.wav_bytes(seconds=20)  # 320 KB: several blocks
    attachment = await sync_to_async(services.attachment_create)(
        uploader=alice.user, upload=SimpleUploadedFile("long.wav", data))
    client = AsyncClient()
    auth = {"authorization": f"Bearer {alice.token}"}
    url = f"/api/v1/attachments/{attachment.pk}/content"

    whole = await client.get(url, headers=auth)
    part = await client.get(url, headers={**auth, "range": "bytes=100000-"})

    assert whole.status_code == 200, whole.content
    assert whole.is_async
    chunks = [chunk async for chunk in whole.streaming_content]
    assert len(chunks) > 1 and max(len(chunk) for chunk in chunks) <= BLOCK_SIZE
    stored = b"".join(chunks)
    assert len(stored) == attachment.size and stored.endswith(data[44:])  # the samples, under a fresh header
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100000-{len(stored) - 1}/{len(stored)}"
    assert b"".join([chunk async for chunk in part.streaming_content]) == stored[100000:]
