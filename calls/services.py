"""Calls: the state machine, signalling relays, ringing, timeouts and the call log.

Every transition is one transaction that locks the call row (`SELECT ... FOR
UPDATE`) and then changes it with a conditional UPDATE whose WHERE clause is
the state it expects, so a transition that lost a race changes nothing: two
devices answering at once, an answer racing the timeout, a hangup racing a
reject. Stream events (`call.ring`, `call.ended`), relayed frames, pushes and
Celery tasks all leave on commit.

Who may do what (anyone else gets `not_found`, as if the call did not exist):
- offer: a current member of the conversation;
- answer / reject: a rung callee (any of their devices) while it rings;
- ice / update / hangup: an engaged device (the caller's offering device, or
  the device a callee answered on); the caller's device may also send ICE
  while it rings (held for the device that will answer);
- in a group call, a joined device may also offer to / answer another joined
  device (`to`): each member who joins signals to each other member (mesh).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from redis.exceptions import RedisError

from accounts.models import User
from calls import events
from calls.models import (
    Call,
    CallParticipant,
    CallState,
    EndReason,
    HeldCandidate,
    Outcome,
    ParticipantRole,
    ParticipantState,
)
from contacts.selectors import blockers_of
from core import ratelimit
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.serializers import timestamp
from core.sunset import ensure_writable
from messaging.models import ConversationType, Membership
from messaging.selectors import conversation_get_for_member
from messaging.services import message_post
from streams.groups import relay_on_commit
from streams.presence import device_ids_online
from streams.services import PendingEvent, stream_append

logger = logging.getLogger(__name__)

# call_id -> the call message's client_id: the log message of a call is posted once, whatever reruns.
CALL_LOG_NAMESPACE = uuid.UUID("5b0f7c3e-2f1d-4c44-9a51-7d1e0c0a11ca")
# Marks a device engaged in a call, so the socket hooks skip the database for every other socket.
ENGAGED_MARKER_TTL = 12 * 3600

_MEDIA_LABEL = {"audio": "voice call", "video": "video call", "screen": "screen sharing"}
_OUTCOME_OF_REASON = {
    EndReason.REJECTED: Outcome.REJECTED,
    EndReason.MISSED: Outcome.MISSED,
    EndReason.BUSY: Outcome.BUSY,
    EndReason.FAILED: Outcome.FAILED,
}


@dataclass
class _Loaded:
    call: Call
    participants: list[CallParticipant]

    def of_user(self, user_id: object) -> CallParticipant | None:
        return next((p for p in self.participants if str(p.user_id) == str(user_id)), None)

    def engaged(self) -> list[CallParticipant]:
        return [p for p in self.participants if p.state == ParticipantState.JOINED and p.device_id]

    def engaged_device_ids(self) -> list[str]:
        return [str(p.device_id) for p in self.engaged()]

    def holder_of(self, device_id: object) -> CallParticipant | None:
        return next((p for p in self.engaged() if str(p.device_id) == str(device_id)), None)



def _user_id(user: User | str) -> Any:
    """The acting user's id: services are called with the User (REST, tests) or with the id the
    socket holds (it keeps ids, not model instances)."""
    return getattr(user, "pk", user)

def _as_uuid(value: object) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def _load(call_id: object, *, lock: bool) -> _Loaded:
    pk = _as_uuid(call_id)
    qs = Call.objects.filter(pk=pk) if pk else Call.objects.none()
    if lock:
        qs = qs.select_for_update()
    call = qs.first()
    if call is None:
        raise NotFound()
    participants = list(CallParticipant.objects.filter(call=call).order_by("pk"))
    return _Loaded(call, participants)


def _me(loaded: _Loaded, user_id: object) -> CallParticipant:
    """The caller's participation, or NotFound for anyone the call does not concern (a
    silenced callee, who blocked the caller, is not told of the call and so learns nothing)."""
    me = loaded.of_user(user_id)
    if me is None or me.silenced:
        raise NotFound()
    return me


def _engaged_me(loaded: _Loaded, user_id: object, device_id: object) -> CallParticipant:
    me = _me(loaded, user_id)
    if loaded.call.state == CallState.ENDED:
        raise Conflict("The call has ended.", details={"state": CallState.ENDED})
    if me.state != ParticipantState.JOINED or str(me.device_id) != str(device_id):
        raise NotFound()
    return me


def _peer_of(loaded: _Loaded, me: CallParticipant, device_id: object, to: str | None) -> str | None:
    """The device a leg frame goes to: `to` (an engaged device other than the sender), else the
    sender's first peer: the answering device for the caller, the caller's device for a callee.
    None while the caller's offer is still unanswered."""
    if to is not None:
        if str(to) == str(device_id) or loaded.holder_of(to) is None:
            raise NotFound()
        return str(to)
    call = loaded.call
    if me.role == ParticipantRole.CALLER:
        if call.first_device_id and loaded.holder_of(call.first_device_id):
            return str(call.first_device_id)
        if call.first_device_id is None and call.state == CallState.RINGING:
            return None
        raise ValidationFailed("Name the peer device with `to`.", details={"to": ["This field is required."]})
    if call.caller_device_id and loaded.holder_of(call.caller_device_id):
        return str(call.caller_device_id)
    raise ValidationFailed("Name the peer device with `to`.", details={"to": ["This field is required."]})


