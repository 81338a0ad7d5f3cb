"""Expiry: what nobody claimed goes back to the sender once, by the beat sweep and its task."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from payments.models import Transaction, TransactionKind
from redpackets import services, tasks
from redpackets.models import Packet, Refund, Share
from tests.exports.conftest import make_sunset
from tests.messaging.conftest import stream_events
from tests.redpackets.conftest import assert_ledger_ok, balance, claim, error_code, fund, new_group, send_packet

pytestmark = pytest.mark.usefixtures("payments_on")


def expire(packet_id: str) -> None:
    Packet.objects.filter(pk=packet_id).update(expires_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.django_db
def test_the_remainder_goes_back_to_the_sender_once(alice, bob, carol, pushes):
    alice.device.push_token = "apns-token"
    alice.device.save()
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    packet = send_packet(alice, group, total=600, count=3).json()
    got = claim(bob, packet["id"]).json()["amount"]
    assert services.packet_refund(packet_id=packet["id"]) is None  # not expired yet
    expire(packet["id"])
    assert services.packet_refund(packet_id=packet["id"]) == 600 - got
    assert services.packet_refund(packet_id=packet["id"]) is None  # settled: a second run does nothing
    assert balance(alice) == 400 + 600 - got
    assert Refund.objects.get().amount == 600 - got
    (_, refunded), = stream_events(alice, "red_packet.refunded")
    assert refunded == {"red_packet_id": packet["id"], "conversation_id": group, "amount": 600 - got,
                        "refunded_at": refunded["refunded_at"]}
    wallet = stream_events(alice, "wallet.updated")[-1][1]
    assert wallet["balance"] == balance(alice) and wallet["transaction"]["kind"] == "red_packet_refund"
    refund_push = [p for p in pushes if p["kind"] == "red_packet.refunded"]
    assert len(refund_push) == 1 and refund_push[0]["user_id"] == str(alice.user.pk)
    detail = alice.client.get(f"/api/v1/red-packets/{packet['id']}").json()
    assert detail["status"] == "expired" and detail["refunded"] == 600 - got and detail["remaining"] == 600 - got
    late = claim(carol, packet["id"])
    assert late.status_code == 410 and error_code(late) == "red_packet_expired"
    assert_ledger_ok()


@pytest.mark.django_db
def test_a_fully_claimed_packet_settles_without_a_refund(alice, bob, direct):
    fund(alice, 1000)
    packet = send_packet(alice, direct, total=100).json()
    claim(bob, packet["id"])
    expire(packet["id"])
    assert services.packet_refund(packet_id=packet["id"]) == 0
    assert not Refund.objects.exists() and stream_events(alice, "red_packet.refunded") == []
    assert Packet.objects.get(pk=packet["id"]).settled_at is not None
    assert_ledger_ok()


@pytest.mark.django_db
def test_the_beat_sweep_refunds_every_expired_packet_once(alice, bob, carol, settings):
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    fund(bob, 1000)
    packets = [send_packet(who, group, total=100, count=2).json() for who in (alice, bob, alice)]
    fresh = send_packet(alice, group, total=50, count=1).json()
    for packet in packets:
        expire(packet["id"])
    assert tasks.refund_due.delay().get() == 3  # eager in tests: enqueues and runs each refund
    assert tasks.refund_due.delay().get() == 0  # settled ones are not swept again
    assert balance(alice) == 1000 - 50 and balance(bob) == 1000
    assert Refund.objects.count() == 3
    assert Packet.objects.get(pk=fresh["id"]).settled_at is None
    for packet in packets:  # a duplicate task (redelivery) changes nothing
        assert tasks.refund.delay(packet["id"]).get() is None
    assert Transaction.objects.filter(kind=TransactionKind.RED_PACKET_REFUND).count() == 3
    assert_ledger_ok()


@pytest.mark.django_db
def test_a_refund_whose_task_was_lost_is_enqueued_again_after_its_lease(alice, bob, carol, settings):
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    packet = send_packet(alice, group, total=100, count=2).json()
    expire(packet["id"])
    assert services.packets_refund_due() == [packet["id"]]  # queued... and the task is lost
    assert services.packets_refund_due() == []  # within the lease: not queued twice
    later = timezone.now() + timedelta(seconds=settings.RED_PACKET_REFUND_LEASE_SECONDS + 1)
    assert services.packets_refund_due(now=later) == [packet["id"]]


@pytest.mark.django_db
def test_refunds_still_run_in_read_only_sunset(alice, bob, carol):
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    packet = send_packet(alice, group, total=100, count=2).json()
    make_sunset("read_only")
    expire(packet["id"])
    assert services.packet_refund(packet_id=packet["id"]) == 100
    assert balance(alice) == 1000


@pytest.mark.django_db(transaction=True)
def test_a_claim_in_flight_at_expiry_and_the_refund_exclude_each_other(alice, bob, carol, settings):
    """The refund waits for a claim that holds its share's lock; whichever commits, each cent moves once."""
    settings.RED_PACKET_PUSH = ""
    group = new_group(alice, bob, carol)
    fund(alice, 1000)
    packet = send_packet(alice, group, total=300, count=3).json()
    share = Share.objects.filter(packet_id=packet["id"]).order_by("index").first()
    result: dict[str, object] = {}
    locked = threading.Event()
    release = threading.Event()

    def hold_share_then_give_up() -> None:
        # A claimer that locked share 0 and then failed (e.g. its server died) before committing.
        from django.db import transaction

        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT id FROM redpackets_share WHERE id = %s FOR UPDATE", [share.pk])
                locked.set()
                release.wait(10)
                raise RuntimeError("claimer died")
        except RuntimeError:
            pass
        finally:
            connection.close()

    def refund() -> None:
        try:
            result["refund"] = services.packet_refund(packet_id=packet["id"])
        finally:
            connection.close()

    holder = threading.Thread(target=hold_share_then_give_up)
    holder.start()
    assert locked.wait(10)
    expire(packet["id"])
    refunder = threading.Thread(target=refund)
    refunder.start()
    refunder.join(0.5)
    assert refunder.is_alive(), "the refund must wait for the share's lock"
    release.set()
    holder.join(10)
    refunder.join(10)
    assert result["refund"] == 300
    assert balance(alice) == 1000
    assert claim(bob, packet["id"]).status_code == 410
    assert_ledger_ok()
