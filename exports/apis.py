"""Export and announcement endpoints: parse, call one service or selector, serialise."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import render_error_response
from core.schema import ERROR_RESPONSES, ErrorBody
from core.serializers import TimestampField
from exports import selectors, services
from exports.events import export_public
from exports.models import Export, ExportStatus
from media.serving import RangeNotSatisfiable, stored_file_response


class ExportOutput(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=ExportStatus.choices)
    progress = serializers.IntegerField(help_text="Percent done, 0-100.")
    size = serializers.IntegerField(allow_null=True, help_text="Bytes of the archive, once ready.")
    download_url = serializers.CharField(allow_null=True, help_text="Works for 7 days, for the owner only.")
    expires_at = TimestampField(allow_null=True)
    created_at = TimestampField()
    finished_at = TimestampField(allow_null=True)
    error = serializers.CharField(allow_null=True, help_text="Why a failed export failed.")


class AnnouncementOutput(serializers.Serializer):
    id = serializers.CharField()
    message = serializers.CharField()
    announce_at = TimestampField()
    read_only_at = TimestampField()
    shutdown_at = TimestampField()
    phase = serializers.ChoiceField(choices=["announced", "read_only", "shutdown"])


def _export_body(request: Request, export: Export) -> dict:
    return export_public(export, base_url=f"{request.scheme}://{request.get_host()}")


class ExportListApi(APIView):
    @extend_schema(operation_id="export_list", responses={200: ExportOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        return Response([_export_body(request, export) for export in selectors.export_list(user=request.user)])

    @extend_schema(
        operation_id="export_request",
        request=None,
        responses={202: ExportOutput, **ERROR_RESPONSES},
        description="Queue an archive of everything you can see. 409 `conflict` while one is pending or "
                    "running (details.export_id names it); 429 `rate_limited` within 24 h of the last "
                    "successful export (with Retry-After).",
    )
    def post(self, request: Request) -> Response:
        export = services.export_request(user=request.user)
        return Response(_export_body(request, export), status=status.HTTP_202_ACCEPTED)


class ExportLatestApi(APIView):
    @extend_schema(
        operation_id="export_latest",
        responses={200: ExportOutput, **ERROR_RESPONSES},
        description="The newest ready export (404 when none): what a client offers before DELETE /api/v1/me.",
    )
    def get(self, request: Request) -> Response:
        return Response(_export_body(request, selectors.export_latest_ready(user=request.user)))


class ExportDetailApi(APIView):
    @extend_schema(operation_id="export_get", responses={200: ExportOutput, **ERROR_RESPONSES})
    def get(self, request: Request, export_id: str) -> Response:
        export = selectors.export_get_for_owner(user=request.user, export_id=export_id)
        return Response(_export_body(request, export))


class ExportDownloadApi(APIView):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple:
        # The body is a ZIP whatever the client's Accept says; errors still render as JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="export_download",
        parameters=[OpenApiParameter("Range", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
                                     description="A single byte range, e.g. bytes=0-1048575.")],
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The whole archive."),
            (206, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The requested range."),
            410: OpenApiResponse(ErrorBody, description="export_expired: the file is deleted; request a new export."),
            416: OpenApiResponse(ErrorBody, description="range_not_satisfiable (with Content-Range: bytes */size)"),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request, export_id: str) -> HttpResponse:
        export = selectors.export_get_downloadable(user=request.user, export_id=export_id)
        storage = selectors.export_storage()
        fileobj = storage.open(export.storage_name, "rb")
        try:
            # The media app's range serving: one implementation of Range/If-Range for the project.
            return stored_file_response(
                request._request, fileobj=fileobj, size=export.size, content_type="application/zip",
                etag=f'"{export.pk}-{export.attempt}"', as_attachment=True,
                filename=f"messages-export-{export.finished_at:%Y-%m-%d}.zip",
            )
        except RangeNotSatisfiable as error:
            fileobj.close()
            response = render_error_response(error)
            response["Content-Range"] = f"bytes */{error.size}"
            return response


class AnnouncementListApi(APIView):
    @extend_schema(operation_id="announcement_list", responses={200: AnnouncementOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        return Response(selectors.announcements_current())
