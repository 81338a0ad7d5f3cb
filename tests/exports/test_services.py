import errno
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import user_delete
from core.errors import Conflict, RateLimited
from exports import services
from exports.models import Export
from exports.selectors import export_storage
from streams.selectors import stream_read
from tests.exports.conftest import export_files, finished_export, open_archive


def _request_and_build(user, django_capture_on_commit_callbacks) -> Export:
    with django_capture_on_commit_callbacks(execute=True):
        export = services.export_request(user=user)
    export.refresh_from_db()
    return export


@pytest.mark.django_db
def test_export_request_builds_archive_emits_event_and_push(alice, export_dirs, pushes,
                                                            django_capture_on_commit_callbacks):
    export = _request_and_build(alice.user, django_capture_on_commit_callbacks)

    assert export.status == "ready" and export.progress == 100 and export.attempt == 1
    assert export.expires_at - export.finished_at == timedelta(days=7)
    files = export_files(export_dirs)
    assert [path.name for path in files] == [f"{export.pk}.zip"]
    assert export.size == files[0].stat().st_size
    archive = open_archive(files[0].read_bytes())
    assert {"profile.json", "contacts.json", "index.html"} <= set(archive.namelist())
    events, _ = stream_read(user_id=alice.user.pk, after=0, limit=10)
    assert [(e["type"], e["data"]["export"]["id"], e["data"]["export"]["status"]) for e in events] == [
        ("export.ready", str(export.pk), "ready")]
    assert events[0]["data"]["export"]["download_url"].endswith(f"/api/v1/me/exports/{export.pk}/download")
    assert [(p["user_id"], p["kind"]) for p in pushes] == [(alice.user.pk, "export.ready")]
    assert not list(Path(export_dirs / "tmp").iterdir()), "temporary files are removed"


@pytest.mark.django_db
def test_second_request_while_one_is_pending_is_conflict(alice):
    first = services.export_request(user=alice.user)
    with pytest.raises(Conflict) as caught:
        services.export_request(user=alice.user)
    assert caught.value.details["export_id"] == str(first.pk)
    assert Export.objects.filter(user=alice.user).count() == 1


@pytest.mark.django_db
def test_database_allows_one_active_export_per_user(alice):
    Export.objects.create(user=alice.user, status="running")
    with pytest.raises(IntegrityError), transaction.atomic():
        Export.objects.create(user=alice.user, status="pending")


@pytest.mark.django_db
def test_new_request_within_a_day_of_last_ready_is_rate_limited(alice):
    finished_export(alice.user, finished_ago=timedelta(hours=20))
    with pytest.raises(RateLimited) as caught:
        services.export_request(user=alice.user)
    assert 4 * 3600 - 5 < caught.value.retry_after <= 4 * 3600 + 1


@pytest.mark.django_db
def test_failed_or_day_old_exports_do_not_block_a_new_request(alice, bob):
    finished_export(alice.user, status="failed", finished_ago=timedelta(minutes=5))
    assert services.export_request(user=alice.user).status == "pending"
    finished_export(bob.user, finished_ago=timedelta(hours=25))
    assert services.export_request(user=bob.user).status == "pending"


@pytest.mark.django_db
def test_rerun_after_a_killed_worker_starts_over_and_keeps_one_archive(alice, export_dirs):
    """The killed attempt left a temp file, a half-copied archive and a stale heartbeat."""
    stale = timezone.now() - timedelta(minutes=10)
    export = Export.objects.create(user=alice.user, status="running", attempt=1, started_at=stale,
                                   heartbeat_at=stale, progress=40)
    leftover = export_dirs / "tmp" / f"export-{export.pk}-1.zip.part"
    leftover.write_bytes(b"half an archive")
    storage = export_storage()
    storage.save(services.export_storage_name(export), _bytes_file(b"truncated zip"))

    assert services.export_build(export_id=str(export.pk)) is services.BuildOutcome.DONE

    export.refresh_from_db()
    assert (export.status, export.attempt) == ("ready", 2)
    files = export_files(export_dirs)
    assert [path.name for path in files] == [f"{export.pk}.zip"], "the same name, overwritten: never two archives"
    assert "profile.json" in open_archive(files[0].read_bytes()).namelist()
    assert not leftover.exists()


@pytest.mark.django_db
def test_build_leaves_an_export_alone_while_another_worker_is_alive(alice, export_dirs):
    now = timezone.now()
    export = Export.objects.create(user=alice.user, status="running", attempt=1, started_at=now, heartbeat_at=now)
    assert services.export_build(export_id=str(export.pk)) is services.BuildOutcome.BUSY
    export.refresh_from_db()
    assert (export.status, export.attempt) == ("running", 1)
    assert export_files(export_dirs) == []


@pytest.mark.django_db
def test_running_a_finished_build_again_changes_nothing(alice, export_dirs, django_capture_on_commit_callbacks):
    export = _request_and_build(alice.user, django_capture_on_commit_callbacks)
    assert services.export_build(export_id=str(export.pk)) is services.BuildOutcome.DONE
    export.refresh_from_db()
    assert export.attempt == 1
    events, _ = stream_read(user_id=alice.user.pk, after=0, limit=10)
    assert len(events) == 1


@pytest.mark.django_db
def test_an_attempt_superseded_mid_build_discards_its_work(alice, export_dirs, monkeypatch):
    export = Export.objects.create(user=alice.user)
    real_write = services.archive_write

    def write_then_lose_the_export(**kwargs):
        real_write(**kwargs)
        # Meanwhile another worker decided this one was dead and took over.
        Export.objects.filter(pk=export.pk).update(attempt=7)

    monkeypatch.setattr(services, "archive_write", write_then_lose_the_export)
    assert services.export_build(export_id=str(export.pk)) is services.BuildOutcome.SUPERSEDED
    export.refresh_from_db()
    assert export.status == "running" and export.attempt == 7
    assert export_files(export_dirs) == []


