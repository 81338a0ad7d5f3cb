"""Each provider adapter against a local server that answers as the real provider does."""

from __future__ import annotations

import json

import jwt
import pytest

from notifications.providers.apns import ApnsProvider
from notifications.providers.base import Failed, PushMessage, Retry, Sent, TokenGone, parse_retry_after
from notifications.providers.fcm import FcmProvider
from notifications.providers.webpush import WebPushProvider
from tests.notifications.conftest import BrowserSubscription
from tests.notifications.servers import Reply


def make_message(provider: str, token: str, **overrides: object) -> PushMessage:
    fields: dict = {
        "device_id": "9f1c2b1e-0000-4000-8000-000000000001", "provider": provider, "token": token,
        "kind": "message.new", "conversation_id": "c0ffee00-0000-4000-8000-000000000002",
        "message_id": "m-1", "badge": 4, "title": "Alice", "body": "Lunch at one?",
        "collapse_key": "message.new:c0ffee00-0000-4000-8000-000000000002",
    }
    fields.update(overrides)
    return PushMessage(**fields)


FCM_SEND = "/v1/projects/demo-project/messages:send"


def fcm_error(status: int, code: str, error_code: str, message: str = "") -> Reply:
    """FCM v1's error body: a google.rpc.Status with an FcmError detail."""
    return Reply(status, {"error": {"code": status, "message": message or code, "status": code, "details": [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]}})


# --- FCM ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_fcm_success_exchanges_service_account_jwt_then_sends_v1_message(fcm_settings, rsa_key):
    fcm_settings.script(FCM_SEND, Reply(200, {"name": "projects/demo-project/messages/0:1234"}))
    outcome = FcmProvider().send(make_message("fcm", "fcm-token-1"))

    assert outcome == Sent(provider_id="projects/demo-project/messages/0:1234")
    token_request = fcm_settings.requests_to("/token")[0]
    form = dict(pair.split("=", 1) for pair in token_request.body.decode().split("&"))
    assert form["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
    claims = jwt.decode(form["assertion"], rsa_key.public_key(), algorithms=["RS256"],
                        audience=f"{fcm_settings.url}/token")
    assert claims["iss"] == "push@demo-project.iam.gserviceaccount.com"
    assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"

    send = fcm_settings.requests_to(FCM_SEND)[0]
    assert send.headers["authorization"] == "Bearer ya29.local-access-token"
    message = send.json()["message"]
    assert message["token"] == "fcm-token-1"
    assert message["notification"] == {"title": "Alice", "body": "Lunch at one?"}
    assert message["android"]["collapse_key"] == "message.new:c0ffee00-0000-4000-8000-000000000002"
    assert message["android"]["notification"]["tag"] == "c0ffee00-0000-4000-8000-000000000002"
    assert message["data"]["badge"] == "4" and message["data"]["kind"] == "message.new"
    assert all(isinstance(value, str) for value in message["data"].values())


@pytest.mark.django_db
def test_fcm_reuses_the_access_token_between_sends(fcm_settings):
    fcm_settings.script(FCM_SEND, Reply(200, {"name": "x"}))
    provider = FcmProvider()
    provider.send(make_message("fcm", "a"))
    provider.send(make_message("fcm", "b"))
    assert len(fcm_settings.requests_to("/token")) == 1
    assert len(fcm_settings.requests_to(FCM_SEND)) == 2


@pytest.mark.django_db
def test_fcm_silent_push_has_no_notification_block(fcm_settings):
    fcm_settings.script(FCM_SEND, Reply(200, {"name": "x"}))
    FcmProvider().send(make_message("fcm", "a", silent=True, title="", body=""))
    message = fcm_settings.requests_to(FCM_SEND)[0].json()["message"]
    assert "notification" not in message
    assert "notification" not in message["android"]
    assert message["android"]["priority"] == "normal"


@pytest.mark.django_db
def test_fcm_429_is_retry_with_retry_after(fcm_settings):
    fcm_settings.script(FCM_SEND, Reply(429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "QUOTA_EXCEEDED"}]}},
        headers={"Retry-After": "17"}))
    outcome = FcmProvider().send(make_message("fcm", "a"))
    assert isinstance(outcome, Retry) and outcome.after == 17


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "code"), [(500, "INTERNAL"), (503, "UNAVAILABLE")])
def test_fcm_5xx_is_retry(fcm_settings, status, code):
    fcm_settings.script(FCM_SEND, fcm_error(status, code, code))
    outcome = FcmProvider().send(make_message("fcm", "a"))
    assert isinstance(outcome, Retry) and outcome.after is None


