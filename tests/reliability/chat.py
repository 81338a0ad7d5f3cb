"""Well-behaved clients for fault tests: they send with client_ids, retry what was not
acknowledged after any failure (reconnecting to whichever server answers), and
follow their stream by cursor. Also the final check: every acknowledged message in
every recipient's stream exactly once, in seq order.

Used by the fault tests in this package and by `bench/soak.py`.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

NETWORK_ERRORS = (OSError, TimeoutError, WebSocketException, httpx.HTTPError, ValueError, KeyError)


@dataclass
class Sender:
    """Sends `count` texts into `conversation_id`, over the socket or REST, until each is
    acknowledged (message.sent / 200 / 201) or `deadline` passes. Thread-safe to read."""

    token: str
    conversation_id: str
    bases: Sequence[str]  # http://127.0.0.1:port of each server
    count: int
    via: str = "socket"
    pace: float = 0.05
    acked: dict[str, dict] = field(default_factory=dict)  # client_id -> Message
    failures: int = 0
    name: str = "sender"

    def run(self, deadline: float, stop: threading.Event | None = None) -> None:
        # Popped only once acknowledged, so a connection that fails midway loses no progress: a
        # reconnect resends the unacknowledged head, not everything acked on that connection.
        todo = deque(str(uuid.uuid4()) for _ in range(self.count))
        while todo and time.monotonic() < deadline and not (stop and stop.is_set()):
            base = random.choice(self.bases)
            try:
                if self.via == "socket":
                    self._over_socket(base, todo, deadline)
                else:
                    self._over_rest(base, todo, deadline)
            except NETWORK_ERRORS:
                self.failures += 1
                time.sleep(0.2)

    def _body(self, client_id: str) -> dict:
        return {"client_id": client_id, "type": "text", "text": f"{self.name}:{client_id[:8]}"}

    def _over_socket(self, base: str, todo: deque[str], deadline: float) -> None:
        url = base.replace("http://", "ws://") + "/ws/v1"
        with connect(url, additional_headers={"Authorization": f"Bearer {self.token}"}, open_timeout=5,
                     close_timeout=1) as ws:
            while todo and time.monotonic() < deadline:
                client_id = todo[0]
                ws.send(json.dumps({"type": "message.send", "ref": client_id, "conversation_id": self.conversation_id,
                                    "message": self._body(client_id)}))
                # Other frames (the group's events) keep coming, so bound the wait for this reply
                # itself: without one, the client reconnects and resends the same client_id.
                reply_by = time.monotonic() + 10
                while True:
                    frame = json.loads(ws.recv(timeout=max(0.01, reply_by - time.monotonic())))
                    if frame.get("ref") != client_id or frame["type"] not in ("message.sent", "error"):
                        continue
                    break
                if frame["type"] == "message.sent":
                    self.acked[client_id] = frame["message"]
                    todo.popleft()
                    time.sleep(self.pace)
                else:  # not acknowledged: retry the same client_id after a pause
                    self.failures += 1
                    time.sleep(0.2)

    def _over_rest(self, base: str, todo: deque[str], deadline: float) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {self.token}"}, timeout=5) as http:
            while todo and time.monotonic() < deadline:
                client_id = todo[0]
                response = http.post(f"/api/v1/conversations/{self.conversation_id}/messages",
                                     json=self._body(client_id))
                if response.status_code in (200, 201):
                    self.acked[client_id] = response.json()
                    todo.popleft()
                    time.sleep(self.pace)
                else:
                    self.failures += 1
                    time.sleep(0.2)


@dataclass
class Follower:
    """A socket that follows a user's stream by cursor across disconnects, storing every
    event it is given (duplicates included, so the check can see them)."""

    token: str
    bases: Sequence[str]
    events: list[dict] = field(default_factory=list)
    reconnects: int = 0
    close_codes: list[int | None] = field(default_factory=list)

    @property
    def cursor(self) -> str:
        return self.events[-1]["cursor"] if self.events else "0"

    def run(self, stop: threading.Event, deadline: float) -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            url = random.choice(self.bases).replace("http://", "ws://") + "/ws/v1"
            try:
                with connect(url, additional_headers={"Authorization": f"Bearer {self.token}"}, open_timeout=5,
                             close_timeout=1) as ws:
                    ws.send(json.dumps({"type": "hello", "cursor": self.cursor}))
                    while not stop.is_set():
                        try:
                            frame = json.loads(ws.recv(timeout=0.5))
                        except TimeoutError:
                            continue
                        if frame["type"] == "event":
                            self.events.append(frame["event"])
                            ws.send(json.dumps({"type": "ack", "cursor": frame["event"]["cursor"]}))
            except NETWORK_ERRORS as error:
                self.close_codes.append(getattr(getattr(error, "rcvd", None), "code", None))
                self.reconnects += 1
                time.sleep(0.2)

    def catch_up(self, base: str, timeout: float = 15) -> None:
        """One more hello from the last cursor, reading until nothing new comes (bounded)."""
        url = base.replace("http://", "ws://") + "/ws/v1"
        with connect(url, additional_headers={"Authorization": f"Bearer {self.token}"}, open_timeout=5) as ws:
            ws.send(json.dumps({"type": "hello", "cursor": self.cursor}))
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                try:
                    frame = json.loads(ws.recv(timeout=1.5))
                except TimeoutError:
                    return
                if frame["type"] == "event":
                    self.events.append(frame["event"])


def sync_all(base: str, token: str, *, timeout: float = 30) -> list[dict]:
    """Every event of the caller's stream, by paging GET /sync from the start."""
    events: list[dict] = []
    cursor = "0"
    end = time.monotonic() + timeout
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        while time.monotonic() < end:
            page = http.get("/api/v1/sync", params={"cursor": cursor, "limit": 500})
            assert page.status_code == 200, page.text
            body = page.json()
            events += body["events"]
            cursor = body["cursor"]
            if not body["has_more"]:
                return events
    raise AssertionError("sync paging did not finish")


def assert_exactly_once_in_order(events: list[dict], acked: dict[str, dict], conversation_id: str,
                                 who: str = "recipient", order_without_sender: str | None = None) -> None:
    """Every acknowledged message appears once among the conversation's message.new events,
    the events carry strictly increasing seqs, and the stream positions never repeat.

    `order_without_sender`: leave that user's own messages out of the order check. In a
    conversation fanned out by Celery (over MESSAGING_INLINE_FANOUT_MAX members) the
    sender's own event is appended in the send transaction and the others' arrive with
    the fan-out, so a member who also sends sees their own messages ahead of earlier
    seqs of others (README, "Guarantees")."""
    cursors = [e["cursor"] for e in events]
    assert len(cursors) == len(set(cursors)), f"{who}: an event was delivered twice"
    news = [e["data"] for e in events if e["type"] == "message.new" and e["data"]["conversation_id"] == conversation_id]
    ids = [m["id"] for m in news]
    assert len(ids) == len(set(ids)), f"{who}: a message appears twice"
    seqs = [m["seq"] for m in news if m["sender_id"] != order_without_sender]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"{who}: out of order: {seqs}"
    missing = {m["id"] for m in acked.values()} - set(ids)
    assert not missing, f"{who}: {len(missing)} acknowledged messages missing"
    by_client = {}
    for m in news:
        by_client.setdefault((m["sender_id"], m["client_id"]), []).append(m["id"])
    assert all(len(v) == 1 for v in by_client.values()), f"{who}: a client_id was stored twice"
