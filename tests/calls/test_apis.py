"""GET /api/v1/calls (the log), /calls/{id} and /calls/turn (coturn REST credentials)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid

import pytest

from calls import services
from contacts.services import block_create
from tests.calls.conftest import answer, new_direct, new_group, offer

pytestmark = pytest.mark.django_db


def test_turn_credentials_are_the_ones_coturn_accepts(alice, settings):
    settings.TURN_URLS = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]
    settings.TURN_SECRET = "north-wind-7"
    settings.TURN_TTL = 3600
    before = int(time.time())
    response = alice.client.get("/api/v1/calls/turn")
    assert response.status_code == 200
    body = response.json()
    assert body["urls"] == settings.TURN_URLS and body["ttl"] == 3600
    expiry, user_id = body["username"].split(":")
    assert user_id == str(alice.user.pk)
    assert before + 3600 <= int(expiry) <= int(time.time()) + 3600
    # What coturn computes with use-auth-secret and static-auth-secret=north-wind-7 (RFC 2104 HMAC-SHA1,
    # base64), written out here rather than taken from the server's code.
    expected = base64.b64encode(hmac.new(b"north-wind-7", body["username"].encode(), hashlib.sha1).digest())
    assert body["credential"] == expected.decode()
    assert body["credential"] != base64.b64encode(
        hmac.new(b"another-secret", body["username"].encode(), hashlib.sha1).digest()).decode()


def test_turn_without_configuration_lists_no_servers(alice, settings):
    settings.TURN_URLS = []
    settings.TURN_SECRET = ""
    assert alice.client.get("/api/v1/calls/turn").json() == {"urls": [], "username": "", "credential": "",
                                                            "ttl": 0}


def test_turn_needs_authentication(api):
    response = api.get("/api/v1/calls/turn")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"


def test_call_log_lists_placed_and_received_calls_newest_first_and_pages(alice, bob, carol, direct):
    first = offer(alice, direct, media="video")
    answer(bob, first)
    services.call_hangup(user=bob.user, device_id=bob.device.pk, call_id=first)
    second = offer(bob, direct)
    third = offer(carol, new_direct(carol, alice))
    page = alice.client.get("/api/v1/calls?limit=2").json()
    assert [c["call_id"] for c in page["calls"]] == [str(third), str(second)]
    assert page["has_more"] is True
    assert [c["direction"] for c in page["calls"]] == ["incoming", "incoming"]
    rest = alice.client.get(f"/api/v1/calls?limit=2&before={page['cursor']}").json()
    assert [c["call_id"] for c in rest["calls"]] == [str(first)] and rest["has_more"] is False
    entry = rest["calls"][0]
    assert (entry["direction"], entry["media"], entry["state"], entry["outcome"], entry["reason"]) == (
        "outgoing", "video", "ended", "completed", "hangup")
    assert {(p["user_id"], p["role"], p["state"]) for p in entry["participants"]} == {
        (str(alice.user.pk), "caller", "left"), (str(bob.user.pk), "callee", "left")}
    assert [c["call_id"] for c in bob.client.get("/api/v1/calls").json()["calls"]] == [str(second), str(first)]


def test_call_log_of_someone_else_is_never_shown(alice, bob, carol, direct):
    offer(alice, direct)
    assert carol.client.get("/api/v1/calls").json() == {"calls": [], "cursor": "", "has_more": False}


def test_a_blocker_does_not_see_the_calls_they_were_never_told_of(alice, bob, direct):
    block_create(blocker=bob.user, blocked_id=alice.user.pk)
    call_id = offer(alice, direct)
    assert bob.client.get("/api/v1/calls").json()["calls"] == []
    assert bob.client.get(f"/api/v1/calls/{call_id}").status_code == 404
    assert alice.client.get(f"/api/v1/calls/{call_id}").json()["state"] == "ringing"


# (An unknown parameter such as `since` is ignored, as on every endpoint: tests/core/test_query_parameters.py.)
@pytest.mark.parametrize("query", ["before=junk", "before=1.zz", "limit=0", "limit=101", "limit=x"])
def test_bad_log_queries_are_validation_errors(alice, query):
    response = alice.client.get(f"/api/v1/calls?{query}")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_one_call_for_its_participants_only(alice, bob, carol, direct):
    call_id = offer(alice, direct)
    body = bob.client.get(f"/api/v1/calls/{call_id}").json()
    assert (body["call_id"], body["state"], body["direction"]) == (str(call_id), "ringing", "incoming")
    for path in (f"/api/v1/calls/{call_id}", f"/api/v1/calls/{uuid.uuid4()}", "/api/v1/calls/not-a-uuid"):
        response = carol.client.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert str(call_id) not in response.content.decode()


def test_call_endpoints_are_in_the_openapi_document(api):
    paths = api.get("/api/schema/?format=json").json()["paths"]
    assert {"/api/v1/calls", "/api/v1/calls/turn", "/api/v1/calls/{call_id}"} <= set(paths)


def test_the_log_costs_three_queries_whatever_its_length(alice, bob, carol, direct, django_assert_num_queries):
    from calls.selectors import call_log

    for _ in range(2):
        offer(alice, direct)
    with django_assert_num_queries(3):
        assert len(call_log(user_id=alice.user.pk)["calls"]) == 2
    group_call = offer(alice, new_group(alice, bob, carol))
    for _ in range(5):
        offer(alice, direct)
    with django_assert_num_queries(3):
        log = call_log(user_id=alice.user.pk)["calls"]
    assert len(log) == 8 and len(next(c for c in log if c["call_id"] == str(group_call))["participants"]) == 3
