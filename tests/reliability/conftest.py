"""A private stack for fault tests: PostgreSQL and Redis of our own, two uvicorn processes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.reliability.services import AsgiServer, PrivatePostgres, PrivateRedis, django_env, manage


@dataclass
class Stack:
    postgres: PrivatePostgres
    redis: PrivateRedis
    servers: list[AsgiServer]
    env: dict[str, str]

    @property
    def bases(self) -> list[str]:
        return [server.base for server in self.servers]


@pytest.fixture
def fault_stack() -> Iterator[Stack]:
    postgres = PrivatePostgres()
    postgres.start()
    postgres.create_database("faults")
    redis_server = PrivateRedis()
    redis_server.start()
    env = django_env(DATABASE_URL=postgres.url("faults"), REDIS_URL=redis_server.url, OTP_TEST_NUMBERS="+1555",
                     SECRET_KEY="fault-test", DB_CONNECT_TIMEOUT="2", LOG_LEVEL="WARNING", PUSH_BACKEND="log",
                     # Test clients send fast and in bulk; the slow-consumer test waits 4 s, not 10.
                     MESSAGING_SEND_LIMIT="0", WS_FRAME_RATE="1000", WS_FRAME_BURST="1000",
                     WS_SEND_TIMEOUT_SECONDS="4")
    manage("migrate", "--noinput", env=env)
    servers = [AsgiServer(env), AsgiServer(env)]
    try:
        for server in servers:
            server.start()
        yield Stack(postgres, redis_server, servers, env)
    finally:
        for server in servers:
            server.kill()
        redis_server.kill()
        postgres.destroy()
