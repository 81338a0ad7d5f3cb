"""The ledger: accounts, transactions of balanced entries, top-ups through a provider.

Money is integer cents of one currency (PAYMENTS_CURRENCY). Every movement is
a `Transaction` whose `Entry` rows sum to zero; an account's balance is the sum
of its entries. Rows of both are only ever inserted: PostgreSQL triggers
(migration 0002) refuse UPDATE and DELETE, and a deferred constraint trigger
refuses to commit a transaction whose entries do not balance.

Sign convention: an entry's amount is what the account gains (negative: what
it gives). A top-up of 500 is wallet +500 / provider clearing -500; sending a
packet of 500 is wallet -500 / packets in flight +500.

A wallet's balance is cached in `Account.balance`, updated in the transaction
that posts the entries (the UPDATE is also the row lock that orders
concurrent spends); `manage.py ledger_check` verifies that the cache equals the
sum. System accounts (provider clearing, packets in flight) take part in every
movement of the service, so caching their balance would make one row every
transaction waits for: theirs is derived from the entries when asked.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class AccountKind(models.TextChoices):
    WALLET = "wallet"
    # Money received from (or owed back to) the payment providers: the outside world.
    PROVIDER_CLEARING = "provider_clearing"
    # Red packets sent and not yet claimed or refunded.
    PACKETS_IN_FLIGHT = "packets_in_flight"


SYSTEM_ACCOUNT_KINDS = [AccountKind.PROVIDER_CLEARING, AccountKind.PACKETS_IN_FLIGHT]


class Account(models.Model):
    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=24, choices=AccountKind.choices)
    # The owner of a wallet; NULL for system accounts. PROTECT: ledger rows outlive accounts
    # (a deleted user's row stays anyway, see accounts).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="+")
    currency = models.CharField(max_length=3)
    # Cached sum of the entries, for wallets only (NULL for system accounts, derived on demand).
    balance = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "currency"], condition=Q(kind="wallet"),
                                    name="account_one_wallet_per_user"),
            models.UniqueConstraint(fields=["kind", "currency"], condition=Q(user__isnull=True),
                                    name="account_one_system_account_per_kind"),
            models.CheckConstraint(
                condition=(Q(kind="wallet", user__isnull=False, balance__isnull=False, balance__gte=0)
                           | (~Q(kind="wallet") & Q(user__isnull=True, balance__isnull=True))),
                name="account_wallet_never_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.pk}"


class TransactionKind(models.TextChoices):
    TOPUP = "topup"
    RED_PACKET_SEND = "red_packet_send"
    RED_PACKET_CLAIM = "red_packet_claim"
    RED_PACKET_REFUND = "red_packet_refund"


class Transaction(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=24, choices=TransactionKind.choices)
    # The movement's idempotency key ("topup:<id>", "red_packet:<id>:send", ...): posting the
    # same movement twice is refused by this constraint, whatever raced.
    key = models.CharField(max_length=200, unique=True)
    currency = models.CharField(max_length=3)
    # What the movement is about, for statements (no FK: the red packets app sits above this one).
    red_packet_id = models.UUIDField(null=True, blank=True)
    topup = models.OneToOneField("TopUp", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"


class Entry(models.Model):
    id = models.BigAutoField(primary_key=True)
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+", db_index=False)
    amount = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="entry_amount_not_zero"),
            models.UniqueConstraint(fields=["transaction", "account"], name="entry_one_leg_per_account"),
        ]
        indexes = [models.Index(fields=["account", "-id"], name="entry_account_recent_idx")]

    def __str__(self) -> str:
        return f"{self.amount:+d} on {self.account_id}"


class TopUpStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TopUp(models.Model):
    """Money coming in through a provider: pending until the provider confirms it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    client_id = models.UUIDField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    provider = models.CharField(max_length=32)
    # The provider's id for this payment, once it has one.
    provider_reference = models.CharField(max_length=128, null=True, blank=True)
    status = models.CharField(max_length=9, choices=TopUpStatus.choices, default=TopUpStatus.PENDING)
    # What the client does next to pay (a checkout URL, a client secret), from the provider.
    next_action = models.JSONField(null=True, blank=True)
    failure_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Last time the reconcile sweep asked the provider about it.
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "client_id"], name="topup_user_client_id_uniq"),
            models.UniqueConstraint(fields=["provider", "provider_reference"], name="topup_provider_reference_uniq"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="topup_amount_positive"),
        ]
        indexes = [models.Index(fields=["created_at"], condition=Q(status="pending"), name="topup_pending_idx")]

    def __str__(self) -> str:
        return f"top-up {self.pk} ({self.status})"


class ProviderEvent(models.Model):
    """A webhook event already handled: the provider's event id is unique, so a
    redelivered webhook is acknowledged without being applied twice."""

    id = models.BigAutoField(primary_key=True)
    provider = models.CharField(max_length=32)
    event_id = models.CharField(max_length=128)
    type = models.CharField(max_length=64)
    topup = models.ForeignKey(TopUp, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="provider_event_uniq")]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_id}"
