"""Small real media files, made in the tests (no fixtures on disk).

Images come from Pillow (and pillow-heif for HEIC); voice and video from
FFmpeg's own encoders and muxers through PyAV, the library the server probes
them with.
"""

from __future__ import annotations

import io
import struct
import wave

import av
import numpy as np
from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30),
                **params: object) -> bytes:
    image = Image.new("RGB", size, color)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg_with_gps(size: tuple[int, int] = (64, 48), orientation: int | None = None) -> bytes:
    """A JPEG whose EXIF (and XMP) has GPS coordinates, and optionally an orientation."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (51.0, 30.0, 12.5)
    gps[3] = "W"
    gps[4] = (0.0, 7.0, 39.9)
    if orientation is not None:
        exif[ORIENTATION] = orientation
    image = Image.new("RGB", size, (10, 120, 200))
    # A marker in one corner, to see orientation applied to the pixels.
    image.paste((255, 255, 0), (0, 0, size[0] // 4, size[1] // 4))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95,
               xmp=b"<x:xmpmeta><exif:GPSLatitude>51,30.2N</exif:GPSLatitude></x:xmpmeta>")
    return buffer.getvalue()


def animated_gif(frames: int = 3, size: tuple[int, int] = (32, 32)) -> bytes:
    images = [Image.new("RGB", size, (index * 60, 255 - index * 60, 0)) for index in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0,
                   comment=b"/*hello*/")
    return buffer.getvalue()


def heic_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return image_bytes("HEIF", size)


def png_bomb_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG that declares enormous dimensions (a decompression bomb's header)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- Voice and video, encoded by FFmpeg's libraries (PyAV) -------------------------------

# (muxer, codec, sample rate) per voice format.
AUDIO_FORMATS = {
    "wav": ("wav", "pcm_s16le", 8000),
    "opus": ("ogg", "libopus", 48000),
    "webm": ("webm", "libopus", 48000),
    "mp3": ("mp3", "libmp3lame", 44100),
    "aac": ("adts", "aac", 44100),
    "m4a": ("ipod", "aac", 44100),
    "amr": ("amr", "libopencore_amrnb", 8000),
}


def _tone(seconds: float, rate: int, loud_until: float | None) -> np.ndarray:
    """A 440 Hz tone; silent after `loud_until` seconds when given (to see it in a waveform)."""
    times = np.arange(int(seconds * rate)) / rate
    samples = 0.5 * np.sin(2 * np.pi * 440 * times)
    if loud_until is not None:
        samples[times >= loud_until] = 0.0
    return samples.astype(np.float32)


def _encode_audio(container: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray) -> None:
    context = stream.codec_context
    frame_size = context.frame_size or 1024
    fmt = context.format.name if context.format is not None else "s16"
    for start in range(0, len(samples), frame_size):
        chunk = samples[start:start + frame_size]
        if fmt.startswith("s16"):
            data = (chunk * 32767).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
        else:
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = context.sample_rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def audio_bytes(fmt: str = "opus", seconds: float = 2.0, *, loud_until: float | None = None,
                metadata: dict[str, str] | None = None) -> bytes:
    """A real voice recording in `fmt` (see AUDIO_FORMATS), made by FFmpeg's encoders."""
    muxer, codec, rate = AUDIO_FORMATS[fmt]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as container:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        stream = container.add_stream(codec, rate=rate)
        stream.codec_context.layout = "mono"
        if codec == "libopencore_amrnb":
            stream.codec_context.bit_rate = 12200
        if codec in ("libmp3lame", "aac"):
            stream.codec_context.format = "fltp"
        _encode_audio(container, stream, _tone(seconds, rate, loud_until))
    return buffer.getvalue()


def wav_bytes(seconds: float = 1.5, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x00\x01" * int(seconds * rate))
    return buffer.getvalue()


def video_bytes(fmt: str = "mp4", seconds: float = 2.0, *, size: tuple[int, int] = (160, 120), fps: int = 10,
                audio: bool = True, metadata: dict[str, str] | None = None, rotation: int = 0) -> bytes:
    """A real video: H.264/AAC in MP4 or QuickTime, VP8/Opus in WebM; frames change colour over time.

    `metadata` goes into the container (e.g. {"location": "+51.5074-000.1278/"}, which is
    how phones record where a video was shot); `rotation` into the video's display matrix.
    """
    vcodec, acodec, rate = ("libvpx", "libopus", 48000) if fmt == "webm" else ("libx264", "aac", 44100)
    width, height = size
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        video = container.add_stream(vcodec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:  # every stream exists before the first packet is muxed
            sound = container.add_stream(acodec, rate=rate)
            sound.codec_context.layout = "mono"
            if acodec == "aac":
                sound.codec_context.format = "fltp"
        for index in range(int(seconds * fps)):
            pixels = np.zeros((height, width, 3), np.uint8)
            pixels[:, :, 0] = (index * 25) % 256
            pixels[: height // 4, : width // 4] = (255, 255, 0)  # a marker in the top-left corner
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            _encode_audio(container, sound, _tone(seconds, rate, None))
    return buffer.getvalue()


def tags_of(data: bytes) -> dict[str, str]:
    """Every metadata tag FFmpeg reads from the container and its streams (keys lower-cased)."""
    tags: dict[str, str] = {}
    with av.open(io.BytesIO(data)) as container:
        tags.update({key.lower(): value for key, value in container.metadata.items()})
        for stream in container.streams:
            tags.update({f"{stream.type}:{key.lower()}": value for key, value in stream.metadata.items()})
    return tags


def duration_of(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        return container.duration / 1_000_000


def mp4_with_lying_duration(data: bytes, *, claimed_seconds: int = 36_000) -> bytes:
    """An MP4 whose headers (`mvhd`, every `tkhd` and `mdhd`) say it lasts `claimed_seconds`
    while its samples last a few seconds."""
    out = bytearray(data)
    movie_timescale = 1000
    for box in (b"mvhd", b"tkhd", b"mdhd"):
        start = 0
        while (found := out.find(box, start)) >= 0:
            start = found + 4
            wide = out[found + 4] == 1  # version 1: 64-bit times and durations
            body = found + 8  # after the version and flags
            if box == b"tkhd":  # creation, modification, track id, reserved, duration (movie timescale)
                field, timescale = body + (24 if wide else 16), movie_timescale
            else:  # creation, modification, timescale, duration
                timescale_at = body + (16 if wide else 8)
                timescale = struct.unpack(">I", out[timescale_at:timescale_at + 4])[0]
                field = timescale_at + 4
                if box == b"mvhd":
                    movie_timescale = timescale
            size = 8 if wide else 4
            out[field:field + size] = (claimed_seconds * timescale).to_bytes(size, "big")
    return bytes(out)
