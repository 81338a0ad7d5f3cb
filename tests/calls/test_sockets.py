"""The call frames on /ws/v1, through the real ASGI application, channel layer (Redis) and database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import orjson
import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from calls import services
from calls.models import Call, CallParticipant, HeldCandidate
from streams.models import Event
from streams.selectors import stream_head
from tests.calls.conftest import CANDIDATE, SDP_ANSWER, SDP_OFFER, call_messages, new_direct, new_group
from tests.factories import sign_in
from tests.realtime.conftest import Client

pytestmark = pytest.mark.django_db(transaction=True)


async def live(socket: Any, who: Any) -> Client:
    """A socket that said hello at the head of its user's stream (only new events follow)."""
    client = await socket(who.token)
    head = await database_sync_to_async(stream_head)(user_id=who.user.pk)
    await client.send({"type": "hello", "cursor": str(head)})
    await client.send({"type": "ping"})
    await expect(client, "pong")
    return client


async def next_frame(client: Client, timeout: float) -> dict:
    """The next frame: first those a `reply_to` read past (a relay may overtake the reply to the
    frame that caused it), then the socket's."""
    stash = getattr(client, "stash", None)
    if stash:
        return stash.pop(0)
    return await client.recv(timeout=timeout)


async def expect(client: Client, type_: str, *, event: str | None = None, timeout: float = 5) -> dict:
    """The next frame of `type_` (for "event": of event type `event`); other frames in between are
    skipped, but never an error."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await next_frame(client, timeout=max(0.05, deadline - loop.time()))
        if frame["type"] == type_ and (event is None or frame["event"]["type"] == event):
            return frame
        assert frame["type"] != "error", frame


async def frames_until(client: Client, wanted: set[str], timeout: float = 5) -> dict[str, dict]:
    """Read frames until one of each wanted kind ("type", or "event:<event type>") came."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: dict[str, dict] = {}
    while not wanted <= set(seen):
        frame = await next_frame(client, timeout=max(0.05, deadline - loop.time()))
        kind = f"event:{frame['event']['type']}" if frame["type"] == "event" else frame["type"]
        seen.setdefault(kind, frame)
    return seen


async def reply_to(client: Client, frame: dict, timeout: float = 5) -> dict:
    """Send a frame with a fresh ref and return the call.ok or error answering it."""
    ref = frame.get("ref") or uuid.uuid4().hex[:8]
    await client.send({**frame, "ref": ref})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await client.recv(timeout=max(0.05, deadline - loop.time()))
        if got["type"] in ("call.ok", "error") and got.get("ref") == ref:
            return got
        client.stash = [*getattr(client, "stash", []), got]  # for the expect() that follows


def offer_frame(call_id: str, conversation_id: str, **extra: Any) -> dict:
    return {"type": "call.offer", "call_id": call_id, "conversation_id": conversation_id, "media": "video",
            "remote_control": False, "sdp": SDP_OFFER, **extra}


@pytest.fixture
def direct(alice, bob):
    return new_direct(alice, bob)


