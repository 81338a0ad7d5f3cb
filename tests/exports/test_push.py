"""export.ready and system.announcement go through the real push pipeline (file backend, eager Celery)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import device_push_set
from exports import services
from tests.notifications.conftest import read_lines


@pytest.fixture
def real_push(settings, tmp_path):
    settings.EXPORT_READY_PUSH = "notifications.services.push_notify"
    settings.SUNSET_ANNOUNCEMENT_PUSH = "notifications.services.push_notify"
    settings.PUSH_BACKEND = "file"
    settings.PUSH_FILE_PATH = str(tmp_path / "push.jsonl")
    return tmp_path / "push.jsonl"


@pytest.mark.django_db
def test_export_ready_reaches_the_phone_once(alice, real_push, django_capture_on_commit_callbacks):
    device_push_set(device=alice.device, provider="fcm", token="fcm-token-alice")
    with django_capture_on_commit_callbacks(execute=True):
        export = services.export_request(user=alice.user)
    lines = read_lines(real_push)
    assert [(line["kind"], line["token"], line["title"]) for line in lines] == [
        ("export.ready", "fcm-token-alice", "Your data export is ready")]
    services.export_build(export_id=str(export.pk))  # a redelivered task: no second push
    assert len(read_lines(real_push)) == 1


@pytest.mark.django_db
def test_announcement_reaches_every_phone(alice, bob, real_push, django_capture_on_commit_callbacks):
    device_push_set(device=alice.device, provider="fcm", token="fcm-token-alice")
    device_push_set(device=bob.device, provider="apns", token="apns-token-bob")
    with django_capture_on_commit_callbacks(execute=True):
        services.sunset_schedule(announce_at=timezone.now(), read_only_at=timezone.now() + timedelta(hours=1),
                                 shutdown_at=timezone.now() + timedelta(hours=2), message="Closing in two hours.")
    lines = read_lines(real_push)
    assert sorted((line["kind"], line["token"], line["body"]) for line in lines) == [
        ("system.announcement", "apns-token-bob", "Closing in two hours."),
        ("system.announcement", "fcm-token-alice", "Closing in two hours."),
    ]
