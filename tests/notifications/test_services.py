"""Who gets a push, what it says, and that it is sent once (in-process, eager Celery, file backend)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import Device
from accounts.services import device_push_set
from notifications import services
from notifications.models import DeliveryStatus, PushDelivery
from notifications.services import push_deliver, push_fanout, push_notify, push_sweep, retry_delay
from tests.notifications.conftest import read_lines
from tests.notifications.servers import Reply

UNREAD = {"count": 0}


def unread_counter(*, user_id: object) -> int:
    """Stands in for messaging.selectors.unread_total through the PUSH_BADGE_COUNTER setting."""
    return UNREAD["count"]


@pytest.fixture
def phone(bob):
    """Bob's phone, registered for FCM pushes."""
    device_push_set(device=bob.device, provider="fcm", token="fcm-token-bob")
    bob.device.refresh_from_db()
    return bob


def notify_message(user, *, text="Lunch at one?", conversation_id=None, message_id=None, **kwargs):
    push_notify(user_id=user.pk, kind="message.new", title="Alice", body=text,
                conversation_id=conversation_id or "c-1", message_id=message_id or str(uuid.uuid4()), **kwargs)


@pytest.mark.django_db
def test_offline_device_with_token_gets_a_push_after_commit(phone, push_file, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        notify_message(phone.user, message_id="m-1")
        assert read_lines(push_file) == []  # nothing before commit
    assert len(callbacks) == 1
    [line] = read_lines(push_file)
    assert set(line) >= {"device_id", "provider", "token", "kind", "conversation_id", "message_id", "badge",
                         "title", "body", "sent_at"}
    assert line["device_id"] == str(phone.device.pk)
    assert (line["provider"], line["token"], line["kind"]) == ("fcm", "fcm-token-bob", "message.new")
    assert (line["conversation_id"], line["message_id"]) == ("c-1", "m-1")
    assert (line["title"], line["body"], line["silent"]) == ("Alice", "Lunch at one?", False)
    delivery = PushDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SENT and delivery.sent_at is not None
    assert delivery.body == ""  # the text is not kept once sent


@pytest.mark.django_db
def test_rolled_back_transaction_sends_nothing(phone, push_file, django_capture_on_commit_callbacks):
    with (django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError),
          transaction.atomic()):
        notify_message(phone.user)
        raise RuntimeError("message insert failed")
    assert callbacks == []
    assert read_lines(push_file) == []
    assert not PushDelivery.objects.exists()


