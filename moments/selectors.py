"""Reads for moments: the timeline, one person's posts, one post, and who may see what.

The rules (README "Moments"), all computed at read time:

- a post is seen by its author, and by the author's friends its visibility
  admits (`friends`: all; `only`: the listed; `except`: all but the listed;
  `private`: none). Friends are contacts.selectors.friend_ids as they stand now;
- a like or comment is seen by its own author, by the post's author (unless a
  block stands between the two), and by anyone who is a friend of its author.

A timeline page costs four queries whatever the number of friends or posts: the
page of posts (one keyset walk over an index, the viewer's friends a subquery of
it), then the page's attachments, likes and comments (each like and comment
marked with whether its author is the viewer's friend); a fifth when the
viewer's own `only`/`except` posts are on the page (their lists).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import MomentsWindow, User
from contacts.models import Block
from contacts.selectors import are_friends, blocked_with, friend_ids, friends_among, mutual_with
from core.errors import NotFound
from core.ids import uuid_or_not_found
from core.keyset import keyset_cursor_decode, keyset_cursor_encode
from core.serializers import timestamp
from media.selectors import attachment_public
from moments.models import Comment, Like, Moment, MomentAttachment, MomentAudience, Visibility

WINDOWS = {
    MomentsWindow.ALL: None,
    MomentsWindow.SIX_MONTHS: timedelta(days=182),
    MomentsWindow.ONE_MONTH: timedelta(days=30),
    MomentsWindow.THREE_DAYS: timedelta(days=3),
}


# --- Cursors ---------------------------------------------------------------------------------------


def _before(moments: QuerySet[Moment], before: str | None) -> QuerySet[Moment]:
    """Strictly older than the cursor in (created_at, id) order: posts committed meanwhile, newer or
    older, never make a page repeat or skip one that was there when the walk began."""
    if not before:
        return moments
    at, moment_id = keyset_cursor_decode(before)
    # created_at <= at is the index range the walk starts from; the OR only settles ties.
    return moments.filter(Q(created_at__lte=at), Q(created_at__lt=at) | Q(id__lt=moment_id))


# --- Who may see what ------------------------------------------------------------------------------


def viewer_friends(*, viewer_id: object) -> QuerySet[Any]:
    """The viewer's friends now, as a subquery: the page queries embed it rather than carry
    thousands of ids as parameters (which cost more to send and plan than the subquery to run)."""
    return friend_ids(user_id=viewer_id)


def _admits(viewer_id: object) -> Q:
    """A friend's post whose visibility lets the viewer in (the author is checked separately)."""
    listed = MomentAudience.objects.filter(moment=OuterRef("pk"), user=viewer_id)
    return (Q(visibility=Visibility.FRIENDS)
            | (Q(visibility=Visibility.ONLY) & Exists(listed))
            | (Q(visibility=Visibility.EXCEPT) & ~Exists(listed)))


def _visible_from(*, viewer_id: object, friends: QuerySet[Any]) -> Q:
    """Posts the viewer may see, given the viewer's friends (on a Moment queryset)."""
    return Q(author=viewer_id) | (Q(author__in=friends) & _admits(viewer_id))


def may_see(*, viewer_id: object, moment: Moment) -> bool:
    """Whether the viewer may see this one post now (one or two queries)."""
    if str(moment.author_id) == str(viewer_id):
        return True
    if moment.visibility == Visibility.PRIVATE:
        return False
    if moment.visibility != Visibility.FRIENDS:
        listed = MomentAudience.objects.filter(moment=moment, user=viewer_id).exists()
        if listed != (moment.visibility == Visibility.ONLY):
            return False
    return are_friends(user_id=viewer_id, other_id=moment.author_id)


def may_see_among(*, moment: Moment, viewer_ids: Iterable[object]) -> set[str]:
    """Which of `viewer_ids` may see this post now (at most two queries)."""
    viewers = {str(pk) for pk in viewer_ids}
    author = str(moment.author_id)
    allowed = viewers & {author}
    others = viewers - {author}
    if not others or moment.visibility == Visibility.PRIVATE:
        return allowed
    others &= friends_among(user_id=author, candidate_ids=others)
    if others and moment.visibility != Visibility.FRIENDS:
        listed = {str(pk) for pk in MomentAudience.objects.filter(moment=moment, user__in=others)
                  .values_list("user_id", flat=True)}
        others = others & listed if moment.visibility == Visibility.ONLY else others - listed
    return allowed | others


