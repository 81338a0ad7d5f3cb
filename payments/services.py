"""Writes for payments: posting to the ledger, top-ups, provider webhooks.

`ledger_post` is the one function that moves money. It runs inside the
caller's transaction (a packet's send, a claim, a refund), so the movement
commits with the change it pays for, or not at all. Wallet rows are updated
in user-id order (the UPDATE is the lock), so concurrent postings touching the
same wallets cannot deadlock; a spend that would make a wallet negative is
refused by the same UPDATE (`insufficient_funds`), never half-applied.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User
from core.errors import ApplicationError, Conflict, NotFound, ServiceUnavailable, ValidationFailed
from core.sunset import ensure_writable
from payments import events
from payments.models import (
    Account,
    AccountKind,
    Entry,
    ProviderEvent,
    TopUp,
    TopUpStatus,
    Transaction,
    TransactionKind,
)
from payments.providers import get_provider
from payments.providers.base import (
    InvalidWebhook,
    PaymentProvider,
    PaymentRequest,
    PaymentState,
    ProviderUnavailable,
    WebhookEvent,
)
from streams.services import PendingEvent, stream_append

logger = logging.getLogger(__name__)


class InsufficientFunds(Conflict):
    code = "insufficient_funds"
    default_message = "Your wallet balance is too low for this."


class PaymentsDisabled(ApplicationError):
    """No provider is configured: a setting of this server, not an outage (that is 503)."""

    status = 403
    code = "payments_disabled"
    default_message = "Top-ups are not enabled on this server."


class InvalidSignature(ApplicationError):
    status = 400
    code = "invalid_signature"
    default_message = "The webhook's signature could not be verified."


# --- The ledger ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    """One side of a movement: a user's wallet, or a system account by kind."""

    amount: int
    user_id: str | None = None
    system: str | None = None

    @classmethod
    def wallet(cls, user_id: object, amount: int) -> Leg:
        return cls(amount=amount, user_id=str(user_id))

    @classmethod
    def account(cls, kind: str, amount: int) -> Leg:
        return cls(amount=amount, system=kind)


@dataclass
class Posting:
    transaction: Transaction
    created: bool
    # user id -> (new balance, amount this wallet gained), for the wallets the posting touched.
    wallets: dict[str, tuple[int, int]] = field(default_factory=dict)

    def wallet_events(self) -> list[PendingEvent]:
        """`wallet.updated` for each wallet touched; append them in the posting's transaction."""
        return [
            PendingEvent(user_id, events.WALLET_UPDATED, events.wallet_updated(
                balance=balance, currency=self.transaction.currency,
                line=events.statement_line(self.transaction, amount=amount)))
            for user_id, (balance, amount) in sorted(self.wallets.items())
        ]


def _check_legs(legs: Sequence[Leg]) -> None:
    """Programming errors, not user errors: a movement must balance and name each account once."""
    if len(legs) < 2:
        raise ValueError("a movement needs at least two legs")
    for leg in legs:
        if isinstance(leg.amount, bool) or not isinstance(leg.amount, int) or leg.amount == 0:
            raise ValueError(f"leg amounts are non-zero integer cents, not {leg.amount!r}")
        if (leg.user_id is None) == (leg.system is None):
            raise ValueError("a leg is either a wallet or a system account")
        if leg.system is not None and leg.system == AccountKind.WALLET:
            raise ValueError("wallets are named by their user")
    if sum(leg.amount for leg in legs) != 0:
        raise ValueError("the legs of a movement must sum to zero")
    names = [(leg.user_id, leg.system) for leg in legs]
    if len(set(names)) != len(names):
        raise ValueError("each account appears once per movement")


# (database, kind, currency) -> id of a system account known to be committed. System accounts
# are never deleted, so a process may remember them; the test runner's flush empties tables
# and then emits post_migrate, which forgets them (payments.apps).
_system_ids: dict[tuple[str, str, str], int] = {}


def forget_system_accounts(**kwargs: Any) -> None:
    _system_ids.clear()


