"""The web client under faults, in a real Chromium against the real stack: a revoked device,
a 429 with Retry-After, a failed upload, a reload (state comes back from the server)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Route, expect

from tests.webclient.browser import write_png
from tests.webclient.pages import WebUser

# A browser session of many steps on a shared 2-core machine: more than the suite's 120 s default.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

DESKTOP = {"width": 1280, "height": 800}


def _direct(web_stack, token: str, user_id: str) -> str:
    with web_stack.server.client(token) as http:
        response = http.post("/api/v1/conversations", json={"type": "direct", "user_id": user_id})
        assert response.status_code in (200, 201), response.text
        return response.json()["id"]


def test_a_device_revoked_elsewhere_goes_back_to_sign_in(web_stack, browser):
    session = web_stack.sign_in("+15550170001", "Alice")
    web = WebUser.open(browser, web_stack.base, "+15550170001", "Alice", viewport=DESKTOP)
    web.sign_in()
    expect(web.page.get_by_test_id("socket-state")).to_have_attribute("data-state", "online")

    # From her phone, Alice signs the browser out: its socket is closed with 4001.
    with web_stack.server.client(session["token"]) as http:
        devices = http.get("/api/v1/devices").json()
        browser_device = next(d for d in devices if d["name"].startswith("Web:"))
        assert http.delete(f"/api/v1/devices/{browser_device['id']}").status_code == 204

    expect(web.page.get_by_test_id("phone-form")).to_be_visible()
    expect(web.page.get_by_test_id("signout-reason")).to_be_visible()
    assert web.local_storage() == {}


def test_an_expired_token_at_start_goes_to_sign_in(web_stack, browser):
    web = WebUser.open(browser, web_stack.base, "+15550170009", "Zed", viewport=DESKTOP, token="not-a-valid-token")
    expect(web.page.get_by_test_id("phone-form")).to_be_visible()
    assert "mt.token" not in web.local_storage()


def test_a_429_is_waited_out_for_retry_after_seconds(web_stack, browser, tmp_path: Path):
    alice = web_stack.sign_in("+15550170011", "Alice")
    web_stack.sign_in("+15550170012", "Bob")
    web = WebUser.open(browser, web_stack.base, "+15550170011", "Alice", viewport=DESKTOP, token=alice["token"])
    expect(web.page.get_by_test_id("chat-list")).to_be_visible()

    calls: list[str] = []

    def limited_once(route: Route) -> None:
        calls.append(route.request.method)
        if len(calls) == 1:
            route.fulfill(status=429, headers={"Retry-After": "2", "Content-Type": "application/json"},
                          body='{"error": {"code": "rate_limited", "message": "Too many requests.", "details": {}}}')
        else:
            route.continue_()

    web.page.route(re.compile(r".*/api/v1/contacts/sync$"), limited_once)
    book = tmp_path / "book.csv"
    book.write_text("Name,Phone\nBob,+15550170012\n")
    web.nav("nav-contacts")
    web.page.get_by_test_id("book-file").set_input_files(str(book))
    expect(web.page.get_by_test_id("wait-banner")).to_contain_text("trying again")
    expect(web.page.get_by_test_id("book-result")).to_contain_text("1 friend is")
    expect(web.page.get_by_test_id("wait-banner")).to_have_count(0)
    assert calls == ["POST", "POST"]


def test_a_failed_upload_can_be_retried(web_stack, browser, tmp_path: Path):
    alice = web_stack.sign_in("+15550170021", "Alice")
    bob = web_stack.sign_in("+15550170022", "Bob")
    conversation = _direct(web_stack, alice["token"], bob["user"]["id"])
    web = WebUser.open(browser, web_stack.base, "+15550170021", "Alice", viewport=DESKTOP, token=alice["token"])
    web.open_chat("Bob")

    # The network drops every upload: the client retries with backoff, then offers a retry.
    failures: list[int] = []
    web.page.route(re.compile(r".*/api/v1/attachments$"), lambda route: (failures.append(1), route.abort("failed")))
    web.page.get_by_test_id("image-input").set_input_files(str(write_png(tmp_path / "p.png")))
    expect(web.page.locator('[data-testid="upload"][data-state="failed"]')).to_be_visible()
    assert len(failures) == 3
    web.page.unroute(re.compile(r".*/api/v1/attachments$"))
    web.page.get_by_test_id("retry-upload").click()
    expect(web.page.get_by_test_id("upload")).to_have_count(0)
    expect(web.page.locator('[data-testid="message"][data-type="image"]')).to_have_count(1)

    with web_stack.server.client(bob["token"]) as http:
        messages = http.get(f"/api/v1/conversations/{conversation}/messages").json()["messages"]
    assert [m["type"] for m in messages] == ["image"]


def test_after_a_reload_ticks_and_history_come_back_and_only_new_events_replay(web_stack, browser):
    alice = web_stack.sign_in("+15550170031", "Alice")
    bob = web_stack.sign_in("+15550170032", "Bob")
    conversation = _direct(web_stack, alice["token"], bob["user"]["id"])
    web = WebUser.open(browser, web_stack.base, "+15550170031", "Alice", viewport=DESKTOP, token=alice["token"])
    web.open_chat("Bob")
    web.send_text("before the reload")
    expect(web.message("before the reload")).to_have_attribute("data-status", "sent")
    with web_stack.server.client(bob["token"]) as http:
        seq = http.get(f"/api/v1/conversations/{conversation}/messages").json()["messages"][-1]["seq"]
        assert http.post(f"/api/v1/conversations/{conversation}/read", json={"seq": seq}).status_code == 204
    expect(web.message("before the reload")).to_have_attribute("data-status", "read")
    cursor_before = web.local_storage()["mt.cursor"]

    web.page.reload()
    web.open_chat("Bob")
    expect(web.message("before the reload")).to_have_attribute("data-status", "read")
    with web_stack.server.client(bob["token"]) as http:
        body = {"client_id": "0b5b1f0e-0000-4000-8000-000000000001", "type": "text", "text": "after the reload"}
        assert http.post(f"/api/v1/conversations/{conversation}/messages", json=body).status_code == 201
    expect(web.message("after the reload")).to_have_count(1)
    expect(web.message("before the reload")).to_have_count(1)
    web.page.wait_for_function(f"() => localStorage.getItem('mt.cursor') !== {cursor_before!r}")
