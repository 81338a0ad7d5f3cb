"""Claims racing inside the database, made deterministic with a held row lock.

Two devices of one user: the first claim takes a share and stalls (its
wallet row is locked from outside); the second takes *another* share (SKIP
LOCKED) and then waits on the unique (packet, user) entry of the first. When
the first commits, the second gets that amount back and its share stays open.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection

from messaging import services as messaging_services
from payments.services import topup_create
from redpackets import services
from redpackets.models import Share
from tests.factories import sign_in
from tests.redpackets.conftest import waiting_on_a_lock, wallet_locked

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []

    def run() -> None:
        try:
            result.append(target())
        except Exception as exc:
            result.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def lock_waiter_pids() -> list[int]:
    """Backends of this database waiting for a lock, the longest waiting first."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database() ORDER BY query_start")
        return [pid for pid, in cursor.fetchall()]


def lock_waiters() -> int:
    return len(lock_waiter_pids())


@dataclass
class Race:
    sender: Any
    bob: Any
    carol: Any
    group_id: str


@pytest.fixture
def race(settings) -> Race:
    """The sender, and Bob and Carol in a group with them; Bob has a wallet row to hold."""
    settings.PAYMENTS_BACKEND = "test"
    settings.RED_PACKET_PUSH = ""
    sender = sign_in(display_name="Sender")
    bob = sign_in(display_name="Bob")
    carol = sign_in(display_name="Carol")
    topup_create(user=sender.user, client_id=uuid.uuid4(), amount=1000)
    topup_create(user=bob.user, client_id=uuid.uuid4(), amount=1)  # a wallet row to hold
    group, _ = messaging_services.conversation_create(creator=sender.user, type="group", title="Race",
                                                      member_ids=[bob.user.pk, carol.user.pk])
    return Race(sender, bob, carol, group["id"])


def send_packet(race: Race, *, total: int, count: int) -> dict:
    packet, _ = services.packet_send(sender=race.sender.user, conversation_id=race.group_id, client_id=uuid.uuid4(),
                                     total=total, count=count, mode="random")
    return packet


def test_two_devices_claiming_at_once_get_one_share_and_the_same_amount(race: Race):
    from tests.processes import wait_for

    sender, bob, carol = race.sender, race.bob, race.carol
    packet = send_packet(race, total=600, count=3)

    def claim() -> object:
        return services.packet_claim(user=bob.user, packet_id=packet["id"])

    with wallet_locked(bob.user.pk):
        first, first_result = in_thread(claim)
        wait_for(lambda: lock_waiters() == 1, timeout=20, message="the first claim to stall on the wallet")
        second, second_result = in_thread(claim)
        wait_for(lambda: lock_waiters() == 2, timeout=20,
                 message="the second claim to take another share and wait on the first one's claim")
    first.join(20)
    second.join(20)
    (amount, created), = first_result
    assert created
    assert second_result == [(amount, False)]
    claimed = list(Share.objects.filter(packet_id=packet["id"], claimed_by__isnull=False)
                   .values_list("claimed_by_id", "amount"))
    assert claimed == [(bob.user.pk, amount)]
    # The second device's share went back to the pool: Carol and the sender get the other two.
    assert services.packet_claim(user=carol.user, packet_id=packet["id"])[1]
    assert services.packet_claim(user=sender.user, packet_id=packet["id"])[1]
    assert not waiting_on_a_lock()


def test_a_claimant_waiting_for_the_last_share_gets_it_when_the_claim_holding_it_fails(race: Race):
    from tests.processes import wait_for

    bob, carol = race.bob, race.carol
    packet = send_packet(race, total=500, count=1)

    with wallet_locked(bob.user.pk):
        bobs, bobs_result = in_thread(lambda: services.packet_claim(user=bob.user, packet_id=packet["id"]))
        wait_for(lambda: lock_waiters() == 1, timeout=20, message="Bob's claim to hold the only share and stall")
        bob_pid, = lock_waiter_pids()
        carols, carols_result = in_thread(lambda: services.packet_claim(user=carol.user, packet_id=packet["id"]))
        wait_for(lambda: lock_waiters() == 2, timeout=20, message="Carol's claim to wait for Bob's")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_cancel_backend(%s)", [bob_pid])  # Bob's request fails: rolls back
        bobs.join(20)
    carols.join(20)
    assert len(bobs_result) == 1 and isinstance(bobs_result[0], Exception), bobs_result
    assert carols_result == [(500, True)], "the share Bob's failed claim let go is Carol's"
    assert list(Share.objects.filter(packet_id=packet["id"]).values_list("claimed_by_id", flat=True)) == [
        carol.user.pk]
    assert not waiting_on_a_lock()
