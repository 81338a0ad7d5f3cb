"""The real type comes from the first bytes, never from the name or the client's header."""

from __future__ import annotations

import pytest

from media.sniff import sniff
from tests.media import mediafiles


@pytest.mark.parametrize(
    ("data", "kind", "content_type"),
    [
        (mediafiles.image_bytes("JPEG"), "image", "image/jpeg"),
        (mediafiles.image_bytes("PNG"), "image", "image/png"),
        (mediafiles.image_bytes("GIF"), "image", "image/gif"),
        (mediafiles.image_bytes("WEBP"), "image", "image/webp"),
        (mediafiles.heic_bytes(), "image", "image/heic"),
        (mediafiles.wav_bytes(), "voice", "audio/wav"),
        (mediafiles.audio_bytes("opus"), "voice", "audio/ogg"),
        (mediafiles.audio_bytes("amr"), "voice", "audio/amr"),
        (b"#!AMR-WB\n" + b"\x00" * 10, "voice", "audio/amr-wb"),
        (mediafiles.audio_bytes("mp3"), "voice", "audio/mpeg"),
        (b"\xff\xfb\x90\x00" + b"\x00" * 20, "voice", "audio/mpeg"),
        (mediafiles.audio_bytes("aac"), "voice", "audio/aac"),
        # MP4 and WebM containers are voice or video by their tracks (decided by the probe).
        (mediafiles.video_bytes("mp4"), "video", "video/mp4"),
        (mediafiles.audio_bytes("m4a"), "video", "video/mp4"),
        (mediafiles.video_bytes("webm"), "video", "video/webm"),
        (mediafiles.audio_bytes("webm"), "video", "video/webm"),
    ],
    ids=["jpeg", "png", "gif", "webp", "heic", "wav", "opus", "amr", "amr-wb", "mp3", "mp3-frame", "aac", "mp4",
         "m4a", "webm", "webm-opus"],
)
def test_allow_listed_formats_are_recognised(data, kind, content_type):
    sniffed = sniff(data[:4096])

    assert sniffed is not None
    assert (sniffed.kind, sniffed.content_type) == (kind, content_type)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world",
        b"<html><script>alert(1)</script>",
        b"%PDF-1.7\n",
        b"PK\x03\x04zipfile",
        b"RIFF\x00\x00\x00\x00AVI LIST",
        b"OggS" + b"\x00" * 22 + b"\x01" + b"\x10" + b"\x80theora",
        b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00avifmif1",
        b"\x00\x00\x00\x18ftypzzzz\x00\x00\x00\x00zzzzyyyy",
        b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska",
        b"\x1a\x45\xdf\xa3",
    ],
    ids=["empty", "text", "html", "pdf", "zip", "avi", "ogg-theora", "avif", "unknown-ftyp", "matroska", "ebml-only"],
)
def test_anything_else_is_not_recognised(data):
    assert sniff(data) is None
