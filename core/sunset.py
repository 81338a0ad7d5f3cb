"""The service's sunset phase, readable from any app without importing `exports`.

The operator's schedule lives in `exports.Sunset` (the latest row rules). This
module is the tiny lookup every lower app can call: accounts refuses new
signups and messaging refuses sends through `ensure_writable`, and the
middleware answers 503 for most of the API once the service has shut down.
The schedule is cached briefly (it changes a few times in a service's life),
so a request pays one cache read, not a query.

Read-only is enforced in one place per protocol: `ReadOnlyGate` in front of
every HTTP request (config/asgi.py) and the socket's frame dispatch
(`ensure_writable_async` for the frames in `realtime.handlers.WRITING_FRAMES`),
both from a per-process memo. At shutdown the socket housekeeper closes live
sockets with 4503 and new ones are closed with 4503 at once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from redis.exceptions import RedisError

from core.errors import ApplicationError, Forbidden, json_error
from core.serializers import timestamp

logger = logging.getLogger(__name__)

NORMAL = "normal"
ANNOUNCED = "announced"
READ_ONLY = "read_only"
SHUTDOWN = "shutdown"

_CACHE_KEY = "sunset:schedule:v1"
_NONE = "none"


class ServiceReadOnly(Forbidden):
    code = "service_read_only"
    default_message = "The service is shutting down and no longer accepts this; you can still export your data."


class ServiceShutDown(ApplicationError):
    status = 503
    code = "service_shut_down"
    default_message = "The service has shut down; only data export and announcements still work."


@dataclass(frozen=True)
class Schedule:
    id: int
    announce_at: datetime
    read_only_at: datetime
    shutdown_at: datetime
    message: str

    def phase(self, now: datetime | None = None) -> str:
        now = now or timezone.now()
        if now >= self.shutdown_at:
            return SHUTDOWN
        if now >= self.read_only_at:
            return READ_ONLY
        if now >= self.announce_at:
            return ANNOUNCED
        return NORMAL


def _load() -> Schedule | None:
    sunset_model = apps.get_model("exports", "Sunset")
    row = sunset_model.objects.order_by("-created_at", "-id").first()
    if row is None or row.cancelled_at is not None:
        return None
    return Schedule(id=row.pk, announce_at=row.announce_at, read_only_at=row.read_only_at,
                    shutdown_at=row.shutdown_at, message=row.message)


def current_schedule() -> Schedule | None:
    """The schedule in force (None when no sunset is planned), cached for SUNSET_CACHE_SECONDS."""
    cached = cache.get(_CACHE_KEY)
    if cached == _NONE:
        return None
    if isinstance(cached, Schedule):
        return cached
    schedule = _load()
    cache.set(_CACHE_KEY, schedule or _NONE, timeout=getattr(settings, "SUNSET_CACHE_SECONDS", 5))
    return schedule


def forget_schedule() -> None:
    """Drop the cached schedule; call after the schedule changes (on commit)."""
    cache.delete(_CACHE_KEY)
    _local["until"] = 0.0


def current_phase(now: datetime | None = None) -> str:
    schedule = current_schedule()
    return schedule.phase(now) if schedule else NORMAL


def ensure_writable(action: str) -> None:
    """Raise 403 `service_read_only` from the read-only time on.

    `action` names what was refused (e.g. "signup", "message.send"); it is
    returned in the error details so clients can explain it.
    """
    refusal = _refusal(current_schedule(), action)
    if refusal is not None:
        raise refusal


def _refusal(schedule: Schedule | None, action: str) -> ServiceReadOnly | None:
    if schedule is None or schedule.phase() in (NORMAL, ANNOUNCED):
        return None
    return ServiceReadOnly(details={
        "action": action,
        "read_only_at": timestamp(schedule.read_only_at),
        "shutdown_at": timestamp(schedule.shutdown_at),
    })


_local: dict[str, object] = {"until": 0.0, "schedule": None}
LOCAL_SECONDS = 1.0


async def schedule_async() -> Schedule | None:
    """The schedule for the event loop, remembered in the process for LOCAL_SECONDS (then
    re-read on a thread): a hot path (every HTTP write, every writing socket frame) pays
    no round trip per call. Unknown (a backing service down) counts as no schedule."""
    import time

    from channels.db import database_sync_to_async

    now = time.monotonic()
    if now >= float(_local["until"]):  # type: ignore[arg-type]
        try:
            # database_sync_to_async: the thread's connection goes back to the pool afterwards.
            _local["schedule"] = await database_sync_to_async(current_schedule, thread_sensitive=False)()
        except (DatabaseError, RedisError, OSError):
            logger.warning("sunset phase unknown: a backing service is down")
            _local["schedule"] = None
        _local["until"] = now + LOCAL_SECONDS
    return _local["schedule"]  # type: ignore[return-value]


async def phase_async() -> str:
    schedule = await schedule_async()
    return schedule.phase() if schedule else NORMAL


async def ensure_writable_async(action: str) -> None:
    """`ensure_writable` for the event loop, from the process's memo (no query, no cache read)."""
    refusal = _refusal(await schedule_async(), action)
    if refusal is not None:
        raise refusal


