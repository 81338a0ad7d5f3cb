"""Each sunset phase, seen from the API: normal, announced, read-only, shut down."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import ValidationFailed
from core.sunset import ServiceReadOnly, current_phase, ensure_writable
from exports import services
from exports.models import AnnouncementDelivery, Sunset
from streams.selectors import stream_read
from tests.exports.conftest import make_sunset

TEST_PHONE_PREFIX = "+447700955"


@pytest.fixture
def otp_test_numbers(settings):
    settings.OTP_TEST_NUMBERS = [TEST_PHONE_PREFIX]
    settings.OTP_TEST_CODE = "123456"


def _sign_up(api, phone: str):
    assert api.post("/api/v1/auth/otp/request", {"phone": phone}, format="json").status_code == 202
    return api.post("/api/v1/auth/otp/verify", {
        "phone": phone, "code": "123456", "device": {"name": "Phone", "platform": "android"},
    }, format="json")


def _error_code(response) -> str:
    return response.json()["error"]["code"]


@pytest.mark.django_db
def test_without_a_sunset_everything_is_normal(alice, api, otp_test_numbers):
    assert current_phase() == "normal"
    ensure_writable("message.send")
    assert alice.client.get("/api/v1/announcements").json() == []
    assert _sign_up(api, TEST_PHONE_PREFIX + "001").status_code == 200


@pytest.mark.django_db
def test_before_the_announcement_time_nothing_is_announced(alice, api, otp_test_numbers):
    make_sunset("normal")
    assert current_phase() == "normal"
    assert alice.client.get("/api/v1/announcements").json() == []
    assert _sign_up(api, TEST_PHONE_PREFIX + "002").status_code == 200


@pytest.mark.django_db
def test_announced_phase_lists_the_announcement_and_still_accepts_writes(alice, api, otp_test_numbers):
    sunset = make_sunset("announced", message="MiTalk-style closing: take your data with you.")
    body = alice.client.get("/api/v1/announcements").json()
    assert body == [{
        "id": str(sunset.pk), "message": "MiTalk-style closing: take your data with you.",
        "announce_at": body[0]["announce_at"], "read_only_at": body[0]["read_only_at"],
        "shutdown_at": body[0]["shutdown_at"], "phase": "announced",
    }]
    assert body[0]["announce_at"].endswith("Z")
    ensure_writable("message.send")
    assert _sign_up(api, TEST_PHONE_PREFIX + "003").status_code == 200


@pytest.mark.django_db
def test_announcements_need_authentication(api):
    make_sunset("announced")
    assert api.get("/api/v1/announcements").status_code == 401


@pytest.mark.django_db
def test_read_only_refuses_signup_and_sends_but_login_export_and_history_work(
        alice, bob, api, otp_test_numbers, django_capture_on_commit_callbacks):
    from accounts.models import User
    from accounts.services import _sign_in
    from messaging.services import conversation_create, message_send

    existing = TEST_PHONE_PREFIX + "004"
    _sign_in(e164=existing, device_name="Old phone", platform="ios")
    direct, _ = conversation_create(creator=alice.user, type="direct", user_id=bob.user.pk)
    message_send(sender=bob.user, conversation_id=direct["id"],
                 payload={"client_id": str(uuid.uuid4()), "type": "text", "text": "before the end"})
    make_sunset("read_only")

    history = alice.client.get(f"/api/v1/conversations/{direct['id']}/messages")
    assert history.status_code == 200
    assert [m["text"] for m in history.json()["messages"]] == ["before the end"]
    sync = alice.client.get("/api/v1/sync")
    assert sync.status_code == 200 and any(e["type"] == "message.new" for e in sync.json()["events"])
    assert alice.client.get("/api/v1/conversations").status_code == 200

    refused = _sign_up(api, TEST_PHONE_PREFIX + "005")
    assert refused.status_code == 403
    assert _error_code(refused) == "service_read_only"
    assert refused.json()["error"]["details"]["action"] == "signup"
    assert not User.objects.filter(phone=TEST_PHONE_PREFIX + "005").exists(), "the refused user is rolled back"

    login = _sign_up(api, existing)
    assert login.status_code == 200 and login.json()["is_new_user"] is False

    sent = alice.client.post(f"/api/v1/conversations/{direct['id']}/messages",
                             {"client_id": str(uuid.uuid4()), "type": "text", "text": "too late"}, format="json")
    assert sent.status_code == 403 and _error_code(sent) == "service_read_only"
    from messaging.services import SendRequest, message_send_many  # the socket's group-commit path

    batch = message_send_many([SendRequest(sender=alice.user, conversation_id=direct["id"],
                                           payload={"client_id": str(uuid.uuid4()), "type": "text", "text": "x"})])
    assert isinstance(batch[0], ServiceReadOnly) and batch[0].code == "service_read_only"
    assert [m["text"] for m in alice.client.get(f"/api/v1/conversations/{direct['id']}/messages").json()["messages"]] \
        == ["before the end"]

    assert alice.client.get("/api/v1/me").status_code == 200
    assert alice.client.get("/api/v1/announcements").json()[0]["phase"] == "read_only"
    with django_capture_on_commit_callbacks(execute=True):
        requested = alice.client.post("/api/v1/me/exports")
    assert requested.status_code == 202
    export = alice.client.get(f"/api/v1/me/exports/{requested.json()['id']}").json()
    assert export["status"] == "ready"
    assert alice.client.get(f"/api/v1/me/exports/{export['id']}/download").status_code == 200


@pytest.mark.django_db
def test_shutdown_answers_503_except_export_announcements_and_login(alice, api, otp_test_numbers,
                                                                    django_capture_on_commit_callbacks):
    from accounts.services import _sign_in

    existing = TEST_PHONE_PREFIX + "006"
    _sign_in(e164=existing, device_name="Old phone", platform="ios")
    make_sunset("shutdown")

    closed = alice.client.get("/api/v1/me")
    assert closed.status_code == 503
    assert _error_code(closed) == "service_shut_down"
    for path in ("/api/v1/devices", "/api/v1/conversations", "/api/v1/sync", "/api/v1/contacts"):
        assert alice.client.get(path).status_code == 503, path

    assert alice.client.get("/api/v1/announcements").json()[0]["phase"] == "shutdown"
    with django_capture_on_commit_callbacks(execute=True):
        requested = alice.client.post("/api/v1/me/exports")
    assert requested.status_code == 202
    assert alice.client.get(f"/api/v1/me/exports/{requested.json()['id']}/download").status_code == 200
    assert _sign_up(api, existing).status_code == 200
    refused = _sign_up(api, TEST_PHONE_PREFIX + "007")
    assert refused.status_code == 403 and _error_code(refused) == "service_read_only"
    assert api.get("/healthz").status_code in (200, 503)  # health is never gated by the sunset


@pytest.mark.django_db
def test_cancelling_returns_the_service_to_normal(alice, django_capture_on_commit_callbacks):
    make_sunset("read_only")
    assert current_phase() == "read_only"
    with django_capture_on_commit_callbacks(execute=True):
        services.sunset_cancel()
    assert current_phase() == "normal"
    assert alice.client.get("/api/v1/announcements").json() == []


@pytest.mark.django_db
def test_the_newest_schedule_rules(alice):
    make_sunset("read_only")
    make_sunset("normal")
    assert current_phase() == "normal"


def _future(minutes: int):
    return timezone.now() + timedelta(minutes=minutes)


@pytest.mark.django_db
@pytest.mark.parametrize(("announce", "read_only", "shutdown", "field"), [
    (30, 10, 60, "read_only_at"),     # read-only before announcement
    (10, 60, 30, "shutdown_at"),      # shutdown before read-only
    (-120, 60, 90, "announce_at"),    # in the past
])
def test_schedule_out_of_order_or_in_the_past_is_refused(announce, read_only, shutdown, field):
    with pytest.raises(ValidationFailed) as caught:
        services.sunset_schedule(announce_at=_future(announce), read_only_at=_future(read_only),
                                 shutdown_at=_future(shutdown), message="Closing.")
    assert field in caught.value.details
    assert not Sunset.objects.exists()


@pytest.mark.django_db
def test_schedule_needs_a_message_and_zoned_times():
    naive = timezone.make_naive(_future(10))
    with pytest.raises(ValidationFailed) as caught:
        services.sunset_schedule(announce_at=naive, read_only_at=_future(20), shutdown_at=_future(30), message=" ")
    assert set(caught.value.details) == {"announce_at", "message"}


@pytest.mark.django_db
def test_announcement_reaches_every_active_user_once_in_batches(
        alice, bob, carol, user_factory, settings, pushes, django_capture_on_commit_callbacks):
    settings.SUNSET_ANNOUNCE_BATCH = 2
    extra = [user_factory() for _ in range(2)]
    gone = user_factory()
    gone.user.is_active = False
    gone.user.save()
    users = [alice, bob, carol, *extra]

    with django_capture_on_commit_callbacks(execute=True):
        sunset = services.sunset_schedule(announce_at=timezone.now(), read_only_at=_future(60),
                                          shutdown_at=_future(120), message="Closing in two hours.")

    for member in users:
        events, _ = stream_read(user_id=member.user.pk, after=0, limit=10)
        assert [(e["type"], e["data"]["id"], e["data"]["message"]) for e in events] == [
            ("system.announcement", str(sunset.pk), "Closing in two hours.")]
    assert stream_read(user_id=gone.user.pk, after=0, limit=10)[0] == []
    assert sorted(str(p["user_id"]) for p in pushes) == sorted(str(m.user.pk) for m in users)
    assert {p["kind"] for p in pushes} == {"system.announcement"}
    assert AnnouncementDelivery.objects.filter(sunset=sunset).count() == 5

    # The beat task and a redelivered batch find nothing left to do.
    assert services.sunset_dispatch_due() is None
    with django_capture_on_commit_callbacks(execute=True):
        services.announcement_deliver(sunset_id=sunset.pk, after_user_id=None)
    assert len(stream_read(user_id=alice.user.pk, after=0, limit=10)[0]) == 1
    assert len(pushes) == 5


@pytest.mark.django_db
def test_future_announcement_waits_for_its_time(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        sunset = services.sunset_schedule(announce_at=_future(30), read_only_at=_future(60),
                                          shutdown_at=_future(90), message="Later.")
    assert services.sunset_dispatch_due() is None
    assert stream_read(user_id=alice.user.pk, after=0, limit=10)[0] == []

    with django_capture_on_commit_callbacks(execute=True):
        assert services.sunset_dispatch_due(now=_future(31)) == sunset.pk
    assert [e["type"] for e in stream_read(user_id=alice.user.pk, after=0, limit=10)[0]] == ["system.announcement"]


@pytest.mark.django_db
def test_phase_lookup_outage_fails_open_instead_of_500(alice, monkeypatch):
    from django.db import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError

    for error in (RedisConnectionError("down"), OperationalError("down")):
        def broken(error=error):
            raise error

        monkeypatch.setattr("core.sunset.current_schedule", broken)
        assert alice.client.get("/api/v1/me").status_code == 200


@pytest.mark.django_db
def test_someone_who_signs_up_after_the_announcement_still_gets_it(
        api, otp_test_numbers, pushes, django_capture_on_commit_callbacks):
    from accounts.models import User

    with django_capture_on_commit_callbacks(execute=True):
        sunset = services.sunset_schedule(announce_at=timezone.now(), read_only_at=_future(60),
                                          shutdown_at=_future(120), message="Closing soon.")
    assert Sunset.objects.get(pk=sunset.pk).dispatched_at is not None

    with django_capture_on_commit_callbacks(execute=True):
        assert _sign_up(api, TEST_PHONE_PREFIX + "008").status_code == 200
    newcomer = User.objects.get(phone=TEST_PHONE_PREFIX + "008")
    events, _ = stream_read(user_id=newcomer.pk, after=0, limit=10)
    assert [(e["type"], e["data"]["id"]) for e in events] == [("system.announcement", str(sunset.pk))]
    assert [p["kind"] for p in pushes if str(p["user_id"]) == str(newcomer.pk)] == ["system.announcement"]
    services.announcement_deliver_to_new_user(user_id=newcomer.pk)  # a repeated hook changes nothing
    assert len(stream_read(user_id=newcomer.pk, after=0, limit=10)[0]) == 1


@pytest.mark.django_db
def test_signup_before_any_announcement_gets_no_event(api, otp_test_numbers, django_capture_on_commit_callbacks):
    from accounts.models import User

    make_sunset("normal")
    with django_capture_on_commit_callbacks(execute=True):
        assert _sign_up(api, TEST_PHONE_PREFIX + "009").status_code == 200
    newcomer = User.objects.get(phone=TEST_PHONE_PREFIX + "009")
    assert stream_read(user_id=newcomer.pk, after=0, limit=10)[0] == []
