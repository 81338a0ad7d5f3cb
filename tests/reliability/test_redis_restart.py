"""Redis killed (SIGKILL) and restarted while clients are connected and sending.

Two uvicorn processes share a private PostgreSQL and a private Redis. Three users
send into one group (two over the socket, one over REST) while a fourth follows
her stream on a socket. Redis is killed mid-traffic and started again on the same
port. Sockets either ride through (the pub/sub layer re-subscribes when Redis is
back) or get closed and reconnect; senders retry with the same client_id.
Afterwards every acknowledged message is in every member's stream exactly once,
in seq order (read by GET /sync paging), and the follower, who resumed by cursor,
saw each exactly once too.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.reliability.chat import Follower, Sender, assert_exactly_once_in_order, sync_all
from tests.reliability.services import sign_in_over_http, wait_until

pytestmark = pytest.mark.slow


def test_acknowledged_messages_survive_a_redis_restart_exactly_once_in_order(fault_stack):
    redis_server, servers = fault_stack.redis, fault_stack.servers
    bases = [s.base for s in servers]
    people = [sign_in_over_http(servers[0], f"+1555010020{i}") for i in range(4)]
    tokens = [p["token"] for p in people]
    with httpx.Client(base_url=bases[0], headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=10) as http:
        created = http.post("/api/v1/conversations", json={
            "type": "group", "title": "faults", "member_ids": [p["user"]["id"] for p in people[1:]]})
        assert created.status_code == 201, created.text
        group = created.json()["id"]

    senders = [Sender(tokens[0], group, bases, count=30, via="socket", name="a"),
               Sender(tokens[1], group, bases, count=30, via="socket", name="b"),
               Sender(tokens[2], group, bases, count=20, via="rest", name="c")]
    follower = Follower(tokens[3], bases)
    stop = threading.Event()
    deadline = time.monotonic() + 45
    threads = [threading.Thread(target=s.run, args=(deadline,), daemon=True) for s in senders]
    threads.append(threading.Thread(target=follower.run, args=(stop, deadline), daemon=True))
    for thread in threads:
        thread.start()

    wait_until(lambda: sum(len(s.acked) for s in senders) >= 15, timeout=20, what="traffic flowing")
    before = sum(len(s.acked) for s in senders)
    redis_server.kill()
    time.sleep(2)
    redis_server.start()  # same port, empty: the channel layer, cache and broker start over
    seen_at_restart = len(follower.events)

    for thread in threads[:-1]:
        thread.join(timeout=max(1, deadline - time.monotonic()))
    assert all(len(s.acked) == s.count for s in senders), [len(s.acked) for s in senders]
    assert sum(len(s.acked) for s in senders) > before  # sends went on after the restart
    wait_until(lambda: len([e for e in follower.events if e["type"] == "message.new"]) >= 80, timeout=15,
               what="the follower to catch up")
    stop.set()
    threads[-1].join(timeout=5)

    acked = {k: v for s in senders for k, v in s.acked.items()}
    assert len(acked) == 80
    # The live path came back: the follower either reconnected, or its open socket kept
    # receiving events after Redis returned.
    assert follower.reconnects >= 1 or len(follower.events) > seen_at_restart
    assert_exactly_once_in_order(follower.events, acked, group, who="follower (socket, resumed by cursor)")
    for index, token in enumerate(tokens):
        assert_exactly_once_in_order(sync_all(bases[index % 2], token), acked, group, who=f"member {index} (/sync)")
