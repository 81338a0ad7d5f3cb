"""The database connection bound under concurrent load, against running server processes.

Under ASGI every request runs in a fresh thread-sensitive context; with per-thread
persistent connections that meant one PostgreSQL connection per request left open
until PostgreSQL refused clients (503). Each process now draws from a bounded pool:
hundreds of concurrent requests queue for a connection, none gets 503, and the
server never holds more connections than processes x DB_POOL_MAX_SIZE.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection

from tests.processes import current_database_url
from tests.reliability.services import AsgiServer, django_env, servers_log

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROCESSES = 2
POOL_SIZE = 4
CLIENTS = 500


def server_connections(database_url: str, application_name: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as db:
        return db.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                          [application_name]).fetchone()[0]


def refusals(*responses: httpx.Response) -> list[str]:
    return [f"{r.request.method} {r.request.url.path} {r.status_code} {r.text[:300]}"
            for r in responses if r.status_code >= 300]


async def one_client(http: httpx.AsyncClient, index: int, statuses: list[int], refused: list[str]) -> None:
    """What a new user does first: sign up, read the profile, open a conversation."""
    phone = f"+1555{index:07d}"
    requested = await http.post("/api/v1/auth/otp/request", json={"phone": phone})
    verified = await http.post("/api/v1/auth/otp/verify", json={
        "phone": phone, "code": "000000", "device": {"name": "load", "platform": "android"}})
    statuses += [requested.status_code, verified.status_code]
    refused += refusals(requested, verified)
    if verified.status_code != 200:
        return
    body = verified.json()
    auth = {"Authorization": f"Bearer {body['token']}"}
    me = await http.get("/api/v1/me", headers=auth)
    group = await http.post("/api/v1/conversations", headers=auth,
                            json={"type": "group", "title": f"g{index}", "member_ids": []})
    statuses += [me.status_code, group.status_code]
    refused += refusals(me, group)


def test_hundreds_of_concurrent_requests_stay_within_the_pool_and_none_gets_503():
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.fail("this test needs the real stack: DATABASE_URL (PostgreSQL) and REDIS_URL")
    database_url = current_database_url()
    application_name = f"pooltest-{uuid.uuid4().hex[:8]}"
    env = django_env(DATABASE_URL=database_url, REDIS_URL=settings.REDIS_URL, SECRET_KEY=settings.SECRET_KEY,
                     DEBUG="0", LOG_LEVEL="WARNING", OTP_TEST_NUMBERS="+1555", DB_APPLICATION_NAME=application_name,
                     DB_POOL_MAX_SIZE=str(POOL_SIZE), DB_POOL_MIN_SIZE="1")
    servers = [AsgiServer(env) for _ in range(PROCESSES)]
    peak = 0
    refused: list[str] = []
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not sampling.is_set():
            peak = max(peak, server_connections(database_url, application_name))
            sampling.wait(0.02)

    async def load() -> list[int]:
        statuses: list[int] = []
        # A connection per request, as from many phones (and no keep-alive race with the server).
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=0)
        clients = [httpx.AsyncClient(base_url=server.base, timeout=60, limits=limits) for server in servers]
        try:
            await asyncio.gather(*(one_client(clients[i % PROCESSES], i, statuses, refused) for i in range(CLIENTS)))
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))
        return statuses

    started = time.monotonic()
    try:
        for server in servers:
            server.start()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        statuses = asyncio.run(load())
        sampling.set()
        sampler.join(timeout=5)
        after = server_connections(database_url, application_name)
    finally:
        sampling.set()
        for server in servers:
            server.kill()

    took = time.monotonic() - started
    assert {status for status in statuses} <= {200, 201, 202}, (
        f"{len(refused)} refused in {took:.0f} s, peak {peak} connections: {refused[:5]}\n{servers_log(servers)}")
    assert len(statuses) == 4 * CLIENTS, "every client got through all four requests"
    assert 0 < peak <= PROCESSES * POOL_SIZE, f"peak {peak} server connections"
    assert after <= PROCESSES * POOL_SIZE
