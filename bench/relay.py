"""The limit: a bare WebSocket relay speaking the same frames, with no persistence and no auth.

    python -m bench.relay --port 9100

A client connects with `?token=<user id>`. `message.send` to conversation
`pair:<a>:<b>` is answered with `message.sent` and relayed to the other user's
sockets as an `event` frame (`message.new`), exactly the frames the real server
sends. Group conversations `group:<name>` are joined by a `hello` listing them:
`{"type": "hello", "cursor": "", "groups": ["group:x"]}`.
Every delivery figure of the benchmark is also printed as a ratio to this relay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
from collections import defaultdict
from urllib.parse import parse_qs, urlparse

import orjson
import websockets
from websockets.asyncio.server import ServerConnection, serve

sockets_by_user: dict[str, set[ServerConnection]] = defaultdict(set)
members_by_group: dict[str, set[str]] = defaultdict(set)
seq_by_conversation: dict[str, itertools.count] = defaultdict(lambda: itertools.count(1))
positions: dict[str, itertools.count] = defaultdict(lambda: itertools.count(1))


def recipients(conversation_id: str, sender: str) -> list[str]:
    if conversation_id.startswith("pair:"):
        _, first, second = conversation_id.split(":", 2)
        return [second if sender == first else first]
    return [user for user in members_by_group[conversation_id] if user != sender]


async def handle(ws: ServerConnection) -> None:
    query = parse_qs(urlparse(ws.request.path).query)
    user = (query.get("token") or [""])[0]
    if not user:
        await ws.close(4001)
        return
    sockets_by_user[user].add(ws)
    try:
        async for raw in ws:
            frame = orjson.loads(raw)
            kind = frame.get("type")
            if kind == "message.send":
                conversation_id = frame["conversation_id"]
                message = {
                    **frame["message"],
                    "conversation_id": conversation_id,
                    "sender_id": user,
                    "seq": next(seq_by_conversation[conversation_id]),
                }
                await ws.send(orjson.dumps({"type": "message.sent", "ref": frame.get("ref"), "message": message})
                              .decode())
                for other in recipients(conversation_id, user):
                    event = orjson.dumps({
                        "type": "event",
                        "event": {"cursor": str(next(positions[other])), "type": "message.new", "data": message},
                    }).decode()
                    for target in list(sockets_by_user.get(other, ())):
                        with contextlib.suppress(websockets.ConnectionClosed):
                            await target.send(event)
            elif kind == "hello":
                for group in frame.get("groups", []):
                    members_by_group[group].add(user)
            elif kind == "ping":
                await ws.send('{"type":"pong"}')
    except websockets.ConnectionClosed:
        pass
    finally:
        sockets_by_user[user].discard(ws)


async def main(port: int) -> None:
    async with serve(handle, "127.0.0.1", port, compression=None, max_queue=None):
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(main(args.port))
    except ImportError:
        asyncio.run(main(args.port))
