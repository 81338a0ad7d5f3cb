"""One error model for REST and the socket.

Services raise `ApplicationError` subclasses; `exception_handler` renders them
(and DRF's and Django's own exceptions) in the contract's shape
`{"error": {"code", "message", "details"}}`. The socket renders the same
errors as `error` frames.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from psycopg import OperationalError as PsycopgOperationalError
from psycopg_pool import PoolTimeout
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    status = 400
    code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None,
                 code: str | None = None, retry_after: int | None = None,
                 status: int | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        if code:
            self.code = code
        if status:
            self.status = status
        self.retry_after = retry_after
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ValidationFailed(ApplicationError):
    status = 400
    code = "validation_error"
    default_message = "The request is not valid."


class Unauthenticated(ApplicationError):
    status = 401
    code = "unauthenticated"
    default_message = "Authentication credentials were missing or are not valid."


class Forbidden(ApplicationError):
    status = 403
    code = "forbidden"
    default_message = "You are not allowed to do this."


class NotFound(ApplicationError):
    status = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(ApplicationError):
    status = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(ApplicationError):
    status = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class UnsupportedMediaType(ApplicationError):
    status = 415
    code = "unsupported_media_type"
    default_message = "This media type is not supported."


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests; retry later."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(message, retry_after=max(1, int(retry_after)), **kwargs)
        self.details = {"retry_after": self.retry_after, **self.details}


class ServiceUnavailable(ApplicationError):
    status = 503
    code = "service_unavailable"
    default_message = "A backing service is unavailable; retry shortly."


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _flatten_drf_detail(detail: Any) -> dict[str, list[str]]:
    """DRF ValidationError detail -> {field: [messages]}; nested paths joined by dots."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            nested = _flatten_drf_detail(value)
            for sub, messages in nested.items():
                name = str(key) if sub == "non_field_errors" else f"{key}.{sub}"
                out.setdefault(name, []).extend(messages)
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {"non_field_errors": [str(item) for item in detail]}
        out = {}
        for index, item in enumerate(detail):
            if not item:
                continue
            for sub, messages in _flatten_drf_detail(item).items():
                name = str(index) if sub == "non_field_errors" else f"{index}.{sub}"
                out.setdefault(name, []).extend(messages)
        return out
    return {"non_field_errors": [str(detail)]}


def to_application_error(exc: Exception) -> ApplicationError | None:
    """Map any known exception to an ApplicationError; None for a real bug."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, drf.ValidationError):
        return ValidationFailed(details=_flatten_drf_detail(exc.detail))
    if isinstance(exc, drf.ParseError):
        return ValidationFailed(str(exc.detail), details={"body": [str(exc.detail)]})
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        return Unauthenticated(str(exc.detail))
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        return Forbidden()
    if isinstance(exc, (drf.NotFound, Http404)):
        return NotFound()
    if isinstance(exc, drf.MethodNotAllowed):
        return ApplicationError(str(exc.detail), code="method_not_allowed", status=405)
    if isinstance(exc, drf.NotAcceptable):
        return ApplicationError(str(exc.detail), code="not_acceptable", status=406)
    if isinstance(exc, drf.UnsupportedMediaType):
        return UnsupportedMediaType(str(exc.detail))
    if isinstance(exc, drf.Throttled):
        return RateLimited(retry_after=int(exc.wait or 1))
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, (OperationalError, InterfaceError, PsycopgOperationalError, PoolTimeout)):
        return ServiceUnavailable(details={"check": "database"})
    if isinstance(exc, DatabaseError) and "timeout" in str(exc).lower():
        return ServiceUnavailable(details={"check": "database"})
    if _is_redis_down(exc):
        return ServiceUnavailable(details={"check": "redis"})
    return None


def _is_redis_down(exc: Exception) -> bool:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, ConnectionRefusedError))


def render_error_response(error: ApplicationError) -> Response:
    response = Response({"error": error.as_dict()}, status=error.status)
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    error = to_application_error(exc)
    if error is None:
        log_failure(logger, f"Unhandled error in {context.get('view').__class__.__name__}", exc)
        error = ApplicationError("Internal server error.", code="internal_error", status=500)
    if isinstance(error, ServiceUnavailable):
        logger.warning("Service unavailable: %s (%s: %s)", error.details, type(exc).__name__, str(exc)[:200])
    return render_error_response(error)


def json_error(status: int, code: str, message: str, details: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse(error_body(code, message, details), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


# Django-level handlers, for URLs that never reach a DRF view.
def handler400(request, exception=None) -> JsonResponse:
    return json_error(400, "validation_error", "Bad request.")


def handler403(request, exception=None) -> JsonResponse:
    return json_error(403, "forbidden", "You are not allowed to do this.")


def handler404(request, exception=None) -> JsonResponse:
    return json_error(404, "not_found", "Not found.")


def handler500(request) -> JsonResponse:
    return json_error(500, "internal_error", "Internal server error.")


_DISCONNECT_PHRASES = ("closing connection", "after sending 'websocket.close'", "client disconnected")


def is_client_disconnect(exc: BaseException) -> bool:
    """The client went away mid-frame or mid-response: ordinary, not a server error."""
    try:
        from uvicorn.protocols.utils import ClientDisconnected
    except ImportError:  # pragma: no cover - another ASGI server
        ClientDisconnected = ()  # type: ignore[assignment]
    from websockets.exceptions import ConnectionClosed

    if isinstance(exc, (ClientDisconnected, ConnectionClosed, ConnectionResetError, BrokenPipeError)):
        return True
    if isinstance(exc, (RuntimeError, OSError)):
        text = str(exc).lower()
        return any(phrase in text for phrase in _DISCONNECT_PHRASES)
    return False


def log_failure(log: logging.Logger, message: str, exc: BaseException) -> None:
    """ERROR with the traceback, except for a client disconnect: one INFO line, no traceback."""
    if is_client_disconnect(exc):
        log.info("%s: the client disconnected (%s)", message, type(exc).__name__)
    else:
        log.error(message, exc_info=exc)
