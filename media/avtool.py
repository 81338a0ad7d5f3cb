"""FFmpeg's libraries (PyAV) on one hostile file, in a child process with limits.

Run as `python -I media/avtool.py '<json request>'` by `media.avprocess`; it
prints one JSON object on stdout. It imports nothing of the project (no
Django), sets its own resource limits before importing PyAV (address space,
CPU seconds, size of files it writes), and decodes with one thread, so a
decoder bug or a file built to exhaust memory kills this process, never the
web or Celery worker that asked.

Commands (the request's "command"):

- `inspect`: demux every packet of the first video and first audio stream
  (the real duration comes from the packets, not from the header), decode the
  first frames of each to prove they decode, and copy the packets into a new
  container of the same format with no metadata at all (remux, no
  re-encoding): location, device, creation time, chapters, cover art, data
  and subtitle tracks (GPS telemetry) are not copied.
- `poster`: a WebP of the first frame at or after 0.5 s (or the first frame),
  rotated as the display matrix says and fitted into `max_side`.
- `waveform`: `levels` peak levels 0..100 of the first audio stream, normalised
  to the loudest.
- `transcode`: H.264/AAC in MP4 (faststart), for clients that cannot play the original.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

# The demuxer for each format `media.sniff` recognises: never guessed from the bytes again.
DEMUXERS = {
    "mp4": "mov",
    "webm": "matroska",
    "opus": "ogg",
    "vorbis": "ogg",
    "amr": "amr",
    "amr-wb": "amr",
    "mp3": "mp3",
    "aac": "aac",
    "wav": "wav",
}
# What the stripped copy is written as. QuickTime stays QuickTime (the mp4 muxer refuses some of its codecs).
MUXERS = {
    "mp4": ("mp4", {"movflags": "+faststart"}),
    "mov": ("mov", {"movflags": "+faststart"}),
    "webm": ("webm", {}),
    "opus": ("ogg", {}),
    "vorbis": ("ogg", {}),
    "amr": ("amr", {}),
    "amr-wb": ("amr", {}),
    "mp3": ("mp3", {"id3v2_version": "0", "write_id3v1": "0"}),
    "aac": ("adts", {}),
    "wav": ("wav", {}),
}
# Bytes a header may claim beyond what the packets hold before it is called a lie.
DURATION_SLACK_SECONDS = 2.0
DURATION_SLACK_RATIO = 0.10
FRAMES_TO_CHECK = 3
MAX_PACKETS = 2_000_000


class Refused(Exception):
    def __init__(self, reason: str, **facts: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.facts = facts


def _limit(memory_bytes: int, cpu_seconds: int, file_bytes: int) -> None:
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if cpu_seconds:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    if file_bytes:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _open(av: Any, path: str, fmt: str) -> Any:
    demuxer = DEMUXERS[fmt]
    # Bounded probing: a header cannot make the demuxer read the whole file to guess.
    return av.open(path, format=demuxer, options={"probesize": "5000000", "analyzeduration": "5000000"})


def _streams(container: Any) -> tuple[Any, Any]:
    from av.stream import Disposition

    # Cover art (an MP3's or M4A's picture) is a one-frame "video" stream: not a video.
    video = next((s for s in container.streams.video if not s.disposition & Disposition.attached_pic), None)
    audio = next(iter(container.streams.audio), None)
    return video, audio


def _single_thread(stream: Any) -> None:
    stream.codec_context.thread_count = 1


def _seconds(value: int | None, time_base: Any) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def _mvhd_seconds(path: str) -> float | None:
    """The duration in an MP4's movie header (`moov/mvhd`), which FFmpeg does not expose."""
    with open(path, "rb") as file:
        end = file.seek(0, 2)
        position, limit = 0, end
        inside_moov = False
        for _ in range(10_000):
            if position + 8 > limit:
                return None
            file.seek(position)
            header = file.read(16)
            size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            body = position + 8
            if size == 1:
                size, body = int.from_bytes(header[8:16], "big"), position + 16
            elif size == 0:
                size = limit - position
            if size < 8:
                return None
            if kind == b"moov" and not inside_moov:
                position, limit, inside_moov = body, min(position + size, end), True
                continue
            if kind == b"mvhd" and inside_moov:
                file.seek(body)
                data = file.read(32)
                if len(data) < 20:
                    return None
                if data[0] == 1:
                    timescale, duration = int.from_bytes(data[20:24], "big"), int.from_bytes(data[24:32], "big")
                else:
                    timescale, duration = int.from_bytes(data[12:16], "big"), int.from_bytes(data[16:20], "big")
                return duration / timescale if timescale else None
            position += size
    return None


