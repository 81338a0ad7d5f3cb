"""Helpers for the red packet tests: funded senders, conversations, packets sent through the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import SignedInDevice
from tests.messaging.conftest import direct, new_direct, new_group  # noqa: F401  (fixtures and helpers)
from tests.payments.conftest import assert_ledger_ok, balance, fund, payments_on  # noqa: F401

PUSHES: list[dict[str, Any]] = []


def record_push(**kwargs: Any) -> None:
    """Stands in for notifications.services.push_notify via RED_PACKET_PUSH."""
    PUSHES.append(kwargs)


@pytest.fixture(autouse=True)
def pushes(settings: Any) -> Iterator[list[dict[str, Any]]]:
    settings.RED_PACKET_PUSH = "tests.redpackets.conftest.record_push"
    PUSHES.clear()
    yield PUSHES
    PUSHES.clear()


def send_packet(who: SignedInDevice, conversation_id: str, *, total: int = 100, count: int = 1,
                mode: str = "random", **extra: Any) -> Any:
    body = {"client_id": str(uuid.uuid4()), "total": total, "count": count, "mode": mode, **extra}
    return who.client.post(f"/api/v1/conversations/{conversation_id}/red-packets", body, format="json")


def claim(who: SignedInDevice, packet_id: str) -> Any:
    return who.client.post(f"/api/v1/red-packets/{packet_id}/claim")


def error_code(response: Any) -> str:
    return response.json()["error"]["code"]
