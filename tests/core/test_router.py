"""The replica router: which reads go to DATABASE_REPLICA_URL, decided per call; and a real streaming replica."""

from __future__ import annotations

import subprocess
import uuid

import httpx
import psycopg
import pytest
from django.db import transaction

from accounts.models import User
from core.db import REPLICA, ReplicaRouter, reading_from_replica, replica_ok
from tests.processes import wait_for
from tests.reliability.services import PG_BIN, AsgiServer, PrivatePostgres, _as_postgres, django_env, free_port, manage

router = ReplicaRouter()


@pytest.fixture
def with_replica(monkeypatch):
    """As if DATABASE_REPLICA_URL were set (the test run has one database; the alias is not opened here)."""
    monkeypatch.setattr("core.db.replica_configured", lambda: True)


@pytest.mark.django_db(transaction=True)  # outside any transaction, as a request's selectors run
def test_reads_go_to_the_replica_only_inside_a_replica_ok_selector(with_replica):
    assert router.db_for_read(User) == "default"
    with reading_from_replica():
        assert router.db_for_read(User) == REPLICA
        assert router.db_for_write(User) == "default"

    @replica_ok
    def selector() -> str:
        return router.db_for_read(User)

    assert selector() == REPLICA
    assert router.db_for_read(User) == "default"


@pytest.mark.django_db(transaction=True)
def test_a_read_inside_a_transaction_stays_on_the_primary(with_replica):
    with transaction.atomic(), reading_from_replica():
        assert router.db_for_read(User) == "default"


@pytest.mark.django_db
def test_without_a_replica_everything_reads_the_primary():
    with reading_from_replica():
        assert router.db_for_read(User) == "default"
    assert router.allow_migrate(REPLICA, "accounts") is False
    assert router.allow_migrate("default", "accounts") is True


# --- A real streaming replica (pg_basebackup) ----------------------------------------------------------


class StreamingReplica:
    """A hot standby of `primary`, cloned with pg_basebackup -R on a free port."""

    def __init__(self, primary: PrivatePostgres) -> None:
        self.dir = primary.dir / "replica"
        self.port = free_port()
        subprocess.run(_as_postgres([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                                     "-U", "postgres", "-D", str(self.dir), "-R", "-X", "stream", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-w", "-t", "30", "-l",
                                     str(primary.dir / "replica.log"), "-o",
                                     f"-p {self.port} -k {primary.dir} -c listen_addresses=127.0.0.1",
                                     "start"]), check=True, capture_output=True)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, database: str, statement: str) -> object:
        with psycopg.connect(self.url(database), autocommit=True) as db:
            return db.execute(statement).fetchone()

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-m", "immediate", "stop"]),
                       check=False, capture_output=True)


@pytest.mark.slow
@pytest.mark.timeout(400)  # two clusters, a base backup and migrations on a shared machine
def test_history_is_read_from_a_streaming_replica_and_writes_go_to_the_primary():
    primary = PrivatePostgres()
    replica = None
    server = None
    try:
        primary.start()
        primary.create_database("routed")
        replica = StreamingReplica(primary)
        env = django_env(DATABASE_URL=primary.url("routed"), DATABASE_REPLICA_URL=replica.url("routed"),
                         SECRET_KEY="router-test", OTP_TEST_NUMBERS="+1555", LOG_LEVEL="WARNING")
        env.pop("REDIS_URL", None)
        manage("migrate", "--noinput", env=env)
        wait_for(lambda: replica.sql("routed", "SELECT to_regclass('messaging_message')")[0], timeout=30,
                 message="the schema replicated")
        server = AsgiServer(env)
        server.start()
        tokens = []
        with server.client() as http:
            for phone in ("+15550000001", "+15550000002"):
                http.post("/api/v1/auth/otp/request", json={"phone": phone})
                tokens.append(http.post("/api/v1/auth/otp/verify", json={
                    "phone": phone, "code": "000000", "device": {"name": "t", "platform": "web"}}).json())
        alice = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tokens[0]['token']}"},
                             timeout=20)
        conversation = alice.post("/api/v1/conversations", json={"type": "direct",
                                                                  "user_id": tokens[1]["user"]["id"]}).json()["id"]

        def send(text: str) -> int:
            return alice.post(f"/api/v1/conversations/{conversation}/messages",
                              json={"client_id": str(uuid.uuid4()), "type": "text", "text": text}).status_code

        def history() -> list[str]:
            response = alice.get(f"/api/v1/conversations/{conversation}/messages")
            assert response.status_code == 200, response.text
            return [m["text"] for m in response.json()["messages"]]

        assert send("one") == 201  # a write: the replica is read-only, so it went to the primary
        wait_for(lambda: history() == ["one"], timeout=20, message="the replica caught up")
        replica.sql("routed", "SELECT pg_wal_replay_pause()")
        assert send("two") == 201
        # History comes from the paused replica: "two" is committed on the primary but not shown...
        assert history() == ["one"]
        # ...while a read outside replica_ok selectors (the sync stream) reads the primary.
        events = alice.get("/api/v1/sync", params={"cursor": ""}).json()["events"]
        assert [e["data"]["text"] for e in events if e["type"] == "message.new"] == ["one", "two"]
        replica.sql("routed", "SELECT pg_wal_replay_resume()")
        wait_for(lambda: history() == ["one", "two"], timeout=20, message="replay resumed")
        alice.close()
    finally:
        if server is not None:
            server.kill()
        if replica is not None:
            replica.stop()
        primary.destroy()
