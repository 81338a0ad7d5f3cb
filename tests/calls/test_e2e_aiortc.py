"""A real call, end to end: real uvicorn server processes, two users signed in over HTTP, and two
aiortc RTCPeerConnections that exchange offer, answer and ICE candidates only through /ws/v1
frames, as the contract gives them. The caller sends a tone and a solid-colour picture; the
callee must receive both (audio with energy in it, video of that colour). Then the same with
the two peers on two different server processes (their only link: Redis and PostgreSQL).

Candidates are trickled: they are cut out of the SDP and sent as `call.ice` frames, the
caller's before anyone answered (the server holds them for the answering device).
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp
from django.conf import settings
from django.db import connection
from websockets.asyncio.client import ClientConnection, connect

from tests.processes import current_database_url
from tests.reliability.services import AsgiServer, django_env, sign_in_over_http

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

COLOUR = (200, 30, 30)  # what the caller's camera shows
TONE_HZ = 440


@pytest.fixture(scope="module")
def servers(django_db_setup: None, django_db_blocker: Any) -> Iterator[list[AsgiServer]]:
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.fail("this test needs the real stack: DATABASE_URL (PostgreSQL) and REDIS_URL")
    with django_db_blocker.unblock():
        database_url = current_database_url()
    env = django_env(DATABASE_URL=database_url, REDIS_URL=settings.REDIS_URL, SECRET_KEY=settings.SECRET_KEY,
                     DEBUG="0", LOG_LEVEL="WARNING", OTP_TEST_NUMBERS="+1555", DB_POOL_MIN_SIZE="1")
    started = [AsgiServer(env), AsgiServer(env)]
    try:
        for server in started:
            server.start()
        yield started
    finally:
        for server in started:
            server.kill()


# --- Media: a tone and a coloured picture ---------------------------------------------------------------


class ToneTrack(MediaStreamTrack):
    """A 440 Hz sine, 20 ms frames at 48 kHz, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.start: float | None = None
        self.samples = 0

    async def recv(self) -> av.AudioFrame:
        rate, count = 48000, 960
        if self.start is None:
            self.start = time.time()
        else:
            await asyncio.sleep(max(0.0, self.start + self.samples / rate - time.time()))
        t = (np.arange(count) + self.samples) / rate
        wave = (np.sin(2 * np.pi * TONE_HZ * t) * 12000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, self.samples, fractions.Fraction(1, rate)
        self.samples += count
        return frame


class ColourTrack(VideoStreamTrack):
    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        picture = np.zeros((240, 320, 3), dtype=np.uint8)
        picture[:, :] = COLOUR
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


# --- Signalling over /ws/v1 -------------------------------------------------------------------------------


def split_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """The SDP without its candidate lines, and those candidates as RTCIceCandidateInit objects."""
    kept, candidates = [], []
    mid, index = None, -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
        if line.startswith("a=mid:"):
            mid = line[len("a=mid:"):]
        if line.startswith("a=candidate:"):
            candidates.append({"candidate": line[2:], "sdpMid": mid, "sdpMLineIndex": index})
        elif line != "a=end-of-candidates":
            kept.append(line)
    return "\r\n".join(kept) + "\r\n", candidates


class Signalling:
    """One socket: replies by ref, relayed call frames and stream events, each in its own queue."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.replies: dict[str, asyncio.Future[dict]] = {}
        self.frames: dict[str, asyncio.Queue[dict]] = {}
        self.reader = asyncio.get_running_loop().create_task(self._read())

    def queue(self, kind: str) -> asyncio.Queue[dict]:
        return self.frames.setdefault(kind, asyncio.Queue())

    async def _read(self) -> None:
        async for text in self.ws:
            frame = json.loads(text)
            if frame["type"] in ("call.ok", "error") and frame.get("ref") in self.replies:
                self.replies.pop(frame["ref"]).set_result(frame)
            elif frame["type"] == "event":
                self.queue(f"event:{frame['event']['type']}").put_nowait(frame["event"])
            else:
                self.queue(frame["type"]).put_nowait(frame)

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        ref = uuid.uuid4().hex[:12]
        self.replies[ref] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps({**frame, "ref": ref}))
        reply = await asyncio.wait_for(self.replies[ref], 15)
        assert reply["type"] == "call.ok", reply
        return reply

    async def next(self, kind: str, timeout: float = 20) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue(kind).get(), timeout)

    async def hello(self) -> None:
        await self.ws.send(json.dumps({"type": "hello", "cursor": ""}))
        await self.ws.send(json.dumps({"type": "ping"}))
        await self.next("pong")

    async def trickle(self, call_id: str, candidates: list[dict[str, Any]]) -> list[dict]:
        replies = [await self.request({"type": "call.ice", "call_id": call_id, "candidate": c}) for c in candidates]
        replies.append(await self.request({"type": "call.ice", "call_id": call_id, "candidate": None}))
        return replies


async def apply_remote_candidates(signalling: Signalling, pc: RTCPeerConnection, ready: asyncio.Event) -> None:
    """Add the peer's relayed candidates, once the remote description is set, until end-of-candidates."""
    while True:
        frame = await signalling.next("call.ice", timeout=60)
        await ready.wait()
        init = frame["candidate"]
        if init is None:
            await pc.addIceCandidate(None)
            return
        candidate = candidate_from_sdp(init["candidate"].split(":", 1)[1])
        candidate.sdpMid, candidate.sdpMLineIndex = init["sdpMid"], init["sdpMLineIndex"]
        await pc.addIceCandidate(candidate)


async def received_media(tracks: dict[str, asyncio.Future[MediaStreamTrack]]) -> dict[str, Any]:
    """Read the callee's incoming tracks until the tone and the colour come through."""
    audio = await asyncio.wait_for(tracks["audio"], 20)
    video = await asyncio.wait_for(tracks["video"], 20)
    loudest = 0.0
    for _ in range(150):  # 3 s of audio at most
        samples = (await asyncio.wait_for(audio.recv(), 10)).to_ndarray().astype(np.float64)
        loudest = max(loudest, float(np.sqrt(np.mean(samples**2))))
        if loudest > 2000:
            break
    colours = []
    for _ in range(60):
        picture = (await asyncio.wait_for(video.recv(), 10)).to_ndarray(format="rgb24")
        colours.append(picture.reshape(-1, 3).mean(axis=0))
        if len(colours) >= 5:
            break
    return {"audio_rms": loudest, "colour": colours[-1], "frame_shape": picture.shape}


async def call(caller_server: AsgiServer, caller: dict, callee_server: AsgiServer, callee: dict,
               conversation_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {caller['token']}"}
    async with connect(caller_server.ws, additional_headers=headers) as caller_ws, \
            connect(callee_server.ws, additional_headers={"Authorization": f"Bearer {callee['token']}"}) as callee_ws:
        a, b = Signalling(caller_ws), Signalling(callee_ws)
        await a.hello()
        await b.hello()
        pc_a, pc_b = RTCPeerConnection(), RTCPeerConnection()
        tracks: dict[str, asyncio.Future[MediaStreamTrack]] = {
            "audio": asyncio.get_running_loop().create_future(), "video": asyncio.get_running_loop().create_future()}
        pc_b.on("track", lambda track: tracks[track.kind].set_result(track))
        a_ready, b_ready = asyncio.Event(), asyncio.Event()
        appliers = [asyncio.create_task(apply_remote_candidates(a, pc_a, a_ready)),
                    asyncio.create_task(apply_remote_candidates(b, pc_b, b_ready))]
        try:
            # Caller: offer, then its candidates before anyone answered (held by the server).
            pc_a.addTrack(ToneTrack())
            pc_a.addTrack(ColourTrack())
            await pc_a.setLocalDescription(await pc_a.createOffer())
            offer_sdp, offer_candidates = split_candidates(pc_a.localDescription.sdp)
            assert offer_candidates, "aiortc gathered no host candidate"
            call_id = str(uuid.uuid4())
            ok = await a.request({"type": "call.offer", "call_id": call_id, "conversation_id": conversation_id,
                                  "media": "video", "remote_control": False, "sdp": offer_sdp})
            assert ok["state"] == "ringing"
            held = await a.trickle(call_id, offer_candidates)
            assert all(reply.get("held") for reply in held)

            # Callee: rings from its stream, answers, trickles its own candidates.
            ring = (await b.next("event:call.ring"))["data"]
            assert (ring["call_id"], ring["caller_id"], ring["media"]) == (call_id, caller["user"]["id"], "video")
            await pc_b.setRemoteDescription(RTCSessionDescription(sdp=ring["sdp"], type="offer"))
            b_ready.set()
            await pc_b.setLocalDescription(await pc_b.createAnswer())
            answer_sdp, answer_candidates = split_candidates(pc_b.localDescription.sdp)
            assert (await b.request({"type": "call.answer", "call_id": call_id, "sdp": answer_sdp}))["first"]
            await b.trickle(call_id, answer_candidates)

            # Caller: the answer arrives relayed, then the media flows peer to peer.
            relayed = await a.next("call.answer")
            assert relayed["device_id"] == callee["device"]["id"]
            await pc_a.setRemoteDescription(RTCSessionDescription(sdp=relayed["sdp"], type="answer"))
            a_ready.set()
            media = await asyncio.wait_for(received_media(tracks), 60)
            assert pc_a.iceConnectionState in ("connected", "completed")

            await a.request({"type": "call.hangup", "call_id": call_id})
            ended = await b.next("call.ended")
            assert (ended["call_id"], ended["reason"]) == (call_id, "hangup")
            return {"call_id": call_id, **media}
        finally:
            for task in appliers:
                task.cancel()
            await pc_a.close()
            await pc_b.close()
            a.reader.cancel()
            b.reader.cancel()


def signed_in_pair(server: AsgiServer, suffix: str) -> tuple[dict, dict, str]:
    caller = sign_in_over_http(server, f"+155501005{suffix}1")
    callee = sign_in_over_http(server, f"+155501005{suffix}2")
    with server.client(caller["token"]) as http:
        response = http.post("/api/v1/conversations", json={"type": "direct", "user_id": callee["user"]["id"]})
        assert response.status_code in (200, 201), response.text
        assert http.get("/api/v1/calls/turn").status_code == 200  # what a client asks before calling
    return caller, callee, response.json()["id"]


@pytest.mark.parametrize("topology", ["one server process", "two server processes"])
def test_a_real_call_delivers_audio_and_video_from_caller_to_callee(servers, topology):
    first, second = servers
    callee_server = first if topology == "one server process" else second
    caller, callee, conversation_id = signed_in_pair(first, "1" if callee_server is first else "2")

    result = asyncio.run(call(first, caller, callee_server, callee, conversation_id))

    assert result["audio_rms"] > 2000, result  # the tone, not silence
    red, green, blue = result["colour"]
    assert red > 150 and green < 80 and blue < 80, result  # the caller's picture (lossy VP8)
    assert result["frame_shape"][:2] == (240, 320)
    with callee_server.client(callee["token"]) as http:
        log = http.get("/api/v1/calls").json()["calls"]
        assert (log[0]["call_id"], log[0]["outcome"], log[0]["direction"]) == (result["call_id"], "completed",
                                                                               "incoming")
        history = http.get(f"/api/v1/conversations/{conversation_id}/messages").json()["messages"]
        assert [m["call"]["outcome"] for m in history if m["type"] == "call"] == ["completed"]
