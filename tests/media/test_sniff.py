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
        (mediafiles.ogg_opus_bytes(), "voice", "audio/ogg"),
        (mediafiles.amr_bytes(), "voice", "audio/amr"),
        (b"#!AMR-WB\n" + b"\x00" * 10, "voice", "audio/amr-wb"),
        (mediafiles.mp3_bytes(), "voice", "audio/mpeg"),
        (b"ID3\x04\x00" + b"\x00" * 20, "voice", "audio/mpeg"),
        (mediafiles.adts_aac_bytes(), "voice", "audio/aac"),
        # MP4 containers are voice or video by their tracks (decided by the probe).
        (mediafiles.mp4_bytes(), "video", "video/mp4"),
        (mediafiles.mp4_bytes(video=False, brand=b"M4A "), "video", "video/mp4"),
    ],
    ids=["jpeg", "png", "gif", "webp", "heic", "wav", "opus", "amr", "amr-wb", "mp3", "id3", "aac", "mp4", "m4a"],
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
    ],
    ids=["empty", "text", "html", "pdf", "zip", "avi", "ogg-theora", "avif", "unknown-ftyp"],
)
def test_anything_else_is_not_recognised(data):
    assert sniff(data) is None
