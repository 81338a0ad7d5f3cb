"""An ASGI server process killed with SIGKILL mid-traffic.

tests/realtime/test_multiprocess.py kills a process with an idle client connected;
this one kills it while its clients are sending and following their streams. Its
clients reconnect to the other process, senders retry unacknowledged client_ids,
followers resume from their cursors; nothing is lost or duplicated.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.reliability.chat import Follower, Sender, assert_exactly_once_in_order, sync_all
from tests.reliability.services import sign_in_over_http, wait_until

pytestmark = pytest.mark.slow


def test_clients_of_a_killed_process_resume_on_the_other_with_no_loss_or_duplicate(fault_stack):
    victim, survivor = fault_stack.servers
    people = [sign_in_over_http(survivor, f"+1555010030{i}") for i in range(4)]
    tokens = [p["token"] for p in people]
    with httpx.Client(base_url=survivor.base, headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=10) as http:
        created = http.post("/api/v1/conversations", json={
            "type": "group", "title": "kill", "member_ids": [p["user"]["id"] for p in people[1:]]})
        group = created.json()["id"]

    # Everyone starts on the victim; after the kill only the survivor answers.
    both = [victim.base, survivor.base]
    senders = [Sender(tokens[0], group, both, count=30, name="a"), Sender(tokens[1], group, both, count=30, name="b")]
    followers = [Follower(tokens[2], [victim.base]), Follower(tokens[3], [victim.base])]
    stop = threading.Event()
    deadline = time.monotonic() + 40
    threads = [threading.Thread(target=s.run, args=(deadline,), daemon=True) for s in senders]
    threads += [threading.Thread(target=f.run, args=(stop, deadline), daemon=True) for f in followers]
    for thread in threads:
        thread.start()
    wait_until(lambda: all(len(f.events) >= 5 for f in followers), timeout=20, what="followers receiving")

    victim.kill()  # SIGKILL: no close frames, no acks flushed, no presence cleanup
    for follower in followers:
        follower.bases = [survivor.base]

    for thread in threads[:2]:
        thread.join(timeout=max(1, deadline - time.monotonic()))
    assert [len(s.acked) for s in senders] == [30, 30]
    wait_until(lambda: all(len([e for e in f.events if e["type"] == "message.new"]) >= 60 for f in followers),
               timeout=15, what="followers to catch up on the survivor")
    stop.set()
    for thread in threads[2:]:
        thread.join(timeout=5)

    acked = {k: v for s in senders for k, v in s.acked.items()}
    for index, follower in enumerate(followers):
        assert follower.reconnects >= 1
        assert_exactly_once_in_order(follower.events, acked, group, who=f"follower {index}")
    for index, token in enumerate(tokens):
        assert_exactly_once_in_order(sync_all(survivor.base, token), acked, group, who=f"member {index} (/sync)")
