"""Requests waiting for a pooled connection: served in arrival order; failed at once only when
the database is unreachable, not when it is merely at its connection limit.

Against the real PostgreSQL, with core.postgresql's pool class as Django builds it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from core.postgresql.base import FailFastConnectionPool
from tests.processes import current_database_url

pytestmark = pytest.mark.django_db(transaction=True)


def waiting_requests(pool: FailFastConnectionPool, count: int, *, apart: float) -> tuple[list[threading.Thread], list]:
    """`count` requests arriving `apart` seconds after one another; each records when it got
    (or failed to get) a connection, and holds it briefly."""
    served: list = []
    lock = threading.Lock()

    def request(index: int) -> None:
        try:
            connection = pool.getconn()
        except PoolTimeout as error:
            with lock:
                served.append((index, error))
            return
        with lock:
            served.append((index, None))
        time.sleep(0.01)
        pool.putconn(connection)

    threads = []
    for index in range(count):
        thread = threading.Thread(target=request, args=(index,))
        thread.start()
        threads.append(thread)
        time.sleep(apart)
    return threads, served


def test_requests_waiting_for_a_busy_pool_are_served_in_arrival_order():
    pool = FailFastConnectionPool(current_database_url(), min_size=1, max_size=1, timeout=10, open=True)
    try:
        holder = pool.getconn()
        threads, served = waiting_requests(pool, 8, apart=0.04)
        time.sleep(1.3)  # several of the old 0.25 s waiting slices, after which a waiter queued again last
        assert served == [], "nobody is served while the only connection is lent"
        pool.putconn(holder)
        for thread in threads:
            thread.join(timeout=10)
    finally:
        pool.close()
    assert served == [(index, None) for index in range(8)], "first come, first served; nobody timed out"


@pytest.fixture
def limited_role() -> Iterator[str]:
    """A login role PostgreSQL lets open one connection only."""
    role = f"pool_{uuid.uuid4().hex[:8]}"
    url = current_database_url()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1')
    try:
        yield url.replace("://postgres@", f"://{role}@", 1)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
            admin.execute(f'DROP ROLE "{role}"')


def test_a_database_at_its_connection_limit_makes_requests_wait_not_fail(limited_role: str):
    if "://postgres@" not in current_database_url():
        pytest.fail("this test connects as a role of its own next to the test database's postgres user")
    # The pool may grow to 3, but PostgreSQL refuses this role a second connection.
    pool = FailFastConnectionPool(limited_role, min_size=1, max_size=3, timeout=10, open=True)
    try:
        pool.wait(timeout=10)
        holder = pool.getconn()
        threads, served = waiting_requests(pool, 3, apart=0.02)
        time.sleep(1.0)  # the pool's attempts to grow are refused meanwhile
        assert served == [], served
        pool.putconn(holder)
        for thread in threads:
            thread.join(timeout=10)
    finally:
        pool.close()
    assert sorted(served) == [(index, None) for index in range(3)], served


def test_requests_waiting_on_an_unreachable_database_fail_at_the_first_failed_connect():
    # Nothing listens on the port: every connect fails (as while PostgreSQL is down).
    with psycopg.connect(current_database_url(), autocommit=True) as db:
        db.execute("SELECT 1")
    unreachable = "postgres://postgres@127.0.0.1:9/postgres?connect_timeout=2"
    pool = FailFastConnectionPool(unreachable, min_size=0, max_size=2, timeout=30, open=True)
    try:
        started = time.monotonic()
        threads, served = waiting_requests(pool, 3, apart=0.0)
        for thread in threads:
            thread.join(timeout=30)
        took = time.monotonic() - started
    finally:
        pool.close(timeout=1)
    assert len(served) == 3 and all(isinstance(error, PoolTimeout) for _, error in served), served
    assert took < 5, f"failed after {took:.1f} s, not at the first failed connect (the pool's timeout is 30 s)"
