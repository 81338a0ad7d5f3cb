"""Writes for moments: post, delete, like, comment; the account-deletion step.

Every write that adds content is refused in the sunset's read-only phase
(core.sunset.ensure_writable), like sends; removing one's own post, like or
comment is not. Each write and its events commit together (streams.services).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import User
from contacts.selectors import friend_ids, friends_among
from core.errors import Forbidden, NotFound, ValidationFailed
from core.ids import uuid_or_not_found
from core.sunset import ensure_writable
from media.models import Attachment, AttachmentKind
from moments import events, selectors
from moments.models import Comment, Like, Moment, MomentAttachment, MomentAudience, Visibility
from streams.services import PendingEvent, stream_append

# --- Posting ----------------------------------------------------------------------------------------


def _clean_attachments(*, author_id: object, attachment_ids: Sequence[uuid.UUID]) -> list[Attachment]:
    """The author's own attachments in the given order, locked (the unreferenced-upload sweep skips
    locked rows): up to MOMENTS_MAX_IMAGES images, or one video."""
    if len(attachment_ids) > settings.MOMENTS_MAX_IMAGES:
        raise ValidationFailed(details={"attachment_ids": [f"At most {settings.MOMENTS_MAX_IMAGES} images."]})
    if len(set(attachment_ids)) != len(attachment_ids):
        raise ValidationFailed(details={"attachment_ids": ["An attachment is listed twice."]})
    found = {a.pk: a for a in Attachment.objects.select_for_update().filter(pk__in=attachment_ids,
                                                                             uploader_id=author_id)}
    if len(found) != len(attachment_ids):
        raise ValidationFailed(details={"attachment_ids": ["No attachment of yours has one of these ids."]})
    ordered = [found[pk] for pk in attachment_ids]
    kinds = {a.kind for a in ordered}
    if kinds - {AttachmentKind.IMAGE, AttachmentKind.VIDEO}:
        raise ValidationFailed(details={"attachment_ids": ["Only images and videos can be posted."]})
    if AttachmentKind.VIDEO in kinds and len(ordered) > 1:
        raise ValidationFailed(details={"attachment_ids": ["A post carries up to 9 images or one video, not both."]})
    return ordered


def _clean_audience(*, author_id: object, mode: str, user_ids: Sequence[uuid.UUID]) -> list[str]:
    listed = list(dict.fromkeys(str(pk) for pk in user_ids))
    if mode in (Visibility.FRIENDS, Visibility.PRIVATE):
        if listed:
            raise ValidationFailed(details={"visibility.user_ids": [f"Not used with mode {mode}; leave it empty."]})
        return []
    if not listed:
        raise ValidationFailed(details={"visibility.user_ids": [f"Mode {mode} needs at least one friend."]})
    if len(listed) > settings.MOMENTS_AUDIENCE_MAX:
        raise ValidationFailed(details={"visibility.user_ids": [f"At most {settings.MOMENTS_AUDIENCE_MAX} people."]})
    friends = friends_among(user_id=author_id, candidate_ids=listed)
    strangers = [pk for pk in listed if pk not in friends]
    if strangers:
        raise ValidationFailed(details={"visibility.user_ids": ["Only your friends can be listed."],
                                        "not_friends": strangers})
    return listed


def _audience_now(*, author_id: object, mode: str, listed: Sequence[str]) -> list[str]:
    """Who may see a new post: the author's friends its visibility admits (one query)."""
    if mode == Visibility.PRIVATE:
        return []
    if mode == Visibility.ONLY:
        return list(listed)  # checked to be friends in this transaction
    friends = [str(pk) for pk in friend_ids(user_id=author_id)]
    if mode == Visibility.EXCEPT:
        excluded = set(listed)
        return [pk for pk in friends if pk not in excluded]
    return friends


