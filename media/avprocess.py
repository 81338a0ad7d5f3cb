"""Run `media/avtool.py` on a file in a child process, bounded in memory, CPU, output and time.

A hostile container can crash or exhaust an FFmpeg demuxer or decoder; in the
child that costs one process, and the caller gets `AvRefused` (bad input)
instead of a dead web or Celery worker.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

TOOL = Path(__file__).with_name("avtool.py")


class AvRefused(Exception):
    """The file is not what it claims, or is beyond the limits; `reason` says which."""

    def __init__(self, reason: str, facts: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.facts = facts or {}


def run(command: str, request: dict[str, Any], *, output_bytes: int, cpu_seconds: int | None = None,
        timeout: float | None = None) -> dict[str, Any]:
    """The tool's JSON answer; AvRefused when it refused the file, died, or ran out of time."""
    limits = {
        "memory": settings.MEDIA_AV_MEMORY_MB * 1024 * 1024,
        "cpu": cpu_seconds or settings.MEDIA_AV_CPU_SECONDS,
        "file": max(output_bytes, 1024 * 1024),
    }
    payload = json.dumps({**request, "command": command, "limits": limits})
    try:
        # -I: isolated from the environment's PYTHON* variables and the user site; the tool imports
        # only the standard library, PyAV and Pillow.
        completed = subprocess.run(
            [sys.executable, "-I", str(TOOL), payload],
            capture_output=True, timeout=timeout or settings.MEDIA_AV_TIMEOUT_SECONDS, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        logger.warning("avtool %s ran past its time limit", command)
        raise AvRefused("too_complex") from exc
    if completed.returncode != 0:
        # Killed by a limit (SIGXCPU, SIGXFSZ, SIGKILL from the kernel) or crashed in FFmpeg.
        logger.warning("avtool %s exited with %s: %s", command, completed.returncode,
                       completed.stderr[-500:].decode(errors="replace"))
        raise AvRefused("too_complex")
    try:
        answer = json.loads(completed.stdout)
    except ValueError as exc:
        raise AvRefused("too_complex") from exc
    if "refused" in answer:
        raise AvRefused(answer["refused"], answer)
    return answer
