"""Media writes: the unreferenced-upload sweep, mark used, thumbnails, the upload guard."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.utils import timezone

from core.errors import PayloadTooLarge
from media import selectors, services
from media.models import Attachment
from media.tasks import delete_unreferenced, make_thumbnail
from media.uploads import MULTIPART_OVERHEAD, SizeCapUploadHandler, sanitize_original_name
from tests.media import mediafiles


def _create(who, data: bytes, name: str = "x", kind: str | None = None) -> Attachment:
    return services.attachment_create(uploader=who.user, upload=SimpleUploadedFile(name, data), kind=kind)


def _age(attachment: Attachment, *, hours: float) -> None:
    Attachment.objects.filter(pk=attachment.pk).update(created_at=timezone.now() - timedelta(hours=hours))


# --- Unreferenced uploads ---------------------------------------------------------------


@pytest.mark.django_db
def test_delete_unreferenced_removes_old_unused_uploads_files_first(alice, stored_files):
    old = _create(alice, mediafiles.image_bytes("PNG"))
    make_thumbnail(str(old.pk))
    old.refresh_from_db()
    assert old.thumbnail_name and len(stored_files()) == 2
    _age(old, hours=25)

    deleted = services.attachments_delete_unreferenced()

    assert deleted == 1
    assert not Attachment.objects.filter(pk=old.pk).exists()
    assert stored_files() == []


@pytest.mark.django_db
def test_delete_unreferenced_keeps_used_and_recent_uploads(alice, stored_files):
    used = _create(alice, mediafiles.wav_bytes())
    services.attachment_mark_used(attachment_id=str(used.pk))
    _age(used, hours=100)
    recent = _create(alice, mediafiles.wav_bytes())
    _age(recent, hours=23)

    assert services.attachments_delete_unreferenced() == 0
    assert set(Attachment.objects.values_list("pk", flat=True)) == {used.pk, recent.pk}
    assert len(stored_files()) == 2


@pytest.mark.django_db
def test_delete_unreferenced_is_idempotent_and_survives_a_missing_file(alice, stored_files, media_root):
    gone = _create(alice, mediafiles.wav_bytes())
    (media_root / gone.storage_name).unlink()  # as if a previous run died after deleting files
    _age(gone, hours=30)

    assert services.attachments_delete_unreferenced() == 1
    assert services.attachments_delete_unreferenced() == 0
    assert not Attachment.objects.exists()


@pytest.mark.django_db
def test_delete_unreferenced_works_in_batches(alice, stored_files):
    for _ in range(5):
        _age(_create(alice, b"abc", kind="file"), hours=48)

    assert services.attachments_delete_unreferenced(batch_size=2) == 5
    assert stored_files() == []


@pytest.mark.django_db
def test_the_periodic_task_is_scheduled_and_runs_the_sweep(alice, settings):
    _age(_create(alice, b"abc", kind="file"), hours=48)
    entry = settings.CELERY_BEAT_SCHEDULE["media.delete_unreferenced"]

    assert entry["task"] == delete_unreferenced.name == "media.delete_unreferenced"
    assert delete_unreferenced.delay().get() == 1


@pytest.mark.django_db(transaction=True)
def test_sweep_skips_an_attachment_locked_by_a_message_being_sent(alice, stored_files):
    attachment = _create(alice, mediafiles.wav_bytes())
    _age(attachment, hours=48)
    locked, release = threading.Event(), threading.Event()

    def send_message() -> None:
        try:
            with transaction.atomic():
                selectors.attachment_for_message(attachment_id=str(attachment.pk), sender_id=alice.user.pk,
                                                 kind="voice")
                locked.set()
                release.wait(timeout=10)
                services.attachment_mark_used(attachment_id=str(attachment.pk))
        finally:
            connection.close()

    sender = threading.Thread(target=send_message)
    sender.start()
    try:
        assert locked.wait(timeout=10)
        assert services.attachments_delete_unreferenced() == 0
    finally:
        release.set()
        sender.join(timeout=10)

    assert Attachment.objects.get(pk=attachment.pk).used_at is not None
    assert services.attachments_delete_unreferenced() == 0
    assert len(stored_files()) == 1


@pytest.mark.django_db
def test_mark_used_keeps_the_first_time(alice):
    attachment = _create(alice, b"abc", kind="file")

    services.attachment_mark_used(attachment_id=str(attachment.pk))
    first = Attachment.objects.get(pk=attachment.pk).used_at
    services.attachment_mark_used(attachment_id=str(attachment.pk))

    assert first is not None
    assert Attachment.objects.get(pk=attachment.pk).used_at == first


# --- Thumbnails --------------------------------------------------------------------------


@pytest.mark.django_db
def test_thumbnail_task_is_idempotent(alice, stored_files):
    attachment = _create(alice, mediafiles.image_bytes("JPEG", (640, 480)))

    make_thumbnail(str(attachment.pk))
    first = Attachment.objects.get(pk=attachment.pk).thumbnail_name
    make_thumbnail(str(attachment.pk))

    assert first.startswith("thumbnails/") and first.endswith(".webp")
    assert Attachment.objects.get(pk=attachment.pk).thumbnail_name == first
    assert stored_files() == sorted([attachment.storage_name, first])


@pytest.mark.django_db
def test_thumbnail_task_for_a_deleted_attachment_does_nothing(alice, stored_files):
    attachment = _create(alice, mediafiles.image_bytes("PNG"))
    attachment_id = str(attachment.pk)
    services.attachments_delete_unreferenced(now=timezone.now() + timedelta(days=2))

    make_thumbnail(attachment_id)

    assert stored_files() == []


@pytest.mark.django_db
def test_thumbnail_keeps_transparency(alice, media_root):
    from PIL import Image

    image = Image.new("RGBA", (500, 500), (0, 0, 0, 0))
    attachment = _create(alice, _png(image))

    make_thumbnail(str(attachment.pk))

    thumb = Image.open(media_root / Attachment.objects.get(pk=attachment.pk).thumbnail_name)
    assert thumb.size == (320, 320)
    assert thumb.mode == "RGBA" and thumb.getpixel((5, 5))[3] == 0


def _png(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.django_db
def test_upload_enqueues_the_thumbnail_only_after_commit(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        attachment = _create(alice, mediafiles.image_bytes("PNG"))
    assert Attachment.objects.get(pk=attachment.pk).thumbnail_name == ""
    assert len(callbacks) == 1

    callbacks[0]()

    assert Attachment.objects.get(pk=attachment.pk).thumbnail_name


# --- The streaming size guard --------------------------------------------------------------


def test_upload_guard_refuses_by_content_length_before_reading(settings):
    settings.MEDIA_MAX_SIZE = {"image": 1000, "voice": 1000, "video": 5000, "file": 1000}
    handler = SizeCapUploadHandler()

    handler.handle_raw_input(None, {}, 5000 + MULTIPART_OVERHEAD, b"boundary")
    with pytest.raises(PayloadTooLarge):
        handler.handle_raw_input(None, {}, 5001 + MULTIPART_OVERHEAD, b"boundary")


def test_upload_guard_stops_a_stream_past_the_largest_cap(settings):
    settings.MEDIA_MAX_SIZE = {"image": 1000, "voice": 1000, "video": 5000, "file": 1000}
    handler = SizeCapUploadHandler()
    handler.new_file("file", "big.bin", "application/octet-stream", None)

    received = 0
    with pytest.raises(PayloadTooLarge):
        for _ in range(100):  # a body without Content-Length, chunk after chunk
            handler.receive_data_chunk(b"x" * 1024, received)
            received += 1024
    assert received == 4 * 1024  # the fifth chunk crossed 5000 bytes: nothing after it is read


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\photo.jpg", "photo.jpg"),
        ("bad\x00name\x1b.txt", "badname.txt"),
        ("..", ""),
        ("", ""),
        (None, ""),
        ("ok name (1).pdf", "ok name (1).pdf"),
        ("a" * 300 + ".jpeg", "a" * 250 + ".jpeg"),
    ],
)
def test_display_names_are_sanitised(raw, clean):
    assert sanitize_original_name(raw) == clean
