"""Celery tasks: the request id carried in the message headers, one log line and the metrics per task.

Publishing (in the web process) stamps each task message with the current
request id and the publish time; the worker restores the id for the task's
log records and measures the wait (published -> started) and the run. The
log line names the task, its id, state, queue and timings, never its
arguments (an SMS task carries a phone number and a code).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import signals

from core import metrics
from core.logging import new_request_id, request_id_var

logger = logging.getLogger("messenger.task")

HEADER_REQUEST_ID = "request_id"
HEADER_SENT_AT = "sent_at"


@signals.before_task_publish.connect
def _stamp(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    headers.setdefault(HEADER_REQUEST_ID, request_id_var.get() or new_request_id())
    headers.setdefault(HEADER_SENT_AT, time.time())


def _header(task: Any, name: str) -> Any:
    request = getattr(task, "request", None)
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


@signals.task_prerun.connect
def _started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task is None:
        return
    request_id = _header(task, HEADER_REQUEST_ID) or request_id_var.get() or new_request_id()
    task.request._messenger = {"token": request_id_var.set(request_id), "started": time.perf_counter()}
    sent_at = _header(task, HEADER_SENT_AT)
    if isinstance(sent_at, (int, float)):
        wait = max(0.0, time.time() - float(sent_at))
        task.request._messenger["wait"] = wait
        metrics.TASK_SECONDS.labels(task.name, "wait").observe(wait)


@signals.task_postrun.connect
def _finished(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    if task is None:
        return
    context = getattr(task.request, "_messenger", None) or {}
    elapsed = time.perf_counter() - context.get("started", time.perf_counter())
    state = state or "UNKNOWN"
    metrics.TASK_SECONDS.labels(task.name, "run").observe(elapsed)
    metrics.TASKS.labels(task.name, state.lower()).inc()
    delivery = getattr(task.request, "delivery_info", None) or {}
    wait = context.get("wait")
    logger.info("task", extra={
        "event": "task", "task": task.name, "task_id": task_id, "state": state.lower(),
        "queue": delivery.get("routing_key") or None, "retries": getattr(task.request, "retries", 0),
        "duration_ms": round(elapsed * 1000, 2), "wait_ms": round(wait * 1000, 2) if wait is not None else None,
    })
    token = context.get("token")
    if token is not None:
        try:
            request_id_var.reset(token)
        except ValueError:  # set in another context (eager tasks inside a request)
            request_id_var.set(None)