def moment_post(*, author: User, client_id: uuid.UUID, text: str = "", attachment_ids: Sequence[uuid.UUID] = (),
                location: dict[str, Any] | None = None, mode: str = Visibility.FRIENDS,
                user_ids: Sequence[uuid.UUID] = ()) -> tuple[dict[str, Any], bool]:
    """Post a moment: (Moment as the author sees it, created).

    A retry with the same client_id returns the first post, whatever the body
    says. The post, its lists and attachments, and `moment.new` to every
    friend it admits commit together.
    """
    ensure_writable("moment.post")
    existing = Moment.objects.filter(author=author, client_id=client_id).first()
    if existing is not None:
        return selectors.render(existing, viewer_id=author.pk), False
    if len(text) > settings.MOMENTS_TEXT_MAX:
        raise ValidationFailed(details={"text": [f"At most {settings.MOMENTS_TEXT_MAX} characters."]})
    if mode not in Visibility.values:
        raise ValidationFailed(details={"visibility.mode": ["Unknown value."]})
    if not text.strip() and not attachment_ids:
        raise ValidationFailed(details={"text": ["A post needs text, images or a video."]})
    try:
        with transaction.atomic():
            attachments = _clean_attachments(author_id=author.pk, attachment_ids=list(attachment_ids))
            listed = _clean_audience(author_id=author.pk, mode=mode, user_ids=list(user_ids))
            moment = Moment(author=author, client_id=client_id, text=text, location=location, visibility=mode,
                            created_at=timezone.now())
            try:
                with transaction.atomic():
                    moment.save(force_insert=True)
            except IntegrityError:
                raise _Raced() from None
            MomentAudience.objects.bulk_create([MomentAudience(moment=moment, user_id=pk) for pk in listed])
            MomentAttachment.objects.bulk_create(
                [MomentAttachment(moment=moment, attachment=a, position=i) for i, a in enumerate(attachments)])
            if attachments:
                # Posted: no longer an unreferenced upload for media's cleanup.
                Attachment.objects.filter(pk__in=[a.pk for a in attachments], used_at__isnull=True).update(
                    used_at=moment.created_at)
            data = events.moment_new(moment_id=moment.pk, author_id=author.pk)
            stream_append(PendingEvent(pk, events.MOMENT_NEW, data)
                          for pk in _audience_now(author_id=author.pk, mode=mode, listed=listed))
    except _Raced:
        existing = Moment.objects.get(author=author, client_id=client_id)
        return selectors.render(existing, viewer_id=author.pk), False
    return selectors.render(moment, viewer_id=author.pk, friends=[]), True


class _Raced(Exception):
    pass


def moment_delete(*, user: User, moment_id: object) -> None:
    """The author deletes a post; its likes, comments and lists go with it. Anyone else: 404 when
    they may not see it, 403 when they may."""
    with transaction.atomic():
        moment = Moment.objects.select_for_update().filter(pk=uuid_or_not_found(moment_id)).first()
        if moment is None or not selectors.may_see(viewer_id=user.pk, moment=moment):
            raise NotFound("No such moment.")
        if moment.author_id != user.pk:
            raise Forbidden("Only the author can delete a moment.")
        moment.delete()


# --- Likes and comments ------------------------------------------------------------------------------


def _interaction_recipients(*, moment: Moment, actor_id: object) -> list[str]:
    """Who gets `moment.interaction`: the post's author, and earlier commenters who may see both the
    post and the new interaction (friends of its author), never the actor."""
    actor = str(actor_id)
    author = str(moment.author_id)
    recipients = [] if author == actor else [author]
    earlier = {str(pk) for pk in Comment.objects.filter(moment=moment).values_list("user_id", flat=True)}
    earlier -= {actor, author}
    if earlier:
        earlier &= friends_among(user_id=actor, candidate_ids=earlier)
    if earlier:
        earlier = selectors.may_see_among(moment=moment, viewer_ids=earlier)
    return recipients + sorted(earlier)


def _notify(*, moment: Moment, actor: User, kind: str, comment: Comment | None = None) -> None:
    """Events to the recipients, and a push to the post's author (inside the write's transaction)."""
    data = events.moment_interaction(moment_id=moment.pk, kind=kind, user_id=actor.pk,
                                     comment_id=comment.pk if comment else None)
    recipients = _interaction_recipients(moment=moment, actor_id=actor.pk)
    stream_append(PendingEvent(pk, events.MOMENT_INTERACTION, data) for pk in recipients)
    if str(moment.author_id) in recipients:
        _push_author(moment=moment, actor=actor, kind=kind, comment=comment)


def _push_author(*, moment: Moment, actor: User, kind: str, comment: Comment | None) -> None:
    if not settings.MOMENTS_PUSH:
        return
    preview = (User.objects.filter(pk=moment.author_id, moments_notifications=True, is_active=True)
               .values_list("message_preview_in_push", flat=True).first())
    if preview is None:  # turned off (or the account is gone)
        return
    name = actor.display_name or "Someone"
    if comment is None:
        body, key = f"{name} liked your moment", f"{events.MOMENT_INTERACTION}:like:{moment.pk}:{actor.pk}"
    else:
        # The push app hides only message texts when previews are off: the comment's is left out here.
        body = f"{name}: {comment.text[:200]}" if preview else f"{name} commented on your moment"
        key = f"{events.MOMENT_INTERACTION}:comment:{comment.pk}"
    import_string(settings.MOMENTS_PUSH)(
        user_id=str(moment.author_id), kind=events.MOMENT_INTERACTION, title="Moments", body=body,
        collapse_key=f"moment:{moment.pk}", dedupe_key=key,
        data=events.moment_interaction(moment_id=moment.pk, kind=kind, user_id=actor.pk,
                                       comment_id=comment.pk if comment else None),
    )


