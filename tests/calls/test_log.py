"""The call log message is a message like any other: history, sync, and the data export."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from calls import services
from exports import services as export_services
from tests.calls.conftest import answer, offer

pytestmark = pytest.mark.django_db


def test_an_ended_call_is_in_history_sync_and_the_export(alice, bob, direct, settings, tmp_path,
                                                         django_capture_on_commit_callbacks):
    settings.EXPORT_ROOT = str(tmp_path / "exports")
    settings.EXPORT_TEMP_DIR = str(tmp_path / "tmp")
    settings.EXPORT_READY_PUSH = ""
    (tmp_path / "tmp").mkdir()
    call_id = offer(alice, direct, media="screen", remote_control=True)
    answer(bob, call_id, grant_control=True)
    services.call_hangup(user=bob.user, device_id=bob.device.pk, call_id=call_id)
    expected = {"call_id": str(call_id), "media": "screen", "outcome": "completed", "caller_id": str(alice.user.pk),
                "remote_control": True, "control_granted": True}

    history = bob.client.get(f"/api/v1/conversations/{direct}/messages").json()["messages"]
    [message] = [m for m in history if m["type"] == "call"]
    assert {k: message["call"][k] for k in expected} == expected
    assert message["sender_id"] == str(alice.user.pk)

    events = bob.client.get("/api/v1/sync?cursor=").json()["events"]
    assert [e["type"] for e in events if e["type"] != "conversation.created"] == [
        "call.ring", "call.ended", "message.new"]
    assert events[-1]["data"]["id"] == message["id"]

    with django_capture_on_commit_callbacks(execute=True):
        export = export_services.export_request(user=bob.user)
    export.refresh_from_db()
    assert export.status == "ready", export.error
    archive = zipfile.ZipFile(io.BytesIO(Path(export_services.export_storage().path(export.storage_name))
                                         .read_bytes()))
    lines = [json.loads(line) for line in archive.read(f"conversations/{direct}/messages.jsonl").decode().splitlines()]
    [exported] = [m for m in lines if m["type"] == "call"]
    assert exported["id"] == message["id"] and exported["call"]["outcome"] == "completed"
