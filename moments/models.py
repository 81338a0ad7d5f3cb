"""Moments (the friend feed): posts, who they name in their audience, likes and comments.

Fan-out on read: a post is one row, never copied into friends' feeds. Who may
see it is decided when it is read, from the friendship as it stands then
(contacts.selectors.friend_ids) and the post's visibility, so unfriending or a
block hides it at once. The feed is a keyset walk over (created_at, id) on the
indexes below.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Visibility(models.TextChoices):
    FRIENDS = "friends"  # every friend
    ONLY = "only"  # the listed friends
    EXCEPT = "except"  # every friend but the listed ones
    PRIVATE = "private"  # the author alone


class Moment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                               db_index=False)
    client_id = models.UUIDField()
    text = models.TextField(blank=True, default="")
    # {"lat": float, "lng": float, "name"?: str}, or null.
    location = models.JSONField(null=True, blank=True)
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.FRIENDS)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["author", "client_id"], name="moment_author_client_uniq")]
        indexes = [
            # One person's posts, newest first (GET /users/{id}/moments; the feed of a small circle).
            models.Index(fields=["author", "-created_at", "-id"], name="moment_author_created_idx"),
            # The feed of a large circle: walk everyone's posts newest first, keep the friends'.
            models.Index(fields=["-created_at", "-id"], name="moment_created_idx"),
        ]

    def __str__(self) -> str:
        return f"moment {self.id}"


class MomentAudience(models.Model):
    """A friend named in an `only` or `except` post's list (as the author picked them)."""

    id = models.BigAutoField(primary_key=True)
    moment = models.ForeignKey(Moment, on_delete=models.CASCADE, related_name="audience", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                             db_index=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["moment", "user"], name="momentaudience_uniq")]
        # "Is the viewer on this post's list": the feed's filter, hashed over the viewer's rows.
        indexes = [models.Index(fields=["user", "moment"], name="momentaudience_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} listed on {self.moment_id}"


class MomentAttachment(models.Model):
    """One of a post's images (up to 9) or its one video, in the author's order."""

    id = models.BigAutoField(primary_key=True)
    moment = models.ForeignKey(Moment, on_delete=models.CASCADE, related_name="attachments", db_index=False)
    attachment = models.ForeignKey("media.Attachment", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["moment", "position"], name="momentattachment_uniq")]

    def __str__(self) -> str:
        return f"attachment {self.position} of {self.moment_id}"


class Like(models.Model):
    id = models.BigAutoField(primary_key=True)
    moment = models.ForeignKey(Moment, on_delete=models.CASCADE, related_name="likes", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["moment", "user"], name="like_moment_user_uniq")]

    def __str__(self) -> str:
        return f"{self.user_id} likes {self.moment_id}"


class Comment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    moment = models.ForeignKey(Moment, on_delete=models.CASCADE, related_name="comments", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    client_id = models.UUIDField()
    text = models.TextField()
    reply_to_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "client_id"], name="comment_user_client_uniq")]
        indexes = [models.Index(fields=["moment", "created_at"], name="comment_moment_created_idx")]

    def __str__(self) -> str:
        return f"comment {self.id}"
