"""Sunset on the socket: writing frames refused from read-only on (the process memo, no
query per frame), live sockets closed with 4503 at shutdown and new ones refused, while
the export still downloads over HTTP."""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async

from core import sunset
from tests.exports.conftest import make_sunset
from tests.exports.test_read_only_gate import asgi_client
from tests.messaging.conftest import new_direct

pytestmark = pytest.mark.django_db(transaction=True)


async def test_socket_writing_frames_get_an_error_frame_from_the_memo_not_a_query(socket, alice, bob, monkeypatch):
    direct = await database_sync_to_async(new_direct)(alice, bob)
    await database_sync_to_async(make_sunset)("read_only")
    loads = []
    real = sunset.current_schedule
    monkeypatch.setattr(sunset, "current_schedule", lambda: loads.append(1) or real())
    client = await socket(alice.token)
    for n in range(10):
        await client.send({"type": "message.send", "ref": n, "conversation_id": direct,
                           "message": {"client_id": str(uuid.uuid4()), "type": "text", "text": "late"}})
        error = await client.recv_type("error")
        assert (error["ref"], error["code"]) == (n, "service_read_only")
    await client.send({"type": "call.offer", "ref": "o", "call_id": str(uuid.uuid4()), "conversation_id": direct,
                       "media": "audio", "remote_control": False, "sdp": "v=0"})
    error = await client.recv_type("error")
    assert (error["ref"], error["code"]) == ("o", "service_read_only")
    await client.send({"type": "ping"})
    assert await client.recv_type("pong") == {"type": "pong"}
    assert len(loads) <= 2  # one load per second per process at most, whatever the frame count


async def test_shutdown_closes_live_sockets_4503_refuses_new_ones_and_export_still_downloads(
        socket, alice, settings):
    settings.WS_HEARTBEAT_SECONDS = 0.3
    live = await socket(alice.token)
    await live.send({"type": "ping"})
    assert await live.recv_type("pong") == {"type": "pong"}
    async with asgi_client(alice.token) as client:
        exported = (await client.post("/api/v1/me/exports")).json()
        await database_sync_to_async(make_sunset)("shutdown")
        assert await live.closed_with(timeout=5) == 4503
        fresh = await socket(alice.token)
        assert await fresh.closed_with() == 4503
        status = (await client.get(f"/api/v1/me/exports/{exported['id']}")).json()
        assert status["status"] == "ready"
        download = await client.get(f"/api/v1/me/exports/{exported['id']}/download")
        assert download.status_code == 200 and download.content[:2] == b"PK"
        assert (await client.get("/api/v1/me")).json()["error"]["code"] == "service_shut_down"
