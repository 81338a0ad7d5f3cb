"""Where attachment bytes live: Django's storage API, never a path of our own."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.utils import timezone


def attachment_storage() -> Storage:
    return storages[settings.MEDIA_STORAGE_ALIAS]


def new_storage_name(*, folder: str, suffix: str = "") -> str:
    """`<folder>/<yyyy>/<mm>/<uuid><suffix>`: the client's file name never reaches storage."""
    now = timezone.now()
    return f"{folder}/{now:%Y}/{now:%m}/{uuid.uuid4().hex}{suffix}"