def system_account_id(kind: str, currency: str | None = None) -> int:
    """The id of a system account, created on first use (one per kind and currency)."""
    currency = currency or settings.PAYMENTS_CURRENCY
    cache_key = (str(connection.settings_dict["NAME"]), kind, currency)
    found = _system_ids.get(cache_key)
    if found is not None:
        return found
    found = Account.objects.filter(kind=kind, currency=currency, user__isnull=True).values_list("id", flat=True).first()
    if found is None:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO payments_account (kind, user_id, currency, balance, created_at) "
                "VALUES (%s, NULL, %s, NULL, %s) ON CONFLICT DO NOTHING",
                [kind, currency, timezone.now()],
            )
        found = (Account.objects.filter(kind=kind, currency=currency, user__isnull=True)
                 .values_list("id", flat=True).get())
    # Remembered once committed: an account created in a transaction that rolls back must not be.
    transaction.on_commit(lambda: _system_ids.setdefault(cache_key, found))
    return found


_WALLET_DEBIT = ("UPDATE payments_account SET balance = balance + %s WHERE kind = 'wallet' AND user_id = %s "
                 "AND currency = %s AND balance + %s >= 0 RETURNING id, balance")
_WALLET_CREDIT = ("INSERT INTO payments_account (kind, user_id, currency, balance, created_at) "
                  "VALUES ('wallet', %s, %s, %s, %s) ON CONFLICT (user_id, currency) WHERE kind = 'wallet' "
                  "DO UPDATE SET balance = payments_account.balance + EXCLUDED.balance RETURNING id, balance")


def _wallet_apply(user_id: str, amount: int, currency: str) -> tuple[int, int]:
    """Add `amount` to the user's wallet and return (account id, new balance); one statement.

    A spend is a conditional UPDATE, the row lock and the funds check at once:
    a spend that would go below zero (or from no wallet) matches no row. A
    credit is an upsert: a wallet is created by its first credit.
    """
    user_id = User._meta.pk.get_db_prep_value(uuid.UUID(user_id), connection)  # a hex string on SQLite
    with connection.cursor() as cursor:
        if amount < 0:
            cursor.execute(_WALLET_DEBIT, [amount, user_id, currency, amount])
        else:
            cursor.execute(_WALLET_CREDIT, [user_id, currency, amount, timezone.now()])
        row = cursor.fetchone()
    if row is None:
        raise InsufficientFunds()
    return row[0], row[1]