async def test_a_call_over_the_socket_from_ring_to_hangup(socket, alice, bob, direct):
    tablet = await database_sync_to_async(bob.another_device)()
    caller, callee, callee_tablet = await live(socket, alice), await live(socket, bob), await live(socket, tablet)
    call_id = str(uuid.uuid4())

    ok = await reply_to(caller, offer_frame(call_id, direct))
    assert ok["type"] == "call.ok" and ok["call_id"] == call_id and ok["state"] == "ringing"
    for device in (callee, callee_tablet):  # every device of the callee rings, from the stream
        ring = (await expect(device, "event", event="call.ring"))["event"]["data"]
        assert (ring["call_id"], ring["caller_id"], ring["sdp"], ring["media"]) == (
            call_id, str(alice.user.pk), SDP_OFFER, "video")
    # The caller's candidates trickle before anyone answered: held for the answering device.
    held = await reply_to(caller, {"type": "call.ice", "call_id": call_id, "candidate": CANDIDATE})
    assert held["held"] is True

    answered = await reply_to(callee, {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER})
    assert answered["type"] == "call.ok" and answered["state"] == "active"
    relayed = await expect(caller, "call.answer")
    assert relayed == {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER, "grant_control": False,
                       "user_id": str(bob.user.pk), "device_id": str(bob.device.pk)}
    assert (await expect(callee, "call.ice"))["candidate"] == CANDIDATE  # the held one
    assert await expect(callee_tablet, "call.answered_elsewhere") == {"type": "call.answered_elsewhere",
                                                                     "call_id": call_id}

    line = "candidate:2 1 udp 1 10.0.0.2 9 typ host"  # a bare candidate line works too
    await reply_to(callee, {"type": "call.ice", "call_id": call_id, "candidate": line})
    assert (await expect(caller, "call.ice"))["candidate"] == line
    await reply_to(caller, {"type": "call.update", "call_id": call_id, "media": "audio"})
    update = await expect(callee, "call.update")
    assert (update["media"], update["user_id"]) == ("audio", str(alice.user.pk))

    ended = await reply_to(caller, {"type": "call.hangup", "call_id": call_id})
    assert ended["state"] == "ended"
    for device in (caller, callee, callee_tablet):
        # The direct frame and the stored event, in whichever order they come (both by call_id).
        seen = await frames_until(device, {"call.ended", "event:call.ended", "event:message.new"})
        assert (seen["call.ended"]["call_id"], seen["call.ended"]["reason"]) == (call_id, "hangup")
        stored = seen["event:call.ended"]["event"]["data"]
        assert stored == {"call_id": call_id, "reason": "hangup", "duration_ms": seen["call.ended"]["duration_ms"]}
        log = seen["event:message.new"]["event"]["data"]
        assert log["type"] == "call" and log["call"]["outcome"] == "completed" and log["call"]["call_id"] == call_id
    await callee_tablet.nothing_more(0.3)  # nothing relayed to the unengaged device but the end


async def test_relayed_frames_are_not_stored(socket, alice, bob, direct):
    caller, callee = await live(socket, alice), await live(socket, bob)
    call_id = str(uuid.uuid4())
    await reply_to(caller, offer_frame(call_id, direct))
    await reply_to(callee, {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER})
    await reply_to(callee, {"type": "call.ice", "call_id": call_id, "candidate": CANDIDATE})
    await expect(caller, "call.ice")
    types = await database_sync_to_async(lambda: list(
        Event.objects.filter(user_id__in=[alice.user.pk, bob.user.pk]).values_list("type", flat=True)))()
    assert set(types) <= {"conversation.created", "call.ring"}


async def test_a_device_that_connects_while_it_rings_still_rings(socket, alice, bob, direct):
    caller = await live(socket, alice)
    call_id = str(uuid.uuid4())
    await reply_to(caller, offer_frame(call_id, direct))
    late = await socket(bob.token)
    await late.send({"type": "hello", "cursor": ""})
    ring = await expect(late, "event", event="call.ring")
    assert ring["event"]["data"]["call_id"] == call_id


async def test_two_devices_answering_at_once_exactly_one_wins(socket, alice, bob, direct):
    tablet = await database_sync_to_async(bob.another_device)()
    caller, phone, pad = await live(socket, alice), await live(socket, bob), await live(socket, tablet)
    call_id = str(uuid.uuid4())
    await reply_to(caller, offer_frame(call_id, direct))
    answer = {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER}
    replies = await asyncio.gather(reply_to(phone, {**answer, "ref": "p"}), reply_to(pad, {**answer, "ref": "t"}))
    assert sorted(r["type"] for r in replies) == ["call.ok", "error"]
    loser_index = [r["type"] for r in replies].index("error")
    assert replies[loser_index]["code"] == "conflict"
    loser = (phone, pad)[loser_index]
    assert (await expect(loser, "call.answered_elsewhere"))["call_id"] == call_id
    winner_device = (bob.device, tablet.device)[1 - loser_index]
    assert (await expect(caller, "call.answer"))["device_id"] == str(winner_device.pk)
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.first_device_id == winner_device.pk


async def test_reject_over_the_socket_ends_the_call_for_the_caller(socket, alice, bob, direct):
    caller, callee = await live(socket, alice), await live(socket, bob)
    call_id = str(uuid.uuid4())
    await reply_to(caller, offer_frame(call_id, direct))
    assert (await reply_to(callee, {"type": "call.reject", "call_id": call_id}))["state"] == "ended"
    assert (await expect(caller, "call.ended"))["reason"] == "rejected"
    again = await reply_to(callee, {"type": "call.reject", "call_id": call_id})
    assert again["code"] == "conflict"


