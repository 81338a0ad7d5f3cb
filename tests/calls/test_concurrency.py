"""Racing transitions on real parallel database connections: the row lock and the conditional
updates let exactly one win."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from calls import services
from calls.models import Call, CallParticipant
from core.errors import ApplicationError
from tests.calls.conftest import SDP_ANSWER, call_messages, new_direct, offer

pytestmark = pytest.mark.django_db(transaction=True)


def race(*actions: Callable[[], object]) -> list[str]:
    """Run the actions at the same moment, each on its own thread and connection."""
    outcomes: list[str] = []
    barrier = threading.Barrier(len(actions))

    def run(action: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            action()
            outcomes.append("ok")
        except ApplicationError as error:
            outcomes.append(error.code)
        except BaseException as exc:  # reported in the assertion
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes)


def test_two_devices_answering_at_the_same_moment_exactly_one_wins(alice, bob):
    direct = new_direct(alice, bob)
    devices = [bob.device, *(bob.another_device(name=f"Tablet {i}").device for i in range(3))]
    for _ in range(5):
        call_id = offer(alice, direct)
        outcomes = race(*(lambda d=device, c=call_id: services.call_answer(
            user=bob.user, device_id=d.pk, call_id=c, sdp=SDP_ANSWER, grant_control=False) for device in devices))
        assert outcomes == ["conflict", "conflict", "conflict", "ok"]
        call = Call.objects.get(pk=call_id)
        assert call.state == "active" and call.first_device_id in {d.pk for d in devices}
        assert CallParticipant.objects.get(call=call, user=bob.user).device_id == call.first_device_id
        services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id)


def test_an_answer_racing_the_timeout_and_a_hangup_end_the_call_once(alice, bob):
    direct = new_direct(alice, bob)
    call_id = offer(alice, direct)
    Call.objects.filter(pk=call_id).update(ring_expires_at=timezone.now() + timedelta(milliseconds=200))
    soon = timezone.now() + timedelta(seconds=1)
    race(
        lambda: services.call_answer(user=bob.user, device_id=bob.device.pk, call_id=call_id, sdp=SDP_ANSWER,
                                     grant_control=False),
        lambda: services.call_ring_expire(call_id=call_id, now=soon),
        lambda: services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id),
        lambda: services.call_reject(user=bob.user, device_id=bob.device.pk, call_id=call_id),
    )
    call = Call.objects.get(pk=call_id)
    assert call.state in ("active", "ended")
    if call.state == "active":  # the answer won; the hangup may have come before it
        services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id)
    assert len(call_messages(direct)) == 1


def test_parallel_retries_of_one_offer_make_one_call(alice, bob):
    direct = new_direct(alice, bob)
    call_id = uuid.uuid4()
    outcomes = race(*(lambda: offer(alice, direct, call_id=call_id) for _ in range(4)))
    assert outcomes == ["ok"] * 4
    assert Call.objects.filter(pk=call_id).count() == 1
    assert CallParticipant.objects.filter(call_id=call_id).count() == 2
