"""JSON logs: the fields of each line, the request id carried into tasks, and no personal data."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings as django_settings

from config.celery import app
from contacts.services import pepper_ensure_current
from core.logging import ContextFilter, JsonFormatter, ScrubFilter, clean_request_id, logging_config, scrub

PHONE = "+447911123777"
TEXT = "meet me at the blue door at nine"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG and above, through the production JSON handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(ScrubFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_scrub_removes_numbers_and_tokens_but_keeps_ids_and_addresses():
    token = "k3Jx9_QpL2mN8vR4tY7wZ1aB5cD6eF0gH2iJ4kL6mN8"
    text = scrub(f"to +44 7700 900123 or 07700900123 token={token} Bearer abc.def "
                 "user 550e8400-e29b-41d4-a716-446655440000 at 127.0.0.1 took 12 ms")
    assert "7700" not in text and token not in text and "abc.def" not in text
    assert "550e8400-e29b-41d4-a716-446655440000" in text and "127.0.0.1" in text and "12 ms" in text


def test_json_formatter_writes_only_its_fields_and_allowed_extras(json_log):
    logging.getLogger("messenger.test").info(
        "task %s", "x", extra={"task": "t", "duration_ms": 1.5, "data": {"args": [PHONE, "123456"]}})
    [line] = lines(json_log)
    assert set(line) == {"ts", "level", "logger", "message", "request_id", "task", "duration_ms"}
    assert (line["level"], line["logger"], line["message"], line["task"]) == ("info", "messenger.test", "task x", "t")
    assert PHONE not in json.dumps(line)


def test_an_exception_is_one_line_with_its_traceback_scrubbed(json_log):
    try:
        raise ValueError(f"bad number {PHONE}")
    except ValueError:
        logging.getLogger("messenger.test").exception("failed")
    [line] = lines(json_log)
    assert "ValueError" in line["exc"] and PHONE not in line["exc"]


def test_client_request_ids_are_kept_only_when_plain():
    assert clean_request_id("abc-123") == "abc-123"
    assert clean_request_id("+447911123777") != "+447911123777"
    assert len(clean_request_id("x" * 200)) == 32
    assert len(clean_request_id(None)) == 32


def test_logging_config_selects_the_formatter():
    assert logging_config(log_format="json", level="INFO")["handlers"]["console"]["formatter"] == "json"
    assert logging_config(log_format="text", level="INFO")["handlers"]["console"]["formatter"] == "plain"
    # uvicorn's own access line (raw path and query) is replaced by ours
    assert logging_config(log_format="json", level="INFO")["loggers"]["uvicorn.access"]["level"] == "WARNING"


@pytest.mark.django_db
def test_one_line_per_request_with_its_fields_and_the_request_id_echoed(json_log, alice):
    response = alice.client.get("/api/v1/me", HTTP_X_REQUEST_ID="trace-42")
    assert response.status_code == 200 and response["X-Request-ID"] == "trace-42"
    [line] = [entry for entry in lines(json_log) if entry.get("event") == "request"]
    assert line["request_id"] == "trace-42"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/api/v1/me", 200)
    assert line["user_id"] == str(alice.user.pk) and line["duration_ms"] >= 0
    unknown = alice.client.get("/api/v1/no/such/+447911123777")
    assert unknown.status_code == 404 and len(unknown["X-Request-ID"]) == 32
    assert lines(json_log)[-1]["route"] == "(unmatched)"


@pytest.mark.django_db
def test_a_task_run_in_the_request_logs_one_line_with_the_request_id(json_log, settings):
    """Eager mode (no broker): the task runs inside the request and keeps its id."""
    from accounts.tasks import otp_sms_sealed, send_otp_sms
    from core.logging import request_id_var

    settings.SMS_BACKEND = "console"
    token = request_id_var.set("signup-7")
    try:
        send_otp_sms.delay(otp_sms_sealed(to=PHONE, code="123456"))
    finally:
        request_id_var.reset(token)
    tasks = [entry for entry in lines(json_log) if entry.get("event") == "task"]
    assert [(t["task"], t["state"], t["request_id"]) for t in tasks] == [("accounts.send_otp_sms", "success",
                                                                          "signup-7")]
    assert tasks[0]["duration_ms"] >= 0
    assert PHONE not in json_log.getvalue() and "123456" not in json_log.getvalue()


@pytest.mark.django_db
def test_a_published_task_carries_the_request_id_in_its_headers(alice):
    if not django_settings.REDIS_URL:
        pytest.fail("needs REDIS_URL")
    from core.logging import request_id_var
    from notifications.tasks import push_sweep

    app.conf.task_always_eager = False
    token = request_id_var.set("from-the-request")
    try:
        push_sweep.delay()
    finally:
        request_id_var.reset(token)
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    [raw] = client.lrange("push", 0, -1)
    client.delete("push")
    headers = json.loads(raw)["headers"]
    assert headers["request_id"] == "from-the-request" and isinstance(headers["sent_at"], float)


@pytest.mark.django_db
def test_no_phone_number_token_or_message_text_in_any_log_line(json_log, api, settings, bob,
                                                               django_capture_on_commit_callbacks):
    """A whole session: sign-up (SMS), profile, contacts, a message and its push, a bad request."""
    settings.SMS_BACKEND = "console"
    settings.PUSH_BACKEND = "log"
    from accounts.services import device_push_set

    device_push_set(device=bob.device, provider="fcm", token="fcm-push-token-of-bob-0123456789abcdef0123")
    settings.OTP_TEST_NUMBERS = ["+44791112"]
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/v1/auth/otp/request", {"phone": PHONE}, format="json")
    verified = api.post("/api/v1/auth/otp/verify", {"phone": PHONE, "code": settings.OTP_TEST_CODE,
                                                    "device": {"name": "Pixel", "platform": "android"}}, format="json")
    assert verified.status_code == 200, verified.content
    token = verified.json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    api.get(f"/api/v1/me?token={token}")
    pepper = pepper_ensure_current()
    api.post("/api/v1/contacts/sync", {"pepper_id": pepper.pk, "mode": "add", "hashes": ["ef" * 32]}, format="json")
    conversation = api.post("/api/v1/conversations", {"type": "direct", "user_id": str(bob.user.pk)},
                            format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        sent = api.post(f"/api/v1/conversations/{conversation}/messages",
                        {"client_id": str(uuid.uuid4()), "type": "text", "text": TEXT}, format="json")
    assert sent.status_code == 201
    api.post("/api/v1/auth/otp/request", {"phone": "+44 7911 123778", "extra": TEXT}, format="json")
    logging.getLogger("messenger.test").warning("oops %s %s", PHONE, token)  # a careless call is scrubbed too

    output = json_log.getvalue()
    assert output.count('"event": "request"') >= 6
    for secret in (PHONE, PHONE[1:], "7911123778", token, TEXT, "fcm-push-token-of-bob"):
        assert secret not in output, secret
    for line in lines(json_log):
        assert {"ts", "level", "logger", "message", "request_id"} <= set(line)