async def test_busy_callee_answers_busy_at_once(socket, alice, bob, carol, direct):
    caller = await live(socket, alice)
    first = uuid.uuid4()

    def bob_in_a_call() -> None:
        conversation = new_direct(carol, bob)
        services.call_offer(user=carol.user, device_id=carol.device.pk, call_id=first, conversation_id=conversation,
                            media="audio", remote_control=False, sdp=SDP_OFFER)
        services.call_answer(user=bob.user, device_id=bob.device.pk, call_id=first, sdp=SDP_ANSWER,
                             grant_control=False)

    await database_sync_to_async(bob_in_a_call)()
    call_id = str(uuid.uuid4())
    ok = await reply_to(caller, offer_frame(call_id, direct))
    assert ok["state"] == "ended"
    ended = await expect(caller, "call.ended")
    assert (ended["call_id"], ended["reason"], ended["duration_ms"]) == (call_id, "busy", 0)


BAD_FRAMES = [
    ({"call_id": "not-a-uuid"}, "call_id"),
    ({"call_id": 12}, "call_id"),
    ({"media": "hologram"}, "media"),
    ({"media": None}, "media"),
    ({"sdp": 42}, "sdp"),
    ({"sdp": ""}, "sdp"),
    ({"sdp": "v=0\r\n" + "a=x\r\n" * 7000}, "sdp"),  # over CALLS_SDP_MAX_BYTES, within the frame limit
    ({"remote_control": "yes"}, "remote_control"),
    ({"conversation_id": ["x"]}, "conversation_id"),
    ({"to": "someone"}, "to"),
]


@pytest.mark.parametrize(("change", "field"), BAD_FRAMES)
async def test_bad_offers_get_validation_errors_and_the_socket_stays_open(socket, alice, bob, direct, change,
                                                                          field):
    caller = await live(socket, alice)
    frame = {**offer_frame(str(uuid.uuid4()), direct), **change}
    error = await reply_to(caller, frame)
    assert (error["type"], error["code"]) == ("error", "validation_error")
    assert field in error["details"]
    assert await database_sync_to_async(Call.objects.count)() == 0
    await caller.send({"type": "ping"})
    await expect(caller, "pong")


@pytest.mark.parametrize("candidate", [42, ["a"], {"candidate": 1}, {"candidate": "x", "evil": {"nested": 1}},
                                       "c" * 3000])
async def test_bad_candidates_get_validation_errors(socket, alice, bob, direct, candidate):
    caller = await live(socket, alice)
    call_id = str(uuid.uuid4())
    await reply_to(caller, offer_frame(call_id, direct))
    error = await reply_to(caller, {"type": "call.ice", "call_id": call_id, "candidate": candidate})
    assert (error["code"], list(error["details"])) == ("validation_error", ["candidate"])


async def test_a_frame_over_64_kib_is_payload_too_large(socket, alice, bob, direct):
    caller = await live(socket, alice)
    await caller.send(offer_frame(str(uuid.uuid4()), direct, sdp="v=0\r\n" + "a" * 70_000))
    error = await caller.recv_type("error")  # not parsed, so no ref to echo
    assert error["code"] == "payload_too_large"
    assert await database_sync_to_async(Call.objects.count)() == 0
    await caller.send({"type": "ping"})
    await expect(caller, "pong")


async def test_a_stranger_gets_not_found_for_every_call_frame(socket, alice, bob, carol, direct):
    caller, callee, stranger = await live(socket, alice), await live(socket, bob), await live(socket, carol)
    call_id = str(uuid.uuid4())
    await reply_to(caller, offer_frame(call_id, direct))
    frames = [
        offer_frame(str(uuid.uuid4()), direct),  # a conversation she is not in
        offer_frame(str(uuid.uuid4()), str(uuid.uuid4())),
        {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER},
        {"type": "call.ice", "call_id": call_id, "candidate": CANDIDATE},
        {"type": "call.update", "call_id": call_id, "media": "video"},
        {"type": "call.reject", "call_id": call_id},
        {"type": "call.hangup", "call_id": call_id},
        {"type": "call.offer", "call_id": call_id, "to": str(alice.device.pk), "sdp": SDP_OFFER},
        {"type": "call.answer", "call_id": str(uuid.uuid4()), "sdp": SDP_ANSWER},
    ]
    for frame in frames:
        error = await reply_to(stranger, frame)
        assert (error["type"], error["code"]) == ("error", "not_found"), frame
        assert call_id not in str(error.get("details", {})) and "state" not in error.get("details", {})
    # Still ringing, untouched; and the callee's call goes on.
    ok = await reply_to(callee, {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER})
    assert ok["type"] == "call.ok"
    await stranger.nothing_more(0.3)


