"""Event payloads of moments: plain JSON types, built here only."""

from __future__ import annotations

from typing import Any

MOMENT_NEW = "moment.new"
MOMENT_INTERACTION = "moment.interaction"

LIKE = "like"
COMMENT = "comment"


def moment_new(*, moment_id: object, author_id: object) -> dict[str, Any]:
    """The small "new posts" badge event to each friend who may see the post."""
    return {"moment_id": str(moment_id), "author_id": str(author_id)}


def moment_interaction(*, moment_id: object, kind: str, user_id: object,
                       comment_id: object | None = None) -> dict[str, Any]:
    data = {"moment_id": str(moment_id), "kind": kind, "user_id": str(user_id)}
    if comment_id is not None:
        data["comment_id"] = str(comment_id)
    return data
