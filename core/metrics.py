"""Every Prometheus metric of the server, in one place.

Callers touch these with one-line calls (`metrics.WS_FRAMES.labels("in").inc()`),
so the hot path stays readable and the list of what is measured lives here.

Processes: uvicorn runs several worker processes and Celery a pool of them, so
the metrics use prometheus-client's multiprocess mode when
`PROMETHEUS_MULTIPROC_DIR` is set (it must be set before this module is
imported, i.e. in the environment of every server and worker process of a
host, and emptied when the host's services start): each process writes its
values to files in that directory and `/metrics` on any process of the host
sums them (`core.metrics_view`). Unset, every process keeps its own values
(fine for `make run` and the tests). Scrape every host (its web processes, or
`manage.py metrics_serve` on a worker-only host).

Values that live elsewhere (Celery queue depth in the broker, the export
queue in PostgreSQL) are read at scrape time by the collectors below, never
kept in a process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
TASK_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

# --- Sockets and sends (the hot path: one-line touches only) -----------------------------

# livesum: a dead process's sockets stop counting (core.metrics_view forgets dead pids).
LIVE_SOCKETS = Gauge("messenger_live_sockets", "Authenticated WebSocket connections open now.",
                     multiprocess_mode="livesum")
WS_FRAMES = Counter("messenger_ws_frames_total", "WebSocket frames, by direction (in: from clients).",
                    ["direction"])
WS_FRAMES_IN = WS_FRAMES.labels("in")
WS_FRAMES_OUT = WS_FRAMES.labels("out")
MESSAGES_SENT = Counter("messenger_messages_sent_total", "New messages stored (retries of a client_id excluded).")
SEND_SECONDS = Histogram("messenger_send_seconds",
                         "Send latency by phase: commit (validate, write and commit a batch of sends), "
                         "ring (wake the recipients' sockets after commit).", ["phase"], buckets=LATENCY_BUCKETS)
SEND_COMMIT = SEND_SECONDS.labels("commit")
SEND_RING = SEND_SECONDS.labels("ring")
STREAM_APPEND_EVENTS = Histogram("messenger_stream_append_events", "Events per stream append (one transaction).",
                                 buckets=BATCH_BUCKETS)
SEND_BATCH_SIZE = Histogram("messenger_send_batch_size", "message.send frames per group-commit batch.",
                            buckets=BATCH_BUCKETS)

# --- HTTP ------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter("messenger_http_requests_total", "HTTP requests, by method and status class.",
                        ["method", "status"])
HTTP_SECONDS = Histogram("messenger_http_request_seconds", "HTTP request duration.", buckets=LATENCY_BUCKETS)

# --- Push, Celery, contacts, OTP, moderation ------------------------------------------------

PUSH = Counter("messenger_push_total",
               "Push outcomes by provider: sent, failed (for good), pruned (token gone, removed), retried.",
               ["provider", "outcome"])
TASKS = Counter("messenger_celery_tasks_total", "Celery tasks finished, by task name and state.", ["task", "state"])
TASK_SECONDS = Histogram("messenger_celery_task_seconds",
                         "Celery task latency by phase: wait (published -> started), run (started -> finished).",
                         ["task", "phase"], buckets=TASK_BUCKETS)
CONTACT_SYNCS = Counter("messenger_contact_syncs_total", "Address-book syncs, by mode.", ["mode"])
CONTACT_SYNC_HASHES = Histogram("messenger_contact_sync_hashes", "Hashes per address-book sync.",
                                buckets=(1, 10, 100, 500, 1000, 2000, 5000))
OTP_REQUESTS = Counter("messenger_otp_requests_total", "OTP requests (each call of the request endpoint).")
OTP_REFUSALS = Counter("messenger_otp_refusals_total",
                       "OTP requests refused, by reason (invalid_phone, resend_cooldown, per_number, per_ip, "
                       "per_prefix, ...).", ["reason"])
OTP_VERIFY_FAILURES = Counter("messenger_otp_verify_failures_total", "OTP verifies refused, by reason.", ["reason"])
REPORTS = Counter("messenger_reports_total", "Abuse reports filed, by reason and target kind.", ["reason", "target"])
SUSPENSIONS = Counter("messenger_suspensions_total", "Accounts suspended by staff.")
SPAM_THROTTLED = Counter("messenger_spam_throttled_total",
                         "Sends refused because a new account messaged too many strangers.")


# --- Helpers ----------------------------------------------------------------------------------


# ratelimit scopes -> the reason label of a refusal
_REFUSAL_REASONS = {
    "otp-number": "per_number", "otp-ip": "per_ip", "otp-prefix": "per_prefix", "otp-resend": "resend_cooldown",
    "otp-verify-number": "per_number", "otp-verify-ip": "per_ip",
}


def refusal_reason(error: BaseException) -> str:
    """The label for a refused request: the rate-limit scope that refused it, else the error code."""
    scope = getattr(error, "scope", None)
    if scope:
        return _REFUSAL_REASONS.get(scope, scope)
    return str(getattr(error, "code", None) or type(error).__name__)


def counts_refusals(counter: Counter, *, errors: tuple[type[BaseException], ...] | None = None) -> Callable[[F], F]:
    """Decorate a service: every application error it raises counts once in `counter` by reason."""
    from core.errors import ApplicationError

    caught = errors or (ApplicationError,)

    def decorate(function: F) -> F:
        @wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except caught as error:
                counter.labels(refusal_reason(error)).inc()
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


@contextmanager
def timed(histogram: Any) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - started)


# --- Scrape-time collectors --------------------------------------------------------------------


class CeleryQueueCollector(Collector):
    """Messages waiting in each Celery queue, read from the broker (Redis lists) at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.conf import settings

        family = GaugeMetricFamily("messenger_celery_queue_depth", "Messages waiting in each Celery queue.",
                                   labels=["queue"])
        if not settings.REDIS_URL:
            yield family
            return
        try:
            import redis

            client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)
            try:
                with client.pipeline(transaction=False) as pipe:
                    for queue in settings.CELERY_QUEUE_NAMES:
                        pipe.llen(queue)
                    depths = pipe.execute()
            finally:
                client.close()
        except Exception:  # noqa: BLE001 - a broker outage must not break the scrape of everything else
            logger.warning("queue depth unavailable (broker down)")
            yield family
            return
        for queue, depth in zip(settings.CELERY_QUEUE_NAMES, depths, strict=True):
            family.add_metric([queue], float(depth))
        yield family


class ExportQueueCollector(Collector):
    """Exports waiting or being built, read from PostgreSQL at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("messenger_export_queue", "Data exports by open status (pending, running).",
                                   labels=["status"])
        try:
            from django.db.models import Count

            from exports.models import Export

            counts = dict(Export.objects.filter(status__in=["pending", "running"]).values_list("status")
                          .annotate(n=Count("pk")).values_list("status", "n"))
        except Exception:  # noqa: BLE001 - a database outage must not break the scrape
            logger.warning("export queue unavailable (database down)")
            yield family
            return
        for status in ("pending", "running"):
            family.add_metric([status], float(counts.get(status, 0)))
        yield family
