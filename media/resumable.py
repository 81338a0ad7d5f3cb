"""Resumable uploads (tus 1.0: core, creation, termination, expiration): the services.

An upload is a row (`ResumableUpload`) and the bytes received so far, stored
through the attachment storage as contiguous pieces (`UploadPiece`, objects
under `uploads/<id>/`), so it works the same on local disk and on S3 and
across server processes. A PATCH appends: its bytes are buffered in a local
temporary file and stored as a piece every MEDIA_RESUMABLE_PIECE_BYTES, at its
end, and when the client goes away mid-body, so an interrupted request keeps
what arrived. A piece is acknowledged (the offset moves) only in the
transaction that records it, under the upload's row lock and only if the
offset is still the one the request started from: two racing PATCHes cannot
both append, and the loser's piece is deleted.

When the last byte is stored the pieces are joined into one file that goes
through exactly the checks of `POST /attachments`
(`media.services.attachment_create_from_file`); the upload then points at the
attachment, or records the refusal. The beat sweep deletes expired uploads
and finishes uploads whose finisher died.

Why not a library: the Django tus servers (django-tus, drf-tus) are views, and
Django's ASGI handler reads a request's whole body before any view runs and
drops it when the client disconnects, so an interrupted PATCH would keep
nothing, which is the whole point of tus; they also write to local paths of
their own rather than through the storage API. The maintained Python servers
(tuspyserver) are FastAPI routers with their own storage and auth. See
`media.asgi` for the streaming PATCH.
"""

from __future__ import annotations

import base64
import binascii
import logging
import shutil
import tempfile
import uuid
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.urls import reverse
from django.utils import timezone
from rest_framework.request import Request

from accounts.models import User
from core import ratelimit
from core.errors import ApplicationError, Conflict, NotFound, PayloadTooLarge, RateLimited, ValidationFailed
from core.serializers import timestamp
from media import services
from media.models import Attachment, AttachmentKind, ResumableUpload, UploadPiece, UploadState
from media.selectors import attachment_public
from media.storage import attachment_storage
from media.uploads import largest_cap, sanitize_original_name, too_large

logger = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
METADATA_MAX_LENGTH = 4096
UNFINISHED = (UploadState.RECEIVING, UploadState.FINISHING)


class UploadExpired(ApplicationError):
    status = 410
    code = "upload_expired"
    default_message = "This upload has expired; start a new one."


class TusVersionUnsupported(ApplicationError):
    status = 412
    code = "tus_version_unsupported"
    default_message = f"Send `Tus-Resumable: {TUS_VERSION}`."


def offset_conflict(upload: ResumableUpload) -> Conflict:
    return Conflict(f"The upload is at offset {upload.offset}; resume from there.",
                    details={"offset": upload.offset, "state": upload.state})


# --- Creation ---------------------------------------------------------------------------


def parse_metadata(header: str | None) -> dict[str, str]:
    """`Upload-Metadata`: comma-separated `key base64(value)` pairs (tus 1.0, creation).

    Known keys: `filename` (display name) and `kind` (image|voice|video|file). Other
    keys, which tus clients add freely (`filetype`, `relativePath`), are ignored.
    """
    if not header:
        return {}
    if len(header) > METADATA_MAX_LENGTH:
        raise _bad_header("Upload-Metadata", f"At most {METADATA_MAX_LENGTH} characters.")
    pairs: dict[str, str] = {}
    for item in header.split(","):
        parts = item.strip().split(" ")
        key = parts[0]
        if not key or len(parts) > 2 or key in pairs or not key.isascii() or not key.isprintable():
            raise _bad_header("Upload-Metadata", "Expected comma-separated `key base64value` pairs.")
        try:
            value = base64.b64decode(parts[1], validate=True).decode() if len(parts) == 2 else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise _bad_header("Upload-Metadata", f"The value of `{key[:32]}` is not base64 of UTF-8.") from exc
        pairs[key] = value
    return pairs


def _bad_header(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details={name: [message]})