def _peers(loaded: _Loaded, *, but: object) -> list[dict[str, str]]:
    return [{"user_id": str(p.user_id), "device_id": str(p.device_id)}
            for p in loaded.engaged() if str(p.device_id) != str(but)]


# --- Engaged-device markers (read by the socket hooks) -----------------------------------------


def _marker_key(device_id: object) -> str:
    return f"calls:engaged:{uuid.UUID(str(device_id)).hex}"


def _mark_engaged_on_commit(device_id: object) -> None:
    key = _marker_key(device_id)
    transaction.on_commit(lambda: _cache_quietly(cache.set, key, 1, ENGAGED_MARKER_TTL))


def _unmark_engaged_on_commit(device_ids: Iterable[object]) -> None:
    keys = [_marker_key(d) for d in device_ids if d]
    if keys:
        transaction.on_commit(lambda: _cache_quietly(cache.delete_many, keys))


def _cache_quietly(method: Any, *args: Any) -> None:
    try:
        method(*args)
    except Exception:
        # Only an optimisation for the socket hooks; the beat sweep finds dropped devices anyway.
        logger.warning("calls: engaged-device marker not updated", exc_info=True)


def device_is_marked_engaged(*, device_id: object) -> bool:
    return bool(cache.get(_marker_key(device_id)))


# --- Pushes and tasks (on commit) ---------------------------------------------------------------


def _push(**kwargs: Any) -> None:
    path = settings.CALLS_PUSH
    if path:
        import_string(path)(**kwargs)


def _push_ring(call: Call, *, caller: User, user_ids: list[str]) -> None:
    for user_id in user_ids:
        _push(user_id=user_id, kind="call.ring", title=caller.display_name,
              body=f"Incoming {_MEDIA_LABEL[call.media]}", conversation_id=str(call.conversation_id),
              data={"call_id": str(call.pk), "caller_id": str(call.caller_id), "media": call.media,
                    "remote_control": call.remote_control, "group": call.is_group,
                    "expires_at": timestamp(call.ring_expires_at)},
              collapse_key=f"call:{call.pk}", dedupe_key=f"call.ring:{call.pk}")


def _push_missed(call: Call, user_ids: list[str]) -> None:
    if not user_ids:
        return
    caller_name = User.objects.filter(pk=call.caller_id).values_list("display_name", flat=True).first() or ""
    now = timezone.now()
    muted = set(
        str(u) for u in Membership.objects.filter(conversation_id=call.conversation_id, user_id__in=user_ids,
                                                  muted_until__gt=now).values_list("user_id", flat=True)
    )
    for user_id in user_ids:
        # Same collapse key (and tray tag) as the call message's own push: one entry in the tray.
        _push(user_id=user_id, kind="call.missed", title=caller_name, body=f"Missed {_MEDIA_LABEL[call.media]}",
              conversation_id=str(call.conversation_id), muted=user_id in muted,
              data={"call_id": str(call.pk), "caller_id": str(call.caller_id), "media": call.media},
              collapse_key=str(call.conversation_id), dedupe_key=f"call.missed:{call.pk}")


