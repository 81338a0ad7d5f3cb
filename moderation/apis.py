"""Moderation endpoints: parse, call one service, serialise."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.schema import ERROR_RESPONSES
from core.serializers import StrictCharField, StrictSerializer
from moderation import services
from moderation.models import ReportReason, ReportStatus


class ReportCreateInput(StrictSerializer):
    reason = serializers.ChoiceField(choices=ReportReason.choices)
    message_id = StrictCharField(required=False, max_length=64,
                                 help_text="A message the caller can see (else 404); exactly one of the two ids.")
    user_id = StrictCharField(required=False, max_length=64, help_text="A user (else 404).")
    text = StrictCharField(required=False, allow_blank=True, max_length=services.REPORT_TEXT_MAX)


class ReportOutput(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=ReportStatus.choices)


class ReportCreateApi(APIView):
    @extend_schema(operation_id="reports_create", request=ReportCreateInput,
                   responses={201: ReportOutput, **ERROR_RESPONSES},
                   description="Report a message or a user to the operator's staff. A repeat of an open report "
                               "on the same target returns the first one (201 again).")
    def post(self, request: Request) -> Response:
        data = ReportCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        filed = services.report_create(reporter=request.user, **data.validated_data)
        return Response({"id": str(filed.report.pk), "status": filed.report.status}, status=status.HTTP_201_CREATED)