def parse_length(value: str | None, *, name: str) -> int:
    if value is None or not value.isdigit() or len(value) > 18:
        raise _bad_header(name, "A non-negative integer is required.")
    return int(value)


def upload_create(*, uploader: User, length: int, metadata: dict[str, str]) -> ResumableUpload:
    """A new upload of `length` bytes. Counts against MEDIA_UPLOAD_LIMIT (once: finishing does
    not count again) and the in-flight quotas."""
    kind = metadata.get("kind", "")
    if kind and kind not in AttachmentKind.values:
        raise _bad_header("Upload-Metadata", "`kind` must be one of image, voice, video, file.")
    if length < 1:
        raise _bad_header("Upload-Length", "An upload has at least one byte.")
    cap = settings.MEDIA_MAX_SIZE[kind] if kind else largest_cap()
    if length > cap:
        raise too_large(cap)
    ratelimit.hit("media-upload", str(uploader.pk), settings.MEDIA_UPLOAD_LIMIT)
    now = timezone.now()
    with transaction.atomic():
        # One creation at a time per user, so two cannot both pass the quota.
        User.objects.select_for_update().filter(pk=uploader.pk).values_list("pk", flat=True).first()
        in_flight = ResumableUpload.objects.filter(uploader=uploader, state__in=UNFINISHED, expires_at__gt=now)
        totals = in_flight.aggregate(count=Count("pk"), bytes=Sum("length"))
        if (totals["count"] or 0) >= settings.MEDIA_RESUMABLE_MAX_IN_FLIGHT:
            raise RateLimited(f"At most {settings.MEDIA_RESUMABLE_MAX_IN_FLIGHT} unfinished uploads at once; "
                              "finish or cancel one.", retry_after=60, details={"quota": "uploads_in_flight"})
        if (totals["bytes"] or 0) + length > settings.MEDIA_RESUMABLE_MAX_BYTES_IN_FLIGHT:
            raise RateLimited(f"At most {settings.MEDIA_RESUMABLE_MAX_BYTES_IN_FLIGHT} bytes in unfinished uploads; "
                              "finish or cancel one.", retry_after=60, details={"quota": "bytes_in_flight"})
        return ResumableUpload.objects.create(
            uploader=uploader, length=length, kind=kind,
            original_name=sanitize_original_name(metadata.get("filename")),
            expires_at=now + settings.MEDIA_RESUMABLE_TTL,
        )


# --- Reads --------------------------------------------------------------------------------


def upload_get_for_owner(*, upload_id: Any, user_id: Any) -> ResumableUpload:
    """The caller's upload; NotFound for anyone else's (never 403), UploadExpired when it lapsed."""
    try:
        pk = uuid.UUID(str(upload_id))
    except ValueError as exc:
        raise NotFound() from exc
    upload = ResumableUpload.objects.filter(pk=pk, uploader_id=user_id).select_related("attachment").first()
    if upload is None:
        raise NotFound()
    if upload.state == UploadState.RECEIVING and upload.expires_at <= timezone.now():
        raise UploadExpired()
    return upload


def upload_public(upload: ResumableUpload, *, request: Request | None = None) -> dict[str, Any]:
    """Extension: the upload as JSON (`GET /uploads/{id}`), with the attachment once made."""
    location = reverse("upload-detail", kwargs={"upload_id": upload.pk})
    return {
        "id": str(upload.pk),
        "url": request.build_absolute_uri(location) if request is not None else location,
        "length": upload.length,
        "offset": upload.offset,
        "state": upload.state,
        "expires_at": timestamp(upload.expires_at) if upload.state in UNFINISHED else None,
        "attachment": attachment_public(upload.attachment, request=request) if upload.attachment else None,
        "error": upload.error,
    }


# --- Appending ------------------------------------------------------------------------------