def _enqueue_on_commit(task_name: str, call_id: object, countdown: float) -> None:
    def enqueue() -> None:
        from calls import tasks

        try:
            getattr(tasks, task_name).apply_async(args=[str(call_id)], countdown=countdown)
        except Exception:
            # The beat sweep (calls.sweep) finds the call when its task was never queued.
            logger.warning("calls: could not enqueue %s", task_name, exc_info=True)

    transaction.on_commit(enqueue)


# --- Offer ----------------------------------------------------------------------------------------


def call_offer(*, user: User | str, device_id: object, call_id: uuid.UUID, conversation_id: str, media: str,
               remote_control: bool, sdp: str, now: datetime | None = None) -> dict[str, Any]:
    """Start a call (idempotent by call_id): ring every other member, or answer `busy` for them.

    Returns the `call.ok` fields. A retry of the caller's own offer returns the same call;
    a call_id already used for another call is `conflict`.
    """
    if not isinstance(user, User):
        user = User.objects.get(pk=user)  # the socket holds ids; the caller's name is in the ring's push
    ensure_writable("call.offer")  # sunset read-only: no new calls, like no new messages
    now = now or timezone.now()
    with transaction.atomic():
        membership = conversation_get_for_member(user_id=_user_id(user), conversation_id=conversation_id)
        conversation = membership.conversation
        existing = Call.objects.filter(pk=call_id).first()
        if existing is not None:
            return _offer_again(existing, user=user, conversation_id=conversation.pk)
        is_group = conversation.type == ConversationType.GROUP
        if conversation.type == ConversationType.BROADCAST:
            raise ValidationFailed("Calls are not possible in broadcasts.",
                                   details={"conversation_id": ["Calls are for direct and group conversations."]})
        if is_group and conversation.member_count > settings.CALLS_GROUP_MAX:
            raise ValidationFailed(
                f"Group calls are limited to {settings.CALLS_GROUP_MAX} members.",
                details={"conversation_id": [f"At most {settings.CALLS_GROUP_MAX} members for a group call."]})
        if is_group and remote_control:
            raise ValidationFailed("Remote assistance is for direct calls.",
                                   details={"remote_control": ["Only in direct conversations."]})
        callee_ids = [str(u) for u in Membership.objects.filter(conversation=conversation, left_at__isnull=True)
                      .exclude(user_id=_user_id(user)).values_list("user_id", flat=True)]
        if not callee_ids:
            raise ValidationFailed("Nobody else is in this conversation.",
                                   details={"conversation_id": ["There is nobody to call."]})
        _limit_offers(user_id=_user_id(user))
        silenced = {str(u) for u in blockers_of(user_id=_user_id(user), candidate_ids=callee_ids)}
        busy = _users_in_active_calls([u for u in callee_ids if u not in silenced])
        try:
            with transaction.atomic():
                call = Call.objects.create(
                    id=call_id, conversation=conversation, caller=user, caller_device_id=device_id,
                    is_group=is_group, media=media, current_media=media, remote_control=remote_control,
                    created_at=now, ring_expires_at=now + timedelta(seconds=settings.CALLS_RING_TIMEOUT_SECONDS),
                )
        except IntegrityError:  # the same offer, retried on another socket at the same moment
            return _offer_again(Call.objects.get(pk=call_id), user=user, conversation_id=conversation.pk)
        participants = [CallParticipant(call=call, user=user, role=ParticipantRole.CALLER,
                                        state=ParticipantState.JOINED, device_id=device_id, joined_at=now,
                                        created_at=now)]
        for callee_id in callee_ids:
            participants.append(CallParticipant(
                call=call, user_id=callee_id, role=ParticipantRole.CALLEE, created_at=now,
                state=ParticipantState.BUSY if callee_id in busy else ParticipantState.RINGING,
                silenced=callee_id in silenced))
        CallParticipant.objects.bulk_create(participants)
        _mark_engaged_on_commit(device_id)
        rung = [p for p in participants if p.state == ParticipantState.RINGING and not p.silenced]
        if not any(p.state == ParticipantState.RINGING for p in participants):
            # Every callee is in another call: "busy", at once.
            _end(_Loaded(call, participants), reason=EndReason.BUSY, now=now)
            return {"call_id": str(call.pk), "state": CallState.ENDED}
        ring = events.call_ring(call=call, sdp=sdp)
        stream_append([PendingEvent(p.user_id, events.CALL_RING, ring) for p in rung])
        _push_ring(call, caller=user, user_ids=[str(p.user_id) for p in rung])
        _enqueue_on_commit("ring_timeout", call.pk, settings.CALLS_RING_TIMEOUT_SECONDS + 0.5)
        return {"call_id": str(call.pk), "state": CallState.RINGING}


