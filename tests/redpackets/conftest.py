"""Helpers for the red packet tests: funded senders, conversations, packets sent through the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from tests.factories import SignedInDevice
from tests.messaging.conftest import direct, new_direct, new_group  # noqa: F401  (fixtures and helpers)
from tests.payments.conftest import assert_ledger_ok, balance, fund, payments_on  # noqa: F401
from tests.processes import current_database_url

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


@contextmanager
def wallet_locked(user_id: object) -> Iterator[None]:
    """Hold the row lock of the user's wallet from another connection: any posting to it waits."""
    with psycopg.connect(current_database_url(), autocommit=False) as conn:
        row = conn.execute("SELECT id FROM payments_account WHERE kind = 'wallet' AND user_id = %s FOR UPDATE",
                           [str(user_id)]).fetchone()
        assert row is not None, "the wallet must exist to be locked"
        yield
        conn.rollback()


def waiting_on_a_lock(application_name: str | None = None) -> bool:
    """Some backend of this database (of `application_name`, if given) is waiting for a row lock."""
    sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    params: list[str] = []
    if application_name:
        sql += " AND application_name = %s"
        params.append(application_name)
    with psycopg.connect(current_database_url(), autocommit=True) as conn:
        return conn.execute(sql, params).fetchone()[0] > 0
