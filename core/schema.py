"""Shared OpenAPI pieces: the one error shape, referenced by every endpoint."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorBody = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorDetail",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.DictField(),
            },
        )
    },
)

ERROR_RESPONSES = {
    status: OpenApiResponse(ErrorBody, description=description)
    for status, description in {
        400: "validation_error, invalid_phone, invalid_code, code_expired",
        401: "unauthenticated",
        403: "forbidden, service_read_only",
        404: "not_found",
        409: "conflict, stale_pepper",
        413: "payload_too_large",
        415: "unsupported_media_type",
        429: "rate_limited, too_many_attempts (with Retry-After)",
        503: "service_unavailable",
    }.items()
}


def refuse_unknown_request_fields(result: dict, generator: object, request: object, public: bool) -> dict:
    """Input serializers refuse unknown fields (StrictSerializer); say so in the document."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component.setdefault("additionalProperties", False)
    return result