def _limit_offers(*, user_id: object) -> None:
    """CALLS_OFFER_LIMIT new calls per caller per window (retries are free: they returned
    before). Fails open when the cache is down, like the send limit."""
    allowed, window = settings.CALLS_OFFER_LIMIT
    if allowed <= 0:
        return
    try:
        ratelimit.hit("calls.offer", str(user_id), (allowed, window))
    except RedisError:
        logger.warning("call offer limit unavailable (cache down); allowing")


def _offer_again(call: Call, *, user: User, conversation_id: object) -> dict[str, Any]:
    if call.caller_id != _user_id(user) or call.conversation_id != conversation_id:
        raise Conflict("This call_id belongs to another call.", details={"call_id": ["Already in use."]})
    return {"call_id": str(call.pk), "state": call.state}


def _users_in_active_calls(user_ids: list[str]) -> set[str]:
    if not user_ids:
        return set()
    return {str(u) for u in CallParticipant.objects.filter(
        user_id__in=user_ids, state=ParticipantState.JOINED, call__state=CallState.ACTIVE,
    ).values_list("user_id", flat=True)}


def call_leg_offer(*, user: User | str, device_id: object, call_id: uuid.UUID, to: str, sdp: str) -> dict[str, Any]:
    """A group call's later leg: a joined device offers a connection to another joined device."""
    loaded = _load(call_id, lock=False)
    me = _engaged_me(loaded, _user_id(user), device_id)
    target = _peer_of(loaded, me, device_id, to)
    relay_on_commit(events.frame_offer(call=loaded.call, sdp=sdp, user_id=_user_id(user), device_id=device_id),
                    device_ids=[target])
    return {"call_id": str(loaded.call.pk), "state": loaded.call.state}


# --- Answer ---------------------------------------------------------------------------------------


