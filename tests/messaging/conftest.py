"""Helpers for the messaging tests: conversations made through the services,
sends through the API, and a look at what landed in users' streams."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from messaging import services
from streams.selectors import stream_read
from tests.factories import SignedInDevice


def stream_events(user: Any, type: str | None = None) -> list[tuple[str, dict]]:
    """(type, data) of every event in the user's stream, oldest first, as clients read them."""
    user = getattr(user, "user", user)
    events, _ = stream_read(user_id=getattr(user, "pk", user), after=0, limit=100_000)
    return [(e["type"], e["data"]) for e in events if type is None or e["type"] == type]


def new_direct(a: SignedInDevice, b: SignedInDevice) -> str:
    conversation, _ = services.conversation_create(creator=a.user, type="direct", user_id=b.user.pk)
    return conversation["id"]


def new_group(owner: SignedInDevice, *members: SignedInDevice, type: str = "group", title: str = "Team") -> str:
    conversation, _ = services.conversation_create(creator=owner.user, type=type, title=title,
                                                   member_ids=[m.user.pk for m in members])
    return conversation["id"]


def send_text(who: SignedInDevice, conversation_id: str, text: str = "hi", **extra: Any) -> Any:
    body = {"client_id": str(uuid.uuid4()), "type": "text", "text": text, **extra}
    return who.client.post(f"/api/v1/conversations/{conversation_id}/messages", body, format="json")


@pytest.fixture
def direct(alice: SignedInDevice, bob: SignedInDevice) -> str:
    return new_direct(alice, bob)


PUSHES: list[dict[str, Any]] = []


def record_push(**kwargs: Any) -> None:
    """Stands in for notifications.services.push_notify via MESSAGING_PUSH_NOTIFY."""
    PUSHES.append(kwargs)


@pytest.fixture
def pushes(settings: Any) -> list[dict[str, Any]]:
    settings.MESSAGING_PUSH_NOTIFY = "tests.messaging.conftest.record_push"
    PUSHES.clear()
    return PUSHES


def an_attachment(owner: SignedInDevice, kind: str = "image") -> str:
    """An attachment id `owner` may send (a stored upload row)."""
    from media.models import Attachment

    return str(Attachment.objects.create(
        uploader=owner.user, kind=kind, content_type="application/octet-stream", size=1,
        storage_name=f"tests/{uuid.uuid4()}", sha256="0" * 64,
    ).pk)
