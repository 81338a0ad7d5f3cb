"""Attachments: one uploaded file, its probed facts and where it is stored."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class AttachmentKind(models.TextChoices):
    IMAGE = "image"
    VOICE = "voice"
    VIDEO = "video"
    FILE = "file"


class Attachment(models.Model):
    """An upload. `storage_name` is generated, never the client's file name.

    `used_at` is set when a message first carries the attachment; rows still
    without it after MEDIA_UNREFERENCED_TTL are deleted with their files.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    uploader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments")
    kind = models.CharField(max_length=8, choices=AttachmentKind.choices)
    content_type = models.CharField(max_length=100)
    size = models.BigIntegerField()
    storage_name = models.CharField(max_length=255, unique=True)
    thumbnail_name = models.CharField(max_length=255, blank=True, default="")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    original_name = models.CharField(max_length=255, blank=True, default="")
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)
    # Voice and video: {"container", "video_codec", "audio_codec", "rotation"} from the probe.
    media_info = models.JSONField(default=dict, blank=True)
    # Voice notes: MEDIA_WAVEFORM_LEVELS peak levels 0..100, made by the waveform task (null until then).
    waveform = models.JSONField(null=True, blank=True)
    # Videos with MEDIA_VIDEO_TRANSCODE on: an H.264/AAC MP4 rendition for old clients.
    compat_name = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        db_table = "media_attachment"
        indexes = [
            # The cleanup task's scan: unreferenced uploads by age.
            models.Index(fields=["created_at"], condition=models.Q(used_at__isnull=True),
                         name="media_att_unreferenced_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


class UploadState(models.TextChoices):
    RECEIVING = "receiving"  # bytes are arriving (tus PATCH)
    FINISHING = "finishing"  # every byte is here; the attachment is being made
    DONE = "done"  # `attachment` is the result
    FAILED = "failed"  # the bytes were refused as an attachment; `error` says why


class ResumableUpload(models.Model):
    """A tus upload (docs/media.md, "Resumable uploads"): its bytes live in `UploadPiece`s
    in storage until the last byte arrives and the whole becomes an `Attachment`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    uploader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    length = models.BigIntegerField()
    offset = models.BigIntegerField(default=0)
    kind = models.CharField(max_length=8, choices=AttachmentKind.choices, blank=True, default="")
    original_name = models.CharField(max_length=255, blank=True, default="")
    state = models.CharField(max_length=10, choices=UploadState.choices, default=UploadState.RECEIVING)
    attachment = models.ForeignKey(Attachment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # When refused: {"status", "code", "message", "details"}, the answer the last PATCH got.
    error = models.JSONField(null=True, blank=True)
    # Whoever is making the attachment holds this token; a finisher that lost it must not commit.
    finishing_token = models.UUIDField(null=True, blank=True)
    finishing_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "media_resumable_upload"
        indexes = [
            models.Index(fields=["expires_at"], name="media_upload_expires_idx"),
            models.Index(fields=["uploader", "state"], name="media_upload_owner_state_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(offset__gte=0, offset__lte=models.F("length")),
                                   name="media_upload_offset_within_length"),
        ]

    def __str__(self) -> str:
        return f"upload {self.id} {self.offset}/{self.length}"


class UploadPiece(models.Model):
    """Bytes [offset, offset + size) of an upload, stored as one object. Pieces are contiguous."""

    upload = models.ForeignKey(ResumableUpload, on_delete=models.CASCADE, related_name="pieces")
    offset = models.BigIntegerField()
    size = models.BigIntegerField()
    storage_name = models.CharField(max_length=255)

    class Meta:
        db_table = "media_upload_piece"
        constraints = [models.UniqueConstraint(fields=["upload", "offset"], name="media_upload_piece_unique")]

    def __str__(self) -> str:
        return f"{self.upload_id} @{self.offset}+{self.size}"


class Avatar(models.Model):
    """A profile picture: square crops in MEDIA_AVATAR_SIZES, re-encoded (no EXIF).

    Exactly one owner: a user, or a conversation (a group's picture; messaging owns
    conversations and checks who may see them, see MEDIA_AVATAR_ACCESS_CHECK). A new
    picture is a new row, so its URL changes and clients may cache by URL.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="+")
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    # {"large": storage name, "small": storage name}
    files = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "media_avatar"
        constraints = [
            models.CheckConstraint(condition=models.Q(user__isnull=False) ^ models.Q(conversation_id__isnull=False),
                                   name="media_avatar_one_owner"),
        ]

    def __str__(self) -> str:
        return f"avatar {self.id}"
