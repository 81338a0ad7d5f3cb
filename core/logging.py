"""Structured logs: one JSON object per line (`LOG_FORMAT=json`), or plain text.

Every record carries the request id of the HTTP request, socket or Celery task
it belongs to (`request_id`), so one user action can be followed from the
request through the tasks it enqueued (the id travels in the task message's
headers, see `core.tasklog`).

Personal data stays out by construction: the JSON formatter writes a fixed set
of fields plus only the extra keys in `ALLOWED_EXTRAS` (never a logger's
arbitrary `extra`, such as Celery's task arguments), and every message is
scrubbed of phone numbers and long tokens before any handler writes it.
Message text is never passed to a logger in the first place.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Extra fields a log call may attach (`logger.info("request", extra={...})`); anything else is dropped.
ALLOWED_EXTRAS = frozenset({
    "event", "method", "route", "status", "duration_ms", "user_id", "device_id", "connection_id",
    "task", "task_id", "state", "queue", "retries", "wait_ms", "batch_size", "errors", "close_code",
    "frames_in", "frames_out", "report_id", "reason", "message_id", "count",
})

# +447700900123, +1 555 010 0100, (555) 010-0100 ...: anything that looks like a phone number
# (dots are not separators here, so addresses like 127.0.0.1 stay readable).
PHONE = re.compile(r"(?<![\w.\-])\+?\(?\d[\d\s()\-]{6,18}\d(?![\w.\-])")
# Device tokens are 43 url-safe base64 characters; digests 64 hex. UUIDs (36 with dashes) are kept.
LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{40,}(?![A-Za-z0-9_\-])")
BEARER = re.compile(r"(?i)(bearer\s+)\S+")


def new_request_id() -> str:
    return uuid.uuid4().hex


_REQUEST_ID = re.compile(r"^[A-Za-z0-9\-_.:]{1,64}$")


def clean_request_id(value: str | None) -> str:
    """A client's `X-Request-ID` when it is a short plain token, else a new one (it is echoed and logged)."""
    if value and _REQUEST_ID.match(value) and not PHONE.search(value):
        return value
    return new_request_id()


def scrub(text: str) -> str:
    """Text with anything looking like a phone number or a secret token replaced."""
    if not text:
        return text
    text = BEARER.sub(r"\1[redacted]", text)
    text = LONG_TOKEN.sub("[redacted]", text)
    return PHONE.sub("[number]", text)


class ContextFilter(logging.Filter):
    """Adds the current request id to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class ScrubFilter(logging.Filter):
    """Renders the message once, scrubbed: a handler never sees the raw arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = scrub(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


class JsonFormatter(_JsonFormatter):
    """`{"ts", "level", "logger", "message", "request_id", ...allowed extras, "exc"?}` per line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(*args, **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["ts"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        log_data["message"] = record.getMessage()
        log_data["request_id"] = getattr(record, "request_id", None)
        for key in ALLOWED_EXTRAS:
            value = record.__dict__.get(key)
            if value is not None:
                log_data[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info or record.exc_text:
            log_data["exc"] = record.exc_text or scrub(self.formatException(record.exc_info))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return log_data

    def format(self, record: logging.LogRecord) -> str:
        # Only our fields: pythonjsonlogger would otherwise copy every attribute of the record.
        log_data: dict[str, Any] = {}
        self.add_fields(log_data, record, {})
        return self.serialize_log_record(log_data)


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING for `LOG_FORMAT` (json or text)."""
    json_mode = log_format == "json"
    quiet = {"level": "WARNING"}  # replaced by our own one line per request / task
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "core.logging.ContextFilter"},
            "scrub": {"()": "core.logging.ScrubFilter"},
        },
        "formatters": {
            "json": {"()": "core.logging.JsonFormatter"},
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "json" if json_mode else "plain",
                        "filters": ["context", "scrub"]},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.request": {"level": "ERROR"},
            # uvicorn installs its own handlers before Django starts; route them through ours.
            "uvicorn": {"handlers": ["console"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
            # uvicorn's access line has the raw path and query (a socket's ?token=); ours replaces it.
            "uvicorn.access": {"handlers": ["console"], "propagate": False, **quiet},
            **({"celery.app.trace": quiet, "celery.worker.strategy": quiet} if json_mode else {}),
        },
    }
