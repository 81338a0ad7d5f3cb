"""Reads for payments: wallets, statements, top-ups, and the ledger's own audit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet, Sum
from django.utils.module_loading import import_string

from core.errors import NotFound
from payments import events
from payments.models import Account, AccountKind, Entry, TopUp, TopUpStatus


def wallet_get(*, user_id: object) -> dict[str, Any]:
    """{"balance", "currency"}: 0 for a user who never had money (no wallet row yet)."""
    currency = settings.PAYMENTS_CURRENCY
    balance = (Account.objects.filter(kind=AccountKind.WALLET, user_id=user_id, currency=currency)
               .values_list("balance", flat=True).first())
    return {"balance": balance or 0, "currency": currency}


def _wallet_entries(user_id: object) -> QuerySet[Entry]:
    return (Entry.objects.filter(account__kind=AccountKind.WALLET, account__user_id=user_id,
                                 account__currency=settings.PAYMENTS_CURRENCY)
            .select_related("transaction"))


def wallet_transactions(*, user_id: object, before: int | None, limit: int) -> dict[str, Any]:
    """The wallet's statement, newest first: {"transactions", "cursor", "has_more"}.

    `cursor` is passed back as `before` for the next (older) page.
    """
    qs = _wallet_entries(user_id)
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id")[: limit + 1])
    page = rows[:limit]
    return {
        "transactions": [events.statement_line(entry.transaction, amount=entry.amount) for entry in page],
        "cursor": str(page[-1].pk) if page else None,
        "has_more": len(rows) > limit,
    }


def wallet_statement_all(*, user_id: object, chunk_size: int = 2000) -> Iterator[dict[str, Any]]:
    """Every movement of the wallet, oldest first, streamed (for the data export)."""
    for entry in _wallet_entries(user_id).order_by("id").iterator(chunk_size=chunk_size):
        yield events.statement_line(entry.transaction, amount=entry.amount)


def topup_get_for_owner(*, user_id: object, topup_id: object) -> dict[str, Any]:
    try:
        pk = uuid.UUID(str(topup_id))
    except ValueError:
        raise NotFound() from None
    topup = TopUp.objects.filter(pk=pk, user_id=user_id).first()
    if topup is None:
        raise NotFound()
    return events.topup_public(topup)


def system_balance(*, kind: str, currency: str | None = None) -> int:
    """A system account's balance, derived from its entries (system accounts cache none)."""
    currency = currency or settings.PAYMENTS_CURRENCY
    return (Entry.objects.filter(account__kind=kind, account__currency=currency, account__user__isnull=True)
            .aggregate(total=Sum("amount"))["total"] or 0)


# --- The audit (manage.py ledger_check) -------------------------------------------------------


@dataclass
class LedgerReport:
    transactions: int = 0
    entries: int = 0
    wallets: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _rows(sql: str, params: list[Any] | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def ledger_verify(*, limit: int = 50) -> LedgerReport:
    """Check the whole ledger; every problem is named by ids only (no personal data).

    - every transaction has at least two entries and they sum to zero;
    - every wallet's cached balance equals the sum of its entries, and none is negative;
    - provider clearing mirrors the succeeded top-ups exactly;
    - the checks other apps register in PAYMENTS_LEDGER_CHECKS (e.g. the packets
      in flight equal the red packets' unclaimed, unrefunded shares).
    """
    report = LedgerReport()
    report.transactions = _rows("SELECT count(*) FROM payments_transaction")[0][0]
    report.entries = _rows("SELECT count(*) FROM payments_entry")[0][0]
    report.wallets = _rows("SELECT count(*) FROM payments_account WHERE kind = 'wallet'")[0][0]
    for transaction_id, total, legs in _rows(
        "SELECT t.id, COALESCE(SUM(e.amount), 0), count(e.id) FROM payments_transaction t "
        "LEFT JOIN payments_entry e ON e.transaction_id = t.id GROUP BY t.id "
        "HAVING COALESCE(SUM(e.amount), 0) <> 0 OR count(e.id) < 2 LIMIT %s", [limit]
    ):
        report.problems.append(f"transaction {transaction_id} does not balance: {legs} entries summing to {total}")
    for account_id, cached, derived in _rows(
        "SELECT a.id, a.balance, COALESCE(SUM(e.amount), 0) FROM payments_account a "
        "LEFT JOIN payments_entry e ON e.account_id = a.id WHERE a.kind = 'wallet' GROUP BY a.id "
        "HAVING a.balance IS DISTINCT FROM COALESCE(SUM(e.amount), 0) OR a.balance < 0 LIMIT %s", [limit]
    ):
        report.problems.append(f"wallet account {account_id}: cached balance {cached}, entries sum to {derived}")
    clearing = dict(_rows(
        "SELECT a.currency, COALESCE(SUM(e.amount), 0) FROM payments_account a "
        "LEFT JOIN payments_entry e ON e.account_id = a.id WHERE a.kind = %s GROUP BY a.currency",
        [AccountKind.PROVIDER_CLEARING]))
    topups = dict(_rows("SELECT currency, SUM(amount) FROM payments_topup WHERE status = %s GROUP BY currency",
                        [TopUpStatus.SUCCEEDED]))
    for currency in sorted(set(clearing) | set(topups)):
        if clearing.get(currency, 0) != -topups.get(currency, 0):
            report.problems.append(f"provider clearing ({currency}) is {clearing.get(currency, 0)}, "
                                   f"succeeded top-ups sum to {topups.get(currency, 0)}")
    for path in settings.PAYMENTS_LEDGER_CHECKS:
        report.problems.extend(import_string(path)())
    return report
