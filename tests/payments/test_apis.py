"""Wallet and top-up endpoints with the test provider (PAYMENTS_BACKEND=test)."""

from __future__ import annotations

import uuid

import pytest

from payments.models import TopUp
from tests.exports.conftest import make_sunset
from tests.messaging.conftest import stream_events
from tests.payments.conftest import assert_ledger_ok, balance, fund, ledger_counts


def topup(who, amount, client_id=None):
    return who.client.post("/api/v1/wallet/topups", {"client_id": client_id or str(uuid.uuid4()), "amount": amount},
                           format="json")


@pytest.mark.django_db
def test_a_new_wallet_is_empty_in_the_configured_currency(alice, settings):
    settings.PAYMENTS_CURRENCY = "CNY"
    assert alice.client.get("/api/v1/wallet").json() == {"balance": 0, "currency": "CNY"}


@pytest.mark.django_db
def test_a_test_topup_is_approved_at_once_and_a_retry_returns_it(alice, payments_on):
    client_id = str(uuid.uuid4())
    first = topup(alice, 1234, client_id)
    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["status"] == "succeeded" and body["amount"] == 1234 and body["currency"] == "CNY"
    assert body["client_id"] == client_id and body["provider"] == "test" and body["completed_at"]
    again = topup(alice, 9999, client_id)
    assert again.status_code == 200 and again.json() == body
    assert alice.client.get("/api/v1/wallet").json() == {"balance": 1234, "currency": "CNY"}
    assert alice.client.get(f"/api/v1/wallet/topups/{body['id']}").json() == body
    (_, event), = stream_events(alice, "wallet.updated")
    assert event["balance"] == 1234
    assert event["transaction"]["kind"] == "topup" and event["transaction"]["topup_id"] == body["id"]
    assert_ledger_ok()


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["5", 5.0, True, None, 0, -1, [5], {"cents": 5}, 2**70])
def test_amounts_must_be_positive_json_integers(alice, payments_on, amount):
    response = topup(alice, amount)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "amount" in response.json()["error"]["details"]
    assert TopUp.objects.count() == 0 and ledger_counts() == (0, 0)


@pytest.mark.django_db
def test_a_topup_over_the_limit_is_refused(alice, payments_on, settings):
    settings.PAYMENTS_TOPUP_MAX = 1000
    response = topup(alice, 1001)
    assert response.status_code == 400 and "amount" in response.json()["error"]["details"]
    assert topup(alice, 1000).status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("body", [
    {"amount": 5},
    {"client_id": 5, "amount": 5},
    {"client_id": "not-a-uuid", "amount": 5},
    {"client_id": str(uuid.uuid4()), "amount": 5, "bonus": 1},
])
def test_malformed_topups_are_refused(alice, payments_on, body):
    response = alice.client.post("/api/v1/wallet/topups", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


@pytest.mark.django_db
def test_topups_are_off_unless_a_backend_is_set(alice, settings):
    settings.PAYMENTS_BACKEND = ""
    response = topup(alice, 100)
    assert response.status_code == 403 and response.json()["error"]["code"] == "payments_disabled"
    assert TopUp.objects.count() == 0 and balance(alice) == 0


@pytest.mark.django_db
def test_a_topup_is_seen_by_its_owner_only(alice, bob, payments_on):
    body = topup(alice, 100).json()
    assert bob.client.get(f"/api/v1/wallet/topups/{body['id']}").status_code == 404
    assert alice.client.get("/api/v1/wallet/topups/not-an-id").status_code == 404


@pytest.mark.django_db
def test_the_statement_pages_newest_first(alice, payments_on):
    for amount in (100, 200, 300, 400, 500):
        fund(alice, amount)
    first = alice.client.get("/api/v1/wallet/transactions?limit=2").json()
    assert [t["amount"] for t in first["transactions"]] == [500, 400] and first["has_more"]
    second = alice.client.get(f"/api/v1/wallet/transactions?limit=2&before={first['cursor']}").json()
    assert [t["amount"] for t in second["transactions"]] == [300, 200] and second["has_more"]
    third = alice.client.get(f"/api/v1/wallet/transactions?limit=2&before={second['cursor']}").json()
    assert [t["amount"] for t in third["transactions"]] == [100] and not third["has_more"]
    line = third["transactions"][0]
    assert set(line) == {"id", "kind", "amount", "currency", "red_packet_id", "topup_id", "created_at"}
    for bad in ("limit=0", "limit=201", "before=abc", "before=-1"):  # unknown ones (`cursor`) are ignored
        response = alice.client.get(f"/api/v1/wallet/transactions?{bad}")
        assert response.status_code == 400, bad


@pytest.mark.django_db
def test_someone_elses_statement_is_never_shown(alice, bob, payments_on):
    fund(alice, 100)
    assert bob.client.get("/api/v1/wallet/transactions").json()["transactions"] == []


@pytest.mark.django_db
def test_read_only_sunset_refuses_topups(alice, payments_on):
    make_sunset("read_only")
    response = topup(alice, 100)
    assert response.status_code == 403 and response.json()["error"]["code"] == "service_read_only"
    assert TopUp.objects.count() == 0
    assert alice.client.get("/api/v1/wallet").status_code == 200  # reading still works


@pytest.mark.django_db
def test_wallet_endpoints_need_a_token(api):
    assert api.get("/api/v1/wallet").status_code == 401
    assert api.post("/api/v1/wallet/topups", {}, format="json").status_code == 401
