"""Writes for attachments: upload, thumbnail, mark used, delete unreferenced."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from core import ratelimit
from media import avprocess, probe
from media.models import Attachment, AttachmentKind, Avatar
from media.sniff import SNIFF_BYTES, sniff
from media.storage import attachment_storage, new_storage_name
from media.uploads import sanitize_original_name, too_large

logger = logging.getLogger(__name__)

OPAQUE_CONTENT_TYPE = "application/octet-stream"


def attachment_create(*, uploader: User, upload: UploadedFile, kind: str | None = None) -> Attachment:
    """Check the real type from the bytes, probe, store under a generated name, record.

    `kind` is what the client claims; when given, bytes of another kind are 415.
    Nothing is left in storage when anything is refused.
    """
    ratelimit.hit("media-upload", str(uploader.pk), settings.MEDIA_UPLOAD_LIMIT)
    return attachment_create_from_file(uploader=uploader, upload=upload, kind=kind)


def attachment_create_from_file(*, uploader: User, upload: UploadedFile, kind: str | None = None) -> Attachment:
    """`attachment_create` without the upload rate limit: for bytes already counted when their
    resumable upload was created. The same checks, probes and storage."""
    if not upload.size:
        raise probe.invalid("The file is empty.")
    probed = _probe(upload=upload, kind=kind)
    try:
        return _attachment_store(uploader=uploader, upload=upload, probed=probed)
    finally:
        _close(probed.replacement)


def _probe(*, upload: UploadedFile, kind: str | None) -> probe.Probed:
    upload.seek(0)
    sniffed = sniff(upload.read(SNIFF_BYTES))
    if kind == AttachmentKind.FILE or (sniffed is None and not kind):
        # Any bytes, served only as an opaque download (see apis.AttachmentContentApi).
        _check_size(AttachmentKind.FILE, upload.size)
        return probe.Probed(AttachmentKind.FILE, OPAQUE_CONTENT_TYPE)
    if sniffed is None:
        raise probe.refuse_kind(kind or "", "not a supported image, voice or video format")
    # An MP4 or WebM container is voice or video by its tracks; any other format's kind is fixed by its magic.
    container = sniffed.format in ("mp4", "webm")
    if kind and kind != sniffed.kind and not (container and kind == AttachmentKind.VOICE):
        raise probe.refuse_kind(kind, sniffed.content_type)
    _check_size(kind or sniffed.kind, upload.size)
    if sniffed.kind == AttachmentKind.IMAGE:
        probed = probe.probe_image(upload, sniffed)
    else:
        probed = probe.probe_av(upload, sniffed)
    if kind and probed.kind != kind:
        _close(probed.replacement)
        raise probe.refuse_kind(kind, probed.content_type)
    _check_size(probed.kind, upload.size)
    return probed


def _check_size(kind: str, size: int) -> None:
    limit = settings.MEDIA_MAX_SIZE[kind]
    if size > limit:
        raise too_large(limit)


def _close(fileobj: IO[bytes] | None) -> None:
    if fileobj is not None:
        fileobj.close()


def _sha256_and_size(fileobj: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    fileobj.seek(0)
    for chunk in iter(lambda: fileobj.read(1024 * 1024), b""):
        digest.update(chunk)
        size += len(chunk)
    fileobj.seek(0)
    return digest.hexdigest(), size


def _attachment_store(*, uploader: User, upload: UploadedFile, probed: probe.Probed) -> Attachment:
    source: IO[bytes] = probed.replacement if probed.replacement is not None else upload
    sha256, size = _sha256_and_size(source)
    storage = attachment_storage()
    # The upload itself (not a File wrapper) lets local storage move its temp file instead of copying.
    content = upload if probed.replacement is None else File(source)
    stored_name = storage.save(new_storage_name(folder="attachments"), content)
    try:
        with transaction.atomic():
            attachment = Attachment.objects.create(
                uploader=uploader,
                kind=probed.kind,
                content_type=probed.content_type,
                size=size,
                storage_name=stored_name,
                width=probed.width,
                height=probed.height,
                duration_ms=probed.duration_ms,
                original_name=sanitize_original_name(upload.name),
                sha256=sha256,
                media_info=probed.media_info,
            )
            _enqueue_followups(attachment)
    except BaseException:
        storage.delete(stored_name)
        raise
    return attachment


def _enqueue_followups(attachment: Attachment) -> None:
    """In the attachment's transaction: thumbnails for images and videos, the waveform of a voice
    note, an optional transcode. Outbox rows (core.durable): they run once the database and the
    broker are up, whatever was down when the upload finished."""
    from core.durable import outbox_enqueue

    attachment_id = str(attachment.pk)
    steps = []
    if attachment.kind in (AttachmentKind.IMAGE, AttachmentKind.VIDEO):
        steps.append("thumbnail")
    if attachment.kind == AttachmentKind.VOICE:
        steps.append("waveform")
    if attachment.kind == AttachmentKind.VIDEO and settings.MEDIA_VIDEO_TRANSCODE and not _plays_everywhere(attachment):
        steps.append("transcode")
    for step in steps:
        outbox_enqueue(f"media.{step}", key=f"media.{step}:{attachment_id}", kwargs={"attachment_id": attachment_id})


def _plays_everywhere(attachment: Attachment) -> bool:
    info = attachment.media_info or {}
    return (info.get("container") == "mp4" and info.get("video_codec") == "h264"
            and info.get("audio_codec") in (None, "aac"))


@contextmanager
def _stored_path(name: str) -> Iterator[str]:
    """A local path of a stored file for FFmpeg: the file itself, or a download of it (object storage)."""
    storage = attachment_storage()
    try:
        yield storage.path(name)
        return
    except NotImplementedError:
        pass
    with storage.open(name, "rb") as stored, tempfile.NamedTemporaryFile(suffix=".media") as copy:
        shutil.copyfileobj(stored, copy, 1024 * 1024)
        copy.flush()
        yield copy.name


def _derived_name(attachment: Attachment, folder: str, suffix: str) -> str:
    # Derived from the original's name, so a retry after a crash overwrites rather than leaks.
    return f"{attachment.storage_name.replace('attachments/', f'{folder}/', 1)}{suffix}"


def attachment_make_thumbnail(*, attachment_id: str) -> str | None:
    """Idempotent: a second run finds the thumbnail made and does nothing.

    Images are scaled; videos get a poster frame decoded by FFmpeg (in a child process).
    """
    attachment = Attachment.objects.filter(
        pk=attachment_id, kind__in=[AttachmentKind.IMAGE, AttachmentKind.VIDEO]).first()
    if attachment is None or attachment.thumbnail_name:
        return attachment.thumbnail_name if attachment else None
    storage = attachment_storage()
    name = _derived_name(attachment, "thumbnails", ".webp")
    with tempfile.NamedTemporaryFile(suffix=".webp") as output:
        if attachment.kind == AttachmentKind.IMAGE:
            with storage.open(attachment.storage_name, "rb") as original:
                probe.thumbnail_encode(original, output, max_side=settings.MEDIA_THUMBNAIL_SIZE)
        else:
            try:
                with _stored_path(attachment.storage_name) as path:
                    avprocess.run("poster", {"src": path, "dst": output.name, "max_side": settings.MEDIA_THUMBNAIL_SIZE,
                                             "format": _demux_format(attachment)}, output_bytes=16 * 1024 * 1024)
            except avprocess.AvRefused as refused:
                # The stored copy was checked at upload: a refusal now is a poster that cannot be made.
                logger.warning("No poster frame for video %s: %s", attachment_id, refused.reason)
                return None
        output.seek(0)
        storage.delete(name)
        stored = storage.save(name, File(output))
    updated = Attachment.objects.filter(pk=attachment_id, thumbnail_name="").update(thumbnail_name=stored)
    if not updated:  # deleted meanwhile, or a concurrent run won: this copy is an orphan
        current = Attachment.objects.filter(pk=attachment_id).values_list("thumbnail_name", flat=True).first()
        if current != stored:
            storage.delete(stored)
        return current
    return stored


def _demux_format(attachment: Attachment) -> str:
    """The sniffed format name of a stored recording (what avtool's demuxer table is keyed by)."""
    container = (attachment.media_info or {}).get("container")
    if container in ("mp4", "mov"):
        return "mp4"
    if container:
        return container
    return sniff(_head(attachment.storage_name)).format  # type: ignore[union-attr]


def _head(name: str) -> bytes:
    with attachment_storage().open(name, "rb") as stored:
        return stored.read(SNIFF_BYTES)


def attachment_make_waveform(*, attachment_id: str) -> list[int] | None:
    """The voice note's peak levels (MEDIA_WAVEFORM_LEVELS of them, 0..100); idempotent."""
    attachment = Attachment.objects.filter(pk=attachment_id, kind=AttachmentKind.VOICE).first()
    if attachment is None or attachment.waveform is not None:
        return attachment.waveform if attachment else None
    try:
        with _stored_path(attachment.storage_name) as path:
            answer = avprocess.run("waveform", {"src": path, "format": _demux_format(attachment),
                                                "levels": settings.MEDIA_WAVEFORM_LEVELS}, output_bytes=0)
    except avprocess.AvRefused as refused:
        logger.warning("No waveform for voice note %s: %s", attachment_id, refused.reason)
        return None
    levels = [int(level) for level in answer["levels"]]
    Attachment.objects.filter(pk=attachment_id, waveform__isnull=True).update(waveform=levels)
    return levels


def attachment_transcode(*, attachment_id: str) -> str | None:
    """An H.264/AAC MP4 rendition of a video (MEDIA_VIDEO_TRANSCODE); idempotent."""
    attachment = Attachment.objects.filter(pk=attachment_id, kind=AttachmentKind.VIDEO).first()
    if attachment is None or attachment.compat_name:
        return attachment.compat_name if attachment else None
    storage = attachment_storage()
    name = _derived_name(attachment, "renditions", ".mp4")
    with tempfile.NamedTemporaryFile(suffix=".mp4") as output:
        try:
            with _stored_path(attachment.storage_name) as path:
                avprocess.run("transcode", {"src": path, "dst": output.name, "format": _demux_format(attachment),
                                            "max_side": settings.MEDIA_TRANSCODE_MAX_SIDE},
                              output_bytes=4 * attachment.size + 64 * 1024 * 1024,
                              cpu_seconds=settings.MEDIA_TRANSCODE_CPU_SECONDS,
                              timeout=settings.MEDIA_TRANSCODE_CPU_SECONDS * 2)
        except avprocess.AvRefused as refused:
            logger.warning("Video %s could not be transcoded: %s", attachment_id, refused.reason)
            return None
        output.seek(0)
        storage.delete(name)
        stored = storage.save(name, File(output))
    if not Attachment.objects.filter(pk=attachment_id, compat_name="").update(compat_name=stored):
        current = Attachment.objects.filter(pk=attachment_id).values_list("compat_name", flat=True).first()
        if current != stored:
            storage.delete(stored)
        return current
    return stored


def attachment_delete(*, attachment_id: object) -> None:
    """Delete an attachment and its files (a surplus copy; messaging never calls this)."""
    row = Attachment.objects.filter(pk=attachment_id).values_list("storage_name", "thumbnail_name",
                                                                   "compat_name").first()
    if row is None:
        return
    with transaction.atomic():
        Attachment.objects.filter(pk=attachment_id).delete()
        transaction.on_commit(lambda: _delete_files(name for name in row if name))


def attachment_mark_used(*, attachment_id: str) -> None:
    """Called by messaging when a message carrying the attachment commits: it is kept."""
    Attachment.objects.filter(pk=attachment_id, used_at__isnull=True).update(used_at=timezone.now())


def attachments_delete_unreferenced(*, now: datetime | None = None, batch_size: int = 200,
                                    max_batches: int = 50) -> int:
    """Delete uploads never used in a message and older than MEDIA_UNREFERENCED_TTL.

    Files first, then rows, under row locks that skip rows a message send is
    holding (`attachment_for_message` locks the row it hands out). A crash
    between the two leaves rows whose files are gone; the next run deletes
    them again (deleting a missing file is a no-op). Returns rows deleted.
    """
    cutoff = (now or timezone.now()) - settings.MEDIA_UNREFERENCED_TTL
    deleted = 0
    for _ in range(max_batches):
        with transaction.atomic():
            rows = list(
                Attachment.objects.select_for_update(skip_locked=True)
                .filter(used_at__isnull=True, created_at__lt=cutoff)
                .order_by("created_at")
                .values_list("pk", "storage_name", "thumbnail_name", "compat_name")[:batch_size]
            )
            if not rows:
                break
            _delete_files(name for _, *names in rows for name in names if name)
            Attachment.objects.filter(pk__in=[row[0] for row in rows]).delete()
        deleted += len(rows)
        if len(rows) < batch_size:
            break
    if deleted:
        logger.info("Deleted %d unreferenced attachments", deleted)
    return deleted


def _delete_files(names: Iterable[str]) -> None:
    storage = attachment_storage()
    for name in names:
        storage.delete(name)


# --- Avatars -------------------------------------------------------------------------------


def _avatar_files_store(*, upload: UploadedFile) -> dict[str, str]:
    """Check the upload is an image (bounded like attachments), crop, store each size; storage names."""
    upload.seek(0)
    sniffed = sniff(upload.read(SNIFF_BYTES))
    if sniffed is None or sniffed.kind != AttachmentKind.IMAGE:
        raise probe.refuse_kind(AttachmentKind.IMAGE, sniffed.content_type if sniffed else "not an image")
    _check_size(AttachmentKind.IMAGE, upload.size)
    encoded = probe.avatar_encode(upload, sniffed, sizes=settings.MEDIA_AVATAR_SIZES)
    storage = attachment_storage()
    base = new_storage_name(folder="avatars")
    stored: dict[str, str] = {}
    try:
        for name, output in encoded.items():
            stored[name] = storage.save(f"{base}-{name}.webp", File(output))
    except BaseException:
        _delete_files(stored.values())
        raise
    finally:
        for output in encoded.values():
            output.close()
    return stored


def avatar_url(avatar: Avatar) -> str:
    """A path on this server; a new picture gets a new URL, so clients may cache by it."""
    return reverse("avatar", kwargs={"avatar_id": avatar.pk})


def _avatars_delete_on_commit(queryset: Any) -> None:
    names = [name for files in queryset.values_list("files", flat=True) for name in (files or {}).values()]
    queryset.delete()
    if names:
        transaction.on_commit(lambda: _delete_files(names))


def user_avatar_set(*, user: User, upload: UploadedFile) -> User:
    """A new profile picture (PUT /me/avatar): the previous one and its files go."""
    ratelimit.hit("media-avatar", str(user.pk), settings.MEDIA_AVATAR_LIMIT)
    files = _avatar_files_store(upload=upload)
    try:
        with transaction.atomic():
            locked = User.objects.select_for_update().get(pk=user.pk)
            _avatars_delete_on_commit(Avatar.objects.filter(user=locked))
            avatar = Avatar.objects.create(user=locked, files=files)
            locked.avatar_url = avatar_url(avatar)
            locked.save(update_fields=["avatar_url"])
    except BaseException:
        _delete_files(files.values())
        raise
    return locked


def user_avatar_delete(*, user: User) -> None:
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        _avatars_delete_on_commit(Avatar.objects.filter(user=locked))
        locked.avatar_url = ""
        locked.save(update_fields=["avatar_url"])


def avatars_user_deleted(*, user_id: object) -> None:
    """ACCOUNT_DELETION_STEPS: an erased account keeps no picture."""
    _avatars_delete_on_commit(Avatar.objects.filter(user_id=user_id))


def conversation_avatar_files(*, upload: UploadedFile, actor_id: object) -> dict[str, str]:
    """For messaging's group avatars, step 1 (outside its transaction): the stored crops.

    The caller passes them to `conversation_avatar_replace` inside its transaction, and
    deletes them with `avatar_files_discard` if that fails.
    """
    ratelimit.hit("media-avatar", str(actor_id), settings.MEDIA_AVATAR_LIMIT)
    return _avatar_files_store(upload=upload)


def conversation_avatar_replace(*, conversation_id: object, files: dict[str, str] | None) -> str:
    """Step 2, inside the caller's transaction: the conversation's picture becomes `files`
    (None removes it); the old one's files are deleted after commit. Returns the new URL or ""."""
    _avatars_delete_on_commit(Avatar.objects.filter(conversation_id=conversation_id))
    if files is None:
        return ""
    return avatar_url(Avatar.objects.create(conversation_id=conversation_id, files=files))


def avatar_files_discard(files: dict[str, str]) -> None:
    _delete_files(files.values())
