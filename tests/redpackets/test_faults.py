"""Faults with money in flight: a Celery worker SIGKILLed mid-refund, a server SIGKILLed mid-claim.

Both hold a row lock from another connection so the process is provably
stuck inside its transaction (after writing part of it) when it is killed;
PostgreSQL then rolls the transaction back, and the work is done again,
once, by the next worker or request.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import httpx
import psycopg
import pytest
from django.conf import settings
from django.utils import timezone

from messaging import services as messaging_services
from payments.models import Transaction, TransactionKind
from payments.selectors import ledger_verify, wallet_get
from payments.services import topup_create
from redpackets import services, tasks
from redpackets.models import Packet, Refund, Share
from streams.models import Event
from tests.factories import sign_in
from tests.processes import Worker, celery_worker, current_database_url, wait_for
from tests.redpackets.conftest import waiting_on_a_lock, wallet_locked
from tests.reliability.services import AsgiServer, django_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

VISIBILITY = 2


@pytest.fixture
def money(settings):
    settings.PAYMENTS_BACKEND = "test"
    settings.RED_PACKET_PUSH = ""


def connections_of(application_name: str) -> int:
    with psycopg.connect(current_database_url(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            [application_name]).fetchone()[0]


def funded(name: str, amount: int):
    person = sign_in(display_name=name)
    topup_create(user=person.user, client_id=uuid.uuid4(), amount=amount)
    return person


def test_each_refund_happens_once_when_the_worker_is_killed_mid_refund(money, tmp_path):
    from config.celery import app

    assert settings.REDIS_URL, "real-worker tests need REDIS_URL"
    app.conf.task_always_eager = False
    senders = [funded(f"Sender {i}", 1000) for i in range(3)]
    member = sign_in(display_name="Member")
    group, _ = messaging_services.conversation_create(creator=senders[0].user, type="group", title="Party",
                                                      member_ids=[s.user.pk for s in senders[1:]] + [member.user.pk])
    packets = []
    for sender in senders:
        packet, _ = services.packet_send(sender=sender.user, conversation_id=group["id"], client_id=uuid.uuid4(),
                                         total=300, count=3, mode="random")
        packets.append(packet["id"])
    services.packet_claim(user=member.user, packet_id=packets[1])
    for index, packet_id in enumerate(packets):
        # Expired in this order, so the sweep queues them in this order.
        Packet.objects.filter(pk=packet_id).update(expires_at=timezone.now() - timedelta(minutes=10 - index))
    left = {p: 300 - sum(Share.objects.filter(packet_id=p, claimed_by__isnull=False).values_list("amount", flat=True))
            for p in packets}

    env = {"DATABASE_URL": current_database_url(), "REDIS_URL": settings.REDIS_URL, "PUSH_BACKEND": "log",
           "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY), "LOG_LEVEL": "WARNING", "PAYMENTS_BACKEND": "test"}

    def refunded(packet_id: str) -> bool:
        return Refund.objects.filter(packet_id=packet_id).exists()

    first = Worker(env, log_path=tmp_path / "worker-1.log")
    try:
        with wallet_locked(senders[1].user.pk):
            tasks.refund_due.delay()  # what beat does every minute
            wait_for(lambda: refunded(packets[0]) and waiting_on_a_lock(), timeout=60,
                     message="the first refund to commit and the second to block on the wallet")
            time.sleep(0.3)
            first.kill()  # mid-refund: packet settled, shares marked, refund row and ledger rows written, uncommitted
    finally:
        first.stop()
    time.sleep(0.5)
    assert not refunded(packets[1]) and not refunded(packets[2])
    assert Packet.objects.get(pk=packets[1]).settled_at is None, "the killed refund must have rolled back"
    time.sleep(VISIBILITY + 0.5)  # the unacknowledged task is redelivered to the next worker
    with celery_worker(env, log_path=tmp_path / "worker-2.log") as second:
        wait_for(lambda: all(refunded(p) for p in packets), timeout=60,
                 message=f"every refund after the restart; log: {second.output()[-1500:]}")
        tasks.refund_due.delay()  # a later sweep finds nothing to do
        for packet_id in packets:
            tasks.refund.delay(packet_id)  # nor do duplicate tasks
        time.sleep(2)

    for sender, packet_id in zip(senders, packets, strict=True):
        assert Refund.objects.get(packet_id=packet_id).amount == left[packet_id]
        assert Event.objects.filter(user_id=sender.user.pk, type="red_packet.refunded").count() == 1
        assert wallet_get(user_id=sender.user.pk)["balance"] == 1000 - 300 + left[packet_id]
    assert Transaction.objects.filter(kind=TransactionKind.RED_PACKET_REFUND).count() == 3
    report = ledger_verify()
    assert report.ok, report.problems


def test_a_claim_is_whole_or_absent_when_its_server_is_killed_mid_claim(money):
    sender = funded("Sender", 1000)
    claimant = funded("Claimant", 1)  # has a wallet, so its row can be locked
    other = sign_in(display_name="Other")
    group, _ = messaging_services.conversation_create(creator=sender.user, type="group", title="Party",
                                                      member_ids=[claimant.user.pk, other.user.pk])
    packet, _ = services.packet_send(sender=sender.user, conversation_id=group["id"], client_id=uuid.uuid4(),
                                     total=500, count=2, mode="fixed")
    name = f"killtest-{uuid.uuid4().hex[:8]}"
    env = django_env(DATABASE_URL=current_database_url(), REDIS_URL=settings.REDIS_URL or "",
                     SECRET_KEY=settings.SECRET_KEY, DEBUG="0", LOG_LEVEL="WARNING", PAYMENTS_BACKEND="test",
                     DB_APPLICATION_NAME=name)
    server = AsgiServer(env)
    server.start()
    try:
        with wallet_locked(claimant.user.pk):
            outcome: list[object] = []

            def press() -> None:
                try:
                    with server.client(claimant.token) as http:
                        outcome.append(http.post(f"/api/v1/red-packets/{packet['id']}/claim").status_code)
                except httpx.HTTPError as exc:  # the server dies under it
                    outcome.append(exc)

            presser = threading.Thread(target=press, daemon=True)
            presser.start()
            wait_for(lambda: waiting_on_a_lock(name), timeout=30,
                     message="the claim to take its share and block on the claimant's wallet")
            server.kill()
        # Released: the orphaned backend finishes its statement, finds its client gone and rolls back.
        wait_for(lambda: connections_of(name) == 0, timeout=30, message="the dead server's connections to end")
        presser.join(10)
        assert outcome and isinstance(outcome[0], httpx.HTTPError), "the client never got an answer"
    finally:
        server.kill()

    assert not Share.objects.filter(packet_id=packet["id"], claimed_by__isnull=False).exists()
    assert not Transaction.objects.filter(kind=TransactionKind.RED_PACKET_CLAIM).exists()
    assert wallet_get(user_id=claimant.user.pk)["balance"] == 1
    assert not Event.objects.filter(type="red_packet.claimed").exists()
    # The claim is absent, so the claimant can claim it now, once.
    amount, created = services.packet_claim(user=claimant.user, packet_id=packet["id"])
    assert created and amount == 250
    assert services.packet_claim(user=claimant.user, packet_id=packet["id"]) == (250, False)
    assert wallet_get(user_id=claimant.user.pk)["balance"] == 251
    report = ledger_verify()
    assert report.ok, report.problems
