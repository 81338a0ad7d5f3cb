"""Attachment endpoints: parse, call one service or selector, serialise."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound, Unauthenticated, ValidationFailed, render_error_response
from core.schema import ERROR_RESPONSES, ErrorBody
from core.serializers import StrictSerializer
from media import selectors, services
from media.models import Attachment, AttachmentKind
from media.serving import RangeNotSatisfiable, presigned_redirect, stored_file_response
from media.storage import attachment_storage
from media.uploads import SizeCapUploadHandler


class AttachmentUploadInput(StrictSerializer):
    file = serializers.FileField(allow_empty_file=False, help_text="The file; its bytes decide its type.")
    kind = serializers.ChoiceField(choices=AttachmentKind.choices, required=False, allow_blank=True,
                                   help_text="What the client means to send; bytes of another kind are 415. "
                                   "Empty or absent: decided from the bytes.")


class AttachmentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=AttachmentKind.choices)
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    url = serializers.CharField(help_text="Bearer auth; Range requests honoured.")
    thumbnail_url = serializers.CharField(allow_null=True, help_text="Null until the thumbnail is made.")
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(help_text="Extension: the sanitised original file name, for display.")
    waveform = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=100), allow_null=True,
        help_text="Extension, voice notes: peak levels 0..100 (MEDIA_WAVEFORM_LEVELS of them, normalised to the "
                  "loudest), null until the waveform task has run and for other kinds.")
    compat_url = serializers.CharField(
        allow_null=True, help_text="Extension, videos: an H.264/AAC MP4 rendition for clients that cannot play "
                                   "the original; null unless MEDIA_VIDEO_TRANSCODE is on and it has been made.")


class AttachmentUploadApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="attachments_upload",
        request={"multipart/form-data": AttachmentUploadInput},
        responses={201: AttachmentOutput, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        # Before the body is read: cut an oversized upload off while it streams.
        request._request.upload_handlers.insert(0, SizeCapUploadHandler(request._request))
        if len(request.FILES.getlist("file")) > 1:
            raise ValidationFailed(details={"file": ["Send exactly one file."]})
        data = AttachmentUploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        attachment = services.attachment_create(
            uploader=request.user, upload=data.validated_data["file"], kind=data.validated_data.get("kind") or None,
        )
        return Response(selectors.attachment_public(attachment, request=request), status=status.HTTP_201_CREATED)


class AttachmentDetailApi(APIView):
    @extend_schema(operation_id="attachments_retrieve", responses={200: AttachmentOutput, **ERROR_RESPONSES})
    def get(self, request: Request, attachment_id: str) -> Response:
        attachment = selectors.attachment_get_for_viewer(attachment_id=attachment_id, user_id=request.user.pk)
        return Response(selectors.attachment_public(attachment, request=request))


class AttachmentSignedLinksOutput(serializers.Serializer):
    url = serializers.CharField()
    thumbnail_url = serializers.CharField(allow_null=True)
    expires_at = serializers.CharField()


class AttachmentSignedLinksApi(APIView):
    @extend_schema(
        operation_id="attachments_signed_links",
        description="Extension: short-lived content URLs that need no Authorization header "
                    "(for <img>/<audio>/<video> tags). They work for the caller only, while the caller "
                    "may still see the attachment.",
        responses={200: AttachmentSignedLinksOutput, **ERROR_RESPONSES},
    )
    def get(self, request: Request, attachment_id: str) -> Response:
        attachment = selectors.attachment_get_for_viewer(attachment_id=attachment_id, user_id=request.user.pk)
        return Response(selectors.attachment_signed_links(attachment, user_id=request.user.pk, request=request))


class AnyAcceptNegotiation(BaseContentNegotiation):
    """Media players send `Accept: audio/*`; the body is the file whatever they accept."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


_BINARY = {
    200: OpenApiResponse(OpenApiTypes.BINARY, description="The whole file."),
    206: OpenApiResponse(OpenApiTypes.BINARY, description="The requested byte range, with Content-Range."),
    416: OpenApiResponse(ErrorBody, description="range_not_satisfiable (with Content-Range: bytes */size)"),
}


