"""A real Celery worker killed mid-export: the export is rebuilt from scratch, one archive, no leftovers."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from exports import services
from exports.models import Export
from messaging.models import Conversation, Membership, Message
from tests.exports.conftest import export_files, open_archive
from tests.processes import celery_worker, current_database_url, wait_for


def _seed_messages(owner, peer, count: int) -> Conversation:
    conversation = Conversation.objects.create(type="group", title="Busy", member_count=2, last_seq=count)
    Membership.objects.bulk_create([Membership(conversation=conversation, user=owner.user, role="owner"),
                                    Membership(conversation=conversation, user=peer.user)])
    start = timezone.now() - timedelta(days=1)
    Message.objects.bulk_create(
        (Message(conversation=conversation, seq=seq, sender=owner.user, client_id=uuid.uuid4(), type="text",
                 text=f"message {seq} " + "x" * 80, created_at=start + timedelta(seconds=seq))
         for seq in range(1, count + 1)),
        batch_size=5000,
    )
    return conversation


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_export_is_rebuilt_once(alice, bob, export_dirs, tmp_path, settings):
    from config.celery import app

    app.conf.task_always_eager = False
    settings.EXPORT_HEARTBEAT_STALE = timedelta(seconds=1)
    _seed_messages(alice, bob, 30_000)
    env = {
        "DATABASE_URL": current_database_url(), "REDIS_URL": settings.REDIS_URL,
        "EXPORT_ROOT": settings.EXPORT_ROOT, "EXPORT_TEMP_DIR": settings.EXPORT_TEMP_DIR,
        "EXPORT_HEARTBEAT_STALE_SECONDS": "1", "EXPORT_READY_PUSH": "", "SECRET_KEY": settings.SECRET_KEY,
    }
    temp_dir = tmp_path / "tmp"

    with celery_worker(env, log_path=tmp_path / "worker1.log") as first:
        export = services.export_request(user=alice.user)  # autocommit: enqueued on commit
        wait_for(lambda: list(temp_dir.glob(f"export-{export.pk}-1.zip.part")), timeout=30,
                 message="the first worker to start writing the archive")
        first.kill()
    export.refresh_from_db()
    assert (export.status, export.attempt) == ("running", 1), first.output()[-3000:]
    assert list(temp_dir.glob("*.part")), "the killed worker left its half-written file"

    with celery_worker(env, log_path=tmp_path / "worker2.log") as second:
        wait_for(lambda: timezone.now() - export.heartbeat_at > timedelta(seconds=1.2), timeout=5)
        services.export_recover_stuck()  # what the beat task does every few minutes
        wait_for(lambda: Export.objects.filter(pk=export.pk, status="ready").exists(), timeout=60,
                 message="the second worker to finish the export")

    export.refresh_from_db()
    assert export.attempt == 2, second.output()[-3000:]
    files = export_files(export_dirs)
    assert [path.name for path in files] == [f"{export.pk}.zip"], "never two archives for one request"
    archive = open_archive(files[0].read_bytes())
    jsonl = [name for name in archive.namelist() if name.endswith("messages.jsonl")]
    assert len(archive.read(jsonl[0]).splitlines()) == 30_000
    assert not list(temp_dir.glob("*.part")), "the rerun removed the killed attempt's file"
