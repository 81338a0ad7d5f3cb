"""Open a page in headless Chromium (Debian's `chromium`) and return the DOM after its scripts ran.

The browser gets no usable network at all (a dead proxy and a resolver that
resolves nothing), so a page that needed the network would show it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

INSTALL_HINT = (
    "Headless Chromium is needed to check the export's index.html, and `chromium` is not on PATH.\n"
    "Install it with:  apt-get update && apt-get install -y chromium\n"
    "(`bash .ci/run` installs it when it is missing.)"
)


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(INSTALL_HINT, pytrace=False)


def dump_dom(page: Path, fragment: str = "") -> str:
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run(
            [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-extensions",
             "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
             f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--dump-dom", url],
            capture_output=True, text=True, timeout=90, check=False,
        )
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result.stdout
