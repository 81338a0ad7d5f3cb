"""Pushes for calls through the real push pipeline and provider adapters, against the local
provider stand-ins (tests/notifications/servers.py): a ring is urgent (FCM priority high and
data-only, APNs VoIP push on the VoIP topic, Web Push urgency high) with a short TTL; a
missed call is an ordinary alert."""

from __future__ import annotations

import time
from typing import Any

import pytest

from accounts.services import device_push_set
from calls import services
from notifications.models import DeliveryStatus, PushDelivery
from streams.presence import device_online
from tests.calls.conftest import offer
from tests.notifications.conftest import (  # noqa: F401  (fixtures)
    BrowserSubscription,
    apns_key,
    apns_settings,
    fcm_settings,
    h2_server,
    http_server,
    rsa_key,
    vapid_key,
    webpush_settings,
)
from tests.notifications.servers import Reply

pytestmark = pytest.mark.django_db

FCM_SEND = "/v1/projects/demo-project/messages:send"
APNS_TOKEN = "b" * 64


@pytest.fixture
def providers(settings: Any, fcm_settings, apns_settings, webpush_settings) -> dict[str, Any]:  # noqa: F811
    settings.PUSH_BACKEND = "real"
    settings.PUSH_PROVIDERS = ["fcm", "apns", "webpush"]
    settings.PUSH_COLLAPSE_SECONDS = 0
    fcm_settings.script(FCM_SEND, Reply(200, {"name": "projects/demo-project/messages/1"}))
    fcm_settings.script("/push/", Reply(201))
    apns_settings.script("/3/device/", Reply(200, headers={"apns-id": "5F3F6E2A-0000-4000-8000-000000000001"}))
    return {"http": fcm_settings, "apns": apns_settings}


@pytest.fixture
def bob_everywhere(bob, providers):
    """Bob on an Android phone (FCM), an iPhone (APNs) and a browser (Web Push), all offline."""
    device_push_set(device=bob.device, provider="fcm", token="fcm-token-bob")
    iphone = bob.another_device(name="iPhone", platform="ios")
    device_push_set(device=iphone.device, provider="apns", token=APNS_TOKEN)
    browser = BrowserSubscription(f"{providers['http'].url}/push/bob")
    web = bob.another_device(name="Browser", platform="web")
    device_push_set(device=web.device, provider="webpush", token=browser.token)
    return {"bob": bob, "iphone": iphone, "web": web, "browser": browser}


def test_a_ring_is_an_urgent_short_lived_voip_push_on_every_provider(alice, bob_everywhere, providers, direct,
                                                                     django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_id = offer(alice, direct, media="video")
    assert set(PushDelivery.objects.values_list("kind", "status")) == {("call.ring", DeliveryStatus.SENT)}

    [fcm] = providers["http"].requests_to(FCM_SEND)
    message = fcm.json()["message"]
    assert message["token"] == "fcm-token-bob"
    assert message["android"]["priority"] == "high" and message["android"]["ttl"] == "45s"
    assert "notification" not in message  # data-only: the app shows its own call screen
    assert message["data"]["kind"] == "call.ring" and message["data"]["call_id"] == str(call_id)
    assert (message["data"]["title"], message["data"]["body"]) == ("Alice", "Incoming video call")

    [apns] = providers["apns"].requests
    assert apns.path == f"/3/device/{APNS_TOKEN}"
    assert apns.headers["apns-push-type"] == "voip"
    assert apns.headers["apns-topic"] == "org.example.messenger.voip"
    assert apns.headers["apns-priority"] == "10"
    assert abs(int(apns.headers["apns-expiration"]) - (time.time() + 45)) < 10
    body = apns.json()
    assert "alert" not in body["aps"] and body["kind"] == "call.ring" and body["call_id"] == str(call_id)

    [web] = providers["http"].requests_to("/push/")
    assert web.headers["urgency"] == "high" and web.headers["ttl"] == "45"
    payload = bob_everywhere["browser"].decrypt(web.body)
    assert payload["data"]["kind"] == "call.ring" and payload["data"]["caller_id"] == str(alice.user.pk)


def test_the_voip_topic_can_be_set(alice, bob_everywhere, providers, direct, settings,
                                   django_capture_on_commit_callbacks):
    settings.PUSH_APNS_VOIP_TOPIC = "org.example.calls.voip"
    with django_capture_on_commit_callbacks(execute=True):
        offer(alice, direct)
    assert providers["apns"].requests[0].headers["apns-topic"] == "org.example.calls.voip"


def test_a_device_with_a_live_socket_rings_by_the_socket_not_by_push(alice, bob_everywhere, providers, direct,
                                                                     django_capture_on_commit_callbacks):
    device_online(user_id=bob_everywhere["bob"].user.pk, device_id=bob_everywhere["iphone"].device.pk)
    with django_capture_on_commit_callbacks(execute=True):
        offer(alice, direct)
    assert providers["apns"].requests == []
    assert len(providers["http"].requests_to(FCM_SEND)) == 1


def test_a_missed_call_is_an_ordinary_alert(alice, bob_everywhere, providers, direct,
                                            django_capture_on_commit_callbacks):
    call_id = offer(alice, direct)  # (the ring pushes are not sent: no commit callbacks run here)
    providers["http"].requests.clear()
    providers["apns"].requests.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id)
    missed = [r.json()["message"] for r in providers["http"].requests_to(FCM_SEND)
              if r.json()["message"]["data"]["kind"] == "call.missed"]
    assert len(missed) == 1
    assert missed[0]["notification"] == {"title": "Alice", "body": "Missed voice call"}
    assert missed[0]["data"]["call_id"] == str(call_id)
    apns = [r for r in providers["apns"].requests if r.json()["kind"] == "call.missed"]
    assert len(apns) == 1
    assert apns[0].headers["apns-push-type"] == "alert"
    assert apns[0].headers["apns-topic"] == "org.example.messenger"
    assert apns[0].json()["aps"]["alert"] == {"title": "Alice", "body": "Missed voice call"}
    # The call's log message pushes too (message.new), under the same collapse id: one tray entry.
    log = [r for r in providers["apns"].requests if r.json()["kind"] == "message.new"]
    assert [r.headers["apns-collapse-id"] for r in log] == [apns[0].headers["apns-collapse-id"]]


def test_a_missed_call_in_a_muted_conversation_is_silent(alice, bob_everywhere, providers, direct,
                                                         django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from messaging.models import Membership

    Membership.objects.filter(conversation_id=direct, user=bob_everywhere["bob"].user).update(
        muted_until=timezone.now() + timedelta(hours=1))
    call_id = offer(alice, direct)
    with django_capture_on_commit_callbacks(execute=True):
        services.call_ring_expire(call_id=call_id, now=timezone.now() + timedelta(seconds=46))
    missed = [r.json()["message"] for r in providers["http"].requests_to(FCM_SEND)
              if r.json()["message"]["data"]["kind"] == "call.missed"]
    assert len(missed) == 1 and "notification" not in missed[0]
