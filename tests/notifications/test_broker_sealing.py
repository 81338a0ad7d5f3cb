"""Nothing readable in the Celery broker: OTP numbers and codes, and push text (names,
message text), are sealed with a key derived from SECRET_KEY before they are queued."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import redis
from cryptography.fernet import InvalidToken
from django.conf import settings as django_settings
from django.db import transaction

from core.crypto import seal, unseal
from tests.factories import sign_in


def test_sealed_values_open_only_for_their_purpose_and_key(settings):
    token = seal("one", {"code": "123456"})
    assert "123456" not in token
    assert unseal("one", token) == {"code": "123456"}
    with pytest.raises(InvalidToken):
        unseal("two", token)
    settings.SECRET_KEY = "another-secret-key-0123456789-0123456789"
    with pytest.raises(InvalidToken):
        unseal("one", token)


# --- What the broker holds ---------------------------------------------------------------


@pytest.fixture
def broker():
    """Tasks are published to the real Redis broker instead of running in-process."""
    from config.celery import app

    assert django_settings.REDIS_URL, "broker tests need REDIS_URL"
    app.conf.task_always_eager = False
    return redis.Redis.from_url(django_settings.REDIS_URL)


def _queued(client: redis.Redis, task_name: str) -> list[tuple[bytes, dict[str, Any]]]:
    """(raw broker bytes, decoded kwargs/args) of every queued message of the task."""
    found = []
    for key in client.keys("*"):
        if client.type(key) != b"list":
            continue
        for raw in client.lrange(key, 0, -1):
            message = json.loads(raw)
            if message.get("headers", {}).get("task") != task_name:
                continue
            args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            found.append((raw, {"args": args, "kwargs": kwargs}))
    return found


@pytest.mark.django_db(transaction=True)
def test_push_text_is_sealed_in_the_broker_and_opened_by_the_task(broker, settings, tmp_path):
    from accounts.services import device_push_set
    from notifications import tasks
    from notifications.models import PushDelivery
    from notifications.services import push_notify

    settings.PUSH_COLLAPSE_SECONDS = 0
    bob = sign_in(display_name="Bob")
    device_push_set(device=bob.device, provider="fcm", token="fcm-token-sealed")
    with transaction.atomic():
        push_notify(user_id=bob.user.pk, kind="message.new", title="Alice Liddell", body="The safe code is 4711",
                    conversation_id=str(uuid.uuid4()), message_id=str(uuid.uuid4()))

    [(raw, call)] = _queued(broker, "notifications.push_fanout")
    assert b"4711" not in raw and b"Alice" not in raw
    assert "4711" not in json.dumps(call) and "Alice" not in json.dumps(call)

    from config.celery import app
    app.conf.task_always_eager = True  # the delivery runs here; its row shows what the worker read
    settings.PUSH_BACKEND = "file"
    settings.PUSH_FILE_PATH = str(tmp_path / "push.jsonl")
    assert tasks.push_fanout.run(**call["kwargs"]) == 1
    [line] = [json.loads(x) for x in (tmp_path / "push.jsonl").read_text().splitlines()]
    assert (line["title"], line["body"]) == ("Alice Liddell", "The safe code is 4711")
    assert PushDelivery.objects.get().title == ""  # cleared once sent


@pytest.mark.django_db(transaction=True)
def test_tampered_push_is_skipped_not_sent(broker):
    from notifications import tasks

    sealed = seal("some-other-purpose", {"title": "x", "body": "y"})
    assert tasks.push_fanout.run(sealed=sealed, user_id=str(uuid.uuid4()), kind="message.new",
                                 dedupe_key="k") == 0


@pytest.mark.django_db(transaction=True)
def test_otp_number_and_code_are_sealed_in_the_broker(broker, api, settings, tmp_path):
    from accounts.tasks import send_otp_sms

    settings.SMS_BACKEND = "file"
    settings.SMS_FILE_PATH = str(tmp_path / "sms.jsonl")
    phone = "+447911123777"
    response = api.post("/api/v1/auth/otp/request", {"phone": phone}, format="json")
    assert response.status_code == 202

    [(raw, call)] = _queued(broker, "accounts.send_otp_sms")
    assert phone.encode() not in raw and b"7911123777" not in raw

    send_otp_sms.run(*call["args"], **call["kwargs"])
    [line] = [json.loads(x) for x in (tmp_path / "sms.jsonl").read_text().splitlines()]
    assert line["to"] == phone
    code = line["body"].rsplit(" ", 1)[-1]
    assert len(code) == 6 and code.encode() not in raw
    verified = api.post("/api/v1/auth/otp/verify",
                        {"phone": phone, "code": code, "device": {"name": "P", "platform": "ios"}}, format="json")
    assert verified.status_code == 200


@pytest.mark.django_db
def test_an_otp_sms_sealed_longer_ago_than_the_code_lives_sends_nothing(settings, tmp_path, monkeypatch):
    import time

    from accounts.tasks import otp_sms_sealed, send_otp_sms

    settings.SMS_BACKEND = "file"
    settings.SMS_FILE_PATH = str(tmp_path / "sms.jsonl")
    settings.OTP_TTL_SECONDS = 300
    sealed = otp_sms_sealed(to="+447700900778", code="123456")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 301)
    send_otp_sms.run(sealed)
    assert not (tmp_path / "sms.jsonl").exists()