def may_reply_to(*, viewer_id: object, moment: Moment, other_id: object) -> bool:
    """A reply goes to the post's author, or to someone whose comment on it the viewer can see."""
    viewer, other = str(viewer_id), str(other_id)
    if other == str(moment.author_id):
        return other != viewer
    if other == viewer or not Comment.objects.filter(moment=moment, user=other).exists():
        return False
    if viewer == str(moment.author_id):
        return not Block.objects.filter(Q(blocker=viewer, blocked=other) | Q(blocker=other, blocked=viewer)).exists()
    return are_friends(user_id=viewer, other_id=other)


def moment_get_for_viewer(*, viewer_id: object, moment_id: object) -> Moment:
    """The post when the viewer may see it; NotFound otherwise (never forbidden)."""
    moment = Moment.objects.filter(pk=uuid_or_not_found(moment_id)).first()
    if moment is None or not may_see(viewer_id=viewer_id, moment=moment):
        raise NotFound("No such moment.")
    return moment


def user_can_see_attachment(*, user_id: object, attachment_id: object) -> bool:
    """MEDIA_ACCESS_CHECKS: the attachment is on a post the user may see."""
    for moment in Moment.objects.filter(attachments__attachment_id=attachment_id).distinct()[:20]:
        if may_see(viewer_id=user_id, moment=moment):
            return True
    return False


# --- Pages -----------------------------------------------------------------------------------------


def timeline(*, viewer_id: object, before: str | None = None, limit: int = 20) -> dict[str, Any]:
    """The viewer's own posts and the friends' posts the viewer may see, newest first:
    `{"moments", "cursor", "has_more"}`. Four or five queries whatever the sizes (see the module)."""
    friends = viewer_friends(viewer_id=viewer_id)
    moments = _before(Moment.objects.filter(_visible_from(viewer_id=viewer_id, friends=friends)), before)
    return _page(moments, viewer_id=viewer_id, friends=friends, before=before, limit=limit)


def user_moments(*, viewer_id: object, user_id: object, before: str | None = None,
                 limit: int = 20) -> dict[str, Any]:
    """One person's posts that the viewer may see, newest first, within that person's
    `moments_window` (the owner sees all of their own). An active user who is not the viewer's
    friend (or blocked either way) shows an empty list; an unknown or deleted one is 404."""
    target = User.objects.filter(pk=uuid_or_not_found(user_id), is_active=True).only(
        "id", "moments_window").first()
    if target is None:
        raise NotFound("No such user.")
    friends = viewer_friends(viewer_id=viewer_id)
    moments = Moment.objects.filter(author=target.pk)
    if str(target.pk) != str(viewer_id):
        if not are_friends(user_id=viewer_id, other_id=target.pk):
            return {"moments": [], "cursor": before or "", "has_more": False}
        moments = moments.filter(_admits(viewer_id))
        window = WINDOWS.get(target.moments_window)
        if window is not None:
            moments = moments.filter(created_at__gte=timezone.now() - window)
    return _page(_before(moments, before), viewer_id=viewer_id, friends=friends, before=before, limit=limit)


def moment_detail(*, viewer_id: object, moment_id: object) -> dict[str, Any]:
    moment = moment_get_for_viewer(viewer_id=viewer_id, moment_id=moment_id)
    return render(moment, viewer_id=viewer_id)


def render(moment: Moment, *, viewer_id: object,
           friends: QuerySet[Any] | Sequence[str] | None = None) -> dict[str, Any]:
    """One post as the viewer sees it."""
    if friends is None:
        friends = viewer_friends(viewer_id=viewer_id)
    return render_many([moment], viewer_id=viewer_id, friends=friends)[0]


def _page(moments: QuerySet[Moment], *, viewer_id: object, friends: QuerySet[Any], before: str | None,
          limit: int) -> dict[str, Any]:
    rows = list(moments.order_by("-created_at", "-id")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "moments": render_many(rows, viewer_id=viewer_id, friends=friends),
        "cursor": keyset_cursor_encode(rows[-1].created_at, rows[-1].pk) if rows else (before or ""),
        "has_more": has_more,
    }


