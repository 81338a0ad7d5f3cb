"""Verify an upload with the parser for its format and read its facts.

Images are decoded in full and re-encoded, so what is stored and served is
fresh encoder output: only pixels survive (no EXIF/GPS, no comments, no
appended payloads of a polyglot). Voice and video are parsed as containers
to read `duration_ms` (and a video's size); they are stored as uploaded.
"""

from __future__ import annotations

import struct
import tempfile
import warnings
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from PIL import Image, ImageOps, ImageSequence

from core.errors import UnsupportedMediaType, ValidationFailed
from media.sniff import Sniffed

try:  # HEIC/HEIF decoding (iPhone photos); see docs/media.md.
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is pinned in requirements.txt
    pass

# Pillow plugin names per sniffed format: the decoder is never guessed.
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "heif": "HEIF"}
# What each image format is re-encoded to. HEIC becomes JPEG: most clients cannot show HEIC.
_OUTPUT = {
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "gif": ("GIF", "image/gif"),
    "webp": ("WEBP", "image/webp"),
    "heif": ("JPEG", "image/jpeg"),
}
# Frame timing survives re-encoding; nothing else from the source's info does.
_KEPT_INFO = ("transparency", "duration", "loop", "disposal", "background")


@dataclass
class Probed:
    kind: str
    content_type: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    # The bytes to store instead of the upload (re-encoded images); None keeps the upload.
    replacement: IO[bytes] | None = None


def invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"file": [message]})


# --- Images ---------------------------------------------------------------------------