async def test_only_the_two_engaged_devices_exchange_ice(socket, alice, bob, direct):
    tablet = await database_sync_to_async(bob.another_device)()
    caller, callee, pad = await live(socket, alice), await live(socket, bob), await live(socket, tablet)
    call_id = str(uuid.uuid4())
    await reply_to(caller, offer_frame(call_id, direct))
    await reply_to(callee, {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER})
    error = await reply_to(pad, {"type": "call.ice", "call_id": call_id, "candidate": CANDIDATE})
    assert error["code"] == "not_found"
    await reply_to(caller, {"type": "call.ice", "call_id": call_id, "candidate": CANDIDATE})
    await expect(callee, "call.ice")
    frames = []
    while not await pad.ws.receive_nothing(0.3):
        frames.append(await pad.recv())
    assert "call.ice" not in [f["type"] for f in frames]


async def test_answer_after_the_call_ended_is_a_conflict(socket, alice, bob, direct):
    caller, callee = await live(socket, alice), await live(socket, bob)
    call_id = str(uuid.uuid4())
    await reply_to(caller, offer_frame(call_id, direct))
    await reply_to(caller, {"type": "call.hangup", "call_id": call_id})
    error = await reply_to(callee, {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER})
    assert error["code"] == "conflict"


async def test_offer_during_read_only_sunset_gets_service_read_only(socket, alice, bob, direct):
    from tests.exports.conftest import make_sunset

    await database_sync_to_async(make_sunset)("read_only")
    caller = await live(socket, alice)
    error = await reply_to(caller, offer_frame(str(uuid.uuid4()), direct))
    assert (error["type"], error["code"]) == ("error", "service_read_only")


async def test_remote_control_is_relayed_only_when_granted_in_the_answer(socket, alice, bob, direct):
    helper, helped = await live(socket, alice), await live(socket, bob)
    call_id = str(uuid.uuid4())
    await reply_to(helper, offer_frame(call_id, direct, media="screen", remote_control=True))
    ring = (await expect(helped, "event", event="call.ring"))["event"]["data"]
    assert ring["remote_control"] is True
    await reply_to(helped, {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER})  # no grant
    assert (await expect(helper, "call.answer"))["grant_control"] is False
    refused = await reply_to(helper, {"type": "call.update", "call_id": call_id, "media": "screen",
                                      "remote_control": True})
    assert refused["code"] == "forbidden"
    await reply_to(helped, {"type": "call.update", "call_id": call_id, "media": "screen", "remote_control": True})
    assert (await expect(helper, "call.update"))["remote_control"] is True


# --- A socket that drops in an active call ---------------------------------------------------------------


async def test_a_callee_whose_socket_drops_and_does_not_return_fails_the_call(socket, alice, bob, direct):
    caller, callee = await live(socket, alice), await live(socket, bob)
    call_id = str(uuid.uuid4())
    await reply_to(caller, offer_frame(call_id, direct))
    await reply_to(callee, {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER})
    await expect(caller, "call.answer")
    await callee.close()  # the close hook starts the grace

    def dropped_at() -> object:
        return CallParticipant.objects.get(call_id=call_id, user=bob.user).dropped_at

    for _ in range(50):
        if await database_sync_to_async(dropped_at)():
            break
        await asyncio.sleep(0.05)
    assert await database_sync_to_async(dropped_at)() is not None
    await database_sync_to_async(services.call_drop_check)(call_id=call_id,
                                                           now=timezone.now() + timedelta(seconds=31))
    ended = await expect(caller, "call.ended")
    assert (ended["call_id"], ended["reason"]) == (call_id, "failed")
    messages = await database_sync_to_async(call_messages)(direct)
    assert [m["call"]["outcome"] for m in messages] == ["failed"]


async def test_a_callee_back_within_the_grace_keeps_the_call(socket, alice, bob, direct):
    caller, callee = await live(socket, alice), await live(socket, bob)
    call_id = str(uuid.uuid4())
    await reply_to(caller, offer_frame(call_id, direct))
    await reply_to(callee, {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER})
    await callee.close()

    def dropped_at() -> object:
        return CallParticipant.objects.get(call_id=call_id, user=bob.user).dropped_at

    for _ in range(50):
        if await database_sync_to_async(dropped_at)():
            break
        await asyncio.sleep(0.05)
    back = await live(socket, bob)  # the open hook clears the drop
    for _ in range(50):
        if await database_sync_to_async(dropped_at)() is None:
            break
        await asyncio.sleep(0.05)
    assert await database_sync_to_async(dropped_at)() is None
    await database_sync_to_async(services.call_drop_check)(call_id=call_id,
                                                           now=timezone.now() + timedelta(seconds=31))
    assert (await database_sync_to_async(Call.objects.get)(pk=call_id)).state == "active"
    await reply_to(back, {"type": "call.ice", "call_id": call_id, "candidate": CANDIDATE})
    await expect(caller, "call.ice")


