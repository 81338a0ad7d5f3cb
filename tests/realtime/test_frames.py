"""Frame parsing and the flood limit, without a socket."""

import pytest

from core.errors import PayloadTooLarge, ValidationFailed
from realtime.frames import FloodGuard, event_frame, frame_decode, frame_ref


def test_decode_returns_the_object_with_its_type():
    assert frame_decode('{"type": "ping", "extra": 1}', max_bytes=100) == {"type": "ping", "extra": 1}


@pytest.mark.parametrize("text", [None, "", "nope", "[]", "1", '{"type": null}', '{"type": ["ping"]}'])
def test_decode_refuses_what_is_not_a_typed_object(text):
    with pytest.raises(ValidationFailed):
        frame_decode(text, max_bytes=100)


def test_decode_measures_bytes_not_characters():
    text = '{"type": "ping", "x": "' + "é" * 40 + '"}'  # 64 characters, 104 bytes
    frame_decode(text, max_bytes=120)
    with pytest.raises(PayloadTooLarge):
        frame_decode(text, max_bytes=100)


@pytest.mark.parametrize(("frame", "ref"), [({"ref": "a"}, "a"), ({"ref": 7}, 7), ({"ref": True}, None),
                                            ({"ref": "x" * 65}, None), ({"ref": {"a": 1}}, None), ({}, None),
                                            (None, None)])
def test_ref_is_echoed_only_when_it_is_a_sane_scalar(frame, ref):
    assert frame_ref(frame) == ref


def test_event_frame_carries_only_the_contract_keys():
    event = {"cursor": "3", "type": "t", "data": {}, "created_at": "2026-01-01T00:00:00.000Z", "position": 3}
    assert event_frame(event) == {"type": "event", "event": {"cursor": "3", "type": "t", "data": {},
                                                             "created_at": "2026-01-01T00:00:00.000Z"}}


def test_flood_guard_allows_the_burst_then_warns_once_then_closes():
    guard = FloodGuard(rate=0.001, burst=3, close_after=4)
    assert [guard.check() for _ in range(3)] == ["ok"] * 3
    assert [guard.check() for _ in range(5)] == ["limited", "drop", "drop", "drop", "close"]


def test_flood_guard_refills_at_the_sustained_rate(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("realtime.frames.time.monotonic", lambda: now[0])
    guard = FloodGuard(rate=10, burst=2, close_after=100)
    assert [guard.check() for _ in range(3)] == ["ok", "ok", "limited"]
    now[0] += 0.15
    assert guard.check() == "ok"
    assert guard.check() == "limited"