_TOKEN = OpenApiParameter("token", str, required=False,
                          description="A signed link token (GET /attachments/{id}/signed) instead of a bearer header.")


class _StoredFileApi(APIView):
    content_negotiation_class = AnyAcceptNegotiation
    # A bearer header or a signed link token: checked in `_viewer`.
    permission_classes = [AllowAny]

    def _viewer(self, request: Request, attachment_id: str) -> Attachment:
        if request.user is not None:
            user_id = str(request.user.pk)
        elif token := request.query_params.get("token"):
            user_id = selectors.attachment_signed_viewer(attachment_id=attachment_id, token=token)
        else:
            raise Unauthenticated()
        return selectors.attachment_get_for_viewer(attachment_id=attachment_id, user_id=user_id)

    def _serve(self, request: Request, attachment: Attachment, *, name: str, content_type: str,
               as_attachment: bool, filename: str) -> HttpResponseBase:
        storage = attachment_storage()
        if settings.MEDIA_SERVE_REDIRECT:
            return presigned_redirect(storage, name=name, content_type=content_type,
                                      as_attachment=as_attachment, filename=filename)
        size = attachment.size if name == attachment.storage_name else storage.size(name)
        fileobj = storage.open(name, "rb")
        # Each file under an attachment id has its own tag: the original's is its SHA-256.
        suffix = {attachment.storage_name: "", attachment.thumbnail_name: "-t", attachment.compat_name: "-c"}[name]
        try:
            return stored_file_response(
                request._request, fileobj=fileobj, size=size, content_type=content_type,
                etag=f'"{attachment.sha256}{suffix}"',
                filename=filename, as_attachment=as_attachment,
            )
        except RangeNotSatisfiable as error:
            fileobj.close()
            response = render_error_response(error)
            response["Content-Range"] = f"bytes */{error.size}"
            return response


class AttachmentContentApi(_StoredFileApi):
    @extend_schema(operation_id="attachments_content", parameters=[_TOKEN],
                   responses={**_BINARY, **ERROR_RESPONSES})
    def get(self, request: Request, attachment_id: str) -> HttpResponseBase:
        attachment = self._viewer(request, attachment_id)
        opaque = attachment.kind == AttachmentKind.FILE
        return self._serve(
            request, attachment, name=attachment.storage_name,
            # A `file` is never rendered by a browser: an opaque download, whatever its bytes.
            content_type=services.OPAQUE_CONTENT_TYPE if opaque else attachment.content_type,
            as_attachment=opaque, filename=attachment.original_name or str(attachment.pk),
        )


class AttachmentThumbnailApi(_StoredFileApi):
    @extend_schema(operation_id="attachments_thumbnail", parameters=[_TOKEN],
                   responses={**_BINARY, **ERROR_RESPONSES})
    def get(self, request: Request, attachment_id: str) -> HttpResponseBase:
        attachment = self._viewer(request, attachment_id)
        if not attachment.thumbnail_name:
            raise NotFound("The thumbnail is not ready.")
        return self._serve(request, attachment, name=attachment.thumbnail_name, content_type="image/webp",
                           as_attachment=False, filename=f"{attachment.pk}.webp")


class AttachmentCompatApi(_StoredFileApi):
    @extend_schema(operation_id="attachments_compat", parameters=[_TOKEN],
                   description="Extension: the H.264/AAC MP4 rendition of a video (MEDIA_VIDEO_TRANSCODE); 404 "
                               "until it is made, and always when transcoding is off.",
                   responses={**_BINARY, **ERROR_RESPONSES})
    def get(self, request: Request, attachment_id: str) -> HttpResponseBase:
        attachment = self._viewer(request, attachment_id)
        if not attachment.compat_name:
            raise NotFound("There is no compatible rendition of this attachment.")
        return self._serve(request, attachment, name=attachment.compat_name, content_type="video/mp4",
                           as_attachment=False, filename=f"{attachment.pk}.mp4")
