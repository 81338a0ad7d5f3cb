"""`GET /metrics`: Prometheus text exposition for the operator, behind `METRICS_TOKEN`.

404 when `METRICS_TOKEN` is unset (the endpoint does not exist), 401 without a
bearer token, 403 with a wrong one; always in the contract's error shape.
In multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`) the answer sums every
process of this host (web and Celery), see `core.metrics`.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric

from core.errors import json_error
from core.metrics import CeleryQueueCollector, ExportQueueCollector

_PID_IN_FILE = re.compile(r"_(\d+)\.db$")


def _forget_dead_processes(directory: str) -> None:
    """A SIGKILLed process never calls mark_process_dead: drop its live gauges (open sockets)
    here, so they stop counting. Counters and histograms of dead processes stay summed,
    as they must (totals never go down)."""
    pids = {int(match.group(1)) for path in Path(directory).glob("gauge_live*_*.db")
            if (match := _PID_IN_FILE.search(path.name))}
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)
        except PermissionError:
            pass  # alive, another user's


def metrics_registry() -> CollectorRegistry:
    """What one scrape exposes: this host's processes (or this process) plus scrape-time readings."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    registry = CollectorRegistry()
    if directory:
        _forget_dead_processes(directory)
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_Delegate(REGISTRY))
    registry.register(CeleryQueueCollector())
    registry.register(ExportQueueCollector())
    return registry


class _Delegate:
    """The process-wide registry as one collector of a per-scrape registry."""

    def __init__(self, inner: CollectorRegistry) -> None:
        self.inner = inner

    def collect(self) -> Iterator[Metric]:
        return self.inner.collect()


def bearer_matches(request: HttpRequest, expected: str) -> bool | None:
    """None: no bearer token given; else whether it equals `expected` (constant time)."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def metrics(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return json_error(405, "method_not_allowed", "Only GET.", headers={"Allow": "GET, HEAD"})
    expected = settings.METRICS_TOKEN
    if not expected:
        return json_error(404, "not_found", "Not found.")
    verdict = bearer_matches(request, expected)
    if verdict is None:
        return json_error(401, "unauthenticated", "A bearer token is required.",
                          headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if not verdict:
        return json_error(403, "forbidden", "This token may not read metrics.")
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
