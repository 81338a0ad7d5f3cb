"""Calls in the web client: WebRTC between two Chromium pages (fake camera and microphone),
signalled only through the contract's call.* frames on /ws/v1, with the call log in the chat."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.webclient.pages import WebUser

# A browser session of many steps on a shared 2-core machine: more than the suite's 120 s default.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _call_log(web_stack, session: dict) -> list[dict]:
    with web_stack.server.client(session["token"]) as http:
        response = http.get("/api/v1/calls")
        assert response.status_code == 200, response.text
        return response.json()["calls"]


def test_a_video_call_rings_is_answered_and_hung_up_then_a_voice_call_is_declined(web_stack, browser):
    alice = web_stack.sign_in("+15550200001", "Alice")
    bob = web_stack.sign_in("+15550200002", "Bob")
    web_stack.befriend(alice, bob)
    a = WebUser.open(browser, web_stack.base, "+15550200001", "Alice", viewport=DESKTOP, token=alice["token"])
    b = WebUser.open(browser, web_stack.base, "+15550200002", "Bob", viewport=PHONE, token=bob["token"])
    expect(b.page.get_by_test_id("socket-state")).to_have_attribute("data-state", "online")
    a.message_contact("Bob")

    # Alice places a video call: she sees "Calling…", Bob's phone rings with her name.
    a.page.get_by_test_id("call-video").click()
    expect(a.call).to_have_attribute("data-state", "ringing")
    expect(a.page.get_by_test_id("call-status")).to_have_text("Calling…")
    expect(b.call).to_have_attribute("data-state", "ringing")
    expect(b.call).to_have_attribute("data-direction", "incoming")
    expect(b.call).to_have_attribute("data-media", "video")
    expect(b.page.get_by_test_id("call-peer")).to_have_text("Alice")
    expect(b.page.get_by_test_id("call-status")).to_have_text("Incoming video call")
    assert _call_log(web_stack, alice)[0]["state"] == "ringing"

    # Bob answers: both are active, the peer connection connects, each sees the other's camera.
    b.page.get_by_test_id("call-accept").click()
    for user in (a, b):
        expect(user.call).to_have_attribute("data-state", "active")
        expect(user.call).to_have_attribute("data-connection", "connected")
        user.remote_video_playing()
        expect(user.page.get_by_test_id("local-video")).to_be_visible()
    assert _call_log(web_stack, bob)[0]["state"] == "active"
    expect(a.page.get_by_test_id("call-status")).to_have_text(re.compile(r"^\d+:\d\d$"))  # the call's clock

    # Mute and camera off are local (tracks disabled) and show as pressed.
    a.page.get_by_test_id("call-mute").click()
    expect(a.page.get_by_test_id("call-mute")).to_have_attribute("aria-pressed", "true")
    assert a.page.evaluate("() => document.querySelector('[data-testid=local-video]').srcObject"
                           ".getAudioTracks().every(t => !t.enabled)")

    # Bob hangs up: it ends on both sides, and both chats hold one completed video call.
    b.page.get_by_test_id("call-hangup").click()
    expect(b.call).to_have_attribute("data-state", "ended")
    expect(a.call).to_have_attribute("data-state", "ended")
    expect(a.page.get_by_test_id("call-status")).to_contain_text("Call ended")
    logged = _call_log(web_stack, alice)[0]
    assert logged["state"] == "ended" and logged["outcome"] == "completed" and logged["duration_ms"] > 0
    expect(a.page.get_by_test_id("call-message")).to_have_count(1)
    expect(a.page.get_by_test_id("call-message")).to_have_attribute("data-outcome", "completed")
    expect(a.page.get_by_test_id("call-message")).to_contain_text("Video call")
    # The camera and microphone are released when the call ends.
    assert a.page.evaluate("() => document.querySelectorAll('video').length") == 0
    expect(b.call).to_have_count(0, timeout=15_000)  # the "call ended" card goes by itself
    b.open_chat("Alice")
    expect(b.page.get_by_test_id("call-message")).to_have_attribute("data-outcome", "completed")

    # Bob calls back by voice; Alice declines: Bob sees it declined, the chat logs it.
    expect(a.call).to_have_count(0, timeout=10_000)
    b.page.get_by_test_id("call-voice").click()
    expect(b.page.get_by_test_id("call-status")).to_have_text("Calling…")
    expect(a.call).to_have_attribute("data-state", "ringing")
    expect(a.page.get_by_test_id("call-status")).to_have_text("Incoming voice call")
    a.page.get_by_test_id("call-decline").click()
    expect(a.call).to_have_attribute("data-state", "ended")
    expect(b.call).to_have_attribute("data-state", "ended")
    expect(b.page.get_by_test_id("call-status")).to_have_text("Call declined")
    declined = b.page.get_by_test_id("call-message").last
    expect(declined).to_have_attribute("data-outcome", "rejected")
    expect(declined).to_contain_text("Declined voice call")
    assert _call_log(web_stack, bob)[0]["outcome"] == "rejected"

    for user in (a, b):
        assert user.csp_violations() == []
