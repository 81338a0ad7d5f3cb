"""Helpers for the payments tests: a wallet funded through the test provider, the ledger at a glance."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from payments.models import Entry, Transaction
from payments.selectors import ledger_verify, wallet_get
from payments.services import topup_create
from tests.factories import SignedInDevice


@pytest.fixture
def payments_on(settings: Any) -> None:
    """PAYMENTS_BACKEND=test: top-ups are approved at once."""
    settings.PAYMENTS_BACKEND = "test"


def fund(who: SignedInDevice, amount: int) -> dict[str, Any]:
    """Top `who` up through the test provider (PAYMENTS_BACKEND must be test)."""
    topup, _ = topup_create(user=who.user, client_id=uuid.uuid4(), amount=amount)
    assert topup["status"] == "succeeded", topup
    return topup


def balance(who: SignedInDevice) -> int:
    return wallet_get(user_id=who.user.pk)["balance"]


def ledger_counts() -> tuple[int, int]:
    return Transaction.objects.count(), Entry.objects.count()


def assert_ledger_ok() -> None:
    report = ledger_verify()
    assert report.ok, report.problems
