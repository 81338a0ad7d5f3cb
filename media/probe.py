"""Verify an upload with the parser for its format and read its facts.

Images are decoded in full and re-encoded, so what is stored and served is
fresh encoder output: only pixels survive (no EXIF/GPS, no comments, no
appended payloads of a polyglot). Voice and video go through FFmpeg's
libraries (PyAV) in a child process with limits (`media.avprocess`): every
packet is demuxed (the duration comes from the packets), the first frames
are decoded, and the packets are remuxed into a fresh container without any
metadata, which is what is stored.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from PIL import Image, ImageOps, ImageSequence

from core.errors import UnsupportedMediaType, ValidationFailed
from media import avprocess
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
    # The bytes to store instead of the upload (re-encoded images, remuxed recordings); None keeps the upload.
    replacement: IO[bytes] | None = None
    # Voice and video: container, codecs and rotation, for the tasks that follow (waveform, transcoding).
    media_info: dict[str, Any] = field(default_factory=dict)


def invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"file": [message]})


# --- Images ---------------------------------------------------------------------------


def decode_image(fileobj: IO[bytes], sniffed: Sniffed) -> list[Image.Image]:
    """Every frame, decoded in full (bounded by MEDIA_IMAGE_MAX_PIXELS), EXIF orientation applied."""
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
                return _decode_frames(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise invalid("The image has too many pixels.") from exc
    except ValidationFailed:
        raise
    except Exception as exc:  # a decoder fed hostile bytes may raise anything: bad input
        raise invalid("The image is truncated or corrupt.") from exc


def probe_image(fileobj: IO[bytes], sniffed: Sniffed) -> Probed:
    """Decode fully (bounded by MEDIA_IMAGE_MAX_PIXELS), strip, re-encode."""
    frames = decode_image(fileobj, sniffed)
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


def avatar_encode(fileobj: IO[bytes], sniffed: Sniffed, *, sizes: dict[str, int]) -> dict[str, IO[bytes]]:
    """Square centre crops of the (first frame of the) image, one WebP per size; only pixels survive."""
    frame = decode_image(fileobj, sniffed)[0]
    frame = frame.convert("RGBA" if frame.mode in ("RGBA", "LA", "P") else "RGB")
    side = min(frame.size)
    left, top = (frame.width - side) // 2, (frame.height - side) // 2
    square = frame.crop((left, top, left + side, top + side))
    outputs: dict[str, IO[bytes]] = {}
    try:
        for name, pixels in sizes.items():
            output = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, which closes it
            outputs[name] = output
            square.resize((min(pixels, side), min(pixels, side)), Image.Resampling.LANCZOS).save(
                output, format="WEBP", quality=85)
            output.seek(0)
    except Exception as exc:
        for output in outputs.values():
            output.close()
        raise invalid("The image could not be processed.") from exc
    return outputs


def thumbnail_encode(fileobj: IO[bytes], output: IO[bytes], *, max_side: int) -> tuple[int, int]:
    """A WebP of at most max_side per side from a stored (already clean) image."""
    with Image.open(fileobj) as image:
        image.seek(0)
        thumb = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
        thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        thumb.save(output, format="WEBP", quality=80)
        return thumb.size


# --- Voice and video ------------------------------------------------------------------

# The stored content type of each container, by kind.
_AV_TYPES = {
    ("mp4", "video"): "video/mp4", ("mp4", "voice"): "audio/mp4",
    ("mov", "video"): "video/quicktime", ("mov", "voice"): "audio/mp4",
    ("webm", "video"): "video/webm", ("webm", "voice"): "audio/webm",
    ("opus", "voice"): "audio/ogg", ("vorbis", "voice"): "audio/ogg",
    ("amr", "voice"): "audio/amr", ("amr-wb", "voice"): "audio/amr-wb",
    ("mp3", "voice"): "audio/mpeg", ("aac", "voice"): "audio/aac", ("wav", "voice"): "audio/wav",
}
_AV_REFUSALS = {
    "corrupt": "The recording is truncated or corrupt.",
    "no_streams": "The file has no audio or video track.",
    "no_duration": "The recording has no duration.",
    "lying_header": "The recording's header claims a duration its content does not have.",
    "too_complex": "The recording could not be processed within the server's limits.",
}


def av_limits() -> dict[str, int]:
    return {"voice": settings.VOICE_MAX_SECONDS, "video": settings.VIDEO_MAX_SECONDS}


@contextmanager
def local_path(fileobj: IO[bytes]) -> Iterator[str]:
    """A path FFmpeg can open: the upload's own temporary file, or a copy of the bytes."""
    path = getattr(fileobj, "temporary_file_path", None)
    if callable(path):
        yield path()
        return
    with tempfile.NamedTemporaryFile(suffix=".media") as copy:
        fileobj.seek(0)
        shutil.copyfileobj(fileobj, copy, 1024 * 1024)
        copy.flush()
        yield copy.name


def probe_av(fileobj: IO[bytes], sniffed: Sniffed) -> Probed:
    """Demux and check with FFmpeg (in a child process), and keep a copy without metadata.

    The duration comes from the packets, never from the header or the client;
    what is stored is the remuxed copy (same codecs, same format, no tags).
    """
    size = _size_of(fileobj)
    output = tempfile.NamedTemporaryFile(suffix=".media")  # noqa: SIM115 - handed to the caller, which closes it
    try:
        with local_path(fileobj) as path:
            facts = avprocess.run("inspect", {"src": path, "dst": output.name, "format": sniffed.format,
                                              "max_seconds": av_limits()},
                                  output_bytes=2 * size + 1024 * 1024)
    except avprocess.AvRefused as refused:
        output.close()
        raise _av_refusal(refused) from refused
    except BaseException:
        output.close()
        raise
    output.seek(0)
    kind = facts["kind"]
    container = facts["container"]
    return Probed(kind, _AV_TYPES[(container, kind)], width=facts["width"], height=facts["height"],
                  duration_ms=facts["duration_ms"], replacement=output,
                  media_info={key: facts[key] for key in ("container", "video_codec", "audio_codec", "rotation")})


def _size_of(fileobj: IO[bytes]) -> int:
    size = getattr(fileobj, "size", None)
    if isinstance(size, int):
        return size
    fileobj.seek(0, 2)
    end = fileobj.tell()
    fileobj.seek(0)
    return end


def _av_refusal(refused: avprocess.AvRefused) -> ValidationFailed:
    if refused.reason == "too_long":
        kind = refused.facts.get("kind", "voice")
        limit = int(refused.facts.get("max_seconds") or 0)
        noun = "voice note" if kind == "voice" else "video"
        return invalid(f"The {noun} is longer than {limit} seconds.")
    return invalid(_AV_REFUSALS.get(refused.reason, _AV_REFUSALS["corrupt"]))


def refuse_kind(requested: str, actual: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"The file's bytes are {actual}, not {requested}.",
        details={"kind": [f"The file's bytes are {actual}, not {requested}."]},
    )
