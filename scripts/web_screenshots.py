"""Screenshots of the web client's main screens at phone and desktop widths, into docs/web/.

Runs the real stack (uvicorn + a Celery worker) on a throwaway database created next to
DATABASE_URL's, seeds a few people and chats over the HTTP API (as their phones would),
and photographs the client in Debian's Chromium through Playwright. `make web-screenshots`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.processes import Worker  # noqa: E402
from tests.reliability.services import AsgiServer, django_env, manage, sign_in_over_http  # noqa: E402
from tests.webclient.browser import CHROMIUM_FLAGS, ensure_chromium, write_tone_wav  # noqa: E402

OUT = ROOT / "docs" / "web"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
PEOPLE = {
    "me": ("+15550190001", "Lei Jun", "Building phones since 2010"),
    "wei": ("+15550190002", "Wei Zhang", "At the office"),
    "anna": ("+15550190003", "Anna Schmidt", "Hiking on weekends"),
    "tom": ("+15550190004", "Tom Baker", ""),
}


def write_chart(path: Path) -> None:
    """A small bar chart to stand in for a photo."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (480, 300), (255, 247, 240))
    draw = ImageDraw.Draw(image)
    for i, value in enumerate([90, 140, 120, 190, 230, 260]):
        draw.rectangle([40 + i * 70, 270 - value, 90 + i * 70, 270], fill=(255, 105 - i * 8, i * 20))
    draw.line([30, 270, 460, 270], fill=(60, 60, 60), width=2)
    image.save(path, format="PNG")


