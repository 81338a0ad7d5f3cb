"""Socket test helpers: connect through the real ASGI application (middleware, routing)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from asgiref.testing import ApplicationCommunicator

from config.asgi import application


class WebsocketCommunicator(ApplicationCommunicator):
    """channels.testing's communicator, minus its import of daphne (not a dependency here)."""

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        route, _, query = path.partition("?")
        super().__init__(application, {"type": "websocket", "path": route, "query_string": query.encode(),
                                       "headers": headers, "subprotocols": []})

    async def connect(self, timeout: float = 5) -> bool:
        await self.send_input({"type": "websocket.connect"})
        return (await self.receive_output(timeout))["type"] == "websocket.accept"

    async def receive_from(self, timeout: float) -> str:
        output = await self.receive_output(timeout)
        assert output["type"] == "websocket.send", output
        return output["text"]

    async def disconnect(self, code: int = 1000, timeout: float = 3) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


class Client:
    """A socket that speaks JSON frames."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.closed = False

    async def send(self, frame: dict[str, Any]) -> None:
        await self.send_raw(orjson.dumps(frame).decode())

    async def send_raw(self, text: str | None = None, data: bytes | None = None) -> None:
        message: dict[str, Any] = {"type": "websocket.receive"}
        if data is not None:
            message["bytes"] = data
        else:
            message["text"] = text
        await self.ws.send_input(message)

    async def recv(self, timeout: float = 3) -> dict[str, Any]:
        return orjson.loads(await self.ws.receive_from(timeout))

    async def recv_type(self, type_: str, timeout: float = 3) -> dict[str, Any]:
        """The next frame of this type; presence frames in between are skipped, anything else fails."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == type_:
                return frame
            assert frame["type"] == "presence", frame

    async def events(self, count: int, timeout: float = 5) -> list[dict[str, Any]]:
        return [(await self.recv_type("event", timeout))["event"] for _ in range(count)]

    async def nothing_more(self, timeout: float = 0.3, *, ignore_presence: bool = True) -> None:
        """No frame (other than presence) arrives within `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            if await self.ws.receive_nothing(left):
                return
            frame = await self.recv()
            assert ignore_presence and frame["type"] == "presence", frame

    async def closed_with(self, timeout: float = 3) -> int:
        """Wait for the server's close; returns its code (frames before it are skipped)."""
        while True:
            output = await self.ws.receive_output(timeout)
            if output["type"] == "websocket.close":
                code = output.get("code", 1000)
                await self.close(code)  # as the ASGI server does once the close handshake is done
                return code

    async def close(self, code: int = 1000) -> None:
        if not self.closed:
            self.closed = True
            # channels-redis can take seconds to cancel its pending receive after the consumer
            # stopped; the consumer's own disconnect work is done well before that.
            await self.ws.disconnect(code, timeout=1)


async def open_socket(token: str | None, *, via: str = "header") -> Client:
    headers = []
    path = "/ws/v1"
    if token is not None and via == "header":
        headers.append((b"authorization", f"Bearer {token}".encode()))
    elif token is not None:
        path += f"?token={token}"
    communicator = WebsocketCommunicator(path, headers)
    assert await communicator.connect()
    return Client(communicator)


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """A new channel layer object per test: each test runs on its own event loop, and
    channels-redis keeps per-loop state (its receive lock) that a socket still being
    torn down on the previous test's loop would otherwise leak into this one."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
async def socket():
    """Open sockets (`await socket(token)`) and close them all at teardown."""
    opened: list[Client] = []

    async def _open(token: str | None, **kwargs: Any) -> Client:
        client = await open_socket(token, **kwargs)
        opened.append(client)
        return client

    yield _open
    for client in opened:
        await client.close()