def upload_write_begin(*, upload_id: Any, user_id: Any, offset: int) -> ResumableUpload:
    """Checks before a PATCH body is read: the caller's upload, still receiving, at this offset."""
    upload = upload_get_for_owner(upload_id=upload_id, user_id=user_id)
    if upload.state != UploadState.RECEIVING or upload.offset != offset:
        raise offset_conflict(upload)
    return upload


class PieceWriter:
    """The body of one PATCH: buffered in a local temporary file, stored as pieces.

    Synchronous: under ASGI, `write` runs on the event loop (a local file write) and
    `flush` in a worker thread.
    """

    def __init__(self, *, upload: ResumableUpload) -> None:
        self.upload_id = upload.pk
        self.offset = upload.offset
        self.remaining = upload.length - upload.offset
        self.buffer: TemporaryUploadedFile | None = None
        self.buffered = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.buffered + len(data) > self.remaining:
            raise PayloadTooLarge("The body goes past Upload-Length.",
                                  details={"max_size": self.remaining + self.offset})
        if self.buffer is None:
            self.buffer = TemporaryUploadedFile("piece", "application/octet-stream", 0, None)
        self.buffer.write(data)
        self.buffered += len(data)

    @property
    def full(self) -> bool:
        return self.buffered >= settings.MEDIA_RESUMABLE_PIECE_BYTES

    @property
    def complete(self) -> bool:
        return self.buffered == self.remaining

    def flush(self) -> int:
        """Store what is buffered as a piece; the new offset."""
        if self.buffer is None or not self.buffered:
            return self.offset
        buffer, size = self.buffer, self.buffered
        self.buffer, self.buffered = None, 0
        try:
            buffer.flush()
            buffer.seek(0)
            buffer.size = size
            self.offset = upload_piece_commit(upload_id=self.upload_id, start=self.offset, source=buffer, size=size)
            self.remaining -= size
        finally:
            buffer.close()
        return self.offset

    def discard(self) -> None:
        if self.buffer is not None:
            self.buffer.close()
        self.buffer, self.buffered = None, 0


def _piece_name(upload_id: uuid.UUID, offset: int) -> str:
    return f"{_folder(upload_id)}/{offset:015d}-{uuid.uuid4().hex[:8]}"


def _folder(upload_id: uuid.UUID) -> str:
    return f"uploads/{upload_id.hex}"


def upload_piece_commit(*, upload_id: uuid.UUID, start: int, source: IO[bytes], size: int) -> int:
    """Store `size` bytes at `start` and move the offset; Conflict when the offset moved meanwhile."""
    upload = ResumableUpload.objects.filter(pk=upload_id).first()
    if upload is None:
        raise NotFound()
    if upload.state != UploadState.RECEIVING or upload.offset != start:
        raise offset_conflict(upload)
    storage = attachment_storage()
    last = UploadPiece.objects.filter(upload_id=upload_id).order_by("-offset").first()
    merge = (last is not None and last.size < settings.MEDIA_RESUMABLE_MERGE_BELOW
             and last.offset + last.size == start)
    if merge:
        assert last is not None
        with tempfile.TemporaryFile() as combined:
            with storage.open(last.storage_name, "rb") as previous:
                shutil.copyfileobj(previous, combined, 1024 * 1024)
            shutil.copyfileobj(source, combined, 1024 * 1024)
            combined.seek(0)
            stored = storage.save(_piece_name(upload_id, last.offset), File(combined))
    else:
        # A TemporaryUploadedFile: local storage moves it into place instead of copying.
        stored = storage.save(_piece_name(upload_id, start), source)
    try:
        with transaction.atomic():
            row = ResumableUpload.objects.select_for_update().filter(pk=upload_id).first()
            if row is None:
                raise NotFound()  # terminated meanwhile
            if row.state != UploadState.RECEIVING or row.offset != start:
                raise offset_conflict(row)
            if merge:
                assert last is not None
                if not UploadPiece.objects.filter(pk=last.pk, size=last.size).update(
                        storage_name=stored, size=last.size + size):
                    raise offset_conflict(row)
                old_name = last.storage_name
                transaction.on_commit(lambda: storage.delete(old_name))
            else:
                UploadPiece.objects.create(upload=row, offset=start, size=size, storage_name=stored)
            row.offset = start + size
            row.expires_at = timezone.now() + settings.MEDIA_RESUMABLE_TTL
            row.save(update_fields=["offset", "expires_at", "updated_at"])
    except BaseException:
        storage.delete(stored)
        raise
    return start + size


