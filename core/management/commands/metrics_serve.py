"""Serve this host's metrics on an internal port, for hosts that run only Celery workers.

Web hosts answer GET /metrics themselves (with METRICS_TOKEN); a worker-only host has no web
process, so Prometheus scrapes this instead. Bind it to an internal address only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric

from core.metrics_view import metrics_registry


class _Host:
    """Rebuilt per scrape: dead processes forgotten, every process's files summed, queues read."""

    def collect(self) -> Iterator[Metric]:
        yield from metrics_registry().collect()


class Command(BaseCommand):
    help = "Expose this host's Prometheus metrics (multiprocess directory) on an internal port."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9464)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        registry = CollectorRegistry()
        registry.register(_Host())
        start_http_server(port, addr=host, registry=registry)
        self.stdout.write(f"metrics on http://{host}:{port}/metrics")
        threading.Event().wait()
