"""Floods beyond their limits are refused and do not slow other users down measurably.

One uvicorn process with the default limits. A flooder sends messages over REST
past MESSAGING_SEND_LIMIT (429 `rate_limited`), floods socket frames (error
`rate_limited`, then close 4008, reconnects and floods again) and asks for OTPs
for many numbers from one IP (429). Meanwhile another user's REST and socket round
trips stay within a generous bound of their baseline: behaviour, not a benchmark.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.reliability.services import AsgiServer, sign_in_over_http

pytestmark = pytest.mark.slow

SEND_WINDOW = 3600  # seconds: the flood runs inside one window of the send limit
FLOOD_MARGIN = 60  # seconds the flood may take, at most


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def round_trips(server: AsgiServer, token: str, count: int) -> tuple[list[float], list[float]]:
    rest, socket = [], []
    with server.client(token) as http, \
            connect(server.ws, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        for _ in range(count):
            started = time.monotonic()
            assert http.get("/api/v1/me").status_code == 200
            rest.append(time.monotonic() - started)
            started = time.monotonic()
            ws.send('{"type": "ping"}')
            while json.loads(ws.recv(timeout=10))["type"] != "pong":
                pass
            socket.append(time.monotonic() - started)
            time.sleep(0.02)
    return rest, socket


def test_floods_are_refused_and_other_users_keep_their_round_trip_times(fault_stack):
    server = AsgiServer({**fault_stack.env, "MESSAGING_SEND_LIMIT": "20",
                         "MESSAGING_SEND_WINDOW_SECONDS": str(SEND_WINDOW), "WS_FRAME_RATE": "20",
                         "WS_FRAME_BURST": "100", "SMS_BACKEND": "console"})
    server.start()
    try:
        flooder = sign_in_over_http(server, "+15550100501")
        victim = sign_in_over_http(server, "+15550100502")
        with server.client(flooder["token"]) as http:
            direct = http.post("/api/v1/conversations",
                               json={"type": "direct", "user_id": victim["user"]["id"]}).json()["id"]
        baseline_rest, baseline_socket = round_trips(server, victim["token"], 30)

        stop = threading.Event()
        seen: dict[str, list] = {"send": [], "frames": [], "otp": []}

        def flood_sends() -> None:
            with server.client(flooder["token"]) as http:
                while not stop.is_set():
                    response = http.post(f"/api/v1/conversations/{direct}/messages",
                                         json={"client_id": str(uuid.uuid4()), "type": "text", "text": "spam"})
                    seen["send"].append((response.status_code, response.headers.get("retry-after")))

        def flood_frames() -> None:
            while not stop.is_set():
                ws = None
                try:
                    with connect(server.ws, additional_headers={"Authorization": f"Bearer {flooder['token']}"}) as ws:
                        while not stop.is_set():
                            ws.send('{"type": "ping"}')
                            while True:  # read what is there without waiting
                                try:
                                    frame = json.loads(ws.recv(timeout=0))
                                except TimeoutError:
                                    break
                                if frame["type"] == "error":
                                    seen["frames"].append(frame["code"])
                except ConnectionClosed as closed:
                    # The close can overtake our reading: frames the server sent before it
                    # (the rate_limited error) are still buffered on the client.
                    if ws is not None:
                        seen["frames"].extend(buffered_error_codes(ws))
                    seen["frames"].append(closed.rcvd.code if closed.rcvd else None)

        def buffered_error_codes(ws) -> list[str]:
            codes = []
            while True:
                try:
                    frame = json.loads(ws.recv(timeout=0))
                except (TimeoutError, ConnectionClosed):
                    return codes
                if frame.get("type") == "error":
                    codes.append(frame["code"])

        def flood_otp() -> None:
            with server.client() as http:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    response = http.post("/api/v1/auth/otp/request", json={"phone": f"+447911{i % 1000000:06d}"})
                    seen["otp"].append(response.status_code)

        # The send limit counts in fixed windows: a flood across a window's end may send 20 in each.
        left_in_window = SEND_WINDOW - time.time() % SEND_WINDOW
        if left_in_window < FLOOD_MARGIN:
            time.sleep(left_in_window + 0.5)
        threads = [threading.Thread(target=f, daemon=True) for f in (flood_sends, flood_frames, flood_otp)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        flood_rest, flood_socket = round_trips(server, victim["token"], 30)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        server.kill()

    sends = [status for status, _ in seen["send"]]
    assert sends.count(201) == 20 and 429 in sends
    assert all(retry_after and int(retry_after) >= 1 for status, retry_after in seen["send"] if status == 429)
    assert "rate_limited" in seen["frames"] and 4008 in seen["frames"]
    assert 429 in seen["otp"]
    for name, base, loaded in (("REST", baseline_rest, flood_rest), ("socket", baseline_socket, flood_socket)):
        assert p95(loaded) < max(10 * p95(base), 0.1), f"{name}: p95 {p95(loaded):.3f}s vs baseline {p95(base):.3f}s"
        assert p95(loaded) < 0.5, f"{name}: p95 {p95(loaded):.3f}s under flood"
