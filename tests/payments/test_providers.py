"""The real-provider adapter (PAYMENTS_BACKEND=http) against a local stand-in of the provider.

A top-up stays `pending` until the provider confirms it by a signed webhook (or
the reconcile sweep asks); webhooks are verified by signature and applied once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from payments.models import ProviderEvent, TopUp
from payments.providers.http import signature_header
from payments.services import topups_reconcile
from tests.messaging.conftest import stream_events
from tests.payments.conftest import assert_ledger_ok, balance, ledger_counts
from tests.payments.servers import FakePaymentProvider

WEBHOOK = "/api/v1/payments/webhooks/http"


@pytest.fixture
def provider(settings) -> Iterator[FakePaymentProvider]:
    with FakePaymentProvider() as fake:
        settings.PAYMENTS_BACKEND = "http"
        settings.PAYMENTS_HTTP_URL = fake.url
        settings.PAYMENTS_HTTP_API_KEY = fake.api_key
        settings.PAYMENTS_HTTP_WEBHOOK_SECRETS = [fake.webhook_secret]
        settings.PAYMENTS_HTTP_TIMEOUT_SECONDS = 5
        yield fake


def start_topup(who, amount=500, client_id=None):
    return who.client.post("/api/v1/wallet/topups", {"client_id": client_id or str(uuid.uuid4()), "amount": amount},
                           format="json")


def deliver(api, headers: dict[str, str], body: bytes):
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()
             if name.lower() != "content-type"}
    return api.post(WEBHOOK, data=body, content_type="application/json", **extra)


@pytest.mark.django_db
def test_a_topup_stays_pending_until_the_signed_webhook_confirms_it(alice, api, provider):
    response = start_topup(alice, 500)
    assert response.status_code == 201
    topup = response.json()
    assert topup["status"] == "pending" and topup["provider"] == "http"
    assert topup["next_action"]["type"] == "redirect"  # the provider's checkout, for the client to open
    create, = provider.creates()
    assert create.headers["idempotency-key"] == topup["id"]
    assert create.headers["authorization"] == f"Bearer {provider.api_key}"
    assert balance(alice) == 0 and ledger_counts() == (0, 0)

    payment = provider.payment_for(topup["id"])
    headers, body = provider.settle(payment["id"])
    assert deliver(api, headers, body).status_code == 200
    assert balance(alice) == 500
    detail = alice.client.get(f"/api/v1/wallet/topups/{topup['id']}").json()
    assert detail["status"] == "succeeded" and detail["next_action"] is None and detail["completed_at"]
    assert [data["balance"] for _, data in stream_events(alice, "wallet.updated")] == [500]
    assert_ledger_ok()


@pytest.mark.django_db
def test_a_redelivered_webhook_and_a_second_success_event_credit_once(alice, api, provider):
    topup = start_topup(alice, 700).json()
    payment = provider.payment_for(topup["id"])
    headers, body = provider.settle(payment["id"])
    for _ in range(3):
        assert deliver(api, headers, body).status_code == 200
    headers2, body2 = provider.settle(payment["id"])  # a new event id about the same payment
    assert deliver(api, headers2, body2).status_code == 200
    assert balance(alice) == 700
    assert ledger_counts() == (1, 2)
    assert ProviderEvent.objects.count() == 2
    assert_ledger_ok()


@pytest.mark.django_db
def test_a_failed_payment_fails_the_topup_and_credits_nothing(alice, api, provider):
    topup = start_topup(alice, 300).json()
    headers, body = provider.settle(provider.payment_for(topup["id"])["id"], "failed")
    assert deliver(api, headers, body).status_code == 200
    detail = alice.client.get(f"/api/v1/wallet/topups/{topup['id']}").json()
    assert detail["status"] == "failed" and detail["failure_reason"] == "card declined"
    assert balance(alice) == 0 and ledger_counts() == (0, 0)
    # A late "succeeded" for a failed top-up changes nothing.
    headers, body = provider.settle(provider.payment_for(topup["id"])["id"], "succeeded")
    assert deliver(api, headers, body).status_code == 200
    assert balance(alice) == 0


@pytest.mark.django_db
def test_a_payment_of_another_amount_than_asked_is_not_credited(alice, api, provider):
    topup = start_topup(alice, 300).json()
    headers, body = provider.settle(provider.payment_for(topup["id"])["id"], amount=30000)
    assert deliver(api, headers, body).status_code == 200
    assert TopUp.objects.get(pk=topup["id"]).status == "failed"
    assert balance(alice) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("tamper", ["wrong_secret", "changed_body", "stale", "no_header", "garbage_header"])
def test_webhooks_that_fail_verification_are_refused_and_change_nothing(alice, api, provider, tamper):
    topup = start_topup(alice, 400).json()
    payment_id = provider.payment_for(topup["id"])["id"]
    if tamper == "wrong_secret":
        headers, body = provider.settle(payment_id, secret="whsec_attacker")
    elif tamper == "stale":
        headers, body = provider.settle(payment_id, signed_at=int(time.time()) - 3600)
    else:
        headers, body = provider.settle(payment_id)
        if tamper == "changed_body":
            body = body.replace(b'"amount": 400', b'"amount": 40000')
        elif tamper == "no_header":
            headers = {}
        else:
            headers = {"Payments-Signature": "t=abc,v1=zz"}
    response = deliver(api, headers, body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_signature"
    assert balance(alice) == 0 and ProviderEvent.objects.count() == 0
    assert TopUp.objects.get(pk=topup["id"]).status == "pending"


@pytest.mark.django_db
def test_a_rotated_secret_is_accepted_while_both_are_configured(alice, api, provider, settings):
    settings.PAYMENTS_HTTP_WEBHOOK_SECRETS = ["whsec_new", provider.webhook_secret]
    topup = start_topup(alice, 400).json()
    headers, body = provider.settle(provider.payment_for(topup["id"])["id"], secret="whsec_new")
    assert deliver(api, headers, body).status_code == 200
    assert balance(alice) == 400


@pytest.mark.django_db
def test_a_webhook_for_an_unknown_payment_is_acknowledged_and_ignored(api, provider):
    body = (b'{"id": "evt_x", "type": "payment.succeeded", "data": {"id": "pay_nobody", "status": "succeeded", '
            b'"amount": 100, "currency": "CNY", "reference": "not-a-uuid"}}')
    headers = {"Payments-Signature": signature_header(secret=provider.webhook_secret, body=body)}
    assert deliver(api, headers, body).status_code == 200
    assert ledger_counts() == (0, 0)


@pytest.mark.django_db
def test_a_webhook_for_a_provider_that_is_not_configured_is_not_found(api, provider):
    assert api.post("/api/v1/payments/webhooks/test", data=b"{}", content_type="application/json").status_code == 404
    assert api.post("/api/v1/payments/webhooks/stripe", data=b"{}",
                    content_type="application/json").status_code == 404


@pytest.mark.django_db
def test_an_unreachable_provider_answers_503_and_the_retry_asks_again_with_the_same_key(alice, provider):
    client_id = str(uuid.uuid4())
    provider.fail_next = 1
    first = start_topup(alice, 250, client_id)
    assert first.status_code == 503 and first.json()["error"]["details"]["check"] == "payments"
    topup = TopUp.objects.get(user=alice.user)
    assert topup.status == "pending" and topup.provider_reference is None
    again = start_topup(alice, 250, client_id)
    assert again.status_code == 200 and again.json()["id"] == str(topup.pk)
    assert again.json()["status"] == "pending" and again.json()["next_action"]
    keys = [r.headers["idempotency-key"] for r in provider.creates()]
    assert keys == [str(topup.pk), str(topup.pk)]
    assert len(provider.payments) == 1


@pytest.mark.django_db
def test_the_reconcile_sweep_finds_a_payment_whose_webhook_was_lost(alice, provider):
    topup = start_topup(alice, 900).json()
    provider.settle(provider.payment_for(topup["id"])["id"])  # the webhook never arrives
    assert topups_reconcile(older_than=timedelta(minutes=5)) == 0  # too recent to ask about
    TopUp.objects.filter(pk=topup["id"]).update(created_at=timezone.now() - timedelta(minutes=10))
    assert topups_reconcile(older_than=timedelta(minutes=5)) == 1
    assert balance(alice) == 900
    assert topups_reconcile(older_than=timedelta(minutes=5)) == 0  # settled: nothing left to ask
    assert_ledger_ok()


@pytest.mark.django_db
def test_the_reconcile_sweep_resubmits_a_topup_the_provider_never_received(alice, provider):
    provider.fail_next = 1
    assert start_topup(alice, 120).status_code == 503
    TopUp.objects.update(created_at=timezone.now() - timedelta(minutes=10))
    assert topups_reconcile(older_than=timedelta(minutes=5)) == 1
    topup = TopUp.objects.get(user=alice.user)
    assert topup.status == "pending" and topup.provider_reference == provider.payment_for(str(topup.pk))["id"]


@pytest.mark.django_db
def test_the_adapter_needs_its_settings(settings, alice):
    settings.PAYMENTS_BACKEND = "http"
    settings.PAYMENTS_HTTP_URL = ""
    from django.core.exceptions import ImproperlyConfigured

    from payments.providers import get_provider

    with pytest.raises(ImproperlyConfigured):
        get_provider()
