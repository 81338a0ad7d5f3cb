"""Moments in the web client: Alice posts text and a photo, her friend Bob sees it live in his
timeline, likes and comments, and Alice sees the like and the comment live; she deletes it; the timeline pages by its
cursor."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.webclient.browser import write_png
from tests.webclient.pages import WebUser

# A browser session of many steps on a shared 2-core machine: more than the suite's 120 s default.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _timeline(web_stack, session: dict) -> list[dict]:
    with web_stack.server.client(session["token"]) as http:
        response = http.get("/api/v1/moments")
        assert response.status_code == 200, response.text
        return response.json()["moments"]


def test_a_moment_posted_liked_and_commented_in_two_browsers(web_stack, browser, tmp_path):
    alice = web_stack.sign_in("+15550230001", "Alice")
    bob = web_stack.sign_in("+15550230002", "Bob")
    web_stack.befriend(alice, bob)
    with web_stack.server.client(bob["token"]) as http:
        response = http.post("/api/v1/conversations", json={"type": "direct", "user_id": alice["user"]["id"]})
        assert response.status_code in (200, 201), response.text
    photo = write_png(tmp_path / "sunset.png", width=120, height=90)
    a = WebUser.open(browser, web_stack.base, "+15550230001", "Alice", viewport=DESKTOP, token=alice["token"])
    b = WebUser.open(browser, web_stack.base, "+15550230002", "Bob", viewport=PHONE, token=bob["token"])
    for user in (a, b):
        expect(user.page.get_by_test_id("socket-state")).to_have_attribute("data-state", "online")

    # Bob has his (empty) timeline open before Alice posts.
    b.nav("nav-moments")
    expect(b.page.get_by_test_id("moments-empty")).to_be_visible()

    # Alice writes a post with a photo, for all her friends.
    a.nav("nav-moments")
    a.page.get_by_test_id("moment-input").fill("Sunset at the beach")
    a.page.get_by_test_id("moment-files").set_input_files(str(photo))
    expect(a.page.get_by_test_id("moment-draft-image")).to_have_count(1)
    expect(a.page.get_by_test_id("moment-visibility")).to_have_value("friends")
    a.page.get_by_test_id("moment-post").click()
    a_post = a.page.get_by_test_id("moment")
    expect(a_post).to_have_count(1)
    expect(a_post.get_by_test_id("moment-text")).to_have_text("Sunset at the beach")
    expect(a.page.get_by_test_id("moment-draft-image")).to_have_count(0)
    expect(a.page.get_by_test_id("moment-input")).to_have_value("")

    # The server has it, with the image, visible to Bob.
    [posted] = _timeline(web_stack, bob)
    assert posted["text"] == "Sunset at the beach" and posted["author_id"] == alice["user"]["id"]
    assert [attachment["kind"] for attachment in posted["attachments"]] == ["image"]
    assert posted["visibility"]["mode"] == "friends"

    # Bob's open timeline shows it live (moment.new), the photo loaded from the server.
    b_post = b.page.get_by_test_id("moment")
    expect(b_post).to_have_count(1)
    expect(b_post).to_have_attribute("data-author", "Alice")
    expect(b_post.get_by_test_id("moment-text")).to_have_text("Sunset at the beach")
    image = b_post.get_by_test_id("moment-image")
    expect(image).to_have_count(1)
    b.page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=moment-image]');"
        " return i && i.complete && i.naturalWidth > 0; }")
    # Only the author may delete it.
    expect(b_post.get_by_test_id("moment-delete")).to_have_count(0)

    # Bob likes it and comments.
    b_post.get_by_test_id("moment-like").click()
    expect(b_post.get_by_test_id("moment-like")).to_have_attribute("aria-pressed", "true")
    expect(b_post.get_by_test_id("moment-likes")).to_have_text("♥ You")
    b_post.get_by_test_id("moment-comment-open").click()
    b_post.get_by_test_id("moment-comment-input").fill("Beautiful!")
    b_post.get_by_test_id("moment-comment-send").click()
    expect(b_post.get_by_test_id("moment-comment")).to_have_count(1)
    expect(b_post.get_by_test_id("moment-comment")).to_contain_text("You")
    expect(b_post.get_by_test_id("moment-comment-text")).to_have_text("Beautiful!")

    # Alice sees the like and the comment live (moment.interaction), without reloading.
    expect(a_post.get_by_test_id("moment-likes")).to_have_text("♥ Bob")
    expect(a_post.get_by_test_id("moment-comment")).to_have_count(1)
    expect(a_post.get_by_test_id("moment-comment")).to_contain_text("Bob")
    expect(a_post.get_by_test_id("moment-comment-text")).to_have_text("Beautiful!")
    [seen] = _timeline(web_stack, alice)
    assert [like["user_id"] for like in seen["likes"]] == [bob["user"]["id"]]
    assert [comment["text"] for comment in seen["comments"]] == ["Beautiful!"]

    # She replies to Bob; Bob, an earlier commenter, sees the reply live.
    a_post.get_by_test_id("moment-comment").get_by_role("button", name="Bob").click()
    expect(a_post.get_by_test_id("moment-comment-input")).to_have_attribute("placeholder", "Reply to Bob")
    a_post.get_by_test_id("moment-comment-input").fill("Thanks!")
    a_post.get_by_test_id("moment-comment-send").click()
    expect(a_post.get_by_test_id("moment-comment")).to_have_count(2)
    expect(b_post.get_by_test_id("moment-comment").nth(1)).to_contain_text("Alice replied to you")

    # Bob opens Alice's page from her name: the same post.
    b_post.get_by_test_id("moment-author").click()
    expect(b.page.get_by_test_id("person-moments")).to_be_visible()
    expect(b.page.get_by_test_id("pane-title")).to_have_text("Alice")
    expect(b.page.get_by_test_id("moment").get_by_test_id("moment-text")).to_have_text("Sunset at the beach")
    # ... and from their chat's details.
    b.open_chat("Alice")
    b.page.get_by_test_id("chat-info").click()
    b.page.get_by_test_id("peer-moments").click()
    expect(b.page.get_by_test_id("person-moments")).to_be_visible()
    expect(b.page.get_by_test_id("moment").get_by_test_id("moment-text")).to_have_text("Sunset at the beach")
    b.nav("nav-moments")

    # Alice deletes her post; it is gone from the server and from Bob's timeline on reload.
    a.page.once("dialog", lambda dialog: dialog.accept())
    a_post.get_by_test_id("moment-delete").click()
    expect(a.page.get_by_test_id("moment")).to_have_count(0)
    assert _timeline(web_stack, bob) == []
    b.page.goto("/app/moments")
    expect(b.page.get_by_test_id("moments-empty")).to_be_visible()

    # Paging by the server's cursor: 21 posts are a page of 20 and, on "Older posts", the last one.
    with web_stack.server.client(alice["token"]) as http:
        for n in range(1, 22):
            response = http.post("/api/v1/moments", json={"client_id": str(uuid.uuid4()), "text": f"Post {n}",
                                                          "visibility": {"mode": "friends"}})
            assert response.status_code == 201, response.text
    b.page.reload()
    texts = b.page.get_by_test_id("moment-text")
    expect(texts).to_have_count(20)
    expect(texts.first).to_have_text("Post 21")
    b.page.get_by_test_id("moments-more").click()
    expect(texts).to_have_count(21)
    expect(texts.last).to_have_text("Post 1")
    expect(b.page.get_by_test_id("moments-more")).to_have_count(0)

    # The visibility choice: "Only me" stays with Alice; "Only these friends" with Bob picked reaches him.
    a.page.get_by_test_id("moment-input").fill("Note to self")
    a.page.get_by_test_id("moment-visibility").select_option("private")
    a.page.get_by_test_id("moment-post").click()
    expect(a.page.get_by_test_id("moment").first.get_by_test_id("moment-visibility-tag")).to_have_text("Only me")
    a.page.get_by_test_id("moment-input").fill("For Bob only")
    a.page.get_by_test_id("moment-visibility").select_option("only")
    a.page.get_by_test_id("moment-friend").check()
    a.page.get_by_test_id("moment-post").click()
    expect(a.page.get_by_test_id("moment").first.get_by_test_id("moment-text")).to_have_text("For Bob only")
    expect(texts.first).to_have_text("For Bob only")
    visible_to_bob = [moment["text"] for moment in _timeline(web_stack, bob)]
    assert visible_to_bob[0] == "For Bob only" and "Note to self" not in visible_to_bob
    mine = {moment["text"]: moment["visibility"] for moment in _timeline(web_stack, alice)}
    assert mine["Note to self"] == {"mode": "private", "user_ids": []}
    assert mine["For Bob only"] == {"mode": "only", "user_ids": [bob["user"]["id"]]}
    expect(b.page.get_by_test_id("moment-text").filter(has_text="Note to self")).to_have_count(0)

    for user in (a, b):
        assert user.csp_violations() == []
