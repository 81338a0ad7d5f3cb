"""messenger_push_total moves by provider and outcome: sent, pruned (token gone), retried, failed."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from accounts.services import device_push_set
from notifications.models import PushDelivery
from notifications.services import push_deliver
from tests.notifications.servers import Reply

FCM_SEND = "/v1/projects/demo-project/messages:send"


def pushes(outcome: str) -> float:
    return REGISTRY.get_sample_value("messenger_push_total", {"provider": "fcm", "outcome": outcome}) or 0.0


@pytest.fixture
def real_fcm(settings, fcm_settings):
    settings.PUSH_BACKEND = "real"
    settings.PUSH_PROVIDERS = ["fcm"]
    settings.PUSH_COLLAPSE_SECONDS = 0
    settings.PUSH_MAX_ATTEMPTS = 2
    return fcm_settings


def delivery_for(user, key: str) -> PushDelivery:
    device_push_set(device=user.device, provider="fcm", token=f"token-{key}")
    return PushDelivery.objects.create(dedupe_key=key, device=user.device, kind="message.new", conversation_id="c-1",
                                       message_id=key, title="Alice", body="hi")


@pytest.mark.django_db
@pytest.mark.parametrize(("replies", "outcome"), [
    ([Reply(200, {"name": "ok"})], "sent"),
    ([Reply(404, {"error": {"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}})], "pruned"),
    ([Reply(503, {"error": {"status": "UNAVAILABLE"}})], "retried"),
    ([Reply(400, {"error": {"status": "INVALID_ARGUMENT"}})], "failed"),
])
def test_each_push_outcome_is_counted_by_provider(bob, real_fcm, replies, outcome):
    real_fcm.script(FCM_SEND, *replies)
    before = pushes(outcome)
    push_deliver(delivery_id=delivery_for(bob, f"m-{outcome}").pk, claim="t")
    assert pushes(outcome) == before + 1
