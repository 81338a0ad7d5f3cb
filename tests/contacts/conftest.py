"""Contacts test helpers: a client's view of discovery, and signup through the real hook."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from contacts.services import contacts_user_registered, pepper_ensure_current
from tests.factories import SignedInDevice, next_phone, sign_in


@dataclass
class Discovery:
    pepper_id: str
    key: bytes

    def hash(self, e164: str) -> str:
        """What a client uploads for a number."""
        return hmac.new(self.key, e164.encode(), hashlib.sha256).hexdigest()


def discovery_of(client) -> Discovery:
    body = client.get("/api/v1/contacts/discovery").json()
    padded = body["pepper"] + "=" * (-len(body["pepper"]) % 4)
    return Discovery(pepper_id=body["pepper_id"], key=base64.urlsafe_b64decode(padded))


@pytest.fixture
def discovery(alice) -> Discovery:
    return discovery_of(alice.client)


@pytest.fixture
def register(db, django_capture_on_commit_callbacks) -> Callable[..., SignedInDevice]:
    """Sign a new number up and run the registration hook as accounts does after commit."""

    def make(phone: str | None = None, display_name: str = "", **fields: object) -> SignedInDevice:
        pepper_ensure_current()
        signed_in = sign_in(phone=phone or next_phone(), display_name=display_name, **fields)
        with django_capture_on_commit_callbacks(execute=True):
            contacts_user_registered(user_id=signed_in.user.pk)
        return signed_in

    return make


def sync(client, discovery: Discovery, numbers: list[str], mode: str = "replace", **extra):
    return client.post(
        "/api/v1/contacts/sync",
        {"pepper_id": discovery.pepper_id, "mode": mode, "hashes": [discovery.hash(n) for n in numbers], **extra},
        format="json",
    )
