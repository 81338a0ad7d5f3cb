"""Attachment endpoints: parse, call one service or selector, serialise."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.http.response import HttpResponseBase
from django.utils.http import http_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import MeOutput, me_data
from core.errors import (
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
    render_error_response,
)
from core.schema import ERROR_RESPONSES, ErrorBody
from core.serializers import StrictSerializer
from media import resumable, selectors, services
from media.models import Attachment, AttachmentKind, UploadState
from media.serving import RangeNotSatisfiable, presigned_redirect, stored_file_response
from media.storage import attachment_storage
from media.uploads import SizeCapUploadHandler, largest_cap

logger = logging.getLogger(__name__)


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
    206: OpenApiResponse(OpenApiTypes.BINARY, description="The requested byte range, with Content-Range (only "
                         "when If-Range, if sent, is the current strong ETag)."),
    304: OpenApiResponse(description="If-None-Match names the current ETag."),
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


# --- Resumable uploads (tus 1.0) ---------------------------------------------------------------


def _tus_header(name: str, description: str, *, required: bool = True, kind: Any = str,
                response: Any = False, enum: list[str] | None = None) -> OpenApiParameter:
    return OpenApiParameter(name, kind, location=OpenApiParameter.HEADER, required=required, enum=enum,
                            description=description, response=response)


_TUS_RESUMABLE = _tus_header("Tus-Resumable", "The protocol version; 412 tus_version_unsupported otherwise.",
                             enum=[resumable.TUS_VERSION])
_UPLOAD_ERRORS = {
    **ERROR_RESPONSES,
    410: OpenApiResponse(ErrorBody, description="upload_expired: the unfinished upload lapsed (MEDIA_RESUMABLE_TTL)"),
    412: OpenApiResponse(ErrorBody, description="tus_version_unsupported (with Tus-Version)"),
}


class UploadOutput(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField(help_text="The upload's URL (also the Location of the 201).")
    length = serializers.IntegerField()
    offset = serializers.IntegerField(help_text="Bytes stored so far: resume a PATCH from here.")
    state = serializers.ChoiceField(choices=UploadState.choices)
    expires_at = serializers.CharField(allow_null=True, help_text="While unfinished: when it expires.")
    attachment = AttachmentOutput(allow_null=True, help_text="Once done: the attachment made from the bytes.")
    error = serializers.DictField(allow_null=True, help_text="Once refused: {status, code, message, details}, "
                                                             "the answer the last PATCH got.")


class _TusApi(APIView):
    """The tus headers on every answer; `Tus-Resumable` required on every request but OPTIONS."""

    def get_permissions(self) -> list[Any]:
        if self.request.method == "OPTIONS":
            return [AllowAny()]  # discovery, and browsers' CORS preflight, carry no credentials
        return super().get_permissions()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != resumable.TUS_VERSION:
            raise resumable.TusVersionUnsupported()

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in tus_headers(status=response.status_code).items():
            response[name] = value
        return response

    @extend_schema(exclude=True)
    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(status=status.HTTP_204_NO_CONTENT, headers={
            "Tus-Version": resumable.TUS_VERSION, "Tus-Extension": resumable.TUS_EXTENSIONS,
            "Tus-Max-Size": str(largest_cap())})


def tus_headers(*, status: int) -> dict[str, str]:
    headers = {"Tus-Resumable": resumable.TUS_VERSION, "Cache-Control": "no-store"}
    if status == 412:
        headers["Tus-Version"] = resumable.TUS_VERSION
    return headers


def upload_headers(upload: Any) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length)}
    if upload.state in resumable.UNFINISHED:
        headers["Upload-Expires"] = http_date(upload.expires_at.timestamp())
    if upload.attachment_id:
        headers["Attachment-Id"] = str(upload.attachment_id)
    return headers


class UploadCreateApi(_TusApi):
    @extend_schema(
        operation_id="uploads_create",
        description="tus 1.0 creation: announce an upload of Upload-Length bytes; 201 with Location. Counts "
                    "against MEDIA_UPLOAD_LIMIT_PER_HOUR and the in-flight quotas (429). Send the bytes with "
                    "PATCH to the Location. The body, if any, is ignored.",
        request=None,
        parameters=[
            _TUS_RESUMABLE,
            _tus_header("Upload-Length", "Total bytes (at most the kind's cap: 413).", kind=int),
            _tus_header("Upload-Metadata", "tus metadata: `filename` and `kind` (image|voice|video|file), base64.",
                        required=False),
        ],
        responses={201: UploadOutput, **_UPLOAD_ERRORS},
    )
    def post(self, request: Request) -> Response:
        if "Upload-Defer-Length" in request.headers:
            raise ValidationFailed(details={"Upload-Defer-Length": ["Deferred lengths are not supported."]})
        length = resumable.parse_length(request.headers.get("Upload-Length"), name="Upload-Length")
        metadata = resumable.parse_metadata(request.headers.get("Upload-Metadata"))
        upload = resumable.upload_create(uploader=request.user, length=length, metadata=metadata)
        body = resumable.upload_public(upload, request=request)
        return Response(body, status=status.HTTP_201_CREATED,
                        headers={"Location": body["url"], **upload_headers(upload)})


class UploadDetailApi(_TusApi):
    @extend_schema(
        operation_id="uploads_offset",
        description="tus 1.0: the offset to resume from (Upload-Offset), with Upload-Length and Upload-Expires. "
                    "A finished upload (accepted or refused) reports Upload-Offset = Upload-Length; "
                    "Attachment-Id names the attachment made from it.",
        parameters=[_TUS_RESUMABLE],
        responses={200: OpenApiResponse(description="The offset, in headers only."), **_UPLOAD_ERRORS},
    )
    def head(self, request: Request, upload_id: str) -> Response:
        upload = resumable.upload_get_for_owner(upload_id=upload_id, user_id=request.user.pk)
        return Response(status=status.HTTP_200_OK, headers=upload_headers(upload))

    @extend_schema(
        operation_id="uploads_retrieve",
        description="Extension: the upload as JSON, with the attachment once made (or the refusal).",
        parameters=[_TUS_RESUMABLE],
        responses={200: UploadOutput, **_UPLOAD_ERRORS},
    )
    def get(self, request: Request, upload_id: str) -> Response:
        upload = resumable.upload_get_for_owner(upload_id=upload_id, user_id=request.user.pk)
        return Response(resumable.upload_public(upload, request=request), headers=upload_headers(upload))

    @extend_schema(
        operation_id="uploads_append",
        description="tus 1.0: append bytes at Upload-Offset (409 conflict with details.offset when it is not "
                    "the upload's offset). What arrives is kept even if the connection drops mid-body. The "
                    "PATCH that stores the last byte makes the attachment, with the checks of "
                    "POST /attachments: 204 with Attachment-Id, or that endpoint's error.",
        request={"application/offset+octet-stream": OpenApiTypes.BINARY},
        parameters=[_TUS_RESUMABLE, _tus_header("Upload-Offset", "Where these bytes start.", kind=int)],
        responses={204: OpenApiResponse(description="Stored; Upload-Offset is the new offset."), **_UPLOAD_ERRORS},
    )
    def patch(self, request: Request, upload_id: str) -> Response:
        # Under ASGI, media.asgi streams PATCH bodies before Django (which would read the whole body first);
        # this view serves other callers (the test client, WSGI) with the same services.
        if request.content_type.split(";")[0].strip() != "application/offset+octet-stream":
            raise UnsupportedMediaType("Send the bytes as application/offset+octet-stream.")
        offset = resumable.parse_length(request.headers.get("Upload-Offset"), name="Upload-Offset")
        upload = resumable.upload_write_begin(upload_id=upload_id, user_id=request.user.pk, offset=offset)
        writer = resumable.PieceWriter(upload=upload)
        try:
            while chunk := request._request.read(64 * 1024):
                writer.write(chunk)
                if writer.full:
                    writer.flush()
        except PayloadTooLarge:
            writer.discard()
            raise
        except OSError:
            logger.info("Upload %s: the client went away mid-body; keeping what arrived", upload.pk)
        writer.flush()
        upload = resumable.upload_after_write(upload_id=upload.pk)
        return Response(status=status.HTTP_204_NO_CONTENT, headers=upload_headers(upload))

    @extend_schema(
        operation_id="uploads_terminate",
        description="tus 1.0 termination: the upload and its stored bytes are deleted (an attachment already "
                    "made from it stays).",
        parameters=[_TUS_RESUMABLE],
        responses={204: None, **_UPLOAD_ERRORS},
    )
    def delete(self, request: Request, upload_id: str) -> Response:
        resumable.upload_terminate(upload_id=upload_id, user_id=request.user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)



# --- Avatars ---------------------------------------------------------------------------------


class AvatarInput(StrictSerializer):
    file = serializers.FileField(allow_empty_file=False, help_text="An image (JPEG, PNG, GIF, WebP, HEIC); "
                                                                   "the server crops it square.")


def avatar_upload(request: Request) -> Any:
    """The `file` of a multipart avatar body, cut off past the image cap while it streams."""
    request._request.upload_handlers.insert(0, SizeCapUploadHandler(request._request,
                                                                    limit=settings.MEDIA_MAX_SIZE["image"]))
    if len(request.FILES.getlist("file")) > 1:
        raise ValidationFailed(details={"file": ["Send exactly one file."]})
    data = AvatarInput(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data["file"]


class MeAvatarApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="me_avatar_set",
        description="A new profile picture: square crops (MEDIA_AVATAR_SIZES), re-encoded without EXIF. "
                    "`avatar_url` in the User shape is a path on this server, new for every picture.",
        request={"multipart/form-data": AvatarInput},
        responses={200: MeOutput, **ERROR_RESPONSES},
    )
    def put(self, request: Request) -> Response:
        user = services.user_avatar_set(user=request.user, upload=avatar_upload(request))
        return Response(me_data(user))

    @extend_schema(operation_id="me_avatar_delete", responses={204: None, **ERROR_RESPONSES})
    def delete(self, request: Request) -> Response:
        services.user_avatar_delete(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


_AVATAR_SIZE = OpenApiParameter("size", str, required=False, enum=["large", "small"],
                                description="large (default) or small.")


class AvatarApi(APIView):
    content_negotiation_class = AnyAcceptNegotiation

    @extend_schema(
        operation_id="avatars_retrieve",
        description="Extension: an avatar's image (WebP). A user's picture for every signed-in user (as the "
                    "profile); a group's for its members.",
        parameters=[_AVATAR_SIZE],
        responses={**_BINARY, **ERROR_RESPONSES},
    )
    def get(self, request: Request, avatar_id: str) -> HttpResponseBase:
        size = request.query_params.get("size") or "large"
        avatar = selectors.avatar_get_for_viewer(avatar_id=avatar_id, user_id=request.user.pk)
        if size not in avatar.files:
            raise ValidationFailed(details={"size": ["Expected large or small."]})
        storage = attachment_storage()
        name = avatar.files[size]
        fileobj = storage.open(name, "rb")
        try:
            return stored_file_response(request._request, fileobj=fileobj, size=storage.size(name),
                                        content_type="image/webp", etag=f'"{avatar.pk}-{size}"',
                                        filename=f"{avatar.pk}-{size}.webp", as_attachment=False)
        except RangeNotSatisfiable as error:
            fileobj.close()
            response = render_error_response(error)
            response["Content-Range"] = f"bytes */{error.size}"
            return response
