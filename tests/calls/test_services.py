"""The call state machine, through the services: every transition and every refused one,
busy, the ring timeout, dropped devices, blocks, the log message, remote assistance."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from calls import services
from calls.models import Call, CallParticipant, HeldCandidate
from contacts.services import block_create
from core.errors import Conflict, Forbidden, NotFound, RateLimited, ValidationFailed
from core.sunset import ServiceReadOnly
from messaging.models import Message, MessageHidden
from streams.presence import device_online
from tests.calls.conftest import (
    CANDIDATE,
    SDP_OFFER,
    answer,
    call_messages,
    call_row,
    new_direct,
    new_group,
    offer,
    stream_events,
)
from tests.factories import sign_in

pytestmark = pytest.mark.django_db


def later(seconds: float) -> timezone.datetime:
    return timezone.now() + timedelta(seconds=seconds)


# --- Offer ------------------------------------------------------------------------------------


def test_offer_rings_the_callee_through_the_stream_and_pushes(alice, bob, direct, pushes,
                                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_id = offer(alice, direct, media="video")
    ring = stream_events(bob, "call.ring")
    assert len(ring) == 1
    data = ring[0][1]
    assert {k: data[k] for k in ("call_id", "conversation_id", "caller_id", "media", "remote_control", "sdp")} == {
        "call_id": str(call_id), "conversation_id": direct, "caller_id": str(alice.user.pk), "media": "video",
        "remote_control": False, "sdp": SDP_OFFER}
    assert data["expires_at"].endswith("Z")
    assert stream_events(alice, "call.ring") == []  # the caller does not ring
    call = call_row(call_id)
    assert (call.state, call.caller_device_id) == ("ringing", alice.device.pk)
    assert (call.ring_expires_at - call.created_at).total_seconds() == 45
    assert [(p["kind"], p["user_id"]) for p in pushes] == [("call.ring", str(bob.user.pk))]
    assert pushes[0]["data"]["call_id"] == str(call_id) and pushes[0]["title"] == "Alice"


def test_a_retried_offer_is_the_same_call(alice, bob, direct):
    call_id = offer(alice, direct)
    again = services.call_offer(user=alice.user, device_id=alice.another_device().device.pk, call_id=call_id,
                                conversation_id=direct, media="audio", remote_control=False, sdp=SDP_OFFER)
    assert again == {"call_id": str(call_id), "state": "ringing"}
    assert Call.objects.count() == 1 and len(stream_events(bob, "call.ring")) == 1


def test_a_call_id_used_by_another_call_is_a_conflict(alice, bob, carol, direct):
    call_id = offer(alice, direct)
    with pytest.raises(Conflict):
        offer(bob, direct, call_id=call_id)
    with pytest.raises(Conflict):
        offer(alice, new_direct(alice, carol), call_id=call_id)


@pytest.mark.parametrize("conversation", ["foreign", "random", "not-a-uuid"])
def test_offer_by_a_non_member_is_not_found_and_rings_nobody(alice, bob, carol, direct, conversation):
    target = {"foreign": direct, "random": str(uuid.uuid4()), "not-a-uuid": "x"}[conversation]
    with pytest.raises(NotFound):
        offer(carol, target)
    assert not Call.objects.exists()
    assert stream_events(alice, "call.ring") == stream_events(bob, "call.ring") == []


def test_offer_in_a_broadcast_is_a_validation_error(alice, bob):
    channel = new_group(alice, bob, type="broadcast")
    with pytest.raises(ValidationFailed) as refused:
        offer(alice, channel)
    assert "conversation_id" in refused.value.details
    assert not Call.objects.exists()


def test_group_call_rings_every_member_up_to_the_limit_and_refuses_bigger_groups(alice, bob, carol, settings):
    settings.CALLS_GROUP_MAX = 3
    group = new_group(alice, bob, carol)
    call_id = offer(alice, group)
    for who in (bob, carol):
        assert [d["call_id"] for _, d in stream_events(who, "call.ring")] == [str(call_id)]
    assert call_row(call_id).is_group
    bigger = new_group(alice, bob, carol, sign_in())
    with pytest.raises(ValidationFailed) as refused:
        offer(alice, bigger)
    assert "conversation_id" in refused.value.details
    assert Call.objects.count() == 1


def test_remote_assistance_is_for_direct_calls(alice, bob, carol):
    with pytest.raises(ValidationFailed) as refused:
        offer(alice, new_group(alice, bob, carol), media="screen", remote_control=True)
    assert "remote_control" in refused.value.details


def test_offer_in_read_only_sunset_is_refused(alice, bob, direct):
    from tests.exports.conftest import make_sunset

    make_sunset("read_only")
    with pytest.raises(ServiceReadOnly) as refused:
        offer(alice, direct)
    assert refused.value.code == "service_read_only" and refused.value.details["action"] == "call.offer"
    assert not Call.objects.exists()


def test_offers_are_rate_limited_per_caller(alice, bob, direct, settings):
    settings.CALLS_OFFER_LIMIT = (2, 60)
    offer(alice, direct)
    offer(alice, direct)
    with pytest.raises(RateLimited):
        offer(alice, direct)
    assert Call.objects.count() == 2


# --- Answer -------------------------------------------------------------------------------------


def test_answer_makes_the_call_active_and_engages_the_answering_device(alice, bob, direct):
    call_id = offer(alice, direct)
    reply = answer(bob, call_id)
    assert reply["state"] == "active" and reply["first"] is True
    assert reply["peers"] == [{"user_id": str(alice.user.pk), "device_id": str(alice.device.pk)}]
    call = call_row(call_id)
    assert (call.state, call.first_device_id) == ("active", bob.device.pk)
    assert call.answered_at is not None


def test_a_second_device_answering_later_gets_conflict(alice, bob, direct):
    call_id = offer(alice, direct)
    answer(bob, call_id)
    with pytest.raises(Conflict):
        answer(bob.another_device(), call_id)
    assert call_row(call_id).first_device_id == bob.device.pk


def test_refused_answers(alice, bob, carol, direct):
    call_id = offer(alice, direct)
    with pytest.raises(NotFound):
        answer(carol, call_id)  # a stranger learns nothing
    with pytest.raises(NotFound):
        answer(bob, uuid.uuid4())
    with pytest.raises(Conflict):
        answer(alice, call_id)  # the caller cannot answer their own call
    services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id)
    with pytest.raises(Conflict) as late:
        answer(bob, call_id)  # after the call ended
    assert late.value.details["state"] == "ended"


def test_answer_after_the_ring_expired_is_a_conflict(alice, bob, direct):
    call_id = offer(alice, direct)
    with pytest.raises(Conflict):
        answer(bob, call_id, now=later(46))
    assert call_row(call_id).state == "ringing"  # the timeout ends it, not the late answer


# --- Reject and hang up -----------------------------------------------------------------------------


def test_reject_ends_the_call_as_rejected_with_one_log_message(alice, bob, direct, pushes,
                                                               django_capture_on_commit_callbacks):
    call_id = offer(alice, direct)
    tablet = bob.another_device()
    with django_capture_on_commit_callbacks(execute=True):
        services.call_reject(user=bob.user, device_id=tablet.device.pk, call_id=call_id)
    call = call_row(call_id)
    assert (call.state, call.end_reason, call.outcome) == ("ended", "rejected", "rejected")
    [message] = call_messages(direct)
    assert message["sender_id"] == str(alice.user.pk)
    assert message["call"] == {"call_id": str(call_id), "media": "audio", "outcome": "rejected", "duration_ms": 0,
                               "caller_id": str(alice.user.pk), "remote_control": False, "control_granted": False}
    for who in (alice, bob):
        assert stream_events(who, "call.ended") == [
            ("call.ended", {"call_id": str(call_id), "reason": "rejected", "duration_ms": 0})]
        assert stream_events(who, "message.new")[-1][1]["type"] == "call"
    assert [p["kind"] for p in pushes] == ["call.ring"]  # a rejected call is not "missed"


def test_refused_rejects(alice, bob, carol, direct):
    call_id = offer(alice, direct)
    with pytest.raises(NotFound):
        services.call_reject(user=carol.user, device_id=carol.device.pk, call_id=call_id)
    with pytest.raises(Conflict):
        services.call_reject(user=alice.user, device_id=alice.device.pk, call_id=call_id)  # the caller hangs up
    answer(bob, call_id)
    with pytest.raises(Conflict):
        services.call_reject(user=bob.user, device_id=bob.device.pk, call_id=call_id)  # answered: hang up
    services.call_hangup(user=bob.user, device_id=bob.device.pk, call_id=call_id)
    with pytest.raises(Conflict):
        services.call_reject(user=bob.user, device_id=bob.device.pk, call_id=call_id)


def test_caller_hanging_up_while_ringing_is_a_missed_call_for_the_callee(alice, bob, direct, pushes,
                                                                         django_capture_on_commit_callbacks):
    call_id = offer(alice, direct, media="video")
    with django_capture_on_commit_callbacks(execute=True):
        services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id)
    call = call_row(call_id)
    assert (call.end_reason, call.outcome) == ("hangup", "missed")
    assert call_messages(direct)[0]["call"]["outcome"] == "missed"
    missed = [p for p in pushes if p["kind"] == "call.missed"]
    assert [(p["user_id"], p["body"], p["conversation_id"]) for p in missed] == [
        (str(bob.user.pk), "Missed video call", direct)]


def test_hangup_of_an_active_call_completes_it_with_its_duration(alice, bob, direct):
    call_id = offer(alice, direct)
    answer(bob, call_id)
    Call.objects.filter(pk=call_id).update(answered_at=timezone.now() - timedelta(seconds=61, milliseconds=500))
    services.call_hangup(user=bob.user, device_id=bob.device.pk, call_id=call_id)
    call = call_row(call_id)
    assert (call.state, call.end_reason, call.outcome) == ("ended", "hangup", "completed")
    duration = call_messages(direct)[0]["call"]["duration_ms"]
    assert 61_500 <= duration < 63_000
    assert stream_events(alice, "call.ended")[0][1]["duration_ms"] == duration


def test_refused_hangups(alice, bob, carol, direct):
    call_id = offer(alice, direct)
    answer(bob, call_id)
    for who in (carol, alice.another_device(), bob.another_device()):  # strangers and unengaged devices
        with pytest.raises(NotFound):
            services.call_hangup(user=who.user, device_id=who.device.pk, call_id=call_id)
    services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id)
    with pytest.raises(Conflict):
        services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id)
    assert len(call_messages(direct)) == 1


def test_a_ringing_callee_hanging_up_declines(alice, bob, direct):
    call_id = offer(alice, direct)
    services.call_hangup(user=bob.user, device_id=bob.device.pk, call_id=call_id)
    assert call_row(call_id).end_reason == "rejected"


# --- Busy -----------------------------------------------------------------------------------------


def test_a_callee_in_an_active_call_answers_busy_at_once(alice, bob, carol, direct, pushes,
                                                         django_capture_on_commit_callbacks):
    first = offer(carol, new_direct(carol, bob))
    answer(bob, first)
    with django_capture_on_commit_callbacks(execute=True):
        reply = services.call_offer(user=alice.user, device_id=alice.device.pk, call_id=uuid.uuid4(),
                                    conversation_id=direct, media="audio", remote_control=False, sdp=SDP_OFFER)
    assert reply["state"] == "ended"
    call = call_row(uuid.UUID(reply["call_id"]))
    assert (call.end_reason, call.outcome) == ("busy", "busy")
    assert [d["call_id"] for _, d in stream_events(bob, "call.ring")] == [str(first)]  # never rang
    assert stream_events(alice, "call.ended")[0][1]["reason"] == "busy"
    assert call_messages(direct)[0]["call"]["outcome"] == "busy"
    assert "call.ring" not in [p["kind"] for p in pushes if p["user_id"] == str(bob.user.pk)
                               and p.get("data", {}).get("call_id") == reply["call_id"]]
    # Once bob's call is over he can be called again.
    services.call_hangup(user=bob.user, device_id=bob.device.pk, call_id=first)
    assert call_row(offer(alice, direct)).state == "ringing"


# --- The ring timeout ------------------------------------------------------------------------------


def test_unanswered_call_ends_missed_at_the_timeout_once(alice, bob, direct, pushes,
                                                         django_capture_on_commit_callbacks):
    call_id = offer(alice, direct)
    assert services.call_ring_expire(call_id=call_id, now=later(10)) == pytest.approx(35, abs=1)
    assert call_row(call_id).state == "ringing"
    with django_capture_on_commit_callbacks(execute=True):
        assert services.call_ring_expire(call_id=call_id, now=later(46)) is None
        services.call_ring_expire(call_id=call_id, now=later(47))  # a second run changes nothing
    call = call_row(call_id)
    assert (call.state, call.end_reason, call.outcome) == ("ended", "missed", "missed")
    assert len(call_messages(direct)) == 1 and call_messages(direct)[0]["call"]["outcome"] == "missed"
    assert [p["kind"] for p in pushes] == ["call.ring", "call.missed"]
    assert len(stream_events(bob, "call.ended")) == 1


def test_the_sweep_ends_rings_whose_timeout_task_was_lost(alice, bob, direct):
    call_id = offer(alice, direct)
    assert services.calls_sweep(now=later(30))["expired"] == 0
    assert services.calls_sweep(now=later(46))["expired"] == 1
    assert call_row(call_id).outcome == "missed"
    assert services.calls_sweep(now=later(60))["expired"] == 0


def test_the_ring_timeout_task_is_idempotent(alice, bob, direct):
    from calls.tasks import ring_timeout

    call_id = offer(alice, direct)
    Call.objects.filter(pk=call_id).update(ring_expires_at=timezone.now() - timedelta(seconds=1))
    assert ring_timeout.delay(str(call_id)).get() == "done"
    assert ring_timeout.delay(str(call_id)).get() == "done"
    assert call_row(call_id).outcome == "missed" and len(call_messages(direct)) == 1


# --- Dropped devices --------------------------------------------------------------------------------


def test_a_device_dropped_past_the_grace_ends_the_call_as_failed(alice, bob, direct):
    call_id = offer(alice, direct)
    answer(bob, call_id)
    assert services.call_device_dropped(user_id=bob.user.pk, device_id=bob.device.pk) == [str(call_id)]
    assert services.call_drop_check(call_id=call_id, now=later(10)) == pytest.approx(20, abs=1)
    assert call_row(call_id).state == "active"
    services.call_drop_check(call_id=call_id, now=later(31))
    call = call_row(call_id)
    assert (call.state, call.end_reason, call.outcome) == ("ended", "failed", "failed")
    assert call_messages(direct)[0]["call"]["outcome"] == "failed"


def test_a_device_back_within_the_grace_keeps_the_call(alice, bob, direct):
    call_id = offer(alice, direct)
    answer(bob, call_id)
    services.call_device_dropped(user_id=bob.user.pk, device_id=bob.device.pk)
    assert services.call_device_returned(user_id=bob.user.pk, device_id=bob.device.pk) == 1
    services.call_drop_check(call_id=call_id, now=later(31))
    assert call_row(call_id).state == "active"


def test_a_device_with_another_live_socket_has_not_dropped(alice, bob, direct):
    call_id = offer(alice, direct)
    answer(bob, call_id)
    device_online(user_id=bob.user.pk, device_id=bob.device.pk, connection_id="other-socket")
    assert services.call_device_dropped(user_id=bob.user.pk, device_id=bob.device.pk) == []


def test_the_sweep_fails_calls_of_devices_whose_server_died(alice, bob, direct):
    """No close hook ran (process killed): presence expired, and the sweep notices."""
    call_id = offer(alice, direct)
    answer(bob, call_id)
    device_online(user_id=alice.user.pk, device_id=alice.device.pk, connection_id="a")
    assert services.calls_sweep(now=later(1))["vanished"] == 1  # bob's device has no socket
    assert CallParticipant.objects.get(call_id=call_id, user=bob.user).dropped_at is not None
    assert call_row(call_id).state == "active"
    services.calls_sweep(now=later(40))
    assert call_row(call_id).end_reason == "failed"


# --- Blocks ---------------------------------------------------------------------------------------------


def test_a_callee_who_blocked_the_caller_never_rings_and_the_caller_learns_nothing(
        alice, bob, direct, pushes, django_capture_on_commit_callbacks):
    block_create(blocker=bob.user, blocked_id=alice.user.pk)
    with django_capture_on_commit_callbacks(execute=True):
        call_id = offer(alice, direct)
    assert stream_events(bob, "call.ring") == [] and pushes == []
    assert call_row(call_id).state == "ringing"  # as for anyone who does not pick up
    with pytest.raises(NotFound):
        answer(bob, call_id)
    with django_capture_on_commit_callbacks(execute=True):
        services.call_ring_expire(call_id=call_id, now=later(46))
    assert call_row(call_id).outcome == "missed"
    assert [t for t, _ in stream_events(bob) if t != "conversation.created"] == [] and pushes == []
    [message] = Message.objects.filter(conversation_id=direct, type="call")
    assert MessageHidden.objects.filter(message=message, user=bob.user).exists()


# --- ICE held before the answer ----------------------------------------------------------------------


def test_caller_candidates_before_the_answer_are_held_bounded_and_handed_over(alice, bob, direct, settings):
    settings.CALLS_ICE_HELD_MAX = 3
    call_id = offer(alice, direct)
    for _ in range(3):
        reply = services.call_ice(user=alice.user, device_id=alice.device.pk, call_id=call_id, candidate=CANDIDATE)
        assert reply["held"] is True
    with pytest.raises(ValidationFailed):
        services.call_ice(user=alice.user, device_id=alice.device.pk, call_id=call_id, candidate=CANDIDATE)
    assert HeldCandidate.objects.filter(call_id=call_id).count() == 3
    answer(bob, call_id)
    assert not HeldCandidate.objects.filter(call_id=call_id).exists()
    reply = services.call_ice(user=alice.user, device_id=alice.device.pk, call_id=call_id, candidate=CANDIDATE)
    assert "held" not in reply


def test_end_of_candidates_is_held_and_handed_over_too(alice, bob, direct):
    call_id = offer(alice, direct)
    services.call_ice(user=alice.user, device_id=alice.device.pk, call_id=call_id, candidate=CANDIDATE)
    services.call_ice(user=alice.user, device_id=alice.device.pk, call_id=call_id, candidate=None)
    assert list(HeldCandidate.objects.order_by("id").values_list("candidate", flat=True)) == [CANDIDATE, None]


def test_ice_and_update_after_the_end_are_conflicts(alice, bob, direct):
    call_id = offer(alice, direct)
    answer(bob, call_id)
    services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id)
    with pytest.raises(Conflict):
        services.call_ice(user=bob.user, device_id=bob.device.pk, call_id=call_id, candidate=CANDIDATE)
    with pytest.raises(Conflict):
        services.call_update(user=bob.user, device_id=bob.device.pk, call_id=call_id, media="video")


def test_ice_from_anyone_but_an_engaged_device_is_not_found(alice, bob, carol, direct):
    call_id = offer(alice, direct)
    for who in (carol, bob, alice.another_device()):  # bob still rings: not engaged yet
        with pytest.raises(NotFound):
            services.call_ice(user=who.user, device_id=who.device.pk, call_id=call_id, candidate=CANDIDATE)


# --- Remote assistance ------------------------------------------------------------------------------------


def test_remote_control_is_granted_only_by_the_callee_of_a_call_that_asked(alice, bob, direct):
    call_id = offer(alice, direct, media="screen", remote_control=True)
    answer(bob, call_id, grant_control=False)
    assert call_row(call_id).control_granted is False
    with pytest.raises(Forbidden):  # the helper cannot take control
        services.call_update(user=alice.user, device_id=alice.device.pk, call_id=call_id, media="screen",
                             remote_control=True)
    services.call_update(user=bob.user, device_id=bob.device.pk, call_id=call_id, media="screen",
                         remote_control=True)
    assert call_row(call_id).control_granted is True
    services.call_update(user=alice.user, device_id=alice.device.pk, call_id=call_id, media="screen",
                         remote_control=False)
    assert call_row(call_id).control_granted is False


def test_grant_in_the_answer_is_recorded_in_the_log(alice, bob, direct):
    call_id = offer(alice, direct, media="screen", remote_control=True)
    answer(bob, call_id, grant_control=True)
    services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id)
    content = call_messages(direct)[0]["call"]
    assert (content["remote_control"], content["control_granted"], content["media"]) == (True, True, "screen")


def test_a_grant_without_a_request_grants_nothing(alice, bob, direct):
    call_id = offer(alice, direct, media="screen")
    answer(bob, call_id, grant_control=True)
    assert call_row(call_id).control_granted is False
    with pytest.raises(Forbidden):
        services.call_update(user=bob.user, device_id=bob.device.pk, call_id=call_id, media="screen",
                             remote_control=True)


def test_update_needs_an_active_call_and_records_the_media(alice, bob, carol, direct):
    call_id = offer(alice, direct)
    with pytest.raises(Conflict):
        services.call_update(user=alice.user, device_id=alice.device.pk, call_id=call_id, media="video")
    answer(bob, call_id)
    with pytest.raises(NotFound):
        services.call_update(user=carol.user, device_id=carol.device.pk, call_id=call_id, media="video")
    services.call_update(user=alice.user, device_id=alice.device.pk, call_id=call_id, media="video")
    assert call_row(call_id).current_media == "video"


# --- Groups: a mesh ------------------------------------------------------------------------------------------


def test_group_members_join_one_by_one_and_the_call_ends_when_one_device_is_left(alice, bob, carol):
    dave = sign_in(display_name="Dave")
    group = new_group(alice, bob, carol, dave)
    call_id = offer(alice, group)
    first = answer(bob, call_id)
    second = answer(carol, call_id)
    assert first["first"] is True and second["first"] is False
    assert {p["user_id"] for p in second["peers"]} == {str(alice.user.pk), str(bob.user.pk)}
    # carol offers a leg to bob; bob answers it (only relays; the state does not change)
    services.call_leg_offer(user=carol.user, device_id=carol.device.pk, call_id=call_id, to=str(bob.device.pk),
                            sdp=SDP_OFFER)
    answer(bob, call_id, to=str(carol.device.pk))
    with pytest.raises(NotFound):  # a leg to a device that is not in the call
        services.call_leg_offer(user=carol.user, device_id=carol.device.pk, call_id=call_id,
                                to=str(dave.device.pk), sdp=SDP_OFFER)
    services.call_reject(user=dave.user, device_id=dave.device.pk, call_id=call_id)
    services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id)
    assert call_row(call_id).state == "active"  # bob and carol go on
    services.call_hangup(user=bob.user, device_id=bob.device.pk, call_id=call_id)
    call = call_row(call_id)
    assert (call.state, call.outcome) == ("ended", "completed")
    assert len(call_messages(group)) == 1
    states = dict(CallParticipant.objects.filter(call_id=call_id).values_list("user__display_name", "state"))
    assert states == {"Alice": "left", "Bob": "left", "Carol": "left", "Dave": "declined"}


def test_group_call_ends_rejected_when_every_member_declines(alice, bob, carol):
    group = new_group(alice, bob, carol)
    call_id = offer(alice, group)
    services.call_reject(user=bob.user, device_id=bob.device.pk, call_id=call_id)
    assert call_row(call_id).state == "ringing"
    services.call_reject(user=carol.user, device_id=carol.device.pk, call_id=call_id)
    assert call_row(call_id).outcome == "rejected"


def test_members_still_ringing_in_an_active_group_call_miss_it_at_the_timeout(alice, bob, carol, pushes,
                                                                              django_capture_on_commit_callbacks):
    group = new_group(alice, bob, carol)
    call_id = offer(alice, group)
    answer(bob, call_id)
    with django_capture_on_commit_callbacks(execute=True):
        services.call_ring_expire(call_id=call_id, now=later(46))
    assert call_row(call_id).state == "active"
    assert CallParticipant.objects.get(call_id=call_id, user=carol.user).state == "missed"
    assert [(p["kind"], p["user_id"]) for p in pushes if p["kind"] == "call.missed"] == [
        ("call.missed", str(carol.user.pk))]
    with pytest.raises(Conflict):
        answer(carol, call_id)


# --- Transactions ----------------------------------------------------------------------------------------------


def test_an_offer_rolled_back_with_its_transaction_leaves_nothing(alice, bob, direct):
    with pytest.raises(RuntimeError), transaction.atomic():
        offer(alice, direct)
        raise RuntimeError("boom")
    assert not Call.objects.exists() and stream_events(bob, "call.ring") == []


def test_the_log_message_is_posted_once_even_if_the_end_runs_again(alice, bob, direct):
    call_id = offer(alice, direct)
    services.call_hangup(user=alice.user, device_id=alice.device.pk, call_id=call_id)
    # A rerun of the end (e.g. by a stale task) finds the call ended and the message in place.
    with transaction.atomic():
        loaded = services._load(call_id, lock=True)
        Call.objects.filter(pk=call_id).update(state="ringing")
        loaded.call.state = "ringing"
        services._end(loaded, reason="missed", now=timezone.now())
    assert len(call_messages(direct)) == 1
