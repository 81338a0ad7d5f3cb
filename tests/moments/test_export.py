"""The data export carries the user's moments (moments.json), their images, and a Moments page."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from exports import services as export_services
from media.services import attachment_create
from tests.exports.chromium import dump_dom
from tests.media.mediafiles import image_bytes
from tests.moments.conftest import befriend, block, comment, like, posted


def build_archive(user, settings, tmp_path, capture) -> zipfile.ZipFile:
    settings.EXPORT_ROOT = str(tmp_path / "exports")
    settings.EXPORT_TEMP_DIR = str(tmp_path)
    settings.EXPORT_READY_PUSH = ""
    with capture(execute=True):
        export = export_services.export_request(user=user)
    export.refresh_from_db()
    assert export.status == "ready", export.error
    path = next((tmp_path / "exports").rglob("*.zip"))
    return zipfile.ZipFile(io.BytesIO(path.read_bytes()))


@pytest.mark.django_db
def test_the_export_holds_moments_their_media_and_a_moments_page(person, settings, tmp_path,
                                                                  django_capture_on_commit_callbacks):
    a, b, c = person("Ann"), person("Ben"), person("Cal")
    befriend(a, b)
    befriend(a, c)
    photo = attachment_create(uploader=a.user, upload=SimpleUploadedFile(
        "view.png", image_bytes("PNG", size=(40, 30)), content_type="image/png"))
    with_photo = posted(a, "the view", attachment_ids=[str(photo.pk)],
                        location={"lat": 31.2, "lng": 121.5, "name": "The Bund"})
    private = posted(a, "note to self", mode="private")
    like(b, with_photo)
    comment(b, with_photo, "wow <script>alert(1)</script>")
    comment(c, with_photo, "from Cal")
    from_b = posted(b, "Ben's post")
    comment(a, from_b, "Ann was here")
    like(a, from_b)
    block(a, c)  # Cal's comment is across a block now: not in Ann's archive

    archive = build_archive(a.user, settings, tmp_path, django_capture_on_commit_callbacks)
    data = json.loads(archive.read("moments.json"))
    assert [p["id"] for p in data["posts"]] == [with_photo, private], "oldest first, private ones too"
    first = data["posts"][0]
    assert first["text"] == "the view" and first["location"]["name"] == "The Bund"
    assert [x["user_id"] for x in first["likes"]] == [str(b.user.pk)]
    assert [x["text"] for x in first["comments"]] == ["wow <script>alert(1)</script>"]
    assert first["comments"][0]["user_name"] == "Ben"
    media_name = first["attachments"][0]["media"]
    assert media_name == f"media/{photo.pk}.png"
    assert archive.read(media_name)[:8] == b"\x89PNG\r\n\x1a\n"
    assert [(x["moment_id"], x["text"]) for x in data["comments"]] == [(from_b, "Ann was here")]
    assert [x["moment_id"] for x in data["likes"]] == [from_b]

    page = archive.read("index.html").decode()
    assert "<script>alert(1)" not in page, "text is escaped inside the page's data block"

    # The Moments page, rendered offline by a real browser.
    folder = tmp_path / "unzipped"
    archive.extractall(folder)
    dom = dump_dom(folder / "index.html", fragment="moments")
    assert "the view" in dom and "note to self" in dom and "The Bund" in dom
    images = re.findall(r"<img[^>]*>", dom)
    assert len(images) == 1 and f'src="media/{photo.pk}.png"' in images[0]
    assert 'data-loaded="true"' in images[0], "the image loaded from the archive"
    assert "Ben: wow &lt;script&gt;alert(1)&lt;/script&gt;" in dom, "comments shown as text, not markup"
    assert "from Cal" not in dom


@pytest.mark.django_db
def test_an_export_without_moments_has_an_empty_moments_file(person, settings, tmp_path,
                                                             django_capture_on_commit_callbacks):
    a = person("Ann")
    archive = build_archive(a.user, settings, tmp_path, django_capture_on_commit_callbacks)
    assert json.loads(archive.read("moments.json")) == {"posts": [], "likes": [], "comments": []}