# --- Finishing ------------------------------------------------------------------------------


def upload_after_write(*, upload_id: Any) -> ResumableUpload:
    """After a PATCH stored its bytes: when they were the last, make the attachment (or raise its refusal)."""
    upload = ResumableUpload.objects.get(pk=upload_id)
    if upload.offset == upload.length:
        upload_finish(upload_id=upload_id)
        upload.refresh_from_db()
    return upload


def upload_finish(*, upload_id: Any) -> Attachment:
    """Join the pieces and make the attachment (the checks of POST /attachments).

    Idempotent: a finished upload returns its attachment, a refused one raises its
    stored error again. A finisher that died leaves a claim that the sweep takes over
    after MEDIA_RESUMABLE_FINISH_TIMEOUT.
    """
    token = uuid.uuid4()
    now = timezone.now()
    stale = now - settings.MEDIA_RESUMABLE_FINISH_TIMEOUT
    claimed = ResumableUpload.objects.filter(
        Q(state=UploadState.RECEIVING) | Q(state=UploadState.FINISHING, finishing_at__lt=stale),
        pk=upload_id, offset=F("length"),
    ).update(state=UploadState.FINISHING, finishing_token=token, finishing_at=now)
    upload = ResumableUpload.objects.select_related("uploader", "attachment").filter(pk=upload_id).first()
    if upload is None:
        raise NotFound()
    if not claimed:
        return _outcome(upload)
    try:
        with _joined(upload) as whole:
            attachment = services.attachment_create_from_file(uploader=upload.uploader, upload=whole,
                                                               kind=upload.kind or None)
    except ApplicationError as error:
        _record_refusal(upload, token, error)
        raise
    except BaseException:
        # Storage or database trouble: give the claim back so a retry (or the sweep) finishes it.
        ResumableUpload.objects.filter(pk=upload_id, finishing_token=token).update(
            state=UploadState.RECEIVING, finishing_token=None, finishing_at=None)
        raise
    with transaction.atomic():
        won = ResumableUpload.objects.filter(pk=upload_id, finishing_token=token).update(
            state=UploadState.DONE, attachment=attachment, finishing_token=None,
            expires_at=timezone.now() + settings.MEDIA_RESUMABLE_TTL)
        if won:
            transaction.on_commit(lambda: _pieces_delete(upload.pk))
    if not won:  # terminated, or taken over by the sweep after a very slow finish: this copy is surplus
        services.attachment_delete(attachment_id=attachment.pk)
        current = ResumableUpload.objects.select_related("attachment").filter(pk=upload_id).first()
        if current is None:
            raise NotFound()
        return _outcome(current)
    return attachment


def _outcome(upload: ResumableUpload) -> Attachment:
    if upload.state == UploadState.DONE and upload.attachment is not None:
        return upload.attachment
    if upload.state == UploadState.FAILED and upload.error:
        error = upload.error
        raise ApplicationError(error["message"], code=error["code"], status=error["status"],
                               details=error.get("details") or {})
    if upload.state == UploadState.DONE:  # the attachment was deleted since (unused for a day)
        raise NotFound("The attachment made from this upload no longer exists.")
    if upload.offset < upload.length:
        raise offset_conflict(upload)
    raise Conflict("The upload is being finished; ask again shortly.", details={"state": upload.state})


def _record_refusal(upload: ResumableUpload, token: uuid.UUID, error: ApplicationError) -> None:
    with transaction.atomic():
        updated = ResumableUpload.objects.filter(pk=upload.pk, finishing_token=token).update(
            state=UploadState.FAILED, finishing_token=None,
            error={"status": error.status, **error.as_dict()},
            expires_at=timezone.now() + settings.MEDIA_RESUMABLE_TTL)
        if updated:
            transaction.on_commit(lambda: _pieces_delete(upload.pk))


