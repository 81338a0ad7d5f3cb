"""What goes into an archive, read from the apps that own it.

Every reader here streams (`.iterator(chunk_size=...)`) or returns one small
row; nothing lists a user's messages. This is the one module of `exports`
that knows the other apps' models.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.files.storage import Storage

from accounts.apis import me_data, public_user_data
from accounts.models import User

CHUNK_SIZE = 2000


def profile(*, user: User) -> dict[str, Any]:
    return me_data(user)


def profile_public(profile_data: dict[str, Any]) -> dict[str, Any]:
    """What the offline page shows of the owner (it never needs the phone number)."""
    return {"id": profile_data["id"], "display_name": profile_data["display_name"]}


def contacts(*, user_id: object) -> list[dict[str, Any]]:
    return []


def conversations(*, user_id: object) -> Iterator[dict[str, Any]]:
    return iter(())


def message_count(*, user_id: object, conversation_id: str) -> int:
    return 0


def messages(*, user_id: object, conversation_id: str) -> Iterator[dict[str, Any]]:
    return iter(())


def own_attachments(*, user_id: object) -> Iterator[dict[str, Any]]:
    return iter(())


def attachment_file(*, attachment_id: str) -> tuple[Storage, str] | None:
    return None


class NameBook:
    """Display names of senders, looked up once each (bounded by distinct senders)."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def remember(self, user_id: object, name: str) -> None:
        self._names[str(user_id)] = name

    def name(self, user_id: object) -> str:
        if user_id is None:
            return ""
        key = str(user_id)
        if key not in self._names:
            user = User.objects.filter(pk=key).only("display_name", "is_active").first()
            self._names[key] = public_user_data(user)["display_name"] if user and user.is_active else (
                "Deleted account" if user else "")
        return self._names[key]
