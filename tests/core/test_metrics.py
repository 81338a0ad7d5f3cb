"""Metrics: /metrics access, and each metric moves when its event happens."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.conf import settings as django_settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from config.celery import app
from contacts.services import pepper_ensure_current
from exports.models import Export
from tests.realtime.conftest import open_socket

TOKEN = "metrics-token-for-tests"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client, token: str = TOKEN) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    out = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def direct(a, b) -> str:
    response = a.client.post("/api/v1/conversations", {"type": "direct", "user_id": str(b.user.pk)}, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()["id"]


# --- Access ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_is_404_when_no_token_is_configured(client, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_metrics_needs_the_token(client, metrics_token):
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthenticated"
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
    basic = client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}")
    assert basic.status_code == 401
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
    ok = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200 and ok["Content-Type"].startswith("text/plain")
    body = ok.content.decode()
    for name in ("messenger_live_sockets", "messenger_ws_frames_total", "messenger_messages_sent_total",
                 "messenger_send_seconds", "messenger_stream_append_events", "messenger_push_total",
                 "messenger_celery_queue_depth", "messenger_celery_task_seconds", "messenger_contact_syncs_total",
                 "messenger_otp_requests_total", "messenger_otp_refusals_total", "messenger_export_queue"):
        assert name in body, name


# --- Sends, streams, sockets ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_rest_send_moves_messages_commit_ring_and_stream_append(alice, bob, django_capture_on_commit_callbacks):
    conversation = direct(alice, bob)
    before = {
        "sent": value("messenger_messages_sent_total"),
        "commit": value("messenger_send_seconds_count", phase="commit"),
        "ring": value("messenger_send_seconds_count", phase="ring"),
        "appends": value("messenger_stream_append_events_count"),
        "events": value("messenger_stream_append_events_sum"),
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.client.post(f"/api/v1/conversations/{conversation}/messages",
                                     {"client_id": str(uuid.uuid4()), "type": "text", "text": "hi"}, format="json")
    assert response.status_code == 201
    assert value("messenger_messages_sent_total") == before["sent"] + 1
    assert value("messenger_send_seconds_count", phase="commit") == before["commit"] + 1
    assert value("messenger_send_seconds_count", phase="ring") >= before["ring"] + 1
    assert value("messenger_stream_append_events_count") == before["appends"] + 1
    assert value("messenger_stream_append_events_sum") == before["events"] + 2  # alice's and bob's event


@pytest.mark.django_db
def test_a_retried_client_id_is_not_counted_as_a_new_message(alice, bob):
    conversation = direct(alice, bob)
    body = {"client_id": str(uuid.uuid4()), "type": "text", "text": "once"}
    alice.client.post(f"/api/v1/conversations/{conversation}/messages", body, format="json")
    before = value("messenger_messages_sent_total")
    assert alice.client.post(f"/api/v1/conversations/{conversation}/messages", body, format="json").status_code == 200
    assert value("messenger_messages_sent_total") == before


@pytest.mark.django_db(transaction=True)
async def test_sockets_frames_and_send_batches_are_counted(alice, bob):
    conversation = await _adirect(alice, bob)
    live = value("messenger_live_sockets")
    frames_in, frames_out = value("messenger_ws_frames_total", direction="in"), value(
        "messenger_ws_frames_total", direction="out")
    batches = value("messenger_send_batch_size_count")
    client = await open_socket(alice.token)
    assert value("messenger_live_sockets") == live + 1
    await client.send({"type": "ping"})
    assert (await client.recv_type("pong"))["type"] == "pong"
    await client.send({"type": "message.send", "ref": "r1", "conversation_id": conversation,
                       "message": {"client_id": str(uuid.uuid4()), "type": "text", "text": "over the socket"}})
    await client.recv_type("message.sent")
    assert value("messenger_ws_frames_total", direction="in") == frames_in + 2
    assert value("messenger_ws_frames_total", direction="out") >= frames_out + 2
    assert value("messenger_send_batch_size_count") == batches + 1
    await client.close()
    assert value("messenger_live_sockets") == live


async def _adirect(a, b) -> str:
    from channels.db import database_sync_to_async

    return await database_sync_to_async(direct)(a, b)


@pytest.mark.django_db(transaction=True)
async def test_an_unauthenticated_socket_is_not_a_live_socket():
    live = value("messenger_live_sockets")
    client = await open_socket("not-a-token")
    assert await client.closed_with() == 4001
    assert value("messenger_live_sockets") == live


# --- OTP, contacts, exports ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_otp_requests_and_refusals_by_reason(api, settings):
    settings.SMS_BACKEND = "console"
    settings.OTP_LIMIT_PER_IP = (1, 3600)
    url = "/api/v1/auth/otp/request"
    requests = value("messenger_otp_requests_total")
    refused = {reason: value("messenger_otp_refusals_total", reason=reason)
               for reason in ("invalid_phone", "resend_cooldown", "per_ip")}
    assert api.post(url, {"phone": "+447911123555"}, format="json", REMOTE_ADDR="10.9.0.1").status_code == 202
    assert api.post(url, {"phone": "12"}, format="json", REMOTE_ADDR="10.9.0.1").status_code == 400
    assert api.post(url, {"phone": "+447911123555"}, format="json", REMOTE_ADDR="10.9.0.1").status_code == 429
    assert api.post(url, {"phone": "+447911123556"}, format="json", REMOTE_ADDR="10.9.0.1").status_code == 429
    assert value("messenger_otp_requests_total") == requests + 4
    assert value("messenger_otp_refusals_total", reason="invalid_phone") == refused["invalid_phone"] + 1
    assert value("messenger_otp_refusals_total", reason="resend_cooldown") == refused["resend_cooldown"] + 1
    assert value("messenger_otp_refusals_total", reason="per_ip") == refused["per_ip"] + 1


@pytest.mark.django_db
def test_contact_syncs_are_counted_by_mode(alice):
    pepper = pepper_ensure_current()
    before = value("messenger_contact_syncs_total", mode="replace")
    hashes_before = value("messenger_contact_sync_hashes_sum")
    response = alice.client.post("/api/v1/contacts/sync", {"pepper_id": pepper.pk, "mode": "replace",
                                                           "hashes": ["ab" * 32, "cd" * 32]}, format="json")
    assert response.status_code == 200, response.content
    assert value("messenger_contact_syncs_total", mode="replace") == before + 1
    assert value("messenger_contact_sync_hashes_sum") == hashes_before + 2


@pytest.mark.django_db
def test_export_queue_counts_pending_exports(alice, client, metrics_token, django_capture_on_commit_callbacks):
    assert scrape(client)[("messenger_export_queue", (("status", "pending"),))] == 0
    with django_capture_on_commit_callbacks(execute=False):  # no worker picks it up
        assert alice.client.post("/api/v1/me/exports").status_code == 202
    assert Export.objects.filter(status="pending").count() == 1
    assert scrape(client)[("messenger_export_queue", (("status", "pending"),))] == 1


# --- Celery ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_task_run_is_timed_and_counted(alice):
    from notifications.tasks import push_sweep

    runs = value("messenger_celery_task_seconds_count", task="notifications.push_sweep", phase="run")
    done = value("messenger_celery_tasks_total", task="notifications.push_sweep", state="success")
    push_sweep.delay()  # eager in this process
    assert value("messenger_celery_task_seconds_count", task="notifications.push_sweep", phase="run") == runs + 1
    assert value("messenger_celery_tasks_total", task="notifications.push_sweep", state="success") == done + 1


@pytest.mark.django_db
def test_queue_depth_is_read_from_the_broker(client, metrics_token):
    if not django_settings.REDIS_URL:
        pytest.fail("needs REDIS_URL")
    from media.tasks import delete_unreferenced
    from notifications.tasks import push_sweep

    app.conf.task_always_eager = False  # publish for real; no worker is running
    push_sweep.delay()
    push_sweep.delay()
    delete_unreferenced.delay()
    depths = scrape(client)
    assert depths[("messenger_celery_queue_depth", (("queue", "push"),))] == 2
    assert depths[("messenger_celery_queue_depth", (("queue", "media"),))] == 1
    assert depths[("messenger_celery_queue_depth", (("queue", "default"),))] == 0
    redis.Redis.from_url(django_settings.REDIS_URL).delete("push", "media")


# --- HTTP and moderation -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_http_requests_are_counted_by_status_class(alice):
    ok, missing = value("messenger_http_requests_total", method="GET", status="2xx"), value(
        "messenger_http_requests_total", method="GET", status="4xx")
    seconds = value("messenger_http_request_seconds_count")
    alice.client.get("/api/v1/me")
    alice.client.get("/api/v1/nothing-here")
    assert value("messenger_http_requests_total", method="GET", status="2xx") == ok + 1
    assert value("messenger_http_requests_total", method="GET", status="4xx") == missing + 1
    assert value("messenger_http_request_seconds_count") == seconds + 2


@pytest.mark.django_db
def test_reports_suspensions_and_throttled_sends_are_counted(alice, bob, settings):
    from moderation import services as moderation_services
    from moderation import spam
    from tests.factories import sign_in

    reports = value("messenger_reports_total", reason="spam", target="user")
    suspensions = value("messenger_suspensions_total")
    throttled = value("messenger_spam_throttled_total")
    assert alice.client.post("/api/v1/reports", {"reason": "spam", "user_id": str(bob.user.pk)},
                             format="json").status_code == 201
    assert value("messenger_reports_total", reason="spam", target="user") == reports + 1
    moderation_services.user_suspend(user_id=bob.user.pk, staff=None)
    assert value("messenger_suspensions_total") == suspensions + 1
    settings.SPAM_SCORE_LIMIT = 1
    spam.forget_known()
    first, second = sign_in(), sign_in()
    assert direct_send(alice, first).status_code == 201
    assert direct_send(alice, second).status_code == 429
    assert value("messenger_spam_throttled_total") == throttled + 1


def direct_send(sender, other):
    conversation = direct(sender, other)
    return sender.client.post(f"/api/v1/conversations/{conversation}/messages",
                              {"client_id": str(uuid.uuid4()), "type": "text", "text": "hi"}, format="json")
