"""What a person does in the web client, step by step, on a Playwright page."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect

TIMEOUT = 20_000


@dataclass
class WebUser:
    context: BrowserContext
    page: Page
    base: str
    phone: str
    name: str
    console: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser, base: str, phone: str, name: str, *, viewport: dict, token: str | None = None) -> WebUser:
        context = browser.new_context(viewport=viewport, accept_downloads=True, base_url=base)
        context.set_default_timeout(TIMEOUT)
        if token:
            # Signed in before (the only thing the client keeps is this key).
            context.add_init_script(f"localStorage.setItem('mt.token', {token!r})")
        page = context.new_page()
        user = cls(context=context, page=page, base=base, phone=phone, name=name)
        page.on("console", lambda message: user.console.append(f"{message.type}: {message.text}"))
        page.goto("/app/")
        return user

    # --- sign-in and profile -----------------------------------------------------------

    def sign_in(self) -> None:
        page = self.page
        page.get_by_test_id("phone").fill(self.phone)
        page.get_by_test_id("request-code").click()
        page.get_by_test_id("code").fill("000000")
        page.get_by_test_id("verify").click()
        expect(page.get_by_test_id("chat-list")).to_be_visible()

    def set_name(self) -> None:
        page = self.page
        self.nav("nav-settings")
        page.get_by_test_id("display-name").fill(self.name)
        page.get_by_test_id("save-profile").click()
        expect(page.get_by_test_id("open-settings")).to_contain_text(self.name)

    def go_home(self) -> None:
        """Back to the chat list (on a phone-sized window the list and a chat are never shown together)."""
        back = self.page.get_by_test_id("back")
        while back.is_visible():
            back.click()

    def nav(self, test_id: str) -> None:
        self.go_home()
        self.page.get_by_test_id(test_id).click()

    # --- contacts -------------------------------------------------------------------------

    def upload_address_book(self, path: Path) -> str:
        page = self.page
        self.nav("nav-contacts")
        page.get_by_test_id("book-file").set_input_files(str(path))
        result = page.get_by_test_id("book-result")
        expect(result).to_be_visible()
        return result.inner_text()

    def message_contact(self, name: str) -> None:
        page = self.page
        if not page.get_by_test_id("contacts").is_visible():
            self.nav("nav-contacts")
        page.get_by_test_id("contact").filter(has_text=name).get_by_test_id("contact-message").click()
        expect(page.get_by_test_id("chat")).to_be_visible()

    # --- chat --------------------------------------------------------------------------------

    def open_chat(self, title: str) -> None:
        page = self.page
        if page.get_by_test_id("chat").is_visible() and page.get_by_test_id("pane-title").inner_text() == title:
            return
        self.go_home()
        page.locator(f'[data-testid="chat-item"][data-title="{title}"]').click()
        expect(page.get_by_test_id("chat")).to_be_visible()
        expect(page.get_by_test_id("pane-title")).to_have_text(title)

    def send_text(self, text: str) -> None:
        self.page.get_by_test_id("message-input").fill(text)
        self.page.get_by_test_id("message-input").press("Enter")

    def message(self, text: str):
        return self.page.get_by_test_id("message").filter(has=self.page.get_by_test_id("message-text").filter(
            has_text=re.compile(f"^{re.escape(text)}$")))

    def select_message(self, text: str) -> None:
        self.message(text).locator(".bubble").click()
        expect(self.page.get_by_test_id("message-actions")).to_be_visible()

    # --- calls, wallet and red packets ----------------------------------------------------

    @property
    def call(self):
        return self.page.get_by_test_id("call")

    def open_wallet(self) -> None:
        self.nav("nav-settings")
        self.page.get_by_test_id("nav-wallet").click()
        expect(self.page.get_by_test_id("wallet")).to_be_visible()

    def top_up(self, amount: str) -> None:
        self.open_wallet()
        self.page.get_by_test_id("topup-amount").fill(amount)
        self.page.get_by_test_id("topup").click()

    def remote_video_playing(self) -> None:
        """The peer's camera reaches this page: the remote <video> decodes frames."""
        self.page.wait_for_function(
            "() => { const v = document.querySelector('[data-testid=remote-video]');"
            " return v && v.readyState >= 2 && v.videoWidth > 0 && !v.paused; }", timeout=TIMEOUT)

    def local_storage(self) -> dict[str, str]:
        return self.page.evaluate("Object.fromEntries(Object.entries(localStorage))")

    def csp_violations(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line or "Refused to" in line]
