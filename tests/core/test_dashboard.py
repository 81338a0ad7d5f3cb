"""The Grafana dashboard in deploy/ charts every metric the server exports."""

from __future__ import annotations

import json

from prometheus_client import Counter, Gauge, Histogram

from core import metrics
from tests.processes import ROOT


def test_every_metric_is_on_the_dashboard():
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    expressions = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    names = {value._name for value in vars(metrics).values() if isinstance(value, (Counter, Gauge, Histogram))}
    names |= {"messenger_celery_queue_depth", "messenger_export_queue"}
    missing = {name for name in names if name not in expressions}
    # Per-request HTTP latency is for ad-hoc queries; everything else has a panel.
    assert missing <= {"messenger_http_request_seconds", "messenger_contact_sync_hashes",
                       "messenger_otp_verify_failures"}, missing
