"""Event payloads and public shapes of the payments app: plain JSON types, built here only."""

from __future__ import annotations

from typing import Any

from core.serializers import timestamp
from payments.models import TopUp, Transaction

WALLET_UPDATED = "wallet.updated"


def statement_line(transaction: Transaction, *, amount: int) -> dict[str, Any]:
    """One transaction as a wallet sees it: `amount` is what this wallet gained (negative: spent)."""
    return {
        "id": str(transaction.pk),
        "kind": transaction.kind,
        "amount": amount,
        "currency": transaction.currency,
        "red_packet_id": str(transaction.red_packet_id) if transaction.red_packet_id else None,
        "topup_id": str(transaction.topup_id) if transaction.topup_id else None,
        "created_at": timestamp(transaction.created_at),
    }


def wallet_updated(*, balance: int, currency: str, line: dict[str, Any]) -> dict[str, Any]:
    """To the wallet's owner: the new balance and the movement that made it."""
    return {"balance": balance, "currency": currency, "transaction": line}


def topup_public(topup: TopUp) -> dict[str, Any]:
    return {
        "id": str(topup.pk),
        "client_id": str(topup.client_id),
        "amount": topup.amount,
        "currency": topup.currency,
        "status": topup.status,
        "provider": topup.provider,
        "next_action": topup.next_action if topup.status == "pending" else None,
        "failure_reason": topup.failure_reason or None,
        "created_at": timestamp(topup.created_at),
        "completed_at": timestamp(topup.completed_at),
    }