# --- Groups: each joining member signals to each other member ------------------------------------------------


async def test_group_call_mesh_over_the_socket(socket, alice, bob, carol):
    group = await database_sync_to_async(new_group)(alice, bob, carol)
    a, b, c = await live(socket, alice), await live(socket, bob), await live(socket, carol)
    call_id = str(uuid.uuid4())
    await reply_to(a, offer_frame(call_id, group))
    for member in (b, c):
        await expect(member, "event", event="call.ring")
    joined_b = await reply_to(b, {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER})
    assert joined_b["first"] is True
    assert (await expect(a, "call.answer"))["user_id"] == str(bob.user.pk)
    joined_c = await reply_to(c, {"type": "call.answer", "call_id": call_id, "sdp": SDP_ANSWER})
    assert joined_c["first"] is False
    peers = {p["device_id"] for p in joined_c["peers"]}
    assert peers == {str(alice.device.pk), str(bob.device.pk)}
    # carol offers a leg to each peer; each answers her, addressed with `to`.
    for peer, client in ((alice, a), (bob, b)):
        await reply_to(c, {"type": "call.offer", "call_id": call_id, "to": str(peer.device.pk), "sdp": SDP_OFFER})
        leg = await expect(client, "call.offer")
        assert (leg["device_id"], leg["sdp"]) == (str(carol.device.pk), SDP_OFFER)
        await reply_to(client, {"type": "call.answer", "call_id": call_id, "to": leg["device_id"], "sdp": SDP_ANSWER})
        assert (await expect(c, "call.answer"))["device_id"] == str(peer.device.pk)
        await reply_to(client, {"type": "call.ice", "call_id": call_id, "to": leg["device_id"],
                                "candidate": CANDIDATE})
        assert (await expect(c, "call.ice"))["device_id"] == str(peer.device.pk)
    # alice leaves; bob and carol go on, and are told.
    await reply_to(a, {"type": "call.hangup", "call_id": call_id})
    for client in (b, c):
        left = await expect(client, "call.left")
        assert left["user_id"] == str(alice.user.pk)
    await reply_to(b, {"type": "call.hangup", "call_id": call_id})
    for client in (a, b, c):
        assert (await expect(client, "call.ended"))["reason"] == "hangup"


async def test_group_call_in_a_group_over_the_limit_is_refused(socket, alice, bob, carol, settings):
    settings.CALLS_GROUP_MAX = 2
    group = await database_sync_to_async(new_group)(alice, bob, carol)
    caller = await live(socket, alice)
    error = await reply_to(caller, offer_frame(str(uuid.uuid4()), group))
    assert (error["code"], list(error["details"])) == ("validation_error", ["conversation_id"])
    broadcast = await database_sync_to_async(new_group)(alice, await database_sync_to_async(sign_in)(),
                                                        type="broadcast")
    error = await reply_to(caller, offer_frame(str(uuid.uuid4()), broadcast))
    assert error["code"] == "validation_error"


async def test_a_flood_of_ice_is_cut_by_the_socket_frame_limit(socket, alice, bob, direct, settings):
    settings.WS_FRAME_RATE, settings.WS_FRAME_BURST, settings.WS_FLOOD_CLOSE_AFTER = 1, 10, 20
    caller = await live(socket, alice)
    call_id = str(uuid.uuid4())
    await reply_to(caller, offer_frame(call_id, direct))
    for _ in range(60):
        await caller.send({"type": "call.ice", "call_id": call_id, "candidate": CANDIDATE})
    codes = []
    while True:
        output = await caller.ws.receive_output(5)
        if output["type"] == "websocket.close":
            code = output["code"]
            await caller.close(code)  # as the ASGI server does once the close handshake is done
            break
        frame = orjson.loads(output["text"])
        if frame["type"] == "error":
            codes.append(frame["code"])
    assert code == 4008 and "rate_limited" in codes
    held = await database_sync_to_async(HeldCandidate.objects.filter(call_id=call_id).count)()
    assert held <= 10  # only what the burst let through
