"""Suspension: live sockets closed with 4001, tokens refused, sign-in refused with 403 account_suspended."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from moderation import services
from tests.realtime.conftest import open_socket


@pytest.mark.django_db(transaction=True)
async def test_suspension_closes_every_live_socket_of_every_device_with_4001(alice, bob):
    tablet = await database_sync_to_async(bob.another_device)()
    phone_socket, tablet_socket = await open_socket(bob.token), await open_socket(tablet.token)
    bystander = await open_socket(alice.token)
    await database_sync_to_async(services.user_suspend)(user_id=bob.user.pk, staff=None, reason="spam")
    assert await phone_socket.closed_with() == 4001
    assert await tablet_socket.closed_with() == 4001
    await bystander.send({"type": "ping"})
    assert (await bystander.recv_type("pong"))["type"] == "pong"
    await bystander.close()
    again = await open_socket(bob.token)  # a reconnect with the same token is refused
    assert await again.closed_with() == 4001


@pytest.mark.django_db
def test_a_suspended_account_cannot_use_its_tokens_or_sign_in(api, settings, bob):
    settings.OTP_TEST_NUMBERS = ["+447700900"]
    services.user_suspend(user_id=bob.user.pk, staff=None)
    services.user_suspend(user_id=bob.user.pk, staff=None)  # idempotent
    assert bob.client.get("/api/v1/me").status_code == 401
    phone = bob.user.phone
    assert api.post("/api/v1/auth/otp/request", {"phone": phone}, format="json").status_code == 202
    refused = api.post("/api/v1/auth/otp/verify", {"phone": phone, "code": settings.OTP_TEST_CODE,
                                                   "device": {"name": "New", "platform": "ios"}}, format="json")
    assert refused.status_code == 403, refused.content
    assert refused.json()["error"]["code"] == "account_suspended"
    assert bob.user.devices.count() == 1  # no device was created

    assert services.user_unsuspend(user_id=bob.user.pk, staff=None) is True
    assert bob.client.get("/api/v1/me").status_code == 200
    api.post("/api/v1/auth/otp/request", {"phone": phone}, format="json")
    assert api.post("/api/v1/auth/otp/verify", {"phone": phone, "code": settings.OTP_TEST_CODE,
                                                "device": {"name": "New", "platform": "ios"}},
                    format="json").status_code == 200


@pytest.mark.django_db
def test_suspending_an_unknown_user_is_not_found():
    from core.errors import NotFound

    with pytest.raises(NotFound):
        services.user_suspend(user_id="00000000-0000-4000-8000-000000000000", staff=None)