def render_many(moments: Sequence[Moment], *, viewer_id: object,
                friends: QuerySet[Any] | Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Posts as the viewer sees them, in three queries for the whole list (attachments, likes,
    comments; each like and comment marked in the same query with whether its author is the viewer's
    friend), and a fourth when the viewer's own `only`/`except` posts are among them (their lists).
    `friends` is not needed (kept for callers)."""
    if not moments:
        return []
    viewer = str(viewer_id)
    ids = [m.pk for m in moments]
    attachments: dict[Any, list[dict[str, Any]]] = {pk: [] for pk in ids}
    for row in (MomentAttachment.objects.filter(moment_id__in=ids).select_related("attachment")
                .order_by("moment_id", "position")):
        attachments[row.moment_id].append(attachment_public(row.attachment))
    # Each like and comment carries whether its author is the viewer's friend, and whether a block
    # stands between them (for the viewer's own posts), computed in the same query for those rows.
    # (A friend is mutual and unblocked: contacts.selectors.friend_of, taken apart to share the block test.)
    marks = {"mutual": mutual_with(user_id=viewer_id, other="user"),
             "blocked": blocked_with(user_id=viewer_id, other="user")}
    like_rows = list(Like.objects.filter(moment_id__in=ids).annotate(**marks).order_by("created_at", "id")
                     .values_list("moment_id", "user_id", "created_at", "mutual", "blocked"))
    comment_rows = list(Comment.objects.filter(moment_id__in=ids).annotate(**marks).order_by("created_at", "id"))
    own = {m.pk for m in moments if str(m.author_id) == viewer}

    def visible(moment_id: Any, user_id: Any, mutual: bool, blocked: bool) -> bool:
        return str(user_id) == viewer or (not blocked and (mutual or moment_id in own))

    likes: dict[Any, list[dict[str, Any]]] = {pk: [] for pk in ids}
    for moment_id, user_id, created_at, mutual, blocked in like_rows:
        if visible(moment_id, user_id, mutual, blocked):
            likes[moment_id].append({"user_id": str(user_id), "created_at": timestamp(created_at)})
    comments: dict[Any, list[dict[str, Any]]] = {pk: [] for pk in ids}
    for comment in comment_rows:
        if visible(comment.moment_id, comment.user_id, comment.mutual, comment.blocked):
            comments[comment.moment_id].append(comment_public(comment))
    own_lists = [m.pk for m in moments if m.pk in own and m.visibility in (Visibility.ONLY, Visibility.EXCEPT)]
    audiences: dict[Any, list[str]] = {pk: [] for pk in own_lists}
    if own_lists:
        for moment_id, user_id in (MomentAudience.objects.filter(moment_id__in=own_lists)
                                   .order_by("id").values_list("moment_id", "user_id")):
            audiences[moment_id].append(str(user_id))
    return [
        {
            "id": str(m.pk),
            "author_id": str(m.author_id),
            "text": m.text,
            "attachments": attachments[m.pk],
            "location": m.location,
            # Who is on an only/except list is the author's business alone.
            "visibility": {"mode": m.visibility, "user_ids": audiences.get(m.pk, [])},
            "created_at": timestamp(m.created_at),
            "likes": likes[m.pk],
            "comments": comments[m.pk],
        }
        for m in moments
    ]


def comment_public(comment: Comment) -> dict[str, Any]:
    return {
        "id": str(comment.pk),
        "user_id": str(comment.user_id),
        "text": comment.text,
        "reply_to_user_id": str(comment.reply_to_user_id) if comment.reply_to_user_id else None,
        "created_at": timestamp(comment.created_at),
    }


# --- For the export --------------------------------------------------------------------------------


def moments_of_author(*, user_id: object, chunk_size: int = 500) -> Iterable[dict[str, Any]]:
    """Every post of the user, oldest first, with every like and comment on it (the author sees them
    all but those across a block), streamed in chunks."""
    rows = Moment.objects.filter(author=user_id).order_by("created_at", "id")
    chunk: list[Moment] = []
    for moment in rows.iterator(chunk_size=chunk_size):
        chunk.append(moment)
        if len(chunk) >= chunk_size:
            yield from render_many(chunk, viewer_id=user_id, friends=[])
            chunk = []
    if chunk:
        yield from render_many(chunk, viewer_id=user_id, friends=[])


def interactions_elsewhere(*, user_id: object) -> dict[str, list[dict[str, Any]]]:
    """The user's likes and comments on others' posts (for the export): what they wrote, where."""
    likes = [{"moment_id": str(m), "author_id": str(a), "created_at": timestamp(t)}
             for m, a, t in Like.objects.filter(user=user_id).exclude(moment__author=user_id)
             .order_by("created_at", "id").values_list("moment_id", "moment__author_id", "created_at")]
    comments = [{**comment_public(c), "moment_id": str(c.moment_id), "author_id": str(c.moment.author_id)}
                for c in Comment.objects.filter(user=user_id).exclude(moment__author=user_id)
                .select_related("moment").order_by("created_at", "id")]
    return {"likes": likes, "comments": comments}
