"""A 200,000-message conversation in the export's offline page (issue 19, item 6): every message
is reachable, in pages, and index.html stays small enough to open fast (real headless Chromium)."""

from __future__ import annotations

import json
import re
import time

import pytest
from django.db import connection

from exports.index_page import INDEX_HEAD, INDEX_TAIL
from messaging import services as messaging
from messaging.models import Message
from tests.exports.chromium import dump_dom
from tests.exports.test_archive import _build

TOTAL = 200_000


def _bulk_messages(conversation_id: str, sender_id: object, total: int) -> None:
    """`total` text messages "message <seq>" straight into the table (no send path), seq 1..total."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {Message._meta.db_table} (id, conversation_id, seq, sender_id, client_id, type, text,
                                                       created_at)
                SELECT gen_random_uuid(), %s, n, %s, gen_random_uuid(), 'text', 'message ' || n,
                       now() - make_interval(secs => %s - n)
                FROM generate_series(1, %s) AS n""",  # noqa: S608 (the table name is the model's)
            [conversation_id, sender_id, total, total])


def _rows(dom: str) -> list[str]:
    return re.findall(r'<div class="text">(message \d+)</div>', dom)


@pytest.mark.django_db
def test_a_200000_message_conversation_is_all_in_the_offline_page_in_chromium(
        alice, bob, tmp_path, settings, django_capture_on_commit_callbacks):
    settings.EXPORT_INDEX_MAX_MESSAGES = 5000
    direct, _ = messaging.conversation_create(creator=alice.user, type="direct", user_id=bob.user.pk)
    _bulk_messages(direct["id"], alice.user.pk, TOTAL)
    _, archive, _ = _build(alice.user, django_capture_on_commit_callbacks)

    page = archive.read("index.html")
    assert len(page) < 3 * 1024 * 1024, "index.html holds only the newest page"
    data = json.loads(page[len(INDEX_HEAD):-len(INDEX_TAIL)])
    conversation = data["conversations"][0]
    assert (conversation["message_count"], conversation["pages"], len(conversation["messages"])) == (TOTAL, 40, 5000)

    # Every message is in exactly one page: the inline newest one, or page-1.js .. page-39.js.
    seen = [m["text"] for m in conversation["messages"]]
    for number in range(1, 40):
        script = archive.read(f"conversations/{direct['id']}/page-{number}.js").decode()
        prefix = f'archivePage("{direct["id"]}",{number},'
        assert script.startswith(prefix) and script.endswith(");\n")
        texts = [m["text"] for m in json.loads(script[len(prefix):-3])]
        assert len(texts) == 5000
        seen.extend(texts)
    assert sorted(seen) == sorted(f"message {n}" for n in range(1, TOTAL + 1))

    folder = tmp_path / "unzipped"
    archive.extractall(folder)
    started = time.monotonic()
    newest = dump_dom(folder / "index.html", fragment=direct["id"])
    opened_in = time.monotonic() - started
    rows = _rows(newest)
    assert rows[0] == f"message {TOTAL - 4999}" and rows[-1] == f"message {TOTAL}" and len(rows) == 5000
    assert f'href="#{direct["id"]}/1"' in newest and "Page 40 of 40" in newest
    assert opened_in < 20, f"the page took {opened_in:.1f} s to open and render"

    oldest = dump_dom(folder / "index.html", fragment=f"{direct['id']}/39")
    rows = _rows(oldest)
    assert rows[0] == "message 1" and rows[-1] == "message 5000" and len(rows) == 5000
    assert "Page 1 of 40" in oldest and f'href="#{direct["id"]}/38"' in oldest and 'class="older"' not in oldest

    middle = dump_dom(folder / "index.html", fragment=f"{direct['id']}/20")
    rows = _rows(middle)
    assert rows[0] == f"message {TOTAL - 21 * 5000 + 1}" and rows[-1] == f"message {TOTAL - 20 * 5000}"
    print(f"\n200,000 messages: index.html {len(page) / 1e6:.1f} MB, newest page opened in {opened_in:.1f} s")


@pytest.mark.django_db
def test_a_missing_page_file_says_so_instead_of_hanging(alice, bob, tmp_path, settings,
                                                       django_capture_on_commit_callbacks):
    settings.EXPORT_INDEX_MAX_MESSAGES = 10
    direct, _ = messaging.conversation_create(creator=alice.user, type="direct", user_id=bob.user.pk)
    _bulk_messages(direct["id"], alice.user.pk, 25)
    _, archive, _ = _build(alice.user, django_capture_on_commit_callbacks)
    folder = tmp_path / "unzipped"
    archive.extractall(folder)
    (folder / "conversations" / direct["id"] / "page-2.js").unlink()
    dom = dump_dom(folder / "index.html", fragment=f"{direct['id']}/2")
    assert "This page is missing from the archive folder" in dom
    dom = dump_dom(folder / "index.html", fragment=f"{direct['id']}/1")
    assert _rows(dom) == [f"message {n}" for n in range(6, 16)]
