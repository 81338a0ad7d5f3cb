"""Reads for attachments: authorised lookups and the public shape."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework.request import Request

from accounts.selectors import user_get_active
from core.errors import NotFound, Unauthenticated, ValidationFailed
from core.serializers import timestamp
from media.models import Attachment


def _as_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def attachment_for_message(*, attachment_id: Any, sender_id: Any, kind: str) -> Attachment:
    """The sender's own attachment of `kind`, for a message being sent.

    Inside a transaction the row is locked, so the cleanup task (which skips
    locked rows) cannot delete it between this check and the message commit.
    """
    message = f"No {kind} attachment of yours has this id."
    pk = _as_uuid(attachment_id)
    if pk is None:
        raise ValidationFailed(message, details={"attachment_id": [message]})
    queryset = Attachment.objects.filter(pk=pk, uploader_id=sender_id, kind=kind)
    if transaction.get_connection().in_atomic_block:
        queryset = queryset.select_for_update()
    attachment = queryset.first()
    if attachment is None:
        raise ValidationFailed(message, details={"attachment_id": [message]})
    return attachment


def attachment_can_view(*, attachment: Attachment, user_id: Any) -> bool:
    if str(attachment.uploader_id) == str(user_id):
        return True
    # MEDIA_ACCESS_CHECK (messaging: members of a conversation it was sent in), then the other
    # apps' checks (moments: viewers of a post carrying it).
    for check_path in (settings.MEDIA_ACCESS_CHECK, *getattr(settings, "MEDIA_ACCESS_EXTRA_CHECKS", ())):
        if check_path and import_string(check_path)(user_id=user_id, attachment_id=attachment.pk):
            return True
    return False


def attachment_get_for_viewer(*, attachment_id: Any, user_id: Any) -> Attachment:
    """The attachment when the user may see it; NotFound otherwise (never 403)."""
    pk = _as_uuid(attachment_id)
    attachment = Attachment.objects.filter(pk=pk).first() if pk else None
    if attachment is None or not attachment_can_view(attachment=attachment, user_id=user_id):
        raise NotFound()
    return attachment


def _absolute(path: str, request: Request | None) -> str:
    return request.build_absolute_uri(path) if request is not None else path


def attachment_public(attachment: Attachment, *, request: Request | None = None) -> dict[str, Any]:
    """The contract's Attachment shape (plus `name`, `waveform`, `compat_url`); URLs absolute when a
    request is given."""
    content = reverse("attachment-content", kwargs={"attachment_id": attachment.pk})
    thumbnail = (reverse("attachment-thumbnail", kwargs={"attachment_id": attachment.pk})
                 if attachment.thumbnail_name else None)
    compat = (reverse("attachment-compat", kwargs={"attachment_id": attachment.pk})
              if attachment.compat_name else None)
    return {
        "id": str(attachment.pk),
        "kind": attachment.kind,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "url": _absolute(content, request),
        "thumbnail_url": _absolute(thumbnail, request) if thumbnail else None,
        "width": attachment.width,
        "height": attachment.height,
        "duration_ms": attachment.duration_ms,
        "name": attachment.original_name,
        "waveform": attachment.waveform,
        "compat_url": _absolute(compat, request) if compat else None,
    }


_LINK_SALT = "media.signed-link"


def attachment_signed_links(attachment: Attachment, *, user_id: Any,
                            request: Request | None = None) -> dict[str, Any]:
    """Short-lived URLs that work without a bearer header, for the viewer `user_id` only.

    The token names the viewer, so serving re-checks that viewer's access: a
    member who leaves the conversation loses the link with the membership.
    """
    token = signing.dumps({"a": str(attachment.pk), "u": str(user_id)}, salt=_LINK_SALT, compress=True)
    public = attachment_public(attachment, request=request)
    expires = timezone.now() + timedelta(seconds=settings.MEDIA_SIGNED_URL_TTL)
    return {
        "url": f"{public['url']}?token={token}",
        "thumbnail_url": f"{public['thumbnail_url']}?token={token}" if public["thumbnail_url"] else None,
        "expires_at": timestamp(expires),
    }


def attachment_signed_viewer(*, attachment_id: Any, token: str) -> str:
    """The viewer a valid, unexpired link token was made for (Unauthenticated otherwise)."""
    refused = Unauthenticated("The link has expired or is not valid; ask for a new one.")
    try:
        claims = signing.loads(token, salt=_LINK_SALT, max_age=settings.MEDIA_SIGNED_URL_TTL)
    except signing.BadSignature as exc:  # SignatureExpired is a BadSignature
        raise refused from exc
    if not isinstance(claims, dict) or claims.get("a") != str(attachment_id):
        raise refused
    try:
        return str(user_get_active(user_id=claims.get("u")).pk)
    except NotFound as exc:  # the account was deleted since
        raise refused from exc


def avatar_get_for_viewer(*, avatar_id: Any, user_id: Any) -> Any:
    """An avatar the viewer may load: a user's picture is public to every signed-in user (as the
    profile is); a group's only to whom MEDIA_AVATAR_ACCESS_CHECK allows. NotFound otherwise."""
    from media.models import Avatar

    pk = _as_uuid(avatar_id)
    avatar = Avatar.objects.filter(pk=pk).first() if pk else None
    if avatar is None:
        raise NotFound()
    if avatar.conversation_id is not None:
        check = settings.MEDIA_AVATAR_ACCESS_CHECK
        if not check or not import_string(check)(user_id=user_id, conversation_id=avatar.conversation_id):
            raise NotFound()
    return avatar