@pytest.mark.django_db
def test_fcm_unregistered_token_is_gone(fcm_settings):
    fcm_settings.script(FCM_SEND, fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."))
    assert FcmProvider().send(make_message("fcm", "a")) == TokenGone(reason="UNREGISTERED")


@pytest.mark.django_db
def test_fcm_malformed_token_is_gone_but_other_bad_requests_fail(fcm_settings):
    fcm_settings.script(FCM_SEND, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                                            "The registration token is not a valid FCM registration token"))
    assert isinstance(FcmProvider().send(make_message("fcm", "a")), TokenGone)
    fcm_settings.script(FCM_SEND, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid JSON payload"))
    assert isinstance(FcmProvider().send(make_message("fcm", "a")), Failed)


@pytest.mark.django_db
def test_fcm_401_drops_the_access_token_and_retries(fcm_settings):
    fcm_settings.script(FCM_SEND, fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"), Reply(200, {}))
    provider = FcmProvider()
    assert isinstance(provider.send(make_message("fcm", "a")), Retry)
    assert isinstance(provider.send(make_message("fcm", "a")), Sent)
    assert len(fcm_settings.requests_to("/token")) == 2


@pytest.mark.django_db
def test_fcm_unreachable_server_is_retry(fcm_settings, settings):
    settings.PUSH_FCM_ENDPOINT = "http://127.0.0.1:9"  # discard port: connection refused
    assert isinstance(FcmProvider().send(make_message("fcm", "a")), Retry)


# --- APNs -----------------------------------------------------------------------------


DEVICE_TOKEN = "a" * 64


@pytest.mark.django_db
def test_apns_success_over_http2_with_provider_jwt(apns_settings, apns_key):
    apns_settings.script("/3/device/", Reply(200, headers={"apns-id": "EC1BF194-B3B2-424A-89A9-5A918A6E8A4B"}))
    outcome = ApnsProvider().send(make_message("apns", DEVICE_TOKEN))

    assert outcome == Sent(provider_id="EC1BF194-B3B2-424A-89A9-5A918A6E8A4B")
    assert apns_settings.protocols == ["HTTP/2"]
    request = apns_settings.requests[0]
    assert request.path == f"/3/device/{DEVICE_TOKEN}"
    assert request.headers["apns-topic"] == "org.example.messenger"
    assert request.headers["apns-push-type"] == "alert"
    assert request.headers["apns-priority"] == "10"
    assert request.headers["apns-collapse-id"] == "message.new:c0ffee00-0000-4000-8000-000000000002"
    scheme, token = request.headers["authorization"].split(" ")
    assert scheme == "bearer"
    assert jwt.get_unverified_header(token)["kid"] == "ABC123DEFG"
    assert jwt.decode(token, apns_key.public_key(), algorithms=["ES256"])["iss"] == "DEF123GHIJ"
    aps = request.json()["aps"]
    assert aps["alert"] == {"title": "Alice", "body": "Lunch at one?"}
    assert aps["badge"] == 4 and aps["thread-id"] == "c0ffee00-0000-4000-8000-000000000002"


@pytest.mark.django_db
def test_apns_silent_push_is_background_content_available(apns_settings):
    apns_settings.script("/3/device/", Reply(200))
    ApnsProvider().send(make_message("apns", DEVICE_TOKEN, silent=True, title="", body=""))
    request = apns_settings.requests[0]
    assert request.headers["apns-push-type"] == "background"
    assert request.headers["apns-priority"] == "5"
    assert request.json()["aps"] == {"badge": 4, "thread-id": "c0ffee00-0000-4000-8000-000000000002",
                                     "content-available": 1}


@pytest.mark.django_db
def test_apns_429_is_retry_with_retry_after(apns_settings):
    apns_settings.script("/3/device/", Reply(429, {"reason": "TooManyRequests"}, headers={"retry-after": "30"}))
    outcome = ApnsProvider().send(make_message("apns", DEVICE_TOKEN))
    assert isinstance(outcome, Retry) and outcome.after == 30


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "reason"), [(500, "InternalServerError"), (503, "ServiceUnavailable")])
def test_apns_5xx_is_retry(apns_settings, status, reason):
    apns_settings.script("/3/device/", Reply(status, {"reason": reason}))
    assert isinstance(ApnsProvider().send(make_message("apns", DEVICE_TOKEN)), Retry)


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "body"), [
    (410, {"reason": "Unregistered", "timestamp": 1700000000000}),
    (400, {"reason": "BadDeviceToken"}),
    (400, {"reason": "DeviceTokenNotForTopic"}),
])
def test_apns_unregistered_or_bad_token_is_gone(apns_settings, status, body):
    apns_settings.script("/3/device/", Reply(status, body))
    assert ApnsProvider().send(make_message("apns", DEVICE_TOKEN)) == TokenGone(reason=body["reason"])


