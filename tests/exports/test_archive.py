"""A real archive for a user with several conversations, edits, deletions, an image and a voice note:
every file in the ZIP is checked, and index.html is opened in headless Chromium with no network."""

from __future__ import annotations

import json
import re
import uuid
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from contacts.services import pepper_ensure_current
from exports import services as export_services
from exports.index_page import INDEX_HEAD, INDEX_TAIL
from exports.models import Export
from media.services import attachment_create
from messaging import services as messaging
from tests.contacts.conftest import discovery_of, sync
from tests.exports.chromium import dump_dom
from tests.media.mediafiles import image_bytes, wav_bytes

XSS = "</script><script>document.title='pwned';window.pwned=1</script><!--"


def _send(who, conversation_id: str, **payload) -> dict:
    message, _ = messaging.message_send(sender=who.user, conversation_id=conversation_id,
                                        payload={"client_id": str(uuid.uuid4()), **payload})
    return message


def _upload(who, data: bytes, name: str, content_type: str, kind: str):
    return attachment_create(uploader=who.user, upload=SimpleUploadedFile(name, data, content_type=content_type),
                             kind=kind)


@pytest.fixture
def world(alice, bob, carol, user_factory, settings, tmp_path, django_capture_on_commit_callbacks):
    """Alice's history: a direct chat, a group, a group she left, contacts, media."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.MEDIA_STORAGE_ALIAS = "default"
    dave = user_factory(display_name="Dave")
    with django_capture_on_commit_callbacks(execute=True):
        pepper_ensure_current()
        direct, _ = messaging.conversation_create(creator=alice.user, type="direct", user_id=bob.user.pk)
        group, _ = messaging.conversation_create(creator=alice.user, type="group", title="Weekend trip",
                                                 member_ids=[bob.user.pk, carol.user.pk])
        old, _ = messaging.conversation_create(creator=dave.user, type="group", title="Old club",
                                               member_ids=[alice.user.pk])
        hello = _send(alice, direct["id"], type="text", text="hello bob")
        messaging.message_edit(user=alice.user, message_id=hello["id"], text="hello bob, edited")
        _send(bob, direct["id"], type="text", text="hi alice")
        recalled = _send(bob, direct["id"], type="text", text="oops, wrong chat")
        messaging.message_delete(user=bob.user, message_id=recalled["id"], scope="everyone")
        hidden = _send(bob, direct["id"], type="text", text="alice hid this one")
        messaging.message_delete(user=alice.user, message_id=hidden["id"], scope="me")
        photo = _upload(alice, image_bytes("PNG", size=(40, 30)), "photo.png", "image/png", "image")
        image_message = _send(alice, direct["id"], type="image", attachment_id=str(photo.pk), text="our view")
        voice = _upload(bob, wav_bytes(seconds=1.0), "note.wav", "audio/wav", "voice")
        voice_message = _send(bob, direct["id"], type="voice", attachment_id=str(voice.pk))
        _send(carol, group["id"], type="text", text=XSS)
        _send(alice, group["id"], type="text", text="see you saturday")
        _send(dave, old["id"], type="text", text="welcome to the club")
        messaging.member_remove(actor=alice.user, conversation_id=old["id"], user_id=alice.user.pk)
        _send(dave, old["id"], type="text", text="said after alice left")
    sync(alice.client, discovery_of(alice.client), [bob.user.phone])
    return {
        "direct": direct["id"], "group": group["id"], "old": old["id"], "hello": hello["id"],
        "recalled": recalled["id"], "hidden": hidden["id"], "photo": str(photo.pk), "voice": str(voice.pk),
        "image_message": image_message["id"], "voice_message": voice_message["id"],
    }


def _build(user, django_capture_on_commit_callbacks) -> tuple[Export, zipfile.ZipFile, bytes]:
    with django_capture_on_commit_callbacks(execute=True):
        export = export_services.export_request(user=user)
    export.refresh_from_db()
    assert export.status == "ready", export.error
    content = (Path(export_services.export_storage().path(export.storage_name))).read_bytes()
    return export, zipfile.ZipFile(__import__("io").BytesIO(content)), content


def _jsonl(archive: zipfile.ZipFile, name: str) -> list[dict]:
    return [json.loads(line) for line in archive.read(name).decode().splitlines()]


@pytest.mark.django_db
def test_archive_holds_every_file_as_the_user_sees_it(alice, bob, world, django_capture_on_commit_callbacks):
    _, archive, _ = _build(alice.user, django_capture_on_commit_callbacks)
    assert archive.testzip() is None
    names = set(archive.namelist())
    media_names = {n for n in names if n.startswith("media/")}
    assert names == {
        "profile.json", "contacts.json", "index.html",
        "wallet/wallet.json", "wallet/transactions.jsonl", "red_packets/sent.jsonl", "red_packets/claimed.jsonl",
        "moments.json",
        *(f"conversations/{world[k]}/{f}" for k in ("direct", "group", "old")
          for f in ("conversation.json", "messages.jsonl")),
        *media_names,
    }
    assert media_names == {f"media/{world['photo']}.png", f"media/{world['voice']}.wav"}
    assert archive.read(f"media/{world['photo']}.png").startswith(b"\x89PNG")
    assert archive.read(f"media/{world['voice']}.wav")[:4] == b"RIFF"

    profile = json.loads(archive.read("profile.json"))
    assert profile["id"] == str(alice.user.pk) and profile["phone"] == alice.user.phone
    assert profile["display_name"] == "Alice" and "settings" in profile

    contacts = json.loads(archive.read("contacts.json"))
    assert contacts == [{"user": {"id": str(bob.user.pk), "display_name": "Bob", "about": "", "avatar_url": ""},
                         "mutual": False}]
    assert bob.user.phone not in archive.read("contacts.json").decode(), "never another user's number"

    direct = json.loads(archive.read(f"conversations/{world['direct']}/conversation.json"))
    assert direct["type"] == "direct" and direct["title"] == "Bob"
    assert {m["display_name"] for m in direct["members"]} == {"Alice", "Bob"}

    messages = _jsonl(archive, f"conversations/{world['direct']}/messages.jsonl")
    assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages), "oldest first"
    by_id = {m["id"]: m for m in messages}
    assert world["hidden"] not in by_id, "a message deleted for me is not mine to export"
    edited = by_id[world["hello"]]
    assert edited["text"] == "hello bob, edited" and edited["edited_at"] and edited["sender_name"] == "Alice"
    recalled = by_id[world["recalled"]]
    assert recalled["deleted"] is True and recalled["text"] == ""
    image = by_id[world["image_message"]]
    assert image["media"] == f"media/{world['photo']}.png" and image["attachment"]["kind"] == "image"
    voice = by_id[world["voice_message"]]
    assert voice["media"] == f"media/{world['voice']}.wav" and voice["sender_name"] == "Bob"
    assert [m["text"] for m in messages if m["type"] == "text" and not m["deleted"]] == [
        "hello bob, edited", "hi alice"]

    group = _jsonl(archive, f"conversations/{world['group']}/messages.jsonl")
    assert [(m["sender_name"], m["text"]) for m in group] == [("Carol", XSS), ("Alice", "see you saturday")]

    old = _jsonl(archive, f"conversations/{world['old']}/messages.jsonl")
    assert [m["text"] for m in old] == ["welcome to the club"], "nothing said after she left"
    assert json.loads(archive.read(f"conversations/{world['old']}/conversation.json"))["left_at"]


@pytest.mark.django_db
def test_archive_of_the_other_side_has_its_own_view(alice, bob, world, django_capture_on_commit_callbacks):
    _, archive, _ = _build(bob.user, django_capture_on_commit_callbacks)
    messages = _jsonl(archive, f"conversations/{world['direct']}/messages.jsonl")
    assert "alice hid this one" in [m["text"] for m in messages], "hidden only for alice"
    assert f"conversations/{world['old']}/messages.jsonl" not in archive.namelist()


@pytest.mark.django_db
def test_index_html_is_self_contained_and_escapes_message_text(alice, world, django_capture_on_commit_callbacks):
    _, archive, _ = _build(alice.user, django_capture_on_commit_callbacks)
    page = archive.read("index.html").decode()
    assert page.startswith(INDEX_HEAD.decode()) and page.endswith(INDEX_TAIL.decode())
    static = (INDEX_HEAD + INDEX_TAIL).decode()
    assert not re.search(r"https?://", static), "the page itself loads nothing from the network"
    assert not re.search(r"<(link|iframe|object|embed)\b", static)
    data_block = page[len(INDEX_HEAD.decode()):-len(INDEX_TAIL.decode())]
    assert "<" not in data_block, "no message can close the data block"
    data = json.loads(data_block)
    titles = [c["title"] for c in data["conversations"]]
    assert sorted(titles) == ["Bob", "Old club", "Weekend trip"]
    assert XSS in [m["text"] for c in data["conversations"] for m in c["messages"]]


@pytest.mark.django_db
def test_index_html_shows_conversations_and_media_in_chromium_offline(
        alice, world, tmp_path, django_capture_on_commit_callbacks):
    _, archive, _ = _build(alice.user, django_capture_on_commit_callbacks)
    folder = tmp_path / "unzipped"
    archive.extractall(folder)

    dom = dump_dom(folder / "index.html", fragment=world["direct"])
    for title in ("Bob", "Weekend trip", "Old club"):
        assert f">{title}<" in dom, f"conversation {title!r} is listed"
    images = re.findall(r"<img[^>]*>", dom)
    assert len(images) == 1
    assert f'src="media/{world["photo"]}.png"' in images[0]
    assert 'data-loaded="true"' in images[0] and 'data-natural-width="40"' in images[0], "the image loaded"
    assert re.search(rf'<audio[^>]*src="media/{world["voice"]}\.wav"', dom), "the voice note is playable"
    assert "hello bob, edited" in dom and "(edited)" in dom
    assert "This message was deleted." in dom
    assert "alice hid this one" not in dom

    group = dump_dom(folder / "index.html", fragment=world["group"])
    assert "<title>Your messages archive</title>" in group, "the message text ran no script"
    assert "&lt;/script&gt;&lt;script&gt;document.title='pwned'" in group
    assert "see you saturday" in group


@pytest.mark.django_db
def test_index_html_shows_only_the_latest_messages_of_a_huge_conversation(
        alice, bob, settings, django_capture_on_commit_callbacks):
    settings.EXPORT_INDEX_MAX_MESSAGES = 3
    with django_capture_on_commit_callbacks(execute=True):
        direct, _ = messaging.conversation_create(creator=alice.user, type="direct", user_id=bob.user.pk)
        for number in range(5):
            _send(alice, direct["id"], type="text", text=f"message {number}")
    _, archive, _ = _build(alice.user, django_capture_on_commit_callbacks)
    assert len(_jsonl(archive, f"conversations/{direct['id']}/messages.jsonl")) == 5
    page = archive.read("index.html").decode()
    data = json.loads(page[len(INDEX_HEAD.decode()):-len(INDEX_TAIL.decode())])
    conversation = data["conversations"][0]
    assert (conversation["message_count"], conversation["shown_count"]) == (5, 3)
    assert [m["text"] for m in conversation["messages"]] == ["message 2", "message 3", "message 4"]


def test_missing_chromium_fails_with_the_install_command(monkeypatch):
    from tests.exports import chromium

    monkeypatch.setattr(chromium.shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"):
        chromium.chromium_binary()
