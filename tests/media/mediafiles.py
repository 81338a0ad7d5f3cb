"""Small real media files, made in the tests (no fixtures on disk, no encoder binaries).

Images come from Pillow (and pillow-heif for HEIC). No ffmpeg is installed,
so the audio and video containers are written by hand to their specs: just
enough structure for a real parser (mutagen) to read the duration.
"""

from __future__ import annotations

import io
import struct
import wave

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


def wav_bytes(seconds: float = 1.5, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x00\x01" * int(seconds * rate))
    return buffer.getvalue()


def mp3_bytes(frames: int = 100) -> bytes:
    """MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417-byte frames of 1152 samples."""
    header = bytes([0xFF, 0xFB, 0x90, 0x00])
    return (header + b"\x00" * 413) * frames  # 100 frames = 2.612 s


def adts_aac_bytes(frames: int = 100) -> bytes:
    """ADTS AAC-LC, 44.1 kHz, mono, 1024 samples per frame, 16-byte frames."""
    frame_length = 16
    header = bytearray(7)
    header[0] = 0xFF
    header[1] = 0xF1  # MPEG-4, layer 0, no CRC
    profile, sampling_index, channels = 1, 4, 1  # AAC LC, 44100 Hz
    header[2] = (profile << 6) | (sampling_index << 2) | (channels >> 2)
    header[3] = ((channels & 3) << 6) | (frame_length >> 11)
    header[4] = (frame_length >> 3) & 0xFF
    header[5] = ((frame_length & 7) << 5) | 0x1F
    header[6] = 0xFC
    return (bytes(header) + b"\x00" * (frame_length - 7)) * frames


def amr_bytes(frames: int = 50) -> bytes:
    """AMR-NB storage format: magic, then 12.2 kbit/s frames (type 7, 31 bytes), 20 ms each."""
    return b"#!AMR\n" + (bytes([7 << 3 | 0x04]) + b"\x00" * 31) * frames


def ogg_opus_bytes(seconds: float = 2.0) -> bytes:
    """An Ogg Opus stream: OpusHead, OpusTags, and a last page whose granule gives the length."""
    from mutagen.ogg import OggPage

    serial = 0x1234

    def page(sequence: int, packet: bytes, position: int, *, first: bool = False, last: bool = False) -> bytes:
        ogg = OggPage()
        ogg.serial, ogg.sequence, ogg.position = serial, sequence, position
        ogg.first, ogg.last = first, last
        ogg.packets = [packet]
        return ogg.write()

    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    audio = b"\xf8\xff\xfe"  # an Opus TOC byte and a little payload; mutagen reads only granules
    granule = 312 + int(seconds * 48000)
    return page(0, head, 0, first=True) + page(1, tags, 0) + page(2, audio, granule, last=True)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, payload: bytes, version: int = 0) -> bytes:
    return _box(kind, bytes([version, 0, 0, 0]) + payload)


def mp4_bytes(*, duration_ms: int = 3000, video: bool = True, brand: bytes = b"isom",
              width: int = 320, height: int = 240) -> bytes:
    """ftyp + moov(mvhd, trak(tkhd, mdia(mdhd, hdlr))) + an empty mdat.

    With `video=False` the one track is sound: an M4A voice note.
    """
    timescale = 1000
    ftyp = _box(b"ftyp", brand + struct.pack(">I", 0) + brand + b"mp41")
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _full_box(b"mvhd", struct.pack(">IIII", 0, 0, timescale, duration_ms) + struct.pack(">IH", 0x10000, 0x100)
                     + b"\x00" * 10 + matrix + b"\x00" * 24 + struct.pack(">I", 2))
    track_w, track_h = (width, height) if video else (0, 0)
    tkhd = _full_box(b"tkhd", struct.pack(">IIIII", 0, 0, 1, 0, duration_ms) + b"\x00" * 8
                     + struct.pack(">hhhH", 0, 0, 0 if video else 0x100, 0) + matrix
                     + struct.pack(">II", track_w << 16, track_h << 16))
    mdhd = _full_box(b"mdhd", struct.pack(">IIII", 0, 0, timescale, duration_ms) + struct.pack(">HH", 0x55C4, 0))
    handler = b"vide" if video else b"soun"
    hdlr = _full_box(b"hdlr", struct.pack(">I", 0) + handler + b"\x00" * 12 + b"track\x00")
    trak = _box(b"trak", tkhd + _box(b"mdia", mdhd + hdlr))
    moov = _box(b"moov", mvhd + trak)
    return ftyp + moov + _box(b"mdat", b"\x00" * 64)
