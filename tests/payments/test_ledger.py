"""The double-entry ledger: balanced, idempotent, never edited, and audited by ledger_check."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from payments.models import Account, AccountKind, Entry, TopUp, TopUpStatus, Transaction, TransactionKind
from payments.selectors import ledger_verify, system_balance, wallet_get
from payments.services import InsufficientFunds, Leg, ledger_post, system_account_id
from tests.messaging.conftest import stream_events
from tests.payments.conftest import assert_ledger_ok, balance, ledger_counts
from tests.processes import current_database_url
from tests.reliability.services import ROOT, django_env


def credit(user_id: object, amount: int, key: str) -> object:
    """A succeeded top-up and its posting (as topup_apply makes them), under a chosen ledger key."""
    topup = TopUp.objects.filter(user_id=user_id, client_id=uuid.uuid5(uuid.NAMESPACE_URL, key)).first()
    if topup is None:
        topup = TopUp.objects.create(user_id=user_id, client_id=uuid.uuid5(uuid.NAMESPACE_URL, key), amount=amount,
                                     currency="CNY", provider="test", status=TopUpStatus.SUCCEEDED)
    return ledger_post(kind=TransactionKind.TOPUP, key=key, topup_id=topup.pk,
                       legs=[Leg.wallet(user_id, amount), Leg.account(AccountKind.PROVIDER_CLEARING, -amount)])


@pytest.mark.django_db
def test_a_posting_is_balanced_entries_and_the_cached_balance_follows(alice):
    posting = credit(alice.user.pk, 500, "t1")
    assert posting.created
    entries = list(Entry.objects.filter(transaction=posting.transaction).values_list("amount", flat=True))
    assert sorted(entries) == [-500, 500] and sum(entries) == 0
    assert balance(alice) == 500 == wallet_get(user_id=alice.user.pk)["balance"]
    assert system_balance(kind=AccountKind.PROVIDER_CLEARING) == -500
    wallet = Account.objects.get(kind=AccountKind.WALLET, user=alice.user)
    assert wallet.balance == sum(Entry.objects.filter(account=wallet).values_list("amount", flat=True))


@pytest.mark.django_db
def test_a_posting_is_idempotent_by_its_key(alice):
    first = credit(alice.user.pk, 500, "same-key")
    again = credit(alice.user.pk, 500, "same-key")
    assert not again.created and again.transaction.pk == first.transaction.pk
    assert balance(alice) == 500
    assert ledger_counts() == (1, 2)


@pytest.mark.django_db
def test_a_spend_beyond_the_balance_is_refused_and_writes_nothing(alice, bob, settings):
    settings.PAYMENTS_LEDGER_CHECKS = []  # the ledger's own audit (no red packets behind these spends)
    credit(alice.user.pk, 100, "t1")
    before = ledger_counts()
    with pytest.raises(InsufficientFunds) as raised, transaction.atomic():  # the caller's transaction rolls back
        ledger_post(kind=TransactionKind.RED_PACKET_SEND, key="spend",
                    legs=[Leg.wallet(alice.user.pk, -101), Leg.account(AccountKind.PACKETS_IN_FLIGHT, 101)])
    assert raised.value.code == "insufficient_funds" and raised.value.status == 409
    with pytest.raises(InsufficientFunds), transaction.atomic():  # no wallet at all
        ledger_post(kind=TransactionKind.RED_PACKET_SEND, key="spend2",
                    legs=[Leg.wallet(bob.user.pk, -1), Leg.account(AccountKind.PACKETS_IN_FLIGHT, 1)])
    assert ledger_counts() == before
    assert balance(alice) == 100 and balance(bob) == 0
    assert_ledger_ok()


@pytest.mark.django_db
def test_the_balance_can_be_spent_exactly_to_zero(alice, settings):
    settings.PAYMENTS_LEDGER_CHECKS = []  # the ledger's own audit (no red packet behind this spend)
    credit(alice.user.pk, 100, "t1")
    ledger_post(kind=TransactionKind.RED_PACKET_SEND, key="spend",
                legs=[Leg.wallet(alice.user.pk, -100), Leg.account(AccountKind.PACKETS_IN_FLIGHT, 100)])
    assert balance(alice) == 0
    assert_ledger_ok()


@pytest.mark.django_db
@pytest.mark.parametrize("legs", [
    [],
    [Leg.account(AccountKind.PROVIDER_CLEARING, 5)],
    [Leg.account(AccountKind.PROVIDER_CLEARING, 5), Leg.account(AccountKind.PACKETS_IN_FLIGHT, -4)],
    [Leg.account(AccountKind.PROVIDER_CLEARING, 0), Leg.account(AccountKind.PACKETS_IN_FLIGHT, 0)],
    [Leg.account(AccountKind.PROVIDER_CLEARING, 5), Leg.account(AccountKind.PROVIDER_CLEARING, -5)],
    [Leg.account(AccountKind.PROVIDER_CLEARING, True), Leg.account(AccountKind.PACKETS_IN_FLIGHT, -1)],
    [Leg.account(AccountKind.PROVIDER_CLEARING, 1.0), Leg.account(AccountKind.PACKETS_IN_FLIGHT, -1)],
])
def test_unbalanced_or_malformed_movements_are_programming_errors(legs):
    with pytest.raises(ValueError):
        ledger_post(kind=TransactionKind.TOPUP, key="bad", legs=legs)
    assert ledger_counts() == (0, 0)


@pytest.mark.django_db
def test_the_database_refuses_to_edit_or_delete_ledger_rows(alice):
    posting = credit(alice.user.pk, 500, "t1")
    entry = Entry.objects.filter(transaction=posting.transaction).first()
    for statement in (lambda: Entry.objects.filter(pk=entry.pk).update(amount=1),
                      lambda: Entry.objects.filter(pk=entry.pk).delete(),
                      lambda: Transaction.objects.filter(pk=posting.transaction.pk).update(key="other"),
                      lambda: raw("DELETE FROM payments_transaction WHERE id = %s", [posting.transaction.pk])):
        with pytest.raises(IntegrityError, match="never edited"), transaction.atomic():
            statement()
    assert Entry.objects.get(pk=entry.pk).amount == entry.amount


@pytest.mark.django_db
def test_the_database_refuses_to_commit_an_unbalanced_transaction(alice):
    record = Transaction.objects.create(kind=TransactionKind.TOPUP, key="manual", currency="CNY",
                                        created_at=posting_time())
    account = system_account_id(AccountKind.PROVIDER_CLEARING)
    with pytest.raises(IntegrityError, match="does not balance"), transaction.atomic():
        Entry.objects.create(transaction=record, account_id=account, amount=7)
        with connection.cursor() as cursor:  # what COMMIT would do: run the deferred check now
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def posting_time():
    from django.utils import timezone

    return timezone.now()


@pytest.mark.django_db
def test_a_wallet_can_never_be_negative_even_written_directly(alice):
    credit(alice.user.pk, 10, "t1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(kind=AccountKind.WALLET, user=alice.user).update(balance=-1)


@pytest.mark.django_db
def test_ledger_check_passes_on_a_consistent_ledger(alice, bob, capsys):
    credit(alice.user.pk, 500, "t1")
    credit(bob.user.pk, 300, "t2")
    call_command("ledger_check")
    assert "ledger ok: 2 transactions, 4 entries, 2 wallets" in capsys.readouterr().out


@pytest.mark.django_db
def test_ledger_check_fails_when_a_cached_balance_disagrees_with_the_entries(alice):
    credit(alice.user.pk, 500, "t1")
    Account.objects.filter(kind=AccountKind.WALLET, user=alice.user).update(balance=499)
    report = ledger_verify()
    assert not report.ok and "cached balance 499, entries sum to 500" in report.problems[0]
    with pytest.raises(CommandError, match="FAILED"):
        call_command("ledger_check")


@pytest.mark.django_db
def test_ledger_check_fails_on_an_unbalanced_transaction_and_on_clearing_without_a_topup(alice):
    # Before COMMIT the deferred balance trigger has not run, which lets the audit be shown an
    # unbalanced transaction; the savepoint is rolled back afterwards, so it never commits.
    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        record = Transaction.objects.create(kind=TransactionKind.TOPUP, key="manual", currency="CNY",
                                            created_at=posting_time())
        Entry.objects.create(transaction=record, account_id=system_account_id(AccountKind.PROVIDER_CLEARING),
                             amount=-7)
        problems = ledger_verify().problems
        assert any(f"transaction {record.pk} does not balance" in p for p in problems)
        assert any("provider clearing (CNY) is -7, succeeded top-ups sum to 0" in p for p in problems)
        raise Undo()


@pytest.mark.django_db
def test_wallet_updated_is_the_callers_to_append(alice):
    posting = credit(alice.user.pk, 250, "t1")
    from streams.services import stream_append

    stream_append(posting.wallet_events())
    (_, data), = stream_events(alice, "wallet.updated")
    assert data["balance"] == 250 and data["currency"] == "CNY"
    assert data["transaction"]["kind"] == "topup" and data["transaction"]["amount"] == 250


@pytest.mark.django_db(transaction=True)
def test_manage_py_ledger_check_exits_non_zero_on_a_broken_ledger(alice):
    env = django_env(DATABASE_URL=current_database_url(), SECRET_KEY="dev", LOG_LEVEL="WARNING")
    env.pop("REDIS_URL", None)
    credit(alice.user.pk, 500, "t1")
    ok = subprocess.run([sys.executable, "manage.py", "ledger_check"], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "ledger ok" in ok.stdout
    Account.objects.filter(kind=AccountKind.WALLET, user=alice.user).update(balance=1)
    broken = subprocess.run([sys.executable, "manage.py", "ledger_check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert broken.returncode == 1
    assert "cached balance 1, entries sum to 500" in broken.stderr