def write_landscape(path: Path, hue: int) -> None:
    """Hills under a sky, to stand in for a holiday photo in Moments."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 400), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for y in range(400):
        draw.line([0, y, 400, y], fill=(120 + y // 8, 170 + y // 10, 235 - hue // 4))
    draw.ellipse([280, 50, 340, 110], fill=(255, 214, 90))
    draw.polygon([(0, 400), (0, 260), (120, 170), (230, 260), (320, 200), (400, 250), (400, 400)],
                 fill=(60 + hue // 3, 130, 70))
    draw.polygon([(0, 400), (0, 330), (160, 280), (400, 340), (400, 400)], fill=(40, 100 + hue // 5, 50))
    image.save(path, format="PNG")


def throwaway_database(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    name = f"web_screenshots_{os.getpid()}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return urlunsplit(parts._replace(path=f"/{name}")), admin


def drop_database(admin: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Api:
    def __init__(self, server: AsgiServer, token: str) -> None:
        self.http = server.client(token)

    def __call__(self, method: str, path: str, **kwargs):
        response = self.http.request(method, f"/api/v1{path}", **kwargs)
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json() if response.content else None

    def send(self, conversation: str, text: str, **extra) -> dict:
        body = {"client_id": str(uuid.uuid4()), "type": "text", "text": text, **extra}
        return self("POST", f"/conversations/{conversation}/messages", json=body)


def befriend(apis: dict[str, Api], phones: dict[str, str]) -> None:
    for key, api in apis.items():
        discovery = api("GET", "/contacts/discovery")
        pepper = base64.urlsafe_b64decode(discovery["pepper"] + "=" * (-len(discovery["pepper"]) % 4))
        hashes = [hmac.new(pepper, phone.encode(), hashlib.sha256).hexdigest() for other, phone in phones.items()
                  if other != key]
        api("POST", "/contacts/sync", json={"pepper_id": discovery["pepper_id"], "mode": "replace", "hashes": hashes})


def seed(server: AsgiServer, tmp: Path) -> tuple[dict, dict[str, str]]:
    sessions = {key: sign_in_over_http(server, phone) for key, (phone, _, _) in PEOPLE.items()}
    apis = {key: Api(server, session["token"]) for key, session in sessions.items()}
    for key, (_, name, about) in PEOPLE.items():
        apis[key]("PATCH", "/me", json={"display_name": name, "about": about})
    befriend(apis, {key: phone for key, (phone, _, _) in PEOPLE.items()})
    ids = {key: session["user"]["id"] for key, session in sessions.items()}
    me, wei, anna, tom = apis["me"], apis["wei"], apis["anna"], apis["tom"]

    hiking = me("POST", "/conversations", json={"type": "group", "title": "Weekend hiking",
                                                "member_ids": [ids["anna"], ids["tom"]]})["id"]
    anna.send(hiking, "Fragrant Hills on Saturday? Forecast says sunny")
    tom.send(hiking, "I'm in. Meet at the east gate at 8?")
    news = me("POST", "/conversations", json={"type": "broadcast", "title": "Product news",
                                              "member_ids": [ids["wei"], ids["anna"]]})["id"]
    me.send(news, "The new phone launches on Thursday, 19:30. Livestream link to follow.")
    time.sleep(1)
    direct = me("POST", "/conversations", json={"type": "direct", "user_id": ids["wei"]})["id"]
    first = wei.send(direct, "Did you see the keynote draft?")
    me.send(direct, "Reading it now. Slide 12 needs the new battery figures", reply_to=first["id"])
    with (tmp / "photo.png").open("rb") as photo:
        attachment = wei("POST", "/attachments", files={"file": ("chart.png", photo, "image/png")},
                         data={"kind": "image"})
    wei("POST", f"/conversations/{direct}/messages",
        json={"client_id": str(uuid.uuid4()), "type": "image", "attachment_id": attachment["id"]})
    with (tmp / "tone.wav").open("rb") as voice:
        note = wei("POST", "/attachments", files={"file": ("note.wav", voice, "audio/wav")}, data={"kind": "voice"})
    wei("POST", f"/conversations/{direct}/messages",
        json={"client_id": str(uuid.uuid4()), "type": "voice", "attachment_id": note["id"]})
    wei("POST", "/wallet/topups", json={"client_id": str(uuid.uuid4()), "amount": 20000})
    me("POST", "/wallet/topups", json={"client_id": str(uuid.uuid4()), "amount": 50000})
    packet = wei("POST", f"/conversations/{direct}/red-packets",
                 json={"client_id": str(uuid.uuid4()), "total": 888, "count": 1, "mode": "fixed",
                       "greeting": "For the launch dinner"})
    me("POST", f"/red-packets/{packet['id']}/claim")
    # Moments: Anna's hike with photos, liked and commented by friends; Tom's and my own posts.
    photos = []
    for i, hue in enumerate((0, 90, 180)):
        write_landscape(tmp / f"hills{i}.png", hue)
        with (tmp / f"hills{i}.png").open("rb") as photo:
            photos.append(anna("POST", "/attachments", files={"file": (f"hills{i}.png", photo, "image/png")},
                               data={"kind": "image"})["id"])
    tom("POST", "/moments", json={"client_id": str(uuid.uuid4()), "visibility": {"mode": "friends"},
                                  "text": "New bike, first 40 km done"})
    hike = anna("POST", "/moments", json={"client_id": str(uuid.uuid4()), "visibility": {"mode": "friends"},
                                          "text": "Fragrant Hills this morning. Worth the 6 am start!",
                                          "attachment_ids": photos})
    for api in (me, wei, tom):
        api("POST", f"/moments/{hike['id']}/like")
    wei("POST", f"/moments/{hike['id']}/comments", json={"client_id": str(uuid.uuid4()), "text": "Stunning view"})
    me("POST", f"/moments/{hike['id']}/comments", json={"client_id": str(uuid.uuid4()), "text": "Next time I'm coming"})
    anna("POST", f"/moments/{hike['id']}/comments", json={"client_id": str(uuid.uuid4()), "text": "Deal!",
                                                          "reply_to_user_id": ids["me"]})
    me("POST", "/moments", json={"client_id": str(uuid.uuid4()), "visibility": {"mode": "except",
                                                                               "user_ids": [ids["tom"]]},
                                 "text": "Keynote rehearsal went well. Thursday, 19:30!"})
    last = me.send(direct, "Perfect, thanks! I'll update it tonight")
    wei("POST", f"/conversations/{direct}/read", json={"seq": last["seq"]})
    wei.send(direct, "Great. Lunch tomorrow?")
    return sessions, {"direct": direct, "hiking": hiking, "news": news}


def main() -> None:
    database_url, redis_url = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    url, admin = throwaway_database(database_url)
    tmp = Path(tempfile.mkdtemp(prefix="web-shots-"))
    for folder in ("media", "exports", "export-tmp"):
        (tmp / folder).mkdir()
    write_chart(tmp / "photo.png")
    write_tone_wav(tmp / "tone.wav", seconds=4.0)
    env = django_env(DATABASE_URL=url, REDIS_URL=redis_url, OTP_TEST_NUMBERS="+1555", SECRET_KEY=secrets.token_hex(16),
                     LOG_LEVEL="WARNING", MEDIA_ROOT=str(tmp / "media"), EXPORT_ROOT=str(tmp / "exports"),
                     EXPORT_TEMP_DIR=str(tmp / "export-tmp"), PUSH_BACKEND="log", DEBUG="0",
                     PAYMENTS_BACKEND="test")
    server = worker = None
    try:
        manage("migrate", "--noinput", env=env)
        server = AsgiServer(env)
        server.start()
        worker = Worker(env)
        sessions, chats = seed(server, tmp)
        time.sleep(2)  # thumbnails
        shoot(server.base, sessions["me"]["token"], sessions["wei"]["token"], chats)
    finally:
        if worker:
            worker.stop()
        if server:
            server.kill()
        drop_database(admin, url)
    print(f"screenshots in {OUT.relative_to(ROOT)}")


def shoot(base: str, token: str, caller_token: str, chats: dict[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=ensure_chromium(), args=CHROMIUM_FLAGS)
        for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            scale = 2 if label == "phone" else 1
            signed_out = browser.new_context(viewport=viewport, device_scale_factor=scale, base_url=base)
            page = signed_out.new_page()
            page.goto("/app/")
            page.get_by_test_id("phone").fill("+1 555 019 0001")
            page.screenshot(path=OUT / f"{label}-sign-in.png")
            signed_out.close()

            context = browser.new_context(viewport=viewport, device_scale_factor=scale, base_url=base)
            context.add_init_script(f"localStorage.setItem('mt.token', {token!r})")
            page = context.new_page()
            page.goto("/app/")
            page.locator('[data-testid="chat-item"][data-title="Wei Zhang"]').wait_for()
            # Names are fetched after the list: wait until none is a placeholder.
            page.wait_for_function("() => !document.querySelector('[data-testid=chat-list]').innerText.includes('…')")
            if label == "phone":
                page.screenshot(path=OUT / f"{label}-chats.png")
            page.goto(f"/app/chat/{chats['direct']}")
            page.get_by_test_id("voice-audio").wait_for()
            page.wait_for_function("() => [...document.querySelectorAll('[data-testid=message-image]')]"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            page.wait_for_timeout(300)
            page.screenshot(path=OUT / f"{label}-chat.png")
            page.locator('[data-testid="red-packet"][data-state="claimed"]').click()
            page.get_by_test_id("red-packet-claim").wait_for()
            page.wait_for_timeout(300)
            page.screenshot(path=OUT / f"{label}-red-packet.png")
            page.get_by_test_id("close-red-packet").click()
            page.goto("/app/wallet")
            page.get_by_test_id("transaction").first.wait_for()
            page.screenshot(path=OUT / f"{label}-wallet.png")
            page.goto("/app/moments")
            page.get_by_test_id("moment").nth(2).wait_for()
            page.wait_for_function("() => { const l = document.querySelector('[data-testid=moment-list]');"
                                   " const imgs = [...l.querySelectorAll('[data-testid=moment-image]')];"
                                   " return !l.innerText.includes('…') && imgs.length === 3"
                                   " && imgs.every(i => i.complete && i.naturalWidth > 0); }")
            page.wait_for_timeout(300)
            page.screenshot(path=OUT / f"{label}-moments.png")
            shoot_call(browser, base, caller_token, chats["direct"], page, label)
            page.goto(f"/app/chat/{chats['hiking']}")
            page.get_by_test_id("message").first.wait_for()
            page.screenshot(path=OUT / f"{label}-group.png")
            page.goto("/app/contacts")
            page.get_by_test_id("contact").first.wait_for()
            page.screenshot(path=OUT / f"{label}-contacts.png")
            page.goto("/app/settings")
            page.get_by_test_id("privacy").wait_for()
            page.screenshot(path=OUT / f"{label}-settings.png")
            context.close()
        browser.close()


def shoot_call(browser, base: str, caller_token: str, direct: str, page, label: str) -> None:
    """Wei video-calls from another browser: the ringing card, then the call with both cameras."""
    caller = browser.new_context(viewport=DESKTOP, base_url=base)
    caller.add_init_script(f"localStorage.setItem('mt.token', {caller_token!r})")
    wei = caller.new_page()
    wei.goto(f"/app/chat/{direct}")
    wei.locator('[data-testid="socket-state"][data-state="online"]').wait_for(state="attached")
    page.goto(f"/app/chat/{direct}")
    page.locator('[data-testid="socket-state"][data-state="online"]').wait_for(state="attached")
    wei.get_by_test_id("call-video").click()
    page.locator('[data-testid="call"][data-state="ringing"]').wait_for()
    page.wait_for_function("() => !document.querySelector('[data-testid=call-peer]').innerText.includes('…')")
    page.screenshot(path=OUT / f"{label}-call-ringing.png")
    page.get_by_test_id("call-accept").click()
    page.locator('[data-testid="call"][data-connection="connected"]').wait_for()
    page.wait_for_function("() => { const v = document.querySelector('[data-testid=remote-video]');"
                           " return v && v.readyState >= 2 && v.videoWidth > 0; }")
    page.wait_for_timeout(1500)
    page.screenshot(path=OUT / f"{label}-call.png")
    page.get_by_test_id("call-hangup").click()
    page.locator('[data-testid="call"]').wait_for(state="detached", timeout=15_000)
    caller.close()


if __name__ == "__main__":
    main()
