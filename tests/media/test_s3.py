"""The S3 path (django-storages) against a real S3-compatible server: moto's server mode,
started here on a free port of 127.0.0.1 (the S3 wire protocol over HTTP, SigV4)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from config.settings import s3_storage
from media.models import Attachment
from tests.media import mediafiles
from tests.processes import wait_for
from tests.reliability.services import free_port, port_open

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

CREDENTIALS = {"access_key": "moto-key", "secret_key": "moto-secret"}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1",
                                    "-p", str(port)], stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_open(port) or process.poll() is not None, timeout=30, message="moto server")
        assert process.poll() is None, log.read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def bucket(s3_server, settings) -> Iterator[object]:
    """A fresh bucket, made the attachment storage, with multipart past 5 MiB (S3's smallest part)."""
    from boto3.s3.transfer import TransferConfig

    name = f"media-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id=CREDENTIALS["access_key"],
                          aws_secret_access_key=CREDENTIALS["secret_key"])
    client.create_bucket(Bucket=name)
    settings.STORAGES = {**settings.STORAGES, "s3": s3_storage(
        bucket_name=name, endpoint_url=s3_server, region_name="us-east-1", location="", **CREDENTIALS,
        transfer_config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, use_threads=False))}
    settings.MEDIA_STORAGE_ALIAS = "s3"
    storages._storages.pop("s3", None)  # settings changed: no cached instance
    client.bucket_name = name
    yield client
    storages._storages.pop("s3", None)


def objects(client) -> dict[str, dict]:
    listed = client.list_objects_v2(Bucket=client.bucket_name).get("Contents", [])
    return {item["Key"]: item for item in listed}


@pytest.fixture
def upload(django_capture_on_commit_callbacks):
    def post(who, data: bytes, name: str = "f.bin", **fields):
        with django_capture_on_commit_callbacks(execute=True):
            return who.client.post("/api/v1/attachments", {"file": SimpleUploadedFile(name, data), **fields},
                                   format="multipart")
    return post


def test_uploads_go_to_the_bucket_and_are_served_with_ranges(alice, bob, bucket, upload):
    body = upload(alice, mediafiles.image_bytes("JPEG", (400, 300)), name="p.jpg").json()
    attachment = Attachment.objects.get(pk=body["id"])

    stored = objects(bucket)
    assert set(stored) == {attachment.storage_name, attachment.thumbnail_name}  # the thumbnail task read S3 too
    whole = b"".join(alice.client.get(body["url"]).streaming_content)
    part = alice.client.get(body["url"], HTTP_RANGE="bytes=0-99")
    assert whole == bucket.get_object(Bucket=bucket.bucket_name, Key=attachment.storage_name)["Body"].read()
    assert part.status_code == 206 and b"".join(part.streaming_content) == whole[:100]
    assert bob.client.get(body["url"]).status_code == 404


def test_presigned_downloads_are_served_by_the_bucket(alice, bucket, upload, settings):
    settings.MEDIA_SERVE_REDIRECT = True
    voice = mediafiles.audio_bytes("webm", 2.0)
    body = upload(alice, voice, name="v.webm", kind="voice").json()

    redirect = alice.client.get(body["url"])

    assert redirect.status_code == 302
    location = redirect["Location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=300" in location
    with httpx.Client(timeout=10) as http:
        whole = http.get(location)
        part = http.get(location, headers={"Range": "bytes=10-19"})
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/webm"
    assert mediafiles.duration_of(whole.content) == pytest.approx(2.0, abs=0.1)
    assert part.status_code == 206 and part.content == whole.content[10:20]
    # (moto's server does not verify signatures unless IAM is set up; a real bucket refuses a forged one.)


def test_a_large_file_goes_up_as_a_multipart_upload(alice, bucket, upload):
    data = os.urandom(12 * MIB + 17)

    body = upload(alice, data, name="big.bin", kind="file").json()

    key = Attachment.objects.get(pk=body["id"]).storage_name
    etag = objects(bucket)[key]["ETag"].strip('"')
    assert etag.endswith("-3")  # S3 marks an object assembled from parts with "-<parts>"
    assert bucket.get_object(Bucket=bucket.bucket_name, Key=key)["Body"].read() == data


def test_a_resumable_upload_keeps_its_pieces_in_the_bucket_until_done(alice, bucket,
                                                                      django_capture_on_commit_callbacks):
    data = os.urandom(6 * MIB)
    tus = {"HTTP_TUS_RESUMABLE": "1.0.0"}
    with django_capture_on_commit_callbacks(execute=True):
        url = alice.client.post("/api/v1/uploads", HTTP_UPLOAD_LENGTH=str(len(data)), **tus)["Location"]

    def patch(start: int, end: int):
        with django_capture_on_commit_callbacks(execute=True):
            return alice.client.generic("PATCH", url, data[start:end], content_type="application/offset+octet-stream",
                                        HTTP_UPLOAD_OFFSET=str(start), **tus)

    assert patch(0, 2 * MIB).status_code == 204
    assert [key for key in objects(bucket) if key.startswith("uploads/")]  # the first piece is in the bucket
    done = patch(2 * MIB, len(data))

    assert done.status_code == 204
    attachment = Attachment.objects.get(pk=done["Attachment-Id"])
    assert list(objects(bucket)) == [attachment.storage_name]  # pieces deleted
    assert bucket.get_object(Bucket=bucket.bucket_name, Key=attachment.storage_name)["Body"].read() == data


def test_posters_and_waveforms_are_made_from_objects_in_the_bucket(alice, bucket, upload):
    video = upload(alice, mediafiles.video_bytes("mp4", size=(160, 120)), name="c.mp4").json()
    voice = upload(alice, mediafiles.audio_bytes("opus", 1.0), name="v.opus").json()

    video_detail = alice.client.get(f"/api/v1/attachments/{video['id']}").json()
    poster = b"".join(alice.client.get(video_detail["thumbnail_url"]).streaming_content)
    assert Image.open(io.BytesIO(poster)).format == "WEBP"
    assert len(alice.client.get(f"/api/v1/attachments/{voice['id']}").json()["waveform"]) == 64
