"""Test data, made through the same services the API uses."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from rest_framework.test import APIClient

from accounts.models import Device, User
from accounts.services import device_create

_numbers = itertools.count(1000)


@dataclass
class SignedInDevice:
    user: User
    device: Device
    token: str

    @property
    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")
        return client

    def another_device(self, name: str = "Tablet", platform: str = "ios") -> SignedInDevice:
        device, token = device_create(user=self.user, name=name, platform=platform)
        return SignedInDevice(user=self.user, device=device, token=token)


def next_phone() -> str:
    """A fresh valid UK mobile number (+44 7700 9xxxxx is Ofcom's drama range)."""
    return f"+4477009{next(_numbers) % 100000:05d}"


def sign_in(phone: str | None = None, display_name: str = "", platform: str = "android",
            **fields: object) -> SignedInDevice:
    """A user with a device. Unlike a real signup (`group_add: contacts`), test users let
    anyone add them to groups unless a test says otherwise (`group_add=...`): most tests
    build groups of strangers and are about something else; tests/messaging/test_group_add.py
    covers the setting and the default a real signup gets."""
    fields.setdefault("group_add", "everyone")
    user = User.objects.create_user(phone=phone or next_phone(), display_name=display_name, **fields)
    device, token = device_create(user=user, name="Phone", platform=platform)
    return SignedInDevice(user=user, device=device, token=token)
