"""The hot case: 100 shares, 1,000 members pressing at the same moment, against running servers.

Three uvicorn processes share PostgreSQL and Redis; 1,000 members of one
group (50 of them from two devices at once) claim concurrently over HTTP.
Exactly 100 users get a share, nobody twice, the shares sum to the total,
everyone else gets 410 `red_packet_empty`, and `manage.py ledger_check`
passes afterwards. (Speed is measured by `make bench`, not asserted here.)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections import defaultdict

import httpx
import pytest
from django.conf import settings
from django.db import connection

from messaging import services as messaging_services
from payments.selectors import wallet_get
from payments.services import topup_create
from redpackets.models import Share
from streams.models import Event
from tests.factories import sign_in
from tests.processes import current_database_url
from tests.reliability.services import ROOT, AsgiServer, django_env, servers_log

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

PROCESSES = 3
CLAIMANTS = 1000
TWO_DEVICES = 50
SHARES = 100
TOTAL = 20000


async def press_at_once(bases: list[str], tokens: list[tuple[str, str]], packet_id: str) -> list[tuple]:
    """Every (user id, token) claims at once: all requests are opened together and gathered."""
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=0)
    clients = [httpx.AsyncClient(base_url=base, timeout=120, limits=limits) for base in bases]
    start = asyncio.Event()

    async def one(index: int, user_id: str, token: str) -> tuple:
        await start.wait()
        response = await clients[index % len(clients)].post(
            f"/api/v1/red-packets/{packet_id}/claim", headers={"Authorization": f"Bearer {token}"})
        return user_id, response.status_code, response.json(), time.monotonic()

    try:
        tasks = [asyncio.create_task(one(i, u, t)) for i, (u, t) in enumerate(tokens)]
        await asyncio.sleep(0.2)  # every task is parked on the start line
        start.set()
        return await asyncio.gather(*tasks)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def test_a_thousand_concurrent_claimants_empty_a_hundred_share_packet_exactly_once_each(settings_override):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.fail("this test needs the real stack: DATABASE_URL (PostgreSQL) and REDIS_URL")
    sender = sign_in(display_name="Sender")
    members = [sign_in() for _ in range(CLAIMANTS)]
    group, _ = messaging_services.conversation_create(creator=sender.user, type="group", title="Lucky draw",
                                                      member_ids=[m.user.pk for m in members])
    topup_create(user=sender.user, client_id=uuid.uuid4(), amount=TOTAL)
    tokens = [(str(m.user.pk), m.token) for m in members]
    tokens += [(str(m.user.pk), m.another_device().token) for m in members[:TWO_DEVICES]]

    env = django_env(DATABASE_URL=current_database_url(), REDIS_URL=settings.REDIS_URL, SECRET_KEY=settings.SECRET_KEY,
                     DEBUG="0", LOG_LEVEL="WARNING", PAYMENTS_BACKEND="test", MESSAGING_GROUP_MAX_MEMBERS="2000")
    servers = [AsgiServer(env) for _ in range(PROCESSES)]
    try:
        for server in servers:
            server.start()
        with servers[0].client(sender.token) as http:
            sent = http.post(f"/api/v1/conversations/{group['id']}/red-packets", json={
                "client_id": str(uuid.uuid4()), "total": TOTAL, "count": SHARES, "mode": "random",
                "greeting": "大吉大利"})
        assert sent.status_code == 201, sent.text
        packet_id = sent.json()["id"]
        began = time.monotonic()
        results = asyncio.run(press_at_once([s.base for s in servers], tokens, packet_id))
    finally:
        for server in servers:
            server.kill()

    statuses = defaultdict(int)
    for _, status, _, _ in results:
        statuses[status] += 1
    unexpected = [(status, body) for _, status, body, _ in results if status not in (200, 410)]
    assert set(statuses) <= {200, 410}, f"{dict(statuses)} {unexpected[:3]}\n{servers_log(servers, 3000)}"
    won: dict[str, set[int]] = defaultdict(set)
    for user_id, status, body, _ in results:
        if status == 200:
            won[user_id].add(body["amount"])
        else:
            assert body["error"]["code"] == "red_packet_empty", body
    assert len(won) == SHARES, f"{len(won)} users got a share"
    assert all(len(amounts) == 1 for amounts in won.values()), "a user's two devices saw different amounts"

    claimed = list(Share.objects.filter(packet_id=packet_id, claimed_by__isnull=False)
                   .values_list("claimed_by_id", "amount"))
    assert len(claimed) == SHARES and len({user for user, _ in claimed}) == SHARES
    assert sum(amount for _, amount in claimed) == TOTAL
    assert {str(user): {amount} for user, amount in claimed} == won
    for user_id, amounts in won.items():
        assert wallet_get(user_id=user_id)["balance"] == next(iter(amounts))
    assert wallet_get(user_id=sender.user.pk)["balance"] == 0
    assert Event.objects.filter(user_id=sender.user.pk, type="red_packet.claimed").count() == SHARES

    check = subprocess.run([sys.executable, "manage.py", "ledger_check"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    done = max(t for *_, t in results) - began
    print(f"\n{len(tokens)} claims on {PROCESSES} processes: all answered after {done:.2f} s "
          f"({len(tokens) / done:.0f} requests/s)")


@pytest.fixture
def settings_override(settings):
    settings.MESSAGING_GROUP_MAX_MEMBERS = 2000
    settings.PAYMENTS_BACKEND = "test"
    settings.RED_PACKET_PUSH = ""