class _joined:
    """The pieces joined into one temporary upload file (what POST /attachments would have received)."""

    def __init__(self, upload: ResumableUpload) -> None:
        self.upload = upload
        self.file: TemporaryUploadedFile | None = None

    def __enter__(self) -> TemporaryUploadedFile:
        upload = self.upload
        storage = attachment_storage()
        self.file = TemporaryUploadedFile(upload.original_name or "upload", "application/octet-stream",
                                          upload.length, None)
        position = 0
        for piece in UploadPiece.objects.filter(upload=upload).order_by("offset"):
            if piece.offset != position:
                raise Conflict("The upload's stored pieces are not contiguous.", details={"offset": position})
            with storage.open(piece.storage_name, "rb") as stored:
                shutil.copyfileobj(stored, self.file, 1024 * 1024)
            position += piece.size
        if position != upload.length:
            raise Conflict("The upload is missing bytes.", details={"offset": position})
        self.file.flush()
        self.file.seek(0)
        return self.file

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


# --- Termination, expiry -------------------------------------------------------------------


def upload_terminate(*, upload_id: Any, user_id: Any) -> None:
    """tus termination: the upload and its stored bytes go; an attachment already made stays."""
    try:
        upload = upload_get_for_owner(upload_id=upload_id, user_id=user_id)
    except UploadExpired:
        upload = ResumableUpload.objects.get(pk=upload_id)
    with transaction.atomic():
        ResumableUpload.objects.filter(pk=upload.pk).delete()
        transaction.on_commit(lambda: _pieces_delete(upload.pk))


def _pieces_delete(upload_id: uuid.UUID) -> None:
    """Every stored piece of an upload, recorded or not (a crash between storing and recording)."""
    storage = attachment_storage()
    names = set(UploadPiece.objects.filter(upload_id=upload_id).values_list("storage_name", flat=True))
    try:
        _directories, files = storage.listdir(_folder(upload_id))
        names.update(f"{_folder(upload_id)}/{name}" for name in files)
    except (FileNotFoundError, NotImplementedError):
        pass
    for name in sorted(names):
        storage.delete(name)
    UploadPiece.objects.filter(upload_id=upload_id).delete()


def uploads_sweep(*, now: datetime | None = None, batch_size: int = 200) -> dict[str, int]:
    """Beat: delete expired uploads (unfinished ones with their pieces, finished ones' records),
    and hand uploads whose finisher died to the finishing task. Safe to run twice."""
    from media.tasks import finish_upload

    now = now or timezone.now()
    expired = 0
    while True:
        with transaction.atomic():
            rows = list(ResumableUpload.objects.select_for_update(skip_locked=True)
                        .filter(expires_at__lt=now).exclude(state=UploadState.FINISHING)
                        .values_list("pk", flat=True)[:batch_size])
            for pk in rows:
                _pieces_delete(pk)
            ResumableUpload.objects.filter(pk__in=rows).delete()
        expired += len(rows)
        if len(rows) < batch_size:
            break
    stale = now - settings.MEDIA_RESUMABLE_FINISH_TIMEOUT
    stalled = list(ResumableUpload.objects.filter(
        # Every byte arrived a while ago but no attachment: the request that stored the last byte died.
        Q(state=UploadState.RECEIVING, offset=F("length"), updated_at__lt=now - timedelta(minutes=1))
        | Q(state=UploadState.FINISHING, finishing_at__lt=stale),
    ).values_list("pk", flat=True)[:1000])
    for pk in stalled:
        upload_id = str(pk)
        transaction.on_commit(lambda upload_id=upload_id: finish_upload.delay(upload_id))
    if expired or stalled:
        logger.info("Upload sweep: %d expired, %d handed to the finisher", expired, len(stalled))
    return {"expired": expired, "finishing": len(stalled)}