@pytest.mark.django_db
def test_too_many_attempts_fail_the_export(alice, settings):
    stale = timezone.now() - timedelta(hours=1)
    export = Export.objects.create(user=alice.user, status="running", attempt=settings.EXPORT_MAX_ATTEMPTS,
                                   heartbeat_at=stale)
    services.export_build(export_id=str(export.pk))
    export.refresh_from_db()
    assert export.status == "failed" and "repeatedly" in export.error


def _bytes_file(content: bytes):
    from django.core.files.base import ContentFile

    return ContentFile(content)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.django_db
def test_disk_full_while_writing_fails_cleanly(alice, export_dirs, monkeypatch, pushes,
                                               django_capture_on_commit_callbacks):
    monkeypatch.setattr("exports.archive.shutil.copyfileobj", _disk_full)
    export = _request_and_build(alice.user, django_capture_on_commit_callbacks)

    assert export.status == "failed"
    assert "storage space" in export.error
    assert export.storage_name == "" and export.size is None
    assert export_files(export_dirs) == []
    assert not list((export_dirs / "tmp").iterdir())
    assert stream_read(user_id=alice.user.pk, after=0, limit=10)[0] == []
    assert pushes == []


@pytest.mark.django_db
def test_storage_full_while_saving_removes_the_partial_archive(alice, export_dirs, monkeypatch,
                                                               django_capture_on_commit_callbacks):
    real_save = FileSystemStorage._save

    def save_half_then_fill_up(self, name, content):
        real_save(self, name, _bytes_file(content.read(100)))  # a partial file lands in storage
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", save_half_then_fill_up)
    export = _request_and_build(alice.user, django_capture_on_commit_callbacks)

    assert export.status == "failed" and "storage space" in export.error
    assert export_files(export_dirs) == [], "nothing half-written is left to serve"


@pytest.mark.django_db
def test_expire_deletes_files_past_expiry_and_keeps_fresh_ones(alice, bob, export_dirs,
                                                               django_capture_on_commit_callbacks):
    old = _request_and_build(alice.user, django_capture_on_commit_callbacks)
    fresh = _request_and_build(bob.user, django_capture_on_commit_callbacks)
    Export.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert services.export_expire_due() == 1

    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, old.storage_name) == ("expired", "")
    assert fresh.status == "ready"
    assert [path.name for path in export_files(export_dirs)] == [f"{fresh.pk}.zip"]


@pytest.mark.django_db
def test_recover_rebuilds_exports_whose_worker_died(alice, bob, export_dirs):
    stale = timezone.now() - timedelta(minutes=30)
    dead = Export.objects.create(user=alice.user, status="running", attempt=1, heartbeat_at=stale)
    alive = Export.objects.create(user=bob.user, status="running", attempt=1, heartbeat_at=timezone.now())

    assert services.export_recover_stuck() == 1

    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, dead.attempt) == ("ready", 2)
    assert alive.status == "running"


@pytest.mark.django_db
def test_account_deletion_erases_the_users_archives(alice, bob, export_dirs, django_capture_on_commit_callbacks):
    mine = _request_and_build(alice.user, django_capture_on_commit_callbacks)
    theirs = _request_and_build(bob.user, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        user_delete(user=alice.user)

    mine.refresh_from_db()
    assert mine.status == "expired" and mine.storage_name == ""
    assert [path.name for path in export_files(export_dirs)] == [f"{theirs.pk}.zip"]


@pytest.mark.django_db
def test_build_records_progress_and_heartbeat_as_it_goes(alice, bob, monkeypatch, django_capture_on_commit_callbacks):
    import uuid

    from messaging.services import conversation_create, message_send

    direct, _ = conversation_create(creator=alice.user, type="direct", user_id=bob.user.pk)
    for number in range(4):
        message_send(sender=alice.user, conversation_id=direct["id"],
                     payload={"client_id": str(uuid.uuid4()), "type": "text", "text": f"m{number}"})
    monkeypatch.setattr("exports.archive.PROGRESS_EVERY", 1)
    seen: list[tuple[int, object]] = []
    real_call = services._ProgressReporter.__call__

    def spy(self, percent):
        self.min_interval = 0.0  # report every step, not every 5 s
        real_call(self, percent)
        seen.append(Export.objects.values_list("progress", "heartbeat_at").get(pk=self.export_id))

    monkeypatch.setattr(services._ProgressReporter, "__call__", spy)
    export = _request_and_build(alice.user, django_capture_on_commit_callbacks)

    progress = [value for value, _ in seen]
    assert progress[:4] == [23, 47, 71, 95] and progress[-1] == 97
    assert progress == sorted(progress)
    assert all(heartbeat is not None for _, heartbeat in seen)
    assert export.progress == 100


def test_beat_entries_name_registered_tasks():
    from django.conf import settings as django_settings

    from config.celery import app

    app.loader.import_default_modules()
    ours = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()
            if entry["task"].startswith("exports.")}
    assert ours == {"exports.expire", "exports.recover", "exports.announce_due"}
    assert ours <= set(app.tasks)


@pytest.mark.django_db
def test_an_export_past_its_time_limit_fails_with_a_reason(alice, export_dirs, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    def too_slow(**kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(services, "archive_write", too_slow)
    export = Export.objects.create(user=alice.user)
    services.export_build(export_id=str(export.pk))
    export.refresh_from_db()
    assert export.status == "failed" and "took too long" in export.error
    assert export_files(export_dirs) == []
