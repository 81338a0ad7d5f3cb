"""The real type of an upload, from its first bytes (never its name or header).

Only the formats on the allow-list are recognised; everything else is
`None` here, and can only be accepted as kind `file` (served as an opaque
download).
"""

from __future__ import annotations

from dataclasses import dataclass

# How many leading bytes `sniff` needs to decide.
SNIFF_BYTES = 4096

HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
MP4_BRANDS = {
    b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash",
    b"M4A ", b"M4B ", b"M4V ", b"f4v ", b"f4a ", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"mmp4",
}
QUICKTIME_BRANDS = {b"qt  "}


@dataclass(frozen=True)
class Sniffed:
    kind: str  # image | voice | video; "mp4" and "webm" are decided between voice and video by their tracks
    content_type: str
    format: str  # the parser to verify with: jpeg, png, gif, webp, heif, mp4, webm, opus, vorbis, amr, amr-wb,
    # mp3, aac, wav


def sniff(head: bytes) -> Sniffed | None:
    """Recognise an allow-listed format from the first SNIFF_BYTES of a file."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg", "jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png", "png")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Sniffed("image", "image/gif", "gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "image/webp", "webp")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("voice", "audio/wav", "wav")
    if head[4:8] == b"ftyp":
        return _sniff_iso_bmff(head)
    if head.startswith(b"OggS"):
        return _sniff_ogg(head)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return _sniff_webm(head)
    if head.startswith(b"#!AMR-WB\n"):
        return Sniffed("voice", "audio/amr-wb", "amr-wb")
    if head.startswith(b"#!AMR\n"):
        return Sniffed("voice", "audio/amr", "amr")
    if head.startswith(b"ID3"):
        return Sniffed("voice", "audio/mpeg", "mp3")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0x03
        if layer == 0 and head[1] & 0xF6 == 0xF0:  # ADTS: MPEG-2/4 sync, layer 00
            return Sniffed("voice", "audio/aac", "aac")
        if layer in (1, 2):  # MPEG audio layer III or II frame sync
            return Sniffed("voice", "audio/mpeg", "mp3")
    return None


def _sniff_iso_bmff(head: bytes) -> Sniffed | None:
    box_size = int.from_bytes(head[:4], "big")
    end = min(max(box_size, 16), len(head))
    brands = {head[8:12]} | {head[i:i + 4] for i in range(16, end - 3, 4)}
    major = head[8:12]
    if major in (b"avif", b"avis") or (b"avif" in brands and not brands & {b"heic", b"heix"}):
        return None  # AVIF shares HEIF's box format but is not on the allow-list
    if major in HEIF_BRANDS or (major not in MP4_BRANDS and brands & {b"heic", b"heix", b"mif1"}):
        return Sniffed("image", "image/heic", "heif")
    if major in MP4_BRANDS or brands & MP4_BRANDS:
        # Audio-only MP4 (M4A) is a voice note; the tracks decide (see probe).
        return Sniffed("video", "video/mp4", "mp4")
    if major in QUICKTIME_BRANDS:
        return Sniffed("video", "video/quicktime", "mp4")
    return None


def _sniff_ogg(head: bytes) -> Sniffed | None:
    # The first page carries exactly one packet: the codec's identification header.
    if len(head) < 27:
        return None
    segments = head[26]
    packet = head[27 + segments:]
    if packet.startswith(b"OpusHead"):
        return Sniffed("voice", "audio/ogg", "opus")
    if packet.startswith(b"\x01vorbis"):
        return Sniffed("voice", "audio/ogg", "vorbis")
    return None


def _sniff_webm(head: bytes) -> Sniffed | None:
    """An EBML header whose DocType is "webm" (browsers' and desktop apps' MediaRecorder output).

    Other Matroska files are not on the allow-list. The DocType element (0x4282)
    sits in the first few dozen bytes of the EBML header.
    """
    marker = head.find(b"\x42\x82", 4, 64)
    if marker < 0 or marker + 3 > len(head):
        return None
    length_byte = head[marker + 2]
    if length_byte & 0x80 == 0:  # only the one-byte length form is used for a short DocType
        return None
    length = length_byte & 0x7F
    if head[marker + 3:marker + 3 + length] != b"webm":
        return None
    # Voice (Opus only) or video: the tracks decide (see probe).
    return Sniffed("video", "video/webm", "webm")
