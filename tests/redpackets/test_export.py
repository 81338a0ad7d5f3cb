"""The data export carries the wallet (every movement, in cents) and the red packets with their amounts."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from exports import services as export_services
from exports.models import Export
from tests.redpackets.conftest import claim, fund, new_group, send_packet

pytestmark = pytest.mark.usefixtures("payments_on")


def build_archive(user, settings, tmp_path, capture) -> zipfile.ZipFile:
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings.EXPORT_ROOT = str(tmp_path / "exports")
    settings.EXPORT_TEMP_DIR = str(tmp_path)
    settings.EXPORT_READY_PUSH = ""
    with capture(execute=True):
        export = export_services.export_request(user=user)
    export.refresh_from_db()
    assert export.status == "ready", export.error
    path = next((tmp_path / "exports").rglob("*.zip"))
    return zipfile.ZipFile(io.BytesIO(path.read_bytes()))


def jsonl(archive: zipfile.ZipFile, name: str) -> list[dict]:
    return [json.loads(line) for line in archive.read(name).splitlines()]


@pytest.mark.django_db
def test_the_export_holds_the_wallet_and_the_packets_with_their_amounts(
        alice, bob, carol, settings, tmp_path, django_capture_on_commit_callbacks):
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    packet = send_packet(alice, group, total=600, count=2, greeting="新年快乐").json()
    got = claim(bob, packet["id"]).json()["amount"]

    archive = build_archive(alice.user, settings, tmp_path, django_capture_on_commit_callbacks)
    assert json.loads(archive.read("wallet/wallet.json")) == {"balance": 400, "currency": "CNY"}
    movements = jsonl(archive, "wallet/transactions.jsonl")
    assert [(m["kind"], m["amount"]) for m in movements] == [("topup", 1000), ("red_packet_send", -600)]
    sent, = jsonl(archive, "red_packets/sent.jsonl")
    assert sent["id"] == packet["id"] and sent["total"] == 600 and sent["greeting"] == "新年快乐"
    assert [(c["user_id"], c["amount"]) for c in sent["claims"]] == [(str(bob.user.pk), got)]
    assert jsonl(archive, "red_packets/claimed.jsonl") == []
    message = jsonl(archive, f"conversations/{group}/messages.jsonl")[-1]
    assert message["type"] == "red_packet" and message["red_packet"]["total"] == 600

    Export.objects.all().delete()
    archive = build_archive(bob.user, settings, tmp_path / "bob", django_capture_on_commit_callbacks)
    assert json.loads(archive.read("wallet/wallet.json"))["balance"] == got
    assert [(m["kind"], m["amount"]) for m in jsonl(archive, "wallet/transactions.jsonl")] == [
        ("red_packet_claim", got)]
    claimed, = jsonl(archive, "red_packets/claimed.jsonl")
    assert claimed["red_packet_id"] == packet["id"] and claimed["amount"] == got
    assert claimed["sender_id"] == str(alice.user.pk)
    assert jsonl(archive, "red_packets/sent.jsonl") == []