@pytest.mark.django_db
def test_apns_expired_provider_token_is_renewed_and_retried(apns_settings):
    apns_settings.script("/3/device/", Reply(403, {"reason": "ExpiredProviderToken"}), Reply(200))
    provider = ApnsProvider()
    provider.provider_token()
    first_issued = provider._jwt_issued
    assert isinstance(provider.send(make_message("apns", DEVICE_TOKEN)), Retry)
    assert provider._jwt_issued > first_issued  # re-signed before the retry
    assert isinstance(provider.send(make_message("apns", DEVICE_TOKEN)), Sent)


@pytest.mark.django_db
def test_apns_payload_error_fails_without_touching_the_token(apns_settings):
    apns_settings.script("/3/device/", Reply(413, {"reason": "PayloadTooLarge"}))
    assert ApnsProvider().send(make_message("apns", DEVICE_TOKEN)) == Failed(reason="413 PayloadTooLarge")


# --- Web Push --------------------------------------------------------------------------


def subscription_token(server) -> str:
    return BrowserSubscription(f"{server.url}/push/a").token


@pytest.mark.django_db
def test_webpush_success_is_vapid_signed_and_encrypted_to_the_subscription(webpush_settings, vapid_key):
    webpush_settings.script("/push/", Reply(201, headers={"Location": "/m/1"}))
    browser = BrowserSubscription(f"{webpush_settings.url}/push/sub-1")
    outcome = WebPushProvider().send(make_message("webpush", browser.token))

    assert outcome == Sent()
    request = webpush_settings.requests_to("/push/")[0]
    assert request.headers["content-encoding"] == "aes128gcm"
    assert request.headers["ttl"] == "86400"
    assert len(request.headers["topic"]) == 32
    # VAPID (RFC 8292): "vapid t=<jwt>, k=<public key>", the JWT signed by our key for this origin.
    vapid_header = request.headers["authorization"].removeprefix("vapid ")
    vapid = dict(part.strip().split("=", 1) for part in vapid_header.split(","))
    claims = jwt.decode(vapid["t"], vapid_key.public_key(), algorithms=["ES256"], audience=webpush_settings.url)
    assert claims["sub"] == "mailto:ops@example.org"
    # Only the browser can read the payload (RFC 8291).
    payload = browser.decrypt(request.body)
    assert payload["notification"]["title"] == "Alice"
    assert payload["notification"]["body"] == "Lunch at one?"
    assert payload["badge"] == 4


@pytest.mark.django_db
def test_webpush_429_is_retry_with_retry_after(webpush_settings):
    webpush_settings.script("/push/", Reply(429, headers={"Retry-After": "12"}))
    outcome = WebPushProvider().send(make_message("webpush", subscription_token(webpush_settings)))
    assert isinstance(outcome, Retry) and outcome.after == 12


@pytest.mark.django_db
@pytest.mark.parametrize("status", [500, 502, 503])
def test_webpush_5xx_is_retry(webpush_settings, status):
    webpush_settings.script("/push/", Reply(status))
    outcome = WebPushProvider().send(make_message("webpush", subscription_token(webpush_settings)))
    assert isinstance(outcome, Retry)


@pytest.mark.django_db
@pytest.mark.parametrize("status", [404, 410])
def test_webpush_expired_subscription_is_gone(webpush_settings, status):
    webpush_settings.script("/push/", Reply(status))
    outcome = WebPushProvider().send(make_message("webpush", subscription_token(webpush_settings)))
    assert outcome == TokenGone(reason=str(status))


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["not json", json.dumps({"endpoint": "x"}), json.dumps([1])])
def test_webpush_malformed_subscription_is_gone_without_a_request(webpush_settings, token):
    assert isinstance(WebPushProvider().send(make_message("webpush", token)), TokenGone)
    assert webpush_settings.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ["http://10.0.0.5/push/a", "https://evil.example/push", "file:///etc/passwd"])
def test_webpush_endpoint_outside_allowed_hosts_is_never_contacted(webpush_settings, endpoint):
    assert isinstance(WebPushProvider().send(make_message("webpush", BrowserSubscription(endpoint).token)), TokenGone)
    assert webpush_settings.requests == []


def test_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.django_db
def test_webpush_accepts_the_pem_key_that_vapid_gen_writes(settings, vapid_key):
    from cryptography.hazmat.primitives import serialization

    from notifications.providers.webpush import load_vapid

    settings.PUSH_WEBPUSH_VAPID_PRIVATE_KEY = vapid_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    settings.PUSH_WEBPUSH_VAPID_SUBJECT = "https://example.org/contact"
    loaded = load_vapid().private_key.private_numbers().private_value
    assert loaded == vapid_key.private_numbers().private_value
