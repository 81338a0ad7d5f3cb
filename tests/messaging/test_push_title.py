"""Push text people can read: the title rule (the sender's display name, else the
conversation's title, else "New message"; never the phone number), on the hot send
path (the PostgreSQL batch function) and on the Celery fan-out of a big group."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.services import device_push_set
from messaging.services.push import message_push_title
from tests.factories import SignedInDevice
from tests.factories import sign_in as _sign_in
from tests.messaging.conftest import new_direct, new_group, send_text


def sign_in(display_name: str) -> SignedInDevice:
    """A user whose phone has a push token (only those are push candidates)."""
    person = _sign_in(display_name=display_name)
    device_push_set(device=person.device, provider="fcm", token=f"fcm-{person.device.pk}")
    return person


def _titles(pushes: list[dict[str, Any]]) -> list[str]:
    return [p["title"] for p in pushes]


@pytest.mark.django_db
def test_title_is_the_sender_name_else_the_group_title_else_new_message_never_the_phone(pushes):
    named = sign_in(display_name="Alice")
    nameless = sign_in(display_name="")
    other = sign_in(display_name="Bob")
    direct = new_direct(nameless, other)
    group = new_group(nameless, other, title="Climbing club")
    untitled = new_group(nameless, other, title="")

    assert send_text(nameless, direct, "hi").status_code == 201
    assert send_text(nameless, group, "hi group").status_code == 201
    assert send_text(nameless, untitled, "hi untitled").status_code == 201
    assert send_text(named, new_direct(named, other), "from alice").status_code == 201

    assert _titles(pushes) == ["New message", "Climbing club", "New message", "Alice"]
    assert all(nameless.user.phone not in p["title"] for p in pushes)
    assert [p["body"] for p in pushes] == ["hi", "hi group", "hi untitled", "from alice"]


@pytest.mark.django_db
def test_big_group_fanned_out_in_celery_uses_the_same_title_rule(pushes, settings,
                                                                 django_capture_on_commit_callbacks):
    settings.MESSAGING_INLINE_FANOUT_MAX = 1
    nameless = sign_in(display_name="")
    members = [sign_in(display_name=f"M{n}") for n in range(3)]
    group = new_group(nameless, *members, title="Big room")
    with django_capture_on_commit_callbacks(execute=True):
        assert send_text(nameless, group, "to everyone").status_code == 201
    assert sorted(_titles(pushes)) == ["Big room"] * 3


def test_title_rule_ignores_blank_names():
    assert message_push_title(sender_name="  ", conversation_title=" Team ") == "Team"
    assert message_push_title(sender_name=None, conversation_title=None) == "New message"
    assert message_push_title(sender_name="Zoë", conversation_title="Team") == "Zoë"
