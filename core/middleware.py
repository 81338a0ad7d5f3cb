import logging
import time
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from core import metrics
from core.errors import json_error
from core.logging import clean_request_id, request_id_var

logger = logging.getLogger(__name__)
request_logger = logging.getLogger("messenger.request")


class DatabaseUnavailableMiddleware:
    """A database that is down answers 503 in the error shape, for every view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.warning("Database unavailable: %s", type(exception).__name__)
            return json_error(503, "service_unavailable", "The database is unavailable; retry shortly.",
                              {"check": "database"}, headers={"Retry-After": "2"})
        return None


class RequestLogMiddleware:
    """One log line and the HTTP metrics per request, with a request id.

    The id is the client's `X-Request-ID` when it is a short plain token, else a new one;
    it is echoed in the response, set on every log record of the request and carried
    into the Celery tasks the request enqueues. The line names the URL pattern, never
    the raw path or query (which may carry a token or anything a client typed).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = clean_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            response["X-Request-ID"] = request_id
            match = getattr(request, "resolver_match", None)
            user = getattr(request, "user", None)
            metrics.HTTP_REQUESTS.labels(request.method, f"{response.status_code // 100}xx").inc()
            metrics.HTTP_SECONDS.observe(elapsed)
            route = f"/{match.route}" if match is not None and match.route else "(unmatched)"
            request_logger.info(
                "%s %s %s %.1f ms", request.method, route, response.status_code, elapsed * 1000, extra={
                    "event": "request", "method": request.method, "status": response.status_code, "route": route,
                    "duration_ms": round(elapsed * 1000, 2),
                    "user_id": str(user.pk) if getattr(user, "is_authenticated", False) else None,
                })
            return response
        finally:
            request_id_var.reset(token)