# --- The one read-only gate of every HTTP write ----------------------------------------------

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ANY = WRITE_METHODS
# Writes that keep working from read-only on: taking one's data out (sign in, export, account
# deletion), keeping one's devices safe (revoke, push token for export.ready), reading
# (read pointers, played receipts), safety (blocks, reports) and money already in flight
# (the payment provider's webhooks). Signup stays refused by accounts' ensure_writable.
READ_ONLY_ALLOWED: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = tuple(
    (frozenset(methods), re.compile(pattern)) for methods, pattern in (
        (_ANY, r"^/api/v1/auth/"),
        ({"POST"}, r"^/api/v1/me/exports$"),
        ({"DELETE"}, r"^/api/v1/me$"),
        ({"DELETE"}, r"^/api/v1/devices/[^/]+$"),
        ({"PUT", "DELETE"}, r"^/api/v1/devices/current/push$"),
        ({"POST"}, r"^/api/v1/conversations/[^/]+/read$"),
        ({"POST"}, r"^/api/v1/messages/[^/]+/played$"),
        ({"POST"}, r"^/api/v1/blocks$"),
        ({"DELETE"}, r"^/api/v1/blocks/[^/]+$"),
        ({"POST"}, r"^/api/v1/reports$"),
        (_ANY, r"^/api/v1/payments/webhooks/"),
    )
)


def is_write(method: str, path: str) -> bool:
    """An HTTP request the read-only phase refuses (the allow-list above aside)."""
    if method not in WRITE_METHODS or not path.startswith("/api/"):
        return False
    return not any(method in methods and pattern.match(path) for methods, pattern in READ_ONLY_ALLOWED)


class ReadOnlyGate:
    """ASGI middleware in front of everything HTTP (Django's views and media's streamed tus
    PATCH alike): from the read-only time on, every write a user can make is 403
    `service_read_only`, before any view runs. Reads and allow-listed writes pass untouched;
    a write costs the process memo (`schedule_async`), no query."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http" and is_write(scope.get("method", ""), scope.get("path", "")):
            refusal = _refusal(await schedule_async(), f"{scope['method']} {scope['path'][:200]}")
            if refusal is not None:
                body = json.dumps({"error": refusal.as_dict()}).encode()
                await send({"type": "http.response.start", "status": refusal.status,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


# Paths that keep answering after shutdown: taking data out, reading why, and
# signing in again to do so (signup stays refused by ensure_writable).
SHUTDOWN_ALLOWED_PREFIXES = (
    "/api/v1/me/exports",
    "/api/v1/announcements",
    "/api/v1/auth/",
    "/api/schema/",
    "/api/docs/",
    "/healthz",
    "/admin/",
)


class SunsetShutdownMiddleware:
    """After the shutdown time every other API path answers 503 `service_shut_down`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/") and not request.path.startswith(SHUTDOWN_ALLOWED_PREFIXES):
            try:
                schedule = current_schedule()
            except (DatabaseError, RedisError, OSError):
                # Fail open: the view answers 503 for the outage itself, in the error shape.
                logger.warning("sunset phase unknown: a backing service is down")
                schedule = None
            if schedule is not None and schedule.phase() == SHUTDOWN:
                error = ServiceShutDown(details={"shutdown_at": timestamp(schedule.shutdown_at)})
                return json_error(error.status, error.code, error.message, error.details)
        return self.get_response(request)