def inspect(request: dict[str, Any]) -> dict[str, Any]:
    import av

    source = _open(av, request["src"], request["format"])
    try:
        video, audio = _streams(source)
        if video is None and audio is None:
            raise Refused("no_streams")
        kind = "video" if video is not None else "voice"
        max_seconds = float(request["max_seconds"][kind])
        chosen = [s for s in (video, audio) if s is not None]
        for stream in chosen:
            _single_thread(stream)
        output = None
        mapping: dict[int, Any] = {}
        if request.get("dst"):
            container_format = request["format"]
            if container_format == "mp4" and "qt" in (source.metadata.get("major_brand") or "").strip():
                container_format = "mov"
            muxer, options = MUXERS[container_format]
            # bitexact: not even the muxer's own "encoder" tag is written.
            output = av.open(request["dst"], "w", format=muxer, options=options,
                             container_options={"fflags": "+bitexact"})
            for stream in chosen:
                mapping[stream.index] = output.add_stream_from_template(stream)
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        decoded: dict[int, int] = {s.index: 0 for s in chosen}
        rotation = 0
        packets = 0
        for packet in source.demux(*chosen):
            if packet.size == 0 and packet.dts is None:
                continue  # the demuxer's end-of-stream marker
            packets += 1
            if packets > MAX_PACKETS:
                raise Refused("corrupt")
            index = packet.stream.index
            stream = packet.stream
            start = packet.pts if packet.pts is not None else packet.dts
            if start is not None:
                begin = _seconds(start, packet.time_base) or 0.0
                end = _seconds(start + (packet.duration or 0), packet.time_base) or 0.0
                first[index] = min(first.get(index, begin), begin)
                last[index] = max(last.get(index, end), end)
                if max(last[i] - first[i] for i in last) > max_seconds + 1:
                    raise Refused("too_long", kind=kind, max_seconds=max_seconds)
            if decoded[index] < FRAMES_TO_CHECK:
                for frame in stream.codec_context.decode(packet):
                    decoded[index] += 1
                    if index == getattr(video, "index", None) and decoded[index] == 1:
                        rotation = int(getattr(frame, "rotation", 0) or 0)
            if output is not None:
                if packet.dts is None:
                    continue  # a muxer cannot place a packet without a timestamp
                packet.stream = mapping[index]
                output.mux(packet)
        if output is not None:
            output.close()
        if packets == 0:
            raise Refused("no_duration")
        for stream in chosen:
            if decoded[stream.index] == 0:
                # Packets that never decode (a truncated or garbage stream behind a valid header).
                for _frame in stream.codec_context.decode(None):
                    decoded[stream.index] += 1
                if decoded[stream.index] == 0:
                    raise Refused("corrupt")
        durations = [last[i] - first[i] for i in last]
        duration = max(durations) if durations else 0.0
        declared = source.duration / 1_000_000 if source.duration else None
        if request["format"] == "mp4":
            # FFmpeg recomputes an MP4's duration from its sample tables; players show the movie header's.
            movie = _mvhd_seconds(request["src"])
            if movie is not None:
                declared = max(declared or 0.0, movie)
        if (declared is not None and request["format"] in ("mp4", "webm")
                and declared > duration + max(DURATION_SLACK_SECONDS, duration * DURATION_SLACK_RATIO)):
            raise Refused("lying_header", declared_seconds=declared, seconds=duration)
        if duration <= 0:
            raise Refused("no_duration")
        if duration > max_seconds:
            raise Refused("too_long", kind=kind, max_seconds=max_seconds)
        width = height = None
        if video is not None:
            width, height = video.codec_context.width or None, video.codec_context.height or None
            if width and height and abs(rotation) in (90, 270):
                width, height = height, width
        container_format = request["format"]
        if container_format == "mp4" and "qt" in (source.metadata.get("major_brand") or "").strip():
            container_format = "mov"
        return {
            "kind": kind,
            "container": container_format,
            "duration_ms": round(duration * 1000),
            "declared_ms": round(declared * 1000) if declared is not None else None,
            "width": width,
            "height": height,
            "rotation": rotation,
            "video_codec": video.codec_context.name if video is not None else None,
            "audio_codec": audio.codec_context.name if audio is not None else None,
            "sample_rate": audio.codec_context.sample_rate if audio is not None else None,
            "channels": audio.codec_context.channels if audio is not None else None,
        }
    finally:
        source.close()


