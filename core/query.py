"""Unknown query parameters are refused, as unknown body fields are.

The OpenAPI document is the one list of what each operation accepts, so the
allowed names per (path, method) are read from it once, lazily.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from django.http import HttpRequest, HttpResponse

from core.errors import json_error

API_PREFIX = "/api/v1/"


@lru_cache(maxsize=1)
def allowed_query_parameters() -> list[tuple[re.Pattern[str], dict[str, frozenset[str]]]]:
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator().get_schema(request=None, public=True)
    routes = []
    for template, operations in document.get("paths", {}).items():
        if not template.startswith(API_PREFIX):
            continue
        pattern = re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$")
        allowed = {
            method.upper(): frozenset(
                parameter["name"] for parameter in operation.get("parameters", []) if parameter.get("in") == "query"
            )
            for method, operation in operations.items()
            if isinstance(operation, dict)
        }
        routes.append((pattern, allowed))
    # Literal segments before parameters: /devices/current/push must win over /devices/{id}.
    routes.sort(key=lambda route: route[0].pattern.count("[^/]+"))
    return routes


class UnknownQueryParametersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.GET and request.path.startswith(API_PREFIX):
            for pattern, allowed in allowed_query_parameters():
                if pattern.match(request.path):
                    known = allowed.get(request.method or "")
                    if known is not None:
                        unknown = sorted(set(request.GET) - known)
                        if unknown:
                            return json_error(
                                400,
                                "validation_error",
                                "Unknown query parameter.",
                                {name[:64]: ["Unknown query parameter."] for name in unknown[:20]},
                            )
                    break
        return self.get_response(request)
