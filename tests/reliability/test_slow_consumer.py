"""A slow consumer: a socket that says hello and then never reads.

It must not stall delivery to others, must not grow the server's memory without
bound, and is closed with 4009 once its send has waited WS_SEND_TIMEOUT_SECONDS;
reconnecting from the last cursor it did receive brings everything else, once.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.reliability.chat import assert_exactly_once_in_order
from tests.reliability.services import sign_in_over_http, wait_until

pytestmark = pytest.mark.slow

FLOOD = 400
TEXT = "\U0001f600" * 4000  # 16 KiB per event frame (orjson writes UTF-8): ~6 MiB, far past every buffer


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class RawSocket:
    """A WebSocket client by hand, with a tiny receive buffer, that reads only when told."""

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws/v1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Authorization: Bearer {token}\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        assert len(payload) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def read_all(self, timeout: float) -> tuple[list[dict], int | None]:
        """Read until the server closes (or `timeout` passes): the text frames and the close code."""
        self.sock.settimeout(timeout)
        try:
            while chunk := self.sock.recv(65536):
                self.buffer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        frames, code, data = [], None, self.buffer
        while len(data) >= 2:
            opcode, length = data[0] & 0x0F, data[1] & 0x7F
            offset = 2
            if length == 126:
                length, offset = struct.unpack(">H", data[2:4])[0], 4
            elif length == 127:
                length, offset = struct.unpack(">Q", data[2:10])[0], 10
            if len(data) < offset + length:
                break  # a frame cut by the close: not received
            payload, data = data[offset:offset + length], data[offset + length:]
            if opcode == 0x1:
                frames.append(json.loads(payload))
            elif opcode == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
        return frames, code


def test_a_client_that_stops_reading_is_dropped_without_stalling_others_and_resumes_by_cursor(fault_stack):
    server = fault_stack.servers[0]
    sender, slow, other = (sign_in_over_http(server, f"+1555010040{i}") for i in range(3))
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {sender['token']}"}, timeout=10) as http:
        to_slow = http.post("/api/v1/conversations", json={"type": "direct", "user_id": slow["user"]["id"]}).json()
        to_other = http.post("/api/v1/conversations", json={"type": "direct", "user_id": other["user"]["id"]}).json()

    raw = RawSocket(server.port, slow["token"])
    raw.send_text(json.dumps({"type": "hello", "cursor": "0"}))
    rss_before = rss_kib(server.process.pid)

    acked: dict[str, dict] = {}
    latencies: list[float] = []
    with connect(server.ws, additional_headers={"Authorization": f"Bearer {sender['token']}"}) as sender_ws, \
            connect(server.ws, additional_headers={"Authorization": f"Bearer {other['token']}"}) as other_ws:
        other_ws.send(json.dumps({"type": "hello", "cursor": "0"}))
        flooded = threading.Event()

        def flood() -> None:
            for i in range(FLOOD):
                cid = str(uuid.uuid4())
                sender_ws.send(json.dumps({"type": "message.send", "ref": cid, "conversation_id": to_slow["id"],
                                           "message": {"client_id": cid, "type": "text", "text": f"{i} {TEXT}"}}))
            flooded.set()

        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        assert flooded.wait(30)
        while len(acked) < FLOOD:
            frame = json.loads(sender_ws.recv(timeout=20))
            if frame["type"] == "message.sent":
                acked[frame["ref"]] = frame["message"]
            else:
                assert frame["type"] in ("event", "presence"), frame
        # The slow socket's send is now stuck on full buffers; the other user is not held up.
        for i in range(5):
            cid = str(uuid.uuid4())
            started = time.monotonic()
            sender_ws.send(json.dumps({"type": "message.send", "ref": cid, "conversation_id": to_other["id"],
                                       "message": {"client_id": cid, "type": "text", "text": f"ping {i}"}}))
            while True:
                frame = json.loads(other_ws.recv(timeout=10))
                if frame["type"] == "event" and frame["event"]["data"].get("client_id") == cid:
                    break
            latencies.append(time.monotonic() - started)

    assert max(latencies) < 0.5, latencies
    time.sleep(4 + 2)  # WS_SEND_TIMEOUT_SECONDS=4 in the stack: the stuck send gives up meanwhile
    frames, code = raw.read_all(timeout=10)
    assert code == 4009, (code, len(frames))
    received = [f["event"] for f in frames if f["type"] == "event"]
    assert len([e for e in received if e["type"] == "message.new"]) < FLOOD  # it really was cut off
    growth_mib = (rss_kib(server.process.pid) - rss_before) / 1024
    assert growth_mib < 100, f"server RSS grew {growth_mib:.0f} MiB"

    cursor = received[-1]["cursor"] if received else "0"
    rest: list[dict] = []

    def resumed_all(ws) -> bool:
        try:
            frame = json.loads(ws.recv(timeout=0.5))
        except TimeoutError:
            return False
        if frame["type"] == "event":
            rest.append(frame["event"])
        return len([e for e in received + rest if e["type"] == "message.new"]) >= FLOOD

    with connect(server.ws, additional_headers={"Authorization": f"Bearer {slow['token']}"}) as again:
        again.send(json.dumps({"type": "hello", "cursor": cursor}))
        wait_until(lambda: resumed_all(again), timeout=30, interval=0, what="the resumed replay")
    assert_exactly_once_in_order(received + rest, acked, to_slow["id"], who="slow consumer after resume")
