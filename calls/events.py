"""Every payload the calls app puts into streams and relayed frames, built in one place.

Stored (stream events): `call.ring` to every callee, `call.ended` to both sides.
Relayed to live sockets only (never stored): `call.offer` between the devices of a
group call, `call.answer`, `call.ice`, `call.update`, `call.answered_elsewhere`,
`call.left`, and `call.ended` as a direct frame too (a client takes whichever of
the two `call.ended` it sees first, by `call_id`). Plain JSON types only.
"""

from __future__ import annotations

from typing import Any

from core.serializers import timestamp

CALL_RING = "call.ring"
CALL_ENDED = "call.ended"


def call_ring(*, call: Any, sdp: str) -> dict[str, Any]:
    """The contract's ring: everything a callee's device needs to ring and answer."""
    return {
        "call_id": str(call.pk),
        "conversation_id": str(call.conversation_id),
        "caller_id": str(call.caller_id),
        "media": call.media,
        "remote_control": call.remote_control,
        "sdp": sdp,
        "expires_at": timestamp(call.ring_expires_at),
        # Additions: which device offered (the `to` of a group's later legs) and the kind of call.
        "caller_device_id": str(call.caller_device_id) if call.caller_device_id else None,
        "group": call.is_group,
    }


def call_ended(*, call: Any) -> dict[str, Any]:
    return {"call_id": str(call.pk), "reason": call.end_reason, "duration_ms": duration_ms(call)}


def duration_ms(call: Any) -> int:
    if call.answered_at is None or call.ended_at is None:
        return 0
    return max(0, int((call.ended_at - call.answered_at).total_seconds() * 1000))


def log_content(*, call: Any) -> dict[str, Any]:
    """The call message's payload, under its key: {"call": {...}}."""
    return {"call": {
        "call_id": str(call.pk),
        "media": call.media,
        "outcome": call.outcome,
        "duration_ms": duration_ms(call),
        "caller_id": str(call.caller_id),
        # Additions: remote assistance asked for, and whether the callee granted it.
        "remote_control": call.remote_control,
        "control_granted": call.control_granted,
    }}


# --- Relayed frames --------------------------------------------------------------------------


def _sender(user_id: object, device_id: object) -> dict[str, str]:
    return {"user_id": str(user_id), "device_id": str(device_id)}


def frame_ended(*, call: Any) -> dict[str, Any]:
    return {"type": CALL_ENDED, **call_ended(call=call)}


def frame_answer(*, call_id: object, sdp: str, grant_control: bool, user_id: object,
                 device_id: object) -> dict[str, Any]:
    return {"type": "call.answer", "call_id": str(call_id), "sdp": sdp, "grant_control": grant_control,
            **_sender(user_id, device_id)}


def frame_offer(*, call: Any, sdp: str, user_id: object, device_id: object) -> dict[str, Any]:
    """A group's later leg: one joined device offers to another."""
    return {"type": "call.offer", "call_id": str(call.pk), "conversation_id": str(call.conversation_id),
            "media": call.current_media, "sdp": sdp, **_sender(user_id, device_id)}


def frame_ice(*, call_id: object, candidate: Any, user_id: object, device_id: object) -> dict[str, Any]:
    return {"type": "call.ice", "call_id": str(call_id), "candidate": candidate, **_sender(user_id, device_id)}


def frame_update(*, call: Any, sdp: str | None, user_id: object, device_id: object) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "call.update", "call_id": str(call.pk), "media": call.current_media,
                             "remote_control": call.control_granted, **_sender(user_id, device_id)}
    if sdp is not None:
        frame["sdp"] = sdp
    return frame


def frame_answered_elsewhere(*, call_id: object) -> dict[str, Any]:
    return {"type": "call.answered_elsewhere", "call_id": str(call_id)}


def frame_left(*, call_id: object, user_id: object, device_id: object) -> dict[str, Any]:
    """A device left a group call that goes on: its peers close their connection to it."""
    return {"type": "call.left", "call_id": str(call_id), **_sender(user_id, device_id)}
