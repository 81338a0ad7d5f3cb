"""Groups and broadcasts in the web client: created in the browser, live for the members."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.webclient.pages import WebUser

# A browser session of many steps on a shared 2-core machine: more than the suite's 120 s default.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def test_a_group_and_a_broadcast_made_in_the_browser(web_stack, browser):
    alice = web_stack.sign_in("+15550180001", "Alice")
    bob = web_stack.sign_in("+15550180002", "Bob")
    carol = web_stack.sign_in("+15550180003", "Carol")
    web_stack.befriend(alice, bob, carol)
    a = WebUser.open(browser, web_stack.base, "+15550180001", "Alice", viewport=DESKTOP, token=alice["token"])
    b = WebUser.open(browser, web_stack.base, "+15550180002", "Bob", viewport=PHONE, token=bob["token"])
    expect(b.page.get_by_test_id("chat-list")).to_be_visible()

    a.nav("nav-new-group")
    a.page.get_by_test_id("group-title").fill("Hiking")
    for name in ("Bob", "Carol"):
        a.page.locator(f'[data-testid="pick-member"][data-name="{name}"]').check()
    a.page.get_by_test_id("create-group").click()
    expect(a.page.get_by_test_id("pane-subtitle")).to_have_text("3 members")
    a.send_text("Saturday, 8 am?")

    # Bob sees the new group live, with the message and who wrote it.
    b.open_chat("Hiking")
    expect(b.message("Saturday, 8 am?")).to_be_visible()
    expect(b.page.locator(".message .sender").first).to_have_text("Alice")
    b.send_text("I'm in")
    expect(a.message("I'm in")).to_be_visible()
    # Read by Bob, but Carol's phone has not fetched it: one tick, as long as one member lacks it.
    expect(a.message("Saturday, 8 am?")).to_have_attribute("data-status", "sent")
    with web_stack.server.client(carol["token"]) as http:
        cursor = http.get("/api/v1/sync", params={"cursor": ""}).json()["cursor"]
        http.get("/api/v1/sync", params={"cursor": cursor})  # coming back with a cursor acknowledges it
    expect(a.message("Saturday, 8 am?")).to_have_attribute("data-status", "delivered")

    # A broadcast: members read, only admins post.
    a.nav("nav-new-broadcast")
    a.page.get_by_test_id("group-title").fill("Club news")
    a.page.locator('[data-testid="pick-member"][data-name="Bob"]').check()
    a.page.get_by_test_id("create-group").click()
    a.send_text("Season opens in May")
    b.go_home()
    b.open_chat("Club news")
    expect(b.message("Season opens in May")).to_be_visible()
    expect(b.page.get_by_test_id("composer")).to_have_count(0)
    expect(b.page.get_by_text("Only admins can post")).to_be_visible()