def _transaction_insert(record: Transaction) -> bool:
    """Insert the transaction row unless its key exists (then False): no savepoint needed."""
    opts = Transaction._meta
    values = [opts.get_field(name).get_db_prep_save(value, connection) for name, value in (
        ("id", record.id), ("kind", record.kind), ("key", record.key), ("currency", record.currency),
        ("red_packet_id", record.red_packet_id), ("topup", record.topup_id), ("created_at", record.created_at))]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO payments_transaction (id, kind, key, currency, red_packet_id, topup_id, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING RETURNING id", values)
        return cursor.fetchone() is not None


def ledger_post(*, kind: str, key: str, legs: Sequence[Leg], red_packet_id: object = None,
                topup_id: object = None, now: datetime | None = None) -> Posting:
    """Post one balanced movement, idempotent by `key`.

    Runs inside the caller's transaction (opens one otherwise). A second
    posting with the same key changes nothing and returns the first
    (created=False; a concurrent first posting is waited for). Raises
    InsufficientFunds when a wallet would go negative: the caller's
    transaction must then roll back (it does, unless it catches the error).
    """
    _check_legs(legs)
    currency = settings.PAYMENTS_CURRENCY
    with transaction.atomic(savepoint=False):
        record = Transaction(id=uuid.uuid4(), kind=kind, key=key, currency=currency, red_packet_id=red_packet_id,
                             topup_id=topup_id, created_at=now or timezone.now())
        if not _transaction_insert(record):
            return Posting(transaction=Transaction.objects.get(key=key), created=False)
        posting = Posting(transaction=record, created=True)
        entries: list[Entry] = []
        for leg in sorted((leg for leg in legs if leg.user_id), key=lambda leg: leg.user_id):
            account_id, balance = _wallet_apply(leg.user_id, leg.amount, currency)
            entries.append(Entry(transaction=record, account_id=account_id, amount=leg.amount))
            posting.wallets[leg.user_id] = (balance, leg.amount)
        for leg in legs:
            if leg.system:
                entries.append(Entry(transaction=record, account_id=system_account_id(leg.system, currency),
                                     amount=leg.amount))
        Entry.objects.bulk_create(entries)
    return posting


# --- Top-ups ---------------------------------------------------------------------------------


def _provider_or_unavailable() -> PaymentProvider:
    provider = get_provider()
    if provider is None:
        raise PaymentsDisabled()
    return provider


def topup_create(*, user: User, client_id: uuid.UUID, amount: int) -> tuple[dict[str, Any], bool]:
    """Start a top-up through the provider: (TopUp, created).

    A retry with the same client_id returns the first top-up (and, if the
    provider never answered, asks it again: the provider is idempotent by our
    top-up id). The test provider approves at once; a real one leaves the
    top-up `pending` until its webhook (or the reconcile sweep) confirms it.
    """
    ensure_writable("wallet.topup")
    if amount > settings.PAYMENTS_TOPUP_MAX:
        raise ValidationFailed(details={"amount": [f"At most {settings.PAYMENTS_TOPUP_MAX} cents per top-up."]})
    provider = _provider_or_unavailable()
    topup = TopUp.objects.filter(user=user, client_id=client_id).first()
    created = topup is None
    if topup is None:
        try:
            with transaction.atomic():
                topup = TopUp.objects.create(user=user, client_id=client_id, amount=amount,
                                             currency=settings.PAYMENTS_CURRENCY, provider=provider.name)
        except IntegrityError:
            topup = TopUp.objects.get(user=user, client_id=client_id)
            created = False
    if topup.status == TopUpStatus.PENDING and not topup.provider_reference and topup.provider == provider.name:
        try:
            state = provider.payment_create(PaymentRequest(topup_id=str(topup.pk), amount=topup.amount,
                                                           currency=topup.currency))
        except ProviderUnavailable as exc:
            logger.warning("payment provider unavailable for top-up %s: %s", topup.pk, exc)
            raise ServiceUnavailable("The payment provider is unavailable; retry with the same client_id.",
                                     details={"check": "payments", "topup_id": str(topup.pk)}) from exc
        topup = topup_apply(topup_id=topup.pk, state=state)
    return events.topup_public(topup), created


def topup_apply(*, topup_id: object, state: PaymentState) -> TopUp:
    """Apply the provider's word about a payment to its top-up; safe to call any number of times.

    Only a pending top-up moves: to succeeded (the wallet is credited, once,
    by the ledger key `topup:<id>`) or failed. A provider that reports another
    amount or currency than we asked for does not credit the wallet: the
    top-up fails and the operator is told in the log.
    """
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().get(pk=topup_id)
        if topup.status != TopUpStatus.PENDING:
            return topup
        if topup.provider_reference and state.reference != topup.provider_reference:
            logger.error("top-up %s: provider reported payment %s, ours is %s; ignored",
                         topup.pk, state.reference, topup.provider_reference)
            return topup
        topup.provider_reference = state.reference
        now = timezone.now()
        if state.status == "pending":
            topup.next_action = state.next_action
            topup.save(update_fields=["provider_reference", "next_action"])
            return topup
        if state.status == "succeeded" and (state.amount != topup.amount or state.currency != topup.currency):
            logger.error("top-up %s: provider collected %s %s for %s %s; not credited",
                         topup.pk, state.amount, state.currency, topup.amount, topup.currency)
            state = PaymentState(reference=state.reference, status="failed", amount=state.amount,
                                 currency=state.currency, failure_reason="amount mismatch")
        topup.completed_at = now
        if state.status == "failed":
            topup.status = TopUpStatus.FAILED
            topup.failure_reason = state.failure_reason or "declined"
            topup.save(update_fields=["provider_reference", "status", "failure_reason", "completed_at"])
            return topup
        topup.status = TopUpStatus.SUCCEEDED
        topup.save(update_fields=["provider_reference", "status", "completed_at"])
        posting = ledger_post(
            kind=TransactionKind.TOPUP, key=f"topup:{topup.pk}", topup_id=topup.pk, now=now,
            legs=[Leg.wallet(topup.user_id, topup.amount), Leg.account(AccountKind.PROVIDER_CLEARING, -topup.amount)],
        )
        stream_append(posting.wallet_events())
    return topup


def webhook_receive(*, provider_name: str, headers: Mapping[str, str], body: bytes) -> None:
    """A provider's webhook: verified by signature, applied once per event id.

    Events about payments we do not know are acknowledged (the provider would
    otherwise redeliver them for days) and logged.
    """
    provider = get_provider()
    if provider is None or provider.name != provider_name:
        raise NotFound()
    try:
        event = provider.webhook_verify(headers=headers, body=body)
    except InvalidWebhook as exc:
        logger.warning("payments webhook refused: %s", exc)
        raise InvalidSignature() from exc
    _webhook_apply(provider_name=provider_name, event=event)


def _webhook_topup(provider_name: str, event: WebhookEvent) -> TopUp | None:
    topup = TopUp.objects.filter(provider=provider_name, provider_reference=event.payment.reference).first()
    if topup is None and event.topup_id:
        try:
            topup = TopUp.objects.filter(pk=uuid.UUID(event.topup_id), provider=provider_name).first()
        except ValueError:
            return None
    return topup


def _webhook_apply(*, provider_name: str, event: WebhookEvent) -> None:
    with transaction.atomic():
        topup = _webhook_topup(provider_name, event)
        try:
            with transaction.atomic():
                ProviderEvent.objects.create(provider=provider_name, event_id=event.event_id, type=event.type,
                                             topup=topup)
        except IntegrityError:
            return  # delivered before: already applied
        if topup is None:
            logger.warning("payments webhook %s about an unknown payment; acknowledged", event.event_id)
            return
        if event.type in ("payment.succeeded", "payment.failed"):
            topup_apply(topup_id=topup.pk, state=event.payment)


def topups_reconcile(*, older_than: timedelta | None = None, limit: int = 50) -> int:
    """Ask the provider about top-ups still pending (a webhook lost, a create that timed out).

    Each top-up is asked at most once per `older_than`; returns how many were asked.
    """
    provider = get_provider()
    if provider is None:
        return 0
    older_than = older_than or timedelta(seconds=settings.PAYMENTS_RECONCILE_AFTER_SECONDS)
    cutoff = timezone.now() - older_than
    due = list(
        TopUp.objects.filter(status=TopUpStatus.PENDING, provider=provider.name, created_at__lt=cutoff)
        .exclude(checked_at__gte=cutoff).order_by("created_at").values_list("pk", flat=True)[:limit]
    )
    asked = 0
    for topup_id in due:
        # Claim it for this run first, so a concurrent sweep skips it.
        if not TopUp.objects.filter(pk=topup_id, status=TopUpStatus.PENDING).exclude(checked_at__gte=cutoff).update(
                checked_at=timezone.now()):
            continue
        topup = TopUp.objects.get(pk=topup_id)
        try:
            if topup.provider_reference:
                state = provider.payment_fetch(reference=topup.provider_reference, topup_id=str(topup.pk))
            else:
                # The create may never have reached the provider: ask again (idempotent by our id).
                state = provider.payment_create(PaymentRequest(topup_id=str(topup.pk), amount=topup.amount,
                                                               currency=topup.currency))
        except ProviderUnavailable as exc:
            logger.warning("reconcile: provider unavailable for top-up %s: %s", topup.pk, exc)
            continue
        asked += 1
        if state is not None:
            topup_apply(topup_id=topup.pk, state=state)
    return asked
