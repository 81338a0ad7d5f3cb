"""Helpers for the call tests: conversations, offers through the services, what landed in
streams, and the push stand-in. Socket fixtures come from tests/realtime."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from calls import services
from calls.models import Call
from tests.factories import SignedInDevice
from tests.messaging.conftest import new_direct, new_group, stream_events  # noqa: F401  (re-exported)
from tests.realtime.conftest import _fresh_channel_layer, socket  # noqa: F401  (fixtures)

SDP_OFFER = ("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
             "a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
             "a=mid:0\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n")
SDP_ANSWER = SDP_OFFER.replace("4611731400430051336", "7702145612390129811")
CANDIDATE = {"candidate": "candidate:1 1 udp 2130706431 192.0.2.10 50000 typ host", "sdpMid": "0",
             "sdpMLineIndex": 0}

PUSHES: list[dict[str, Any]] = []


def record_push(**kwargs: Any) -> None:
    """Stands in for notifications.services.push_notify via CALLS_PUSH."""
    PUSHES.append(kwargs)


@pytest.fixture
def pushes(settings: Any) -> list[dict[str, Any]]:
    settings.CALLS_PUSH = "tests.calls.conftest.record_push"
    PUSHES.clear()
    return PUSHES


@pytest.fixture
def direct(alice: SignedInDevice, bob: SignedInDevice) -> str:
    return new_direct(alice, bob)


def offer(who: SignedInDevice, conversation_id: str, *, call_id: uuid.UUID | None = None, media: str = "audio",
          remote_control: bool = False, sdp: str = SDP_OFFER, **kwargs: Any) -> uuid.UUID:
    call_id = call_id or uuid.uuid4()
    services.call_offer(user=who.user, device_id=who.device.pk, call_id=call_id, conversation_id=conversation_id,
                        media=media, remote_control=remote_control, sdp=sdp, **kwargs)
    return call_id


def answer(who: SignedInDevice, call_id: uuid.UUID, *, grant_control: bool = False, **kwargs: Any) -> dict:
    return services.call_answer(user=who.user, device_id=who.device.pk, call_id=call_id, sdp=SDP_ANSWER,
                                grant_control=grant_control, **kwargs)


def call_row(call_id: uuid.UUID) -> Call:
    return Call.objects.get(pk=call_id)


def call_messages(conversation_id: str) -> list[dict]:
    from messaging.models import Message
    from messaging.selectors import message_public

    return [message_public(m) for m in Message.objects.filter(conversation_id=conversation_id, type="call")
            .order_by("seq")]
