"""WebSocket frame fuzzing: random and mutated frames never crash the consumer or leak.

Each example opens a socket as mallory, sends a handful of generated frames
(random JSON, raw text and bytes, valid frames with fields swapped for wrong
types, huge strings, deep nesting, unknown types, and other users' ids), then
a `ping`. Every reply must be a documented frame; an `error` must carry a
documented code (never `internal_error`); nothing of the conversation between
carol and dave may ever appear; and the socket must still answer the `ping`
(or have been closed with a documented code).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import orjson
import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calls import services as call_services
from messaging import services as messaging_services
from tests.factories import sign_in
from tests.realtime.conftest import Client, open_socket

pytestmark = [pytest.mark.django_db(transaction=True)]

SECRET = "carol and dave only: 7d1c"
REPLY_TYPES = {"error", "event", "pong", "message.sent", "presence", "typing", "call.ok", "call.ended"}
ERROR_CODES = {"validation_error", "payload_too_large", "not_found", "forbidden", "rate_limited", "conflict"}
CLOSE_CODES = {4008}  # flooding; 4001 would mean our own valid token was refused

FOREIGN: dict[str, str] = {}  # ids of carol and dave's objects, filled by the fixture

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
frame_types = st.sampled_from(["hello", "ack", "message.send", "typing", "ping", "call.offer", "call.answer",
                               "event", "message.sent", "HELLO", "", "__proto__"]) | st.text(max_size=20)
foreign_ids = st.sampled_from(["conversation", "message", "carol", "dave", "call"]).map(lambda key: FOREIGN[key])
nasty = (json_values | foreign_ids | st.just("x" * 70_000) | st.just(-1) | st.just(2**70)
         | st.just("0" * 5000) | st.just("\u0000\ud7ff\U0010ffff"))


@st.composite
def mutated_frames(draw: st.DrawFn) -> dict[str, Any]:
    """A valid frame with some fields replaced, removed or added."""
    templates = [
        {"type": "hello", "cursor": "0"},
        {"type": "ack", "cursor": "1"},
        {"type": "typing", "conversation_id": FOREIGN["conversation"], "state": "start"},
        {"type": "message.send", "ref": "r", "conversation_id": FOREIGN["conversation"],
         "message": {"client_id": str(uuid.uuid4()), "type": "text", "text": "hi"}},
        {"type": "message.send", "ref": "r", "conversation_id": FOREIGN["own"],
         "message": {"client_id": str(uuid.uuid4()), "type": "text", "text": "hi", "reply_to": FOREIGN["message"]}},
        {"type": "ping"},
        {"type": "call.offer", "ref": "c", "call_id": str(uuid.uuid4()), "conversation_id": FOREIGN["conversation"],
         "media": "audio", "remote_control": False, "sdp": "v=0"},
        {"type": "call.offer", "ref": "c", "call_id": str(uuid.uuid4()), "conversation_id": FOREIGN["own"],
         "media": "video", "sdp": "v=0"},
        {"type": "call.offer", "ref": "c", "call_id": FOREIGN["call"], "to": FOREIGN["dave_device"], "sdp": "v=0"},
        {"type": "call.answer", "ref": "c", "call_id": FOREIGN["call"], "sdp": "v=0", "grant_control": True},
        {"type": "call.ice", "ref": "c", "call_id": FOREIGN["call"], "candidate": {"candidate": "", "sdpMid": "0"}},
        {"type": "call.update", "ref": "c", "call_id": FOREIGN["call"], "media": "screen", "remote_control": True},
        {"type": "call.reject", "call_id": FOREIGN["call"]},
        {"type": "call.hangup", "call_id": FOREIGN["call"]},
    ]
    frame = dict(draw(st.sampled_from(templates)))
    for key in draw(st.lists(st.sampled_from([*frame.keys(), "ref", "extra", "message"]), max_size=3)):
        action = draw(st.sampled_from(["replace", "drop", "nest"]))
        if action == "drop":
            frame.pop(key, None)
        elif action == "nest" and isinstance(frame.get("message"), dict):
            frame["message"] = {**frame["message"], draw(st.sampled_from(
                ["type", "text", "client_id", "attachment_id", "reply_to", "location"])): draw(nasty)}
        else:
            frame[key] = draw(nasty)
    return frame


def encode(frame: Any) -> str:
    return json.dumps(frame)  # not orjson: it refuses integers beyond 64 bits, which we want to send


raw_frames = st.one_of(
    mutated_frames().map(lambda f: ("text", encode(f))),
    st.fixed_dictionaries({"type": frame_types}, optional={"ref": json_values, "cursor": json_values,
                                                          "conversation_id": json_values | foreign_ids,
                                                          "message": json_values, "state": json_values})
    .map(lambda f: ("text", encode(f))),
    json_values.map(lambda v: ("text", encode(v))),
    st.text(max_size=200).map(lambda t: ("text", t)),
    st.binary(max_size=200).map(lambda b: ("bytes", b)),
    st.integers(min_value=1, max_value=50_000).map(lambda depth: ("text", "[" * depth + "]" * depth)),
    st.just(("text", '{"type": "ping", "pad": "' + "x" * 70_000 + '"}')),
)


@pytest.fixture
def people() -> dict[str, Any]:
    mallory = sign_in(display_name="Mallory")
    carol = sign_in(display_name="Carol")
    dave = sign_in(display_name="Dave")
    own, _ = messaging_services.conversation_create(creator=mallory.user, type="direct", user_id=carol.user.pk)
    secret, _ = messaging_services.conversation_create(creator=carol.user, type="group", title=SECRET,
                                                       member_ids=[dave.user.pk])
    message, _ = messaging_services.message_send(
        sender=carol.user, conversation_id=secret["id"],
        payload={"client_id": str(uuid.uuid4()), "type": "text", "text": SECRET})
    call_id = uuid.uuid4()  # carol rings dave in their group; the SDP carries the secret too
    call_services.call_offer(user=carol.user, device_id=carol.device.pk, call_id=call_id, conversation_id=secret["id"],
                             media="video", remote_control=False, sdp=f"v=0 {SECRET}")
    FOREIGN.update(conversation=secret["id"], message=message["id"], carol=str(carol.user.pk),
                   dave=str(dave.user.pk), own=own["id"], call=str(call_id), dave_device=str(dave.device.pk))
    return {"mallory": mallory, "secret_ids": {secret["id"], message["id"], str(call_id)}}


async def exchange(token: str, frames: list[tuple[str, Any]], secret_ids: set[str]) -> None:
    from channels.layers import channel_layers

    channel_layers.backends.clear()  # a fresh layer per event loop (see tests/realtime/conftest.py)
    client: Client = await open_socket(token)
    # An id the attacker sent herself may be echoed back (an unknown frame type is quoted in the
    # error); what must never come back is anything she did not already have.
    sent = " ".join(payload for kind, payload in frames if kind == "text")
    secret_ids = {i for i in secret_ids if i not in sent}
    try:
        for kind, payload in frames:
            await client.send_raw(**({"text": payload} if kind == "text" else {"data": payload}))
        await client.send({"type": "ping"})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        ponged = False
        while loop.time() < deadline:
            if ponged and await client.ws.receive_nothing(0.3):
                return  # replies that come after the pong (replays, sends) are checked too
            output = await client.ws.receive_output(max(0.1, deadline - loop.time()))
            if output["type"] == "websocket.close":
                assert output.get("code") in CLOSE_CODES, output
                client.closed = True
                return
            text = output["text"]
            assert SECRET not in text and not any(i in text for i in secret_ids), text[:300]
            frame = orjson.loads(text)
            assert frame["type"] in REPLY_TYPES, frame
            if frame["type"] == "error":
                assert frame["code"] in ERROR_CODES, frame
                assert isinstance(frame["message"], str)
            ponged = ponged or frame["type"] == "pong"
        if ponged:
            return
        raise AssertionError("the socket stopped answering: no pong within 10 s")
    finally:
        await client.close()


@settings(max_examples=60, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(frames=st.lists(raw_frames, min_size=1, max_size=8))
def test_random_and_mutated_frames_get_documented_replies_and_leak_nothing(people, frames):
    async_to_sync(exchange)(people["mallory"].token, frames, people["secret_ids"])


def test_the_fuzz_oracle_sees_a_leak_when_there_is_one(people):
    """The leak check is live: carol, a member, does see the secret through the same exchange."""
    from accounts.services import device_create

    carol = people["mallory"].user.__class__.objects.get(pk=FOREIGN["carol"])
    _, token = device_create(user=carol, name="fuzz", platform="web")
    with pytest.raises(AssertionError):
        async_to_sync(exchange)(token, [("text", encode({"type": "hello", "cursor": "0"}))], people["secret_ids"])
