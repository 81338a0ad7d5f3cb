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
