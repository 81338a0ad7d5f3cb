"""Debian's Chromium driven by Playwright, for the web client's end-to-end tests.

Playwright never downloads a browser here: it is pointed at /usr/bin/chromium
(`executable_path`). When Chromium is missing the set-up installs it with
apt-get (as `.ci/run` does); only when that is impossible are the tests
skipped, with the command that fixes it.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import pytest

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

INSTALL_HINT = (
    "The web client's end-to-end tests need Chromium, which is not installed and could not be installed "
    "here.\nInstall it with:  apt-get update && apt-get install -y chromium\n(`bash .ci/run` does this.)"
)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # A microphone that plays a generated file, and no permission prompt for it.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> str:
    found = find_chromium()
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        subprocess.run([apt, "update"], check=False, capture_output=True, timeout=600)
        subprocess.run([apt, "install", "-y", "chromium"], check=False, capture_output=True, timeout=1200,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = find_chromium()
        if found:
            return found
    pytest.skip(INSTALL_HINT)


def write_tone_wav(path: Path, *, seconds: float = 3.0, rate: int = 48000, frequency: float = 440.0) -> Path:
    """A plain sine tone, fed to Chromium as the microphone (--use-file-for-fake-audio-capture)."""
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(
            struct.pack("<h", int(12000 * math.sin(2 * math.pi * frequency * i / rate))) for i in range(frames)
        ))
    return path


def write_png(path: Path, *, width: int = 64, height: int = 48) -> Path:
    from PIL import Image

    image = Image.new("RGB", (width, height), (255, 105, 0))
    for x in range(width):
        image.putpixel((x, height // 2), (0, 0, 0))
    image.save(path, format="PNG")
    return path
