"""Moments test helpers: people who become friends through their real address books, posts through the API."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from contacts.selectors import pepper_current
from contacts.services import block_create, block_delete, contacts_sync, contacts_user_registered, pepper_ensure_current
from media.models import Attachment
from tests.contacts.conftest import Discovery
from tests.factories import SignedInDevice, sign_in

PUSHES: list[dict[str, Any]] = []
_files = itertools.count()


def record_push(**kwargs: Any) -> None:
    """Stands in for notifications.services.push_notify via MOMENTS_PUSH."""
    PUSHES.append(kwargs)


@pytest.fixture(autouse=True)
def pushes(settings: Any) -> Iterator[list[dict[str, Any]]]:
    settings.MOMENTS_PUSH = "tests.moments.conftest.record_push"
    PUSHES.clear()
    yield PUSHES
    PUSHES.clear()


@pytest.fixture
def person(db: None, django_capture_on_commit_callbacks: Any) -> Callable[[str], SignedInDevice]:
    """A registered user (the registration hook run, so address books can match their number)."""

    def make(name: str) -> SignedInDevice:
        pepper_ensure_current()
        signed_in = sign_in(display_name=name)
        with django_capture_on_commit_callbacks(execute=True):
            contacts_user_registered(user_id=signed_in.user.pk)
        return signed_in

    return make


def _hash(who: SignedInDevice) -> tuple[str, str]:
    pepper = pepper_current()
    return pepper.pk, Discovery(pepper_id=pepper.pk, key=bytes(pepper.secret)).hash(who.user.phone)


def add_to_book(owner: SignedInDevice, other: SignedInDevice) -> None:
    pepper_id, digest = _hash(other)
    contacts_sync(user=owner.user, pepper_id=pepper_id, mode="add", hashes=[digest])


def remove_from_book(owner: SignedInDevice, other: SignedInDevice) -> None:
    pepper_id, digest = _hash(other)
    contacts_sync(user=owner.user, pepper_id=pepper_id, mode="remove", hashes=[digest])


def befriend(*people: SignedInDevice) -> None:
    """Each of `people` has each other in their book (mutual contacts)."""
    for owner in people:
        for other in people:
            if other is not owner:
                add_to_book(owner, other)


def block(blocker: SignedInDevice, blocked: SignedInDevice) -> None:
    block_create(blocker=blocker.user, blocked_id=blocked.user.pk)


def unblock(blocker: SignedInDevice, blocked: SignedInDevice) -> None:
    block_delete(blocker=blocker.user, blocked_id=blocked.user.pk)


def upload(who: SignedInDevice, kind: str = "image") -> str:
    """An attachment row of `who`'s (no bytes: posting only reads the row)."""
    number = next(_files)
    attachment = Attachment.objects.create(
        uploader=who.user, kind=kind, content_type="image/png" if kind == "image" else "video/mp4", size=10,
        storage_name=f"test-moments/{uuid.uuid4().hex}-{number}", sha256="0" * 64, width=4, height=3)
    return str(attachment.pk)


def post(who: SignedInDevice, text: str = "hello", mode: str = "friends", user_ids: list[str] | None = None,
         **extra: Any) -> Any:
    body = {"client_id": str(uuid.uuid4()), "text": text,
            "visibility": {"mode": mode, "user_ids": user_ids or []}, **extra}
    return who.client.post("/api/v1/moments", body, format="json")


def posted(who: SignedInDevice, text: str = "hello", **kwargs: Any) -> str:
    response = post(who, text, **kwargs)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def timeline_ids(who: SignedInDevice, **params: Any) -> list[str]:
    response = who.client.get("/api/v1/moments", params)
    assert response.status_code == 200, response.content
    return [m["id"] for m in response.json()["moments"]]


def seen(who: SignedInDevice, moment_id: str) -> dict[str, Any] | None:
    response = who.client.get(f"/api/v1/moments/{moment_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.content
    return response.json()


def comment(who: SignedInDevice, moment_id: str, text: str = "nice", **extra: Any) -> Any:
    return who.client.post(f"/api/v1/moments/{moment_id}/comments",
                           {"client_id": str(uuid.uuid4()), "text": text, **extra}, format="json")


def like(who: SignedInDevice, moment_id: str) -> Any:
    return who.client.post(f"/api/v1/moments/{moment_id}/like")


def events(who: SignedInDevice, kind: str) -> list[dict[str, Any]]:
    body = who.client.get("/api/v1/sync", {"limit": 500}).json()
    return [event["data"] for event in body["events"] if event["type"] == kind]


def error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]