def probe_image(fileobj: IO[bytes], sniffed: Sniffed) -> Probed:
    """Decode fully (bounded by MEDIA_IMAGE_MAX_PIXELS), strip, re-encode."""
    max_pixels = settings.MEDIA_IMAGE_MAX_PIXELS
    plugin = _PIL_FORMATS[sniffed.format]
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS and raises past twice that; both are bombs here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fileobj.seek(0)
            with Image.open(fileobj, formats=[plugin]) as image:
                _check_dimensions(image.width, image.height, max_pixels)
                image.verify()
            fileobj.seek(0)
            with Image.open(fileobj, formats=[plugin]) as image:
                _check_dimensions(image.width, image.height, max_pixels)
                frames = _decode_frames(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise invalid("The image has too many pixels.") from exc
    except ValidationFailed:
        raise
    except Exception as exc:  # a decoder fed hostile bytes may raise anything: bad input
        raise invalid("The image is truncated or corrupt.") from exc

    out_format, content_type = _OUTPUT[sniffed.format]
    output = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, which closes it
    try:
        _encode(frames, output, out_format)
    except Exception as exc:  # e.g. a mode the encoder refuses: still bad input
        output.close()
        raise invalid("The image could not be processed.") from exc
    output.seek(0)
    width, height = frames[0].size
    return Probed("image", content_type, width=width, height=height, replacement=output)


def _check_dimensions(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise invalid("The image has no pixels.")
    if width * height > max_pixels:
        raise invalid("The image has too many pixels.")


def _decode_frames(image: Image.Image) -> list[Image.Image]:
    frame_count = getattr(image, "n_frames", 1)
    if frame_count > settings.MEDIA_IMAGE_MAX_FRAMES:
        raise invalid("The image has too many frames.")
    # Every frame is decoded into memory: an animation's pixels count in total.
    if image.width * image.height * frame_count > settings.MEDIA_IMAGE_MAX_PIXELS:
        raise invalid("The image has too many pixels.")
    if frame_count == 1:
        # Apply the EXIF orientation to the pixels, since the EXIF itself is dropped.
        frame = ImageOps.exif_transpose(image)
        frame.load()
        return [_clean(frame, image.info)]
    return [_clean(frame.copy(), frame.info) for frame in ImageSequence.Iterator(image)]


def _clean(frame: Image.Image, info: dict[str, Any]) -> Image.Image:
    frame.info = {key: info[key] for key in _KEPT_INFO if key in info}
    return frame


def _encode(frames: list[Image.Image], output: IO[bytes], out_format: str) -> None:
    first = frames[0]
    if out_format == "JPEG":
        if first.mode not in ("RGB", "L", "CMYK"):
            first = first.convert("RGB")
        first.save(output, format="JPEG", quality=90, optimize=True)
        return
    params: dict[str, Any] = {}
    if out_format == "WEBP":
        params["quality"] = 90
    if len(frames) > 1:
        params.update(save_all=True, append_images=frames[1:],
                      duration=[frame.info.get("duration", 100) for frame in frames],
                      loop=first.info.get("loop", 0))
    first.save(output, format=out_format, **params)


def thumbnail_encode(fileobj: IO[bytes], output: IO[bytes], *, max_side: int) -> tuple[int, int]:
    """A WebP of at most max_side per side from a stored (already clean) image."""
    with Image.open(fileobj) as image:
        image.seek(0)
        thumb = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
        thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        thumb.save(output, format="WEBP", quality=80)
        return thumb.size


# --- Voice and video ------------------------------------------------------------------


def probe_av(fileobj: IO[bytes], sniffed: Sniffed) -> Probed:
    """Parse the container; the duration comes from it, never from the client."""
    fileobj.seek(0)
    try:
        if sniffed.format == "mp4":
            return _probe_mp4(fileobj, sniffed)
        if sniffed.format in ("amr", "amr-wb"):
            seconds = _amr_duration(fileobj, wideband=sniffed.format == "amr-wb")
        else:
            seconds = _mutagen_duration(fileobj, sniffed.format)
    except ValidationFailed:
        raise
    except Exception as exc:  # a parser fed hostile bytes may raise anything: bad input
        raise invalid("The recording is truncated or corrupt.") from exc
    return Probed("voice", sniffed.content_type, duration_ms=_to_ms(seconds))


def _to_ms(seconds: float) -> int:
    if not seconds or seconds <= 0:
        raise invalid("The recording has no duration.")
    return round(seconds * 1000)


def _mutagen_duration(fileobj: IO[bytes], fmt: str) -> float:
    from mutagen.aac import AAC
    from mutagen.mp3 import MP3
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE

    parser = {"wav": WAVE, "opus": OggOpus, "vorbis": OggVorbis, "mp3": MP3, "aac": AAC}[fmt]
    return float(parser(fileobj).info.length)


# AMR frame payload sizes by frame type (RFC 4867 section 5.3); 20 ms per frame.
_AMR_NB_SIZES = [12, 13, 15, 17, 19, 20, 26, 31, 5, 6, 5, 5, 0, 0, 0, 0]
_AMR_WB_SIZES = [17, 23, 32, 36, 40, 46, 50, 58, 60, 5, 0, 0, 0, 0, 0, 0]


def _amr_duration(fileobj: IO[bytes], *, wideband: bool) -> float:
    magic = b"#!AMR-WB\n" if wideband else b"#!AMR\n"
    sizes = _AMR_WB_SIZES if wideband else _AMR_NB_SIZES
    data = fileobj.read()
    position, frames = len(magic), 0
    while position < len(data):
        header = data[position]
        frame_type = (header >> 3) & 0x0F
        if header & 0x83 or (sizes[frame_type] == 0 and frame_type < 14):
            raise invalid("The recording is truncated or corrupt.")
        position += 1 + sizes[frame_type]
        frames += 1
    if position != len(data):
        raise invalid("The recording is truncated or corrupt.")
    return frames * 0.02


def _probe_mp4(fileobj: IO[bytes], sniffed: Sniffed) -> Probed:
    from mutagen.mp4 import Atoms

    atoms = Atoms(fileobj)
    moov = atoms[b"moov",]
    duration = _mvhd_seconds(moov[b"mvhd",], fileobj)
    video_size: tuple[int, int] | None = None
    has_sound = False
    for trak in moov.findall(b"trak"):
        ok, hdlr = trak[b"mdia", b"hdlr"].read(fileobj)
        handler = hdlr[8:12] if ok else b""
        if handler == b"soun":
            has_sound = True
        elif handler == b"vide" and video_size is None:
            video_size = _tkhd_size(trak[b"tkhd",], fileobj)
    if video_size is not None:
        width, height = video_size
        return Probed("video", sniffed.content_type, width=width or None, height=height or None,
                      duration_ms=_to_ms(duration))
    if has_sound:
        return Probed("voice", "audio/mp4", duration_ms=_to_ms(duration))
    raise invalid("The file has no audio or video track.")


def _mvhd_seconds(atom: Any, fileobj: IO[bytes]) -> float:
    ok, data = atom.read(fileobj)
    if not ok:
        raise invalid("The recording is truncated or corrupt.")
    version = data[0]
    if version == 1:
        timescale, duration = struct.unpack(">IQ", data[20:32])
    else:
        timescale, duration = struct.unpack(">II", data[12:20])
    if not timescale:
        raise invalid("The recording is truncated or corrupt.")
    return duration / timescale


def _tkhd_size(atom: Any, fileobj: IO[bytes]) -> tuple[int, int]:
    ok, data = atom.read(fileobj)
    if not ok:
        raise invalid("The recording is truncated or corrupt.")
    offset = 88 if data[0] == 1 else 76
    width, height = struct.unpack(">II", data[offset:offset + 8])
    return width >> 16, height >> 16


def refuse_kind(requested: str, actual: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"The file's bytes are {actual}, not {requested}.",
        details={"kind": [f"The file's bytes are {actual}, not {requested}."]},
    )