@pytest.mark.django_db
def test_only_devices_with_a_token_and_no_live_socket_get_pushes(phone, push_file, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    tablet = phone.another_device(name="Tablet", platform="ios")
    device_push_set(device=tablet.device, provider="apns", token="apns-token")
    laptop = phone.another_device(name="Laptop", platform="desktop")  # no push token
    revoked = phone.another_device(name="Old", platform="android")
    device_push_set(device=revoked.device, provider="fcm", token="old-token")
    Device.objects.filter(pk=revoked.device.pk).update(revoked_at=timezone.now())
    # The tablet has a live socket (the realtime presence seam says so).
    monkeypatch.setattr(services, "_online_device_ids", lambda ids: {str(tablet.device.pk)})

    with django_capture_on_commit_callbacks(execute=True):
        notify_message(phone.user)

    assert [line["device_id"] for line in read_lines(push_file)] == [str(phone.device.pk)]
    assert laptop.device.pk not in set(PushDelivery.objects.values_list("device_id", flat=True))


@pytest.mark.django_db
def test_no_push_for_a_deleted_user(phone, push_file, django_capture_on_commit_callbacks):
    phone.user.is_active = False
    phone.user.save()
    with django_capture_on_commit_callbacks(execute=True):
        notify_message(phone.user)
    assert read_lines(push_file) == []


@pytest.mark.django_db
def test_preview_off_sends_no_message_text(phone, push_file, django_capture_on_commit_callbacks):
    phone.user.message_preview_in_push = False
    phone.user.save()
    with django_capture_on_commit_callbacks(execute=True):
        notify_message(phone.user, text="the secret plan", data={"text": "the secret plan", "sender": "u-1"})
    [line] = read_lines(push_file)
    assert line["body"] == "New message"
    assert "secret" not in str(line)
    assert line["data"]["sender"] == "u-1"


@pytest.mark.django_db
def test_muted_conversation_gets_a_silent_data_push_without_alert(phone, push_file,
                                                                  django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notify_message(phone.user, muted=True)
    [line] = read_lines(push_file)
    assert (line["title"], line["body"], line["silent"]) == ("", "", True)
    assert line["kind"] == "message.new"


@pytest.mark.django_db
def test_badge_is_the_users_unread_total(phone, push_file, settings, django_capture_on_commit_callbacks):
    settings.PUSH_BADGE_COUNTER = "tests.notifications.test_services.unread_counter"
    UNREAD["count"] = 7
    with django_capture_on_commit_callbacks(execute=True):
        notify_message(phone.user)
    assert read_lines(push_file)[0]["badge"] == 7


@pytest.mark.django_db
def test_badge_is_zero_while_no_counter_is_configured(phone, push_file, settings,
                                                      django_capture_on_commit_callbacks):
    settings.PUSH_BADGE_COUNTER = ""
    with django_capture_on_commit_callbacks(execute=True):
        notify_message(phone.user)
    assert read_lines(push_file)[0]["badge"] == 0


@pytest.mark.django_db
def test_contact_joined_and_call_ring_are_pushed_at_once(phone, push_file, settings,
                                                         django_capture_on_commit_callbacks):
    settings.PUSH_COLLAPSE_SECONDS = 3
    with django_capture_on_commit_callbacks(execute=True):
        push_notify(user_id=phone.user.pk, kind="contact.joined", title="Carol joined", body="Say hi",
                    dedupe_key=f"contact.joined:{phone.user.pk}:carol")
        push_notify(user_id=phone.user.pk, kind="call.ring", title="Alice", body="Incoming call",
                    conversation_id="c-1", data={"call_id": "call-1"})
    lines = read_lines(push_file)
    assert [line["kind"] for line in lines] == ["contact.joined", "call.ring"]
    assert lines[1]["data"]["call_id"] == "call-1"


# --- Idempotency ------------------------------------------------------------------------


@pytest.mark.django_db
def test_fanout_run_twice_sends_once(phone, push_file):
    kwargs = {"user_id": str(phone.user.pk), "kind": "message.new", "title": "Alice", "body": "hi",
              "dedupe_key": "message.new:m-1", "conversation_id": "c-1", "message_id": "m-1"}
    push_fanout(**kwargs)
    push_fanout(**kwargs)
    assert len(read_lines(push_file)) == 1
    assert PushDelivery.objects.count() == 1


@pytest.mark.django_db
def test_delivery_task_run_again_after_success_sends_nothing(phone, push_file):
    delivery = PushDelivery.objects.create(dedupe_key="message.new:m-9", device=phone.device, kind="message.new",
                                           conversation_id="c-1", message_id="m-9", title="A", body="b")
    assert push_deliver(delivery_id=delivery.pk, claim="task-1") is None
    assert push_deliver(delivery_id=delivery.pk, claim="task-1") is None  # redelivered
    assert push_deliver(delivery_id=delivery.pk, claim="task-2") is None  # a duplicate task
    assert len(read_lines(push_file)) == 1


@pytest.mark.django_db
def test_task_redelivered_after_worker_died_mid_send_sends_its_row_again(phone, push_file):
    """The at-least-once boundary: a row left SENDING by the same task id is resent once."""
    delivery = PushDelivery.objects.create(dedupe_key="message.new:m-2", device=phone.device, kind="message.new",
                                           conversation_id="c-1", message_id="m-2", title="A", body="b",
                                           status=DeliveryStatus.SENDING, claim="task-7",
                                           claimed_at=timezone.now(), attempts=1)
    assert push_deliver(delivery_id=delivery.pk, claim="task-other") is None
    assert read_lines(push_file) == []  # someone else holds a fresh claim
    assert push_deliver(delivery_id=delivery.pk, claim="task-7") is None
    assert len(read_lines(push_file)) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)


# --- Collapsing ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_messages_within_the_window_collapse_into_one_notification(phone, push_file, settings):
    settings.PUSH_COLLAPSE_SECONDS = 3
    # A window is already open for this device and conversation: the fan-outs only add rows,
    # and the window's one delivery task (run by hand here) carries them all.
    cache.set(services._window_key(device_id=phone.device.pk, conversation_id="c-1", kind="message.new"), 1, 30)
    for index in range(3):
        assert push_fanout(user_id=str(phone.user.pk), kind="message.new", title="Alice", body=f"text {index}",
                           dedupe_key=f"message.new:m-{index}", conversation_id="c-1", message_id=f"m-{index}") == []
    first = PushDelivery.objects.order_by("pk").first()

    assert push_deliver(delivery_id=first.pk, claim="window-task") is None

    [line] = read_lines(push_file)
    assert (line["message_id"], line["body"], line["count"]) == ("m-2", "text 2", 3)
    assert line["collapse_key"] == "message.new:c-1"
    statuses = dict(PushDelivery.objects.values_list("message_id", "status"))
    assert statuses == {"m-0": "collapsed", "m-1": "collapsed", "m-2": "sent"}
    # The window is closed: the next message opens a new one.
    assert cache.get(services._window_key(device_id=phone.device.pk, conversation_id="c-1",
                                          kind="message.new")) is None


@pytest.mark.django_db
def test_collapsed_window_with_preview_off_says_how_many(phone, push_file, settings):
    settings.PUSH_COLLAPSE_SECONDS = 3
    phone.user.message_preview_in_push = False
    phone.user.save()
    cache.set(services._window_key(device_id=phone.device.pk, conversation_id="c-1", kind="message.new"), 1, 30)
    for index in range(2):
        push_fanout(user_id=str(phone.user.pk), kind="message.new", title="Alice", body="secret",
                    dedupe_key=f"message.new:m-{index}", conversation_id="c-1", message_id=f"m-{index}")
    push_deliver(delivery_id=PushDelivery.objects.order_by("pk").first().pk, claim="t")
    [line] = read_lines(push_file)
    assert line["body"] == "2 new messages"


@pytest.mark.django_db
def test_other_conversations_do_not_collapse_together(phone, push_file, settings):
    settings.PUSH_COLLAPSE_SECONDS = 3
    for conversation in ("c-1", "c-2"):
        cache.set(services._window_key(device_id=phone.device.pk, conversation_id=conversation,
                                       kind="message.new"), 1, 30)
        push_fanout(user_id=str(phone.user.pk), kind="message.new", title="Alice", body=conversation,
                    dedupe_key=f"message.new:{conversation}", conversation_id=conversation, message_id=conversation)
    for delivery in PushDelivery.objects.order_by("pk"):
        push_deliver(delivery_id=delivery.pk, claim=f"t-{delivery.pk}")
    assert sorted(line["body"] for line in read_lines(push_file)) == ["c-1", "c-2"]


@pytest.mark.django_db
def test_device_that_came_online_during_the_window_is_skipped(phone, push_file, settings, monkeypatch):
    settings.PUSH_COLLAPSE_SECONDS = 3
    cache.set(services._window_key(device_id=phone.device.pk, conversation_id="c-1", kind="message.new"), 1, 30)
    push_fanout(user_id=str(phone.user.pk), kind="message.new", title="A", body="b",
                dedupe_key="message.new:m-1", conversation_id="c-1", message_id="m-1")
    monkeypatch.setattr(services, "_online_device_ids", lambda ids: {str(phone.device.pk)})
    push_deliver(delivery_id=PushDelivery.objects.get().pk, claim="t")
    assert read_lines(push_file) == []
    assert PushDelivery.objects.get().status == DeliveryStatus.SKIPPED


# --- Provider outcomes through the service ---------------------------------------------------------


FCM_SEND = "/v1/projects/demo-project/messages:send"


@pytest.fixture
def real_fcm(settings, fcm_settings):
    settings.PUSH_BACKEND = "real"
    settings.PUSH_PROVIDERS = ["fcm"]
    settings.PUSH_COLLAPSE_SECONDS = 0
    return fcm_settings


UNREGISTERED = Reply(404, {"error": {"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}})


def countdown_elapsed(delivery):
    """What the retry's countdown does in real time."""
    PushDelivery.objects.filter(pk=delivery.pk).update(not_before=timezone.now())


def fresh_delivery(device, key="message.new:m-1"):
    return PushDelivery.objects.create(dedupe_key=key, device=device, kind="message.new", conversation_id="c-1",
                                       message_id="m-1", title="Alice", body="hi")


@pytest.mark.django_db
def test_transient_error_schedules_a_retry_not_before_retry_after_then_sends(phone, real_fcm):
    real_fcm.script(FCM_SEND, Reply(429, {"error": {"status": "RESOURCE_EXHAUSTED"}}, headers={"Retry-After": "9"}),
                    Reply(200, {"name": "ok"}))
    delivery = fresh_delivery(phone.device)

    later = push_deliver(delivery_id=delivery.pk, claim="t")
    assert later is not None and later.delivery_id == delivery.pk and later.countdown >= 9
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.claim) == (DeliveryStatus.PENDING, 1, "")

    countdown_elapsed(delivery)
    assert push_deliver(delivery_id=delivery.pk, claim="t") is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)
    assert len(real_fcm.requests_to(FCM_SEND)) == 2


@pytest.mark.django_db
def test_retries_stop_after_max_attempts(phone, real_fcm, settings):
    settings.PUSH_MAX_ATTEMPTS = 3
    real_fcm.script(FCM_SEND, Reply(503, {"error": {"status": "UNAVAILABLE"}}))
    delivery = fresh_delivery(phone.device)
    results = []
    for _ in range(4):
        results.append(push_deliver(delivery_id=delivery.pk, claim="t"))
        countdown_elapsed(delivery)
    assert [r is not None for r in results] == [True, True, False, False]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "retries exhausted" in delivery.last_error
    assert len(real_fcm.requests_to(FCM_SEND)) == 3


@pytest.mark.django_db
def test_unregistered_token_is_removed_from_the_device(phone, real_fcm):
    real_fcm.script(FCM_SEND, UNREGISTERED)
    delivery = fresh_delivery(phone.device)
    assert push_deliver(delivery_id=delivery.pk, claim="t") is None
    phone.device.refresh_from_db()
    assert (phone.device.push_token, phone.device.push_provider) == ("", "")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.TOKEN_GONE


@pytest.mark.django_db
def test_gone_token_does_not_clear_a_token_registered_meanwhile(phone, real_fcm):
    """The app re-registered while the push was in flight: only the dead token is removed."""
    real_fcm.script(FCM_SEND, UNREGISTERED)
    delivery = fresh_delivery(phone.device)
    original = services._send

    def send_then_reregister(message):
        outcome = original(message)
        device_push_set(device=phone.device, provider="fcm", token="fcm-token-new")
        return outcome

    services._send = send_then_reregister
    try:
        push_deliver(delivery_id=delivery.pk, claim="t")
    finally:
        services._send = original
    phone.device.refresh_from_db()
    assert phone.device.push_token == "fcm-token-new"


@pytest.mark.django_db
def test_permanent_error_fails_the_push_and_keeps_the_token(phone, real_fcm):
    real_fcm.script(FCM_SEND, Reply(400, {"error": {"status": "INVALID_ARGUMENT", "message": "Invalid JSON payload"}}))
    delivery = fresh_delivery(phone.device)
    assert push_deliver(delivery_id=delivery.pk, claim="t") is None
    delivery.refresh_from_db()
    phone.device.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert phone.device.push_token == "fcm-token-bob"


@pytest.mark.django_db
def test_device_without_an_enabled_provider_fails_that_push_only(phone, real_fcm):
    device_push_set(device=phone.device, provider="apns", token="apns-token")
    delivery = fresh_delivery(phone.device)
    push_deliver(delivery_id=delivery.pk, claim="t")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "not enabled" in delivery.last_error


def test_retry_delay_grows_exponentially_with_jitter_and_honours_retry_after(settings):
    settings.PUSH_RETRY_BASE_SECONDS = 2
    settings.PUSH_RETRY_MAX_SECONDS = 300
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (10, 300)]:
        delays = {retry_delay(attempt=attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    assert retry_delay(attempt=1, retry_after=120) >= 120


# --- Sweep --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sweep_sends_a_delivery_whose_task_was_lost_and_deletes_old_rows(phone, push_file, settings):
    settings.PUSH_COLLAPSE_SECONDS = 0
    lost = fresh_delivery(phone.device, key="message.new:lost")
    PushDelivery.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    waiting = fresh_delivery(phone.device, key="message.new:waiting")  # just created: its task is coming
    old = fresh_delivery(phone.device, key="message.new:old")
    PushDelivery.objects.filter(pk=old.pk).update(status=DeliveryStatus.SENT,
                                                  updated_at=timezone.now() - timedelta(days=30))

    assert push_sweep() == {"requeued": 1, "deleted": 1}

    assert [line["message_id"] for line in read_lines(push_file)] == ["m-1"]
    assert PushDelivery.objects.get(pk=lost.pk).status == DeliveryStatus.SENT
    assert PushDelivery.objects.get(pk=waiting.pk).status == DeliveryStatus.PENDING
    assert not PushDelivery.objects.filter(pk=old.pk).exists()


@pytest.mark.django_db
def test_embedded_eager_mode_leaves_a_retry_to_the_sweep(phone, real_fcm, django_capture_on_commit_callbacks):
    """Without a broker a countdown cannot be waited out: the row stays pending, the sender is unharmed."""
    real_fcm.script(FCM_SEND, Reply(503, {"error": {"status": "UNAVAILABLE"}}), Reply(200, {"name": "ok"}))
    with django_capture_on_commit_callbacks(execute=True):
        notify_message(phone.user)
    delivery = PushDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    PushDelivery.objects.filter(pk=delivery.pk).update(updated_at=timezone.now() - timedelta(minutes=5),
                                                       not_before=timezone.now() - timedelta(minutes=4))
    push_sweep()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert len(real_fcm.requests_to(FCM_SEND)) == 2


# --- Presence seam and query cost ----------------------------------------------------------


def test_online_devices_come_from_realtime_presence(alice):
    from streams.presence import device_offline, device_online

    tablet = alice.another_device()
    device_online(user_id=alice.user.pk, device_id=tablet.device.pk)
    assert services._online_device_ids([alice.device.pk, tablet.device.pk]) == {str(tablet.device.pk)}
    device_offline(user_id=alice.user.pk, device_id=tablet.device.pk)
    assert services._online_device_ids([alice.device.pk, tablet.device.pk]) == set()


@pytest.mark.django_db
@pytest.mark.parametrize("devices", [1, 4])
def test_fanout_costs_the_same_queries_for_any_number_of_devices(bob, devices, django_assert_num_queries):
    from config.celery import app

    for index in range(devices):
        extra = bob.another_device(name=f"D{index}", platform="android")
        device_push_set(device=extra.device, provider="fcm", token=f"token-{index}")
    app.conf.task_always_eager = False  # deliveries go to Redis; no worker runs them here
    with django_assert_num_queries(3):  # devices, insert deliveries, read them back
        scheduled = push_fanout(user_id=str(bob.user.pk), kind="contact.joined", title="Carol joined", body="",
                                dedupe_key="contact.joined:x")
    assert len(scheduled) == devices


def broken_counter(*, user_id: object) -> int:
    raise RuntimeError("unread counter down")


@pytest.mark.django_db
def test_a_failing_badge_counter_does_not_stop_the_push(phone, push_file, settings,
                                                        django_capture_on_commit_callbacks):
    settings.PUSH_BADGE_COUNTER = "tests.notifications.test_services.broken_counter"
    with django_capture_on_commit_callbacks(execute=True):
        notify_message(phone.user)
    assert read_lines(push_file)[0]["badge"] == 0


@pytest.mark.django_db
def test_call_ring_is_urgent_and_short_lived(phone, real_fcm, django_capture_on_commit_callbacks):
    real_fcm.script(FCM_SEND, Reply(200, {"name": "ok"}))
    call_id = uuid.uuid4()
    with django_capture_on_commit_callbacks(execute=True):
        push_notify(user_id=phone.user.pk, kind="call.ring", title="Alice", body="Incoming video call",
                    conversation_id="c-1", data={"call_id": call_id, "media": "video"})
    message = real_fcm.requests_to(FCM_SEND)[0].json()["message"]
    assert message["android"]["priority"] == "high"
    assert message["android"]["ttl"] == "45s"
    assert message["data"]["call_id"] == str(call_id)


@pytest.mark.django_db
def test_deleting_the_account_drops_its_open_pushes_and_their_text(phone):
    from accounts.services import user_delete

    delivery = fresh_delivery(phone.device)
    user_delete(user=phone.user)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.title, delivery.body) == (DeliveryStatus.SKIPPED, "", "")
    assert push_deliver(delivery_id=delivery.pk, claim="t") is None


@pytest.mark.django_db
def test_long_retry_after_is_waited_out_in_hops_shorter_than_the_visibility_timeout(phone, real_fcm, settings):
    """Redis hands an ETA task out again once it is held past the visibility timeout; never schedule one that long."""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "visibility_timeout": 600}
    real_fcm.script(FCM_SEND, Reply(429, {"error": {"status": "RESOURCE_EXHAUSTED"}}, headers={"Retry-After": "3000"}))
    delivery = fresh_delivery(phone.device)

    later = push_deliver(delivery_id=delivery.pk, claim="t")
    assert later.countdown == 300
    delivery.refresh_from_db()
    assert 2990 <= (delivery.not_before - timezone.now()).total_seconds() <= 3000

    # The hop arrives early: it waits again without calling the provider or spending an attempt.
    again = push_deliver(delivery_id=delivery.pk, claim="t")
    assert again is not None and again.countdown == 300
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert len(real_fcm.requests_to(FCM_SEND)) == 1
