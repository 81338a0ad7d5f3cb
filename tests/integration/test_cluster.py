"""`make cluster` comes up and works: through nginx, PgBouncer (transaction mode) and the sharded
channel layer, two users sign in, a message sent over REST reaches the other's socket, and
/healthz and /metrics answer (scripts/cluster.py check)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.processes import ROOT


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_make_cluster_layout_serves_a_message_end_to_end():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "cluster.py"), "check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '"delivered": "through nginx"' in result.stdout
    assert '"database": "ok", "channel_layer": "ok", "broker": "ok"' in result.stdout