def poster(request: dict[str, Any]) -> dict[str, Any]:
    import av
    from PIL import Image

    source = _open(av, request["src"], request["format"])
    try:
        video, _ = _streams(source)
        if video is None:
            raise Refused("no_streams")
        _single_thread(video)
        chosen = None
        for index, frame in enumerate(source.decode(video)):
            chosen = frame
            if (frame.time or 0) >= 0.5 or index >= 100:
                break
        if chosen is None:
            raise Refused("corrupt")
        image = chosen.to_image()
        rotation = int(getattr(chosen, "rotation", 0) or 0)
        if rotation:
            image = image.rotate(rotation, expand=True)  # counter-clockwise, as the display matrix says
        image.thumbnail((request["max_side"], request["max_side"]), Image.Resampling.LANCZOS)
        image.save(request["dst"], format="WEBP", quality=80)
        return {"width": image.width, "height": image.height}
    finally:
        source.close()


def waveform(request: dict[str, Any]) -> dict[str, Any]:
    import av

    levels = int(request["levels"])
    source = _open(av, request["src"], request["format"])
    try:
        _, audio = _streams(source)
        if audio is None:
            raise Refused("no_streams")
        _single_thread(audio)
        rate = 8000
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        window = rate // 100  # one peak per 10 ms
        peaks: list[float] = []
        carry: list[float] = []
        for frame in source.decode(audio):
            for mono in resampler.resample(frame):
                samples = carry + [abs(v) for v in mono.to_ndarray().reshape(-1).tolist()]
                whole = len(samples) - len(samples) % window
                peaks.extend(max(samples[i:i + window]) for i in range(0, whole, window))
                carry = samples[whole:]
        if carry:
            peaks.append(max(carry))
        if not peaks:
            raise Refused("corrupt")
        buckets = []
        for bucket in range(levels):
            start = bucket * len(peaks) // levels
            end = max(start + 1, (bucket + 1) * len(peaks) // levels)
            buckets.append(max(peaks[start:end]) if start < len(peaks) else 0.0)
        loudest = max(buckets)
        return {"levels": [round(100 * value / loudest) if loudest > 0 else 0 for value in buckets]}
    finally:
        source.close()


def transcode(request: dict[str, Any]) -> dict[str, Any]:
    import av

    source = _open(av, request["src"], request["format"])
    output = av.open(request["dst"], "w", format="mp4", options={"movflags": "+faststart"})
    try:
        video, audio = _streams(source)
        if video is None:
            raise Refused("no_streams")
        _single_thread(video)
        max_side = int(request["max_side"])
        width, height = video.codec_context.width, video.codec_context.height
        scale = min(1.0, max_side / max(width, height))
        # Even dimensions: yuv420p needs them.
        out_w, out_h = max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
        rate = video.guessed_rate or video.average_rate or 30
        out_video = output.add_stream("libx264", rate=rate, options={"preset": "veryfast", "crf": "23"})
        out_video.width, out_video.height, out_video.pix_fmt = out_w, out_h, "yuv420p"
        out_video.codec_context.thread_count = 1
        out_audio = None
        resampler = None
        if audio is not None:
            _single_thread(audio)
            out_audio = output.add_stream("aac", rate=48000)
            out_audio.codec_context.layout = "stereo"
            out_audio.codec_context.bit_rate = 128_000
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        frames = 0
        for frame in source.decode(*[s for s in (video, audio) if s is not None]):
            if isinstance(frame, av.VideoFrame):
                if frames == 0 and getattr(frame, "rotation", 0):
                    out_video.set_display_rotation(int(frame.rotation))  # players rotate, as for the original
                scaled = frame.reformat(width=out_w, height=out_h, format="yuv420p")
                scaled.pts, scaled.time_base = frame.pts, frame.time_base
                output.mux(out_video.encode(scaled))
                frames += 1
            elif out_audio is not None and resampler is not None:
                for resampled in resampler.resample(frame):
                    output.mux(out_audio.encode(resampled))
        output.mux(out_video.encode(None))
        if out_audio is not None:
            output.mux(out_audio.encode(None))
        if frames == 0:
            raise Refused("corrupt")
        return {"width": out_w, "height": out_h}
    finally:
        output.close()
        source.close()


COMMANDS = {"inspect": inspect, "poster": poster, "waveform": waveform, "transcode": transcode}


def main() -> int:
    request = json.loads(sys.argv[1])
    limits = request.get("limits", {})
    _limit(limits.get("memory", 0), limits.get("cpu", 0), limits.get("file", 0))
    # Outside the try: a process that cannot even load FFmpeg within its limits exits non-zero,
    # which the caller reports as "beyond the limits", not as a corrupt file.
    import av  # noqa: F401
    from PIL import Image  # noqa: F401

    try:
        result = COMMANDS[request["command"]](request)
    except Refused as refused:
        result = {"refused": refused.reason, **refused.facts}
    except MemoryError:
        result = {"refused": "too_complex"}
    except Exception as exc:  # noqa: BLE001 - PyAV raises many FFmpegError kinds on hostile bytes: all "corrupt"
        result = {"refused": "corrupt", "detail": type(exc).__name__}
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