def _hold(moment: Moment) -> None:
    """Keep the post from being deleted until this transaction ends (FOR KEY SHARE: likes and comments
    on one post do not queue behind each other); NotFound when it is already gone."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM moments_moment WHERE id = %s FOR KEY SHARE", [moment.pk])
            found = cursor.fetchone() is not None
    else:
        found = Moment.objects.filter(pk=moment.pk).exists()
    if not found:
        raise NotFound("No such moment.")


def moment_like(*, user: User, moment_id: object) -> bool:
    """Like a post the user may see (404 otherwise): True when liked now, False when it already was."""
    ensure_writable("moment.like")
    moment = selectors.moment_get_for_viewer(viewer_id=user.pk, moment_id=moment_id)
    with transaction.atomic():
        _hold(moment)
        try:
            with transaction.atomic():
                Like.objects.create(moment=moment, user=user, created_at=timezone.now())
        except IntegrityError:
            return False  # liked before (or by this user's other device just now)
        _notify(moment=moment, actor=user, kind=events.LIKE)
    return True


def moment_unlike(*, user: User, moment_id: object) -> None:
    moment = selectors.moment_get_for_viewer(viewer_id=user.pk, moment_id=moment_id)
    Like.objects.filter(moment=moment, user=user).delete()


def comment_add(*, user: User, moment_id: object, client_id: uuid.UUID, text: str,
                reply_to_user_id: uuid.UUID | None = None) -> tuple[dict[str, Any], bool]:
    """Comment on a post the user may see (404 otherwise), optionally as a reply to someone whose
    comment the user sees there (or to the author): (Comment, created). Idempotent by client_id."""
    ensure_writable("moment.comment")
    existing = Comment.objects.filter(user=user, client_id=client_id).first()
    if existing is not None:
        return selectors.comment_public(existing), False
    if not text.strip():
        raise ValidationFailed(details={"text": ["A comment needs text."]})
    if len(text) > settings.MOMENTS_COMMENT_MAX:
        raise ValidationFailed(details={"text": [f"At most {settings.MOMENTS_COMMENT_MAX} characters."]})
    moment = selectors.moment_get_for_viewer(viewer_id=user.pk, moment_id=moment_id)
    if reply_to_user_id is not None and not selectors.may_reply_to(viewer_id=user.pk, moment=moment,
                                                                   other_id=reply_to_user_id):
        raise ValidationFailed(details={"reply_to_user_id": [
            "Reply to the author or to someone whose comment on this moment you can see."]})
    try:
        with transaction.atomic():
            _hold(moment)
            try:
                with transaction.atomic():
                    comment = Comment.objects.create(moment=moment, user=user, client_id=client_id, text=text,
                                                     reply_to_user_id=reply_to_user_id, created_at=timezone.now())
            except IntegrityError:
                raise _Raced() from None
            _notify(moment=moment, actor=user, kind=events.COMMENT, comment=comment)
    except _Raced:
        existing = Comment.objects.filter(user=user, client_id=client_id).first()
        if existing is None:  # the post was deleted meanwhile
            raise NotFound("No such moment.") from None
        return selectors.comment_public(existing), False
    return selectors.comment_public(comment), True


def comment_delete(*, user: User, moment_id: object, comment_id: object) -> None:
    """The commenter or the post's author removes a comment; anyone else gets 404."""
    with transaction.atomic():
        comment = (Comment.objects.select_related("moment")
                   .filter(pk=uuid_or_not_found(comment_id), moment_id=uuid_or_not_found(moment_id)).first())
        if comment is None or user.pk not in (comment.user_id, comment.moment.author_id):
            raise NotFound("No such comment.")
        comment.delete()


# --- Accounts ---------------------------------------------------------------------------------------


def moments_user_deleted(*, user_id: object) -> None:
    """ACCOUNT_DELETION_STEPS: the user's posts go (with everything on them), and so do their likes,
    comments and places on others' lists."""
    Moment.objects.filter(author=user_id).delete()
    Like.objects.filter(user=user_id).delete()
    Comment.objects.filter(user=user_id).delete()
    MomentAudience.objects.filter(user=user_id).delete()
