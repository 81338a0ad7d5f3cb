"""Red packets in the web client: a wallet topped up in the browser, a packet sent in a chat, opened
by the other person live, and both wallets and the packet's claim list agree."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.webclient.pages import WebUser

# A browser session of many steps on a shared 2-core machine: more than the suite's 120 s default.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _balance(web_stack, session: dict) -> int:
    with web_stack.server.client(session["token"]) as http:
        return http.get("/api/v1/wallet").json()["balance"]


def test_a_red_packet_sent_and_claimed_in_the_browser(web_stack, browser):
    alice = web_stack.sign_in("+15550210001", "Alice")
    bob = web_stack.sign_in("+15550210002", "Bob")
    web_stack.befriend(alice, bob)
    a = WebUser.open(browser, web_stack.base, "+15550210001", "Alice", viewport=DESKTOP, token=alice["token"])
    b = WebUser.open(browser, web_stack.base, "+15550210002", "Bob", viewport=PHONE, token=bob["token"])
    expect(b.page.get_by_test_id("socket-state")).to_have_attribute("data-state", "online")

    # Alice adds money to her wallet (the test provider approves at once).
    a.top_up("100")
    expect(a.page.get_by_test_id("wallet-balance")).to_have_text("¥100.00")
    expect(a.page.get_by_test_id("transaction")).to_have_count(1)
    assert _balance(web_stack, alice) == 10000

    # She sends Bob 8.88 with a greeting: her balance drops at once, the packet is in the chat.
    a.message_contact("Bob")
    a.page.get_by_test_id("red-packet-button").click()
    expect(a.page.get_by_test_id("wallet-balance")).to_have_text("¥100.00")
    a.page.get_by_test_id("rp-amount").fill("8.88")
    a.page.get_by_test_id("rp-greeting").fill("Happy new year")
    a.page.get_by_test_id("rp-send").click()
    expect(a.page.get_by_test_id("red-packet-composer")).to_have_count(0)
    a_packet = a.page.get_by_test_id("red-packet")
    expect(a_packet).to_contain_text("Happy new year")
    expect(a_packet.get_by_test_id("red-packet-line")).to_have_text("Not opened yet")
    assert _balance(web_stack, alice) == 10000 - 888
    # In a direct chat the sender cannot open her own packet.
    a_packet.click()
    expect(a.page.get_by_test_id("red-packet-dialog")).to_be_visible()
    expect(a.page.get_by_test_id("claim-red-packet")).to_have_count(0)
    expect(a.page.get_by_test_id("red-packet-summary")).to_contain_text("0/1 opened")

    # Bob sees it live, opens it and gets the whole 8.88.
    b.open_chat("Alice")
    b_packet = b.page.get_by_test_id("red-packet")
    expect(b_packet.get_by_test_id("red-packet-line")).to_have_text("Tap to open")
    b_packet.click()
    b.page.get_by_test_id("claim-red-packet").click()
    expect(b.page.get_by_test_id("claimed-amount")).to_have_text("¥8.88")
    expect(b.page.get_by_test_id("claim-red-packet")).to_have_count(0)
    expect(b.page.get_by_test_id("red-packet-claim")).to_have_count(1)
    b.page.get_by_test_id("close-red-packet").click()
    expect(b_packet.get_by_test_id("red-packet-line")).to_have_text("You got ¥8.88")

    # Alice's open packet shows Bob's claim live (red_packet.claimed), and so does the card.
    claim = a.page.get_by_test_id("red-packet-claim")
    expect(claim).to_have_count(1)
    expect(claim).to_contain_text("Bob")
    expect(claim).to_contain_text("¥8.88")
    expect(a.page.get_by_test_id("red-packet-summary")).to_contain_text("1/1 opened")
    a.page.get_by_test_id("close-red-packet").click()
    expect(a_packet.get_by_test_id("red-packet-line")).to_have_text("Opened by Bob")

    # Both wallets agree with the server.
    b.open_wallet()
    expect(b.page.get_by_test_id("wallet-balance")).to_have_text("¥8.88")
    expect(b.page.locator('[data-testid="transaction"][data-kind="red_packet_claim"]')).to_contain_text("+¥8.88")
    a.open_wallet()
    expect(a.page.get_by_test_id("wallet-balance")).to_have_text("¥91.12")
    expect(a.page.locator('[data-testid="transaction"][data-kind="red_packet_send"]')).to_contain_text("-¥8.88")
    assert _balance(web_stack, bob) == 888 and _balance(web_stack, alice) == 9112

    # Bob cannot send more than he has: told so, nothing debited, no packet posted.
    b.open_chat("Alice")
    b.page.get_by_test_id("red-packet-button").click()
    b.page.get_by_test_id("rp-amount").fill("50")
    b.page.get_by_test_id("rp-send").click()
    expect(b.page.get_by_test_id("rp-error")).to_contain_text("Not enough money")
    expect(b.page.get_by_test_id("red-packet")).to_have_count(1)
    assert _balance(web_stack, bob) == 888

    for user in (a, b):
        assert user.csp_violations() == []
