from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.health import run_checks


class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="healthz",
        auth=[],
        responses={
            (200, "application/json"): inline_serializer(
                "Health", {"status": serializers.CharField(), "checks": serializers.DictField()}
            ),
            (503, "application/json"): inline_serializer(
                "HealthFailing", {"status": serializers.CharField(), "checks": serializers.DictField()}
            ),
        },
    )
    def get(self, request: Request) -> Response:
        checks = run_checks()
        if any(value.startswith("error") for value in checks.values()):
            return Response({"status": "error", "checks": checks}, status=503)
        # `degraded` (no live Celery worker): still 200, so load balancers keep serving.
        degraded = any(value == "degraded" for value in checks.values())
        return Response({"status": "degraded" if degraded else "ok", "checks": checks}, status=200)
