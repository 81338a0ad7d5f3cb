"""The web client in a real Chromium against the real stack: two people sign in, find each other
through their address books, and chat (live delivery, ticks, typing, presence, replies, edits,
recalls, a photo, a voice note), one goes offline and back, and the data export downloads."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.webclient.browser import write_png
from tests.webclient.pages import WebUser

# A browser session of many steps on a shared 2-core machine: more than the suite's 120 s default.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ALICE_PHONE = "+15550160001"
BOB_PHONE = "+15550160002"


def test_two_people_chat_in_the_browser(web_stack, browser, tmp_path: Path):
    alice = WebUser.open(browser, web_stack.base, ALICE_PHONE, "Alice", viewport=DESKTOP)
    bob = WebUser.open(browser, web_stack.base, BOB_PHONE, "Bob", viewport=PHONE)
    for user in (alice, bob):
        user.sign_in()
        user.set_name()

    # Address books: a vCard with Bob's number written nationally, a CSV with Alice's in E.164.
    vcard = tmp_path / "alice.vcf"
    vcard.write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bobby Tables\r\nTEL;TYPE=CELL:(555) 016-0002\r\nEND:VCARD\r\n"
                     "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Nobody\r\nTEL:+1 555 016 0999\r\nEND:VCARD\r\n")
    csv = tmp_path / "bob.csv"
    csv.write_text("Name,Phone\nAlice Liddell,+1 555-016-0001\nDentist,+15550169998\n")
    assert "1 friend is" in alice.upload_address_book(vcard)
    assert "1 friend is" in bob.upload_address_book(csv)

    alice.message_contact("Bob")
    alice.send_text("Hello Bob")
    expect(alice.message("Hello Bob")).to_have_attribute("data-status", "sent")

    # Bob (a phone-sized window) sees the new chat with one unread message, live.
    bob.go_home()
    bob_item = bob.page.locator('[data-testid="chat-item"][data-title="Alice"]')
    expect(bob_item.get_by_test_id("unread")).to_have_text("1")
    bob.open_chat("Alice")
    expect(bob.message("Hello Bob")).to_be_visible()
    # Alice sees it delivered and read.
    expect(alice.message("Hello Bob")).to_have_attribute("data-status", "read")

    # Typing shows in the other's header while it lasts.
    bob.page.get_by_test_id("message-input").fill("Hi Al")
    expect(alice.page.get_by_test_id("pane-subtitle")).to_have_text("typing…")
    bob.page.get_by_test_id("message-input").fill("")

    # A reply carries the quoted message.
    bob.select_message("Hello Bob")
    bob.page.get_by_test_id("action-reply").click()
    bob.send_text("Hi Alice!")
    reply = alice.message("Hi Alice!")
    expect(reply.get_by_test_id("quote")).to_contain_text("Hello Bob")

    # Edit, then recall: both reach the other side live.
    alice.send_text("Lunch at noon?")
    expect(bob.message("Lunch at noon?")).to_be_visible()
    alice.select_message("Lunch at noon?")
    alice.page.get_by_test_id("action-edit").click()
    alice.page.get_by_test_id("message-input").fill("Lunch at one?")
    alice.page.get_by_test_id("message-input").press("Enter")
    edited = bob.message("Lunch at one?")
    expect(edited.get_by_test_id("edited")).to_be_visible()
    alice.select_message("Lunch at one?")
    alice.page.get_by_test_id("action-recall").click()
    expect(bob.page.get_by_test_id("recalled")).to_have_count(1)
    expect(bob.message("Lunch at one?")).to_have_count(0)

    # A photo: uploaded, sent, shown on the other side (decoded, not a broken image).
    png = write_png(tmp_path / "sunset.png", width=64, height=48)
    alice.page.get_by_test_id("image-input").set_input_files(str(png))
    bob_image = bob.page.get_by_test_id("message-image")
    expect(bob_image).to_have_count(1)
    bob.page.wait_for_function("() => { const i = document.querySelector('[data-testid=message-image]');"
                               " return i && i.complete && i.naturalWidth === 64; }")

    # A voice note recorded from the (fake) microphone with MediaRecorder, played back by Bob.
    alice.page.get_by_test_id("record").click()
    expect(alice.page.get_by_test_id("recording")).to_be_visible()
    alice.page.wait_for_timeout(1500)
    alice.page.get_by_test_id("record").click()
    expect(bob.page.get_by_test_id("voice-audio")).to_have_count(1)
    duration = bob.page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=voice-audio]');"
        " return a && a.readyState >= 1 && isFinite(a.duration) && a.duration > 0 ? a.duration : null; }").json_value()
    assert 0.5 < duration < 10

    # Bob goes offline: Alice sees him go, sends three messages; back online, each arrives once.
    bob.context.set_offline(True)
    expect(bob.page.get_by_test_id("connection-banner")).to_be_visible()
    expect(alice.page.get_by_test_id("pane-subtitle")).to_contain_text("last seen")
    for n in range(1, 4):
        alice.send_text(f"while you were away {n}")
        expect(alice.message(f"while you were away {n}")).to_have_attribute("data-status", "sent")
    bob.context.set_offline(False)
    for n in range(1, 4):
        expect(bob.message(f"while you were away {n}")).to_have_count(1)
    expect(alice.page.get_by_test_id("pane-subtitle")).to_have_text("online")
    expect(alice.message("while you were away 3")).to_have_attribute("data-status", "read")

    # Alice goes offline and types: queued (clock), sent once when she is back.
    alice.context.set_offline(True)
    expect(alice.page.get_by_test_id("connection-banner")).to_be_visible()
    alice.send_text("typed offline 1")
    alice.send_text("typed offline 2")
    expect(alice.page.locator('[data-testid="message"][data-status="pending"]')).to_have_count(2)
    alice.context.set_offline(False)
    for text in ("typed offline 1", "typed offline 2"):
        expect(bob.message(text)).to_have_count(1)
        expect(alice.message(text)).to_have_count(1)
    expect(alice.page.locator('[data-testid="message"][data-status="pending"]')).to_have_count(0)
    bob.page.wait_for_timeout(1000)  # a duplicate would have arrived by now
    for text in ("typed offline 1", "typed offline 2", "while you were away 1"):
        expect(bob.message(text)).to_have_count(1)

    # The data export: requested, built by the worker, downloaded, and it holds the chat.
    bob.nav("nav-settings")
    bob.page.get_by_test_id("nav-export").click()
    bob.page.get_by_test_id("request-export").click()
    download_button = bob.page.get_by_test_id("download-export")
    expect(download_button).to_be_visible(timeout=60_000)
    with bob.page.expect_download() as download_info:
        download_button.click()
    archive_path = download_info.value.path()
    archive = zipfile.ZipFile(io.BytesIO(Path(archive_path).read_bytes()))
    transcript = b"".join(archive.read(name) for name in archive.namelist() if name.endswith("messages.jsonl"))
    texts = [json.loads(line).get("text") for line in transcript.splitlines()]
    assert "Hello Bob" in texts and texts.count("typed offline 1") == 1
    assert "index.html" in archive.namelist()

    # The browser keeps the device key and the stream position, and nothing else: no number.
    for user in (alice, bob):
        stored = user.local_storage()
        assert set(stored) <= {"mt.token", "mt.cursor"}, stored
        assert not any(user.phone[2:] in value for value in stored.values())
        assert user.csp_violations() == []