def call_answer(*, user: User | str, device_id: object, call_id: uuid.UUID, sdp: str, grant_control: bool,
                to: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """A rung callee's device answers: the call turns active (or, in a group call already
    active, the member joins). Exactly one device of a callee wins; the others get
    `call.answered_elsewhere`, and a late one `conflict`."""
    now = now or timezone.now()
    with transaction.atomic():
        loaded = _load(call_id, lock=True)
        call = loaded.call
        me = _me(loaded, _user_id(user))
        if to is not None and loaded.holder_of(device_id) is not None and call.state != CallState.ENDED:
            return _leg_answer(loaded, me=me, device_id=device_id, to=to, sdp=sdp)
        if call.state == CallState.ENDED:
            raise Conflict("The call has ended.", details={"state": CallState.ENDED})
        if me.role == ParticipantRole.CALLER:
            raise Conflict("You placed this call.", details={"state": call.state})
        if me.state == ParticipantState.JOINED:
            raise Conflict("The call was answered on another device.", details={"state": call.state})
        if me.state != ParticipantState.RINGING or call.ring_expires_at <= now:
            raise Conflict("The call is no longer ringing for you.", details={"state": call.state})
        joined = CallParticipant.objects.filter(pk=me.pk, state=ParticipantState.RINGING).update(
            state=ParticipantState.JOINED, device_id=device_id, joined_at=now)
        if not joined:
            raise Conflict("The call was answered on another device.", details={"state": call.state})
        me.state, me.device_id, me.joined_at = ParticipantState.JOINED, device_id, now
        granted = bool(grant_control and call.remote_control and not call.is_group)
        first = Call.objects.filter(pk=call.pk, state=CallState.RINGING).update(
            state=CallState.ACTIVE, answered_at=now, first_device_id=device_id, control_granted=granted) == 1
        _mark_engaged_on_commit(device_id)
        # The callee's other devices stop ringing.
        relay_on_commit(events.frame_answered_elsewhere(call_id=call.pk), user_ids=[_user_id(user)],
                        exclude_device_id=device_id)
        if first:
            call.state, call.answered_at, call.first_device_id, call.control_granted = (
                CallState.ACTIVE, now, uuid.UUID(str(device_id)), granted)
            if call.caller_device_id and loaded.holder_of(call.caller_device_id):
                relay_on_commit(events.frame_answer(call_id=call.pk, sdp=sdp, grant_control=granted,
                                                    user_id=_user_id(user), device_id=device_id),
                                device_ids=[call.caller_device_id])
            _hand_over_held_candidates(call, to_device_id=device_id)
        return {"call_id": str(call.pk), "state": CallState.ACTIVE, "first": first,
                "peers": _peers(loaded, but=device_id)}


def _leg_answer(loaded: _Loaded, *, me: CallParticipant, device_id: object, to: str, sdp: str) -> dict[str, Any]:
    """In a group call: a joined device answers another joined device's leg offer."""
    target = _peer_of(loaded, me, device_id, to)
    relay_on_commit(events.frame_answer(call_id=loaded.call.pk, sdp=sdp, grant_control=False,
                                        user_id=me.user_id, device_id=device_id), device_ids=[target])
    return {"call_id": str(loaded.call.pk), "state": loaded.call.state}


def _hand_over_held_candidates(call: Call, *, to_device_id: object) -> None:
    """Candidates the caller's device sent while ringing go to the answering device, in order."""
    held = list(HeldCandidate.objects.filter(call=call).order_by("id"))
    for candidate in held:
        relay_on_commit(events.frame_ice(call_id=call.pk, candidate=candidate.candidate,
                                         user_id=call.caller_id, device_id=candidate.device_id),
                        device_ids=[to_device_id])
    if held:
        HeldCandidate.objects.filter(pk__in=[c.pk for c in held]).delete()


# --- ICE and mid-call updates -----------------------------------------------------------------------


def call_ice(*, user: User | str, device_id: object, call_id: uuid.UUID, candidate: Any,
             to: str | None = None) -> dict[str, Any]:
    """Relay a candidate to the sender's peer; while the caller's offer is unanswered, hold it."""
    loaded = _load(call_id, lock=False)
    me = _engaged_me(loaded, _user_id(user), device_id)
    target = _peer_of(loaded, me, device_id, to)
    if target is None:
        return _hold_candidate(call_id=loaded.call.pk, user=user, device_id=device_id, candidate=candidate)
    relay_on_commit(events.frame_ice(call_id=loaded.call.pk, candidate=candidate, user_id=_user_id(user),
                                     device_id=device_id), device_ids=[target])
    return {"call_id": str(loaded.call.pk), "state": loaded.call.state}


def _hold_candidate(*, call_id: uuid.UUID, user: User, device_id: object, candidate: Any) -> dict[str, Any]:
    with transaction.atomic():
        # The same lock as the answer: a candidate is either held before the answer reads
        # the held ones, or relayed after it, never lost in between.
        loaded = _load(call_id, lock=True)
        me = _engaged_me(loaded, _user_id(user), device_id)
        target = _peer_of(loaded, me, device_id, None)
        if target is not None:
            relay_on_commit(events.frame_ice(call_id=call_id, candidate=candidate, user_id=_user_id(user),
                                             device_id=device_id), device_ids=[target])
            return {"call_id": str(call_id), "state": loaded.call.state}
        if HeldCandidate.objects.filter(call_id=call_id).count() >= settings.CALLS_ICE_HELD_MAX:
            raise ValidationFailed(
                "Too many candidates before the answer.",
                details={"candidate": [f"At most {settings.CALLS_ICE_HELD_MAX} are held until someone answers."]})
        HeldCandidate.objects.create(call_id=call_id, device_id=device_id, candidate=candidate)
        return {"call_id": str(call_id), "state": loaded.call.state, "held": True}


def call_update(*, user: User | str, device_id: object, call_id: uuid.UUID, media: str, sdp: str | None = None,
                remote_control: bool | None = None, to: str | None = None) -> dict[str, Any]:
    """A mid-call switch (audio -> video, screen share on/off, control revoked), relayed to the
    peer (`to`), or to every other engaged device. Control is only ever granted by the callee
    of a call that asked for it."""
    with transaction.atomic():
        loaded = _load(call_id, lock=True)
        call = loaded.call
        me = _engaged_me(loaded, _user_id(user), device_id)
        if call.state != CallState.ACTIVE:
            raise Conflict("Nobody has answered yet.", details={"state": call.state})
        granted = call.control_granted
        if remote_control is True and not granted:
            if not call.remote_control or me.role != ParticipantRole.CALLEE:
                raise Forbidden("Only the callee of a remote-assistance call grants control.")
            granted = True
        elif remote_control is False:
            granted = False
        targets = [_peer_of(loaded, me, device_id, to)] if to is not None else [
            d for d in loaded.engaged_device_ids() if d != str(device_id)]
        Call.objects.filter(pk=call.pk, state=CallState.ACTIVE).update(current_media=media, control_granted=granted)
        call.current_media, call.control_granted = media, granted
        relay_on_commit(events.frame_update(call=call, sdp=sdp, user_id=_user_id(user), device_id=device_id),
                        device_ids=targets)
        return {"call_id": str(call.pk), "state": call.state}


# --- Reject and hang up ------------------------------------------------------------------------------


def call_reject(*, user: User | str, device_id: object, call_id: uuid.UUID,
                now: datetime | None = None) -> dict[str, Any]:
    """A rung callee declines (from any of their devices). A direct call ends as rejected; a
    group call ends once nobody is ringing and nobody joined."""
    now = now or timezone.now()
    with transaction.atomic():
        loaded = _load(call_id, lock=True)
        me = _me(loaded, _user_id(user))
        if loaded.call.state == CallState.ENDED:
            raise Conflict("The call has ended.", details={"state": CallState.ENDED})
        if me.role == ParticipantRole.CALLER or me.state != ParticipantState.RINGING:
            raise Conflict("The call is not ringing for you; hang up instead.", details={"state": loaded.call.state})
        return _decline(loaded, me=me, device_id=device_id, now=now)


def _decline(loaded: _Loaded, *, me: CallParticipant, device_id: object, now: datetime) -> dict[str, Any]:
    call = loaded.call
    CallParticipant.objects.filter(pk=me.pk, state=ParticipantState.RINGING).update(
        state=ParticipantState.DECLINED, left_at=now)
    me.state = ParticipantState.DECLINED
    if not call.is_group:
        _end(loaded, reason=EndReason.REJECTED, now=now)
        return {"call_id": str(call.pk), "state": CallState.ENDED}
    # The member's other devices stop ringing; the group call goes on for the others.
    relay_on_commit(events.frame_answered_elsewhere(call_id=call.pk), user_ids=[me.user_id],
                    exclude_device_id=device_id)
    still_ringing = any(p.state == ParticipantState.RINGING and not p.silenced for p in loaded.participants)
    if call.state == CallState.RINGING and not still_ringing:
        _end(loaded, reason=EndReason.REJECTED, now=now)
        return {"call_id": str(call.pk), "state": CallState.ENDED}
    return {"call_id": str(call.pk), "state": call.state}


def call_hangup(*, user: User | str, device_id: object, call_id: uuid.UUID,
                now: datetime | None = None) -> dict[str, Any]:
    """An engaged device hangs up (a ringing callee's device: declines). A direct call ends; in a
    group the device leaves, and the call ends when fewer than two devices remain (or the
    caller cancels before anyone answered)."""
    now = now or timezone.now()
    with transaction.atomic():
        loaded = _load(call_id, lock=True)
        me = _me(loaded, _user_id(user))
        if loaded.call.state == CallState.ENDED:
            raise Conflict("The call has ended.", details={"state": CallState.ENDED})
        if me.state == ParticipantState.RINGING:
            return _decline(loaded, me=me, device_id=device_id, now=now)
        me = _engaged_me(loaded, _user_id(user), device_id)
        _leave(loaded, me=me, reason=EndReason.HANGUP, now=now)
        return {"call_id": str(loaded.call.pk), "state": loaded.call.state}


def _leave(loaded: _Loaded, *, me: CallParticipant, reason: str, now: datetime) -> None:
    """`me` (an engaged device) leaves; ends the call when it cannot go on without it."""
    call = loaded.call
    ends = (not call.is_group or call.state == CallState.RINGING
            or len([p for p in loaded.engaged() if p.pk != me.pk]) < 2)
    if ends:
        _end(loaded, reason=reason, now=now)
        return
    CallParticipant.objects.filter(pk=me.pk, state=ParticipantState.JOINED).update(
        state=ParticipantState.LEFT, left_at=now, dropped_at=None)
    me.state = ParticipantState.LEFT
    _unmark_engaged_on_commit([me.device_id])
    relay_on_commit(events.frame_left(call_id=call.pk, user_id=me.user_id, device_id=me.device_id),
                    device_ids=loaded.engaged_device_ids())


def _end(loaded: _Loaded, *, reason: str, now: datetime) -> None:
    """The one way a call ends: state, participants, `call.ended` (stored and direct), the
    "missed call" pushes and the log message, all in the caller's transaction. Call holding
    the call row lock."""
    call = loaded.call
    outcome = _OUTCOME_OF_REASON.get(reason) or (Outcome.COMPLETED if call.answered_at else Outcome.MISSED)
    changed = Call.objects.filter(pk=call.pk, state__in=[CallState.RINGING, CallState.ACTIVE]).update(
        state=CallState.ENDED, end_reason=reason, outcome=outcome, ended_at=now)
    if not changed:
        return
    call.state, call.end_reason, call.outcome, call.ended_at = CallState.ENDED, reason, outcome, now
    engaged_devices = loaded.engaged_device_ids()
    missed: list[str] = []
    for p in loaded.participants:
        if p.state == ParticipantState.RINGING:
            p.state = ParticipantState.MISSED
            if not p.silenced:
                missed.append(str(p.user_id))
        elif p.state == ParticipantState.BUSY and not p.silenced:
            missed.append(str(p.user_id))
    CallParticipant.objects.filter(call=call, state=ParticipantState.RINGING).update(
        state=ParticipantState.MISSED, left_at=now)
    CallParticipant.objects.filter(call=call, state=ParticipantState.JOINED).update(
        state=ParticipantState.LEFT, left_at=now, dropped_at=None)
    HeldCandidate.objects.filter(call=call).delete()
    _unmark_engaged_on_commit(engaged_devices)
    audience = [str(p.user_id) for p in loaded.participants if not p.silenced]
    ended = events.call_ended(call=call)
    stream_append([PendingEvent(user_id, events.CALL_ENDED, ended) for user_id in audience])
    relay_on_commit(events.frame_ended(call=call), user_ids=audience)
    _push_missed(call, missed)
    _post_log_message(call)


def _post_log_message(call: Call) -> None:
    try:
        with transaction.atomic():
            message_post(sender_id=call.caller_id, conversation_id=call.conversation_id, type="call",
                         content=events.log_content(call=call),
                         client_id=uuid.uuid5(CALL_LOG_NAMESPACE, str(call.pk)))
    except NotFound:
        # The caller left the conversation (or deleted the account) during the call: the call
        # still ends; there is no member left to post the log message as.
        logger.info("calls: no log message for call %s (the caller is no longer a member)", call.pk)


# --- Timeouts and dropped sockets -------------------------------------------------------------------


def call_ring_expire(*, call_id: object, now: datetime | None = None) -> float | None:
    """The ring timeout: callees still ringing are missed, and a call nobody answered ends as
    missed. Safe to run any number of times. Returns the seconds left when run too early."""
    now = now or timezone.now()
    with transaction.atomic():
        try:
            loaded = _load(call_id, lock=True)
        except NotFound:
            return None
        call = loaded.call
        if call.state == CallState.ENDED:
            return None
        if now < call.ring_expires_at:
            return (call.ring_expires_at - now).total_seconds()
        if call.state == CallState.RINGING:
            _end(loaded, reason=EndReason.MISSED, now=now)
            return None
        # An active group call: members who never picked up have missed it.
        ringing = [p for p in loaded.participants if p.state == ParticipantState.RINGING]
        if ringing:
            CallParticipant.objects.filter(pk__in=[p.pk for p in ringing], state=ParticipantState.RINGING).update(
                state=ParticipantState.MISSED, left_at=now)
            _push_missed(call, [str(p.user_id) for p in ringing if not p.silenced])
        return None


def call_device_dropped(*, user_id: object, device_id: object, now: datetime | None = None) -> list[str]:
    """The device's last socket closed: in every active call it is engaged in, start the
    reconnect grace (CALLS_RECONNECT_GRACE_SECONDS). Returns those calls' ids."""
    if str(device_id) in device_ids_online([device_id]):
        return []  # another socket of the same device is still open
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(CallParticipant.objects.filter(
            user_id=user_id, device_id=device_id, state=ParticipantState.JOINED, call__state=CallState.ACTIVE,
            dropped_at__isnull=True).values_list("pk", "call_id"))
        if not rows:
            return []
        CallParticipant.objects.filter(pk__in=[pk for pk, _ in rows], dropped_at__isnull=True).update(dropped_at=now)
        for _, call_id in rows:
            _enqueue_on_commit("drop_check", call_id, settings.CALLS_RECONNECT_GRACE_SECONDS + 0.5)
    return [str(call_id) for _, call_id in rows]


def call_device_returned(*, user_id: object, device_id: object) -> int:
    """The device has a socket again: its calls go on. Returns the rows cleared."""
    return CallParticipant.objects.filter(user_id=user_id, device_id=device_id, state=ParticipantState.JOINED,
                                          dropped_at__isnull=False).update(dropped_at=None)


def call_drop_check(*, call_id: object, now: datetime | None = None) -> float | None:
    """End the call as failed (in a group: the device leaves) for each engaged device that
    dropped more than the grace ago and has no socket now. Safe to run any number of times.
    Returns the seconds until the next dropped device is due, when one is not yet."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.CALLS_RECONNECT_GRACE_SECONDS)
    with transaction.atomic():
        try:
            loaded = _load(call_id, lock=True)
        except NotFound:
            return None
        if loaded.call.state != CallState.ACTIVE:
            return None
        dropped = [p for p in loaded.engaged() if p.dropped_at is not None]
        online = device_ids_online([p.device_id for p in dropped]) if dropped else set()
        wait: float | None = None
        for p in dropped:
            if str(p.device_id) in online:
                CallParticipant.objects.filter(pk=p.pk).update(dropped_at=None)  # back, via another process
            elif p.dropped_at + grace <= now:
                if loaded.call.state == CallState.ENDED:
                    break
                _leave(loaded, me=p, reason=EndReason.FAILED, now=now)
            else:
                left = (p.dropped_at + grace - now).total_seconds()
                wait = left if wait is None else min(wait, left)
        return wait


def calls_sweep(*, now: datetime | None = None, batch: int = 500) -> dict[str, int]:
    """The beat task's work, the safety net for lost Celery tasks and killed server processes:
    rings past their timeout, and engaged devices that have no socket (their process died
    without running the close hook) or whose grace ran out."""
    now = now or timezone.now()
    expired = list(
        Call.objects.filter(~Q(state=CallState.ENDED), ring_expires_at__lte=now)
        .filter(Q(state=CallState.RINGING) | Q(participants__state=ParticipantState.RINGING))
        .values_list("pk", flat=True).distinct()[:batch]
    )
    for call_id in expired:
        call_ring_expire(call_id=call_id, now=now)
    engaged = list(
        CallParticipant.objects.filter(call__state=CallState.ACTIVE, state=ParticipantState.JOINED,
                                       device_id__isnull=False)
        .values_list("pk", "call_id", "device_id", "dropped_at")[: batch * 8]
    )
    online = device_ids_online([device_id for _, _, device_id, _ in engaged]) if engaged else set()
    vanished = [pk for pk, _, device_id, dropped_at in engaged if dropped_at is None and str(device_id) not in online]
    if vanished:
        CallParticipant.objects.filter(pk__in=vanished, dropped_at__isnull=True).update(dropped_at=now)
    checked = 0
    for call_id in {call_id for pk, call_id, device_id, dropped_at in engaged
                    if dropped_at is not None or pk in vanished}:
        call_drop_check(call_id=call_id, now=now)
        checked += 1
    return {"expired": len(expired), "vanished": len(vanished), "checked": checked}
