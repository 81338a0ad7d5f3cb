import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from core.errors import json_error

logger = logging.getLogger(__name__)


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
