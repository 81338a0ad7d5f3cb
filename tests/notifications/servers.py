"""Local stand-ins for the push providers, on 127.0.0.1, answering with the providers' real responses.

`ScriptedHttpServer` speaks HTTP/1.1 (FCM's OAuth token endpoint and send
API, Web Push services); `ScriptedH2Server` speaks cleartext HTTP/2 with prior
knowledge, as APNs only accepts HTTP/2. Both record every request and answer
from a script: a list of responses consumed in order (the last one repeats).
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import h2.config
import h2.connection
import h2.events


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Script:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.routes: dict[str, list[Reply]] = {}
        self.requests: list[Recorded] = []

    def script(self, path_prefix: str, *replies: Reply) -> None:
        with self.lock:
            self.routes[path_prefix] = list(replies)

    def answer(self, recorded: Recorded) -> Reply:
        with self.lock:
            self.requests.append(recorded)
            for prefix in sorted(self.routes, key=len, reverse=True):
                if recorded.path.startswith(prefix):
                    replies = self.routes[prefix]
                    return replies.pop(0) if len(replies) > 1 else replies[0]
        return Reply(404, {"error": "no route"})

    def requests_to(self, path_prefix: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]


class ScriptedHttpServer(_Script):
    def __init__(self) -> None:
        super().__init__()
        script = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                reply = script.answer(Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                                               body))
                payload = reply.encoded()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ScriptedHttpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class ScriptedH2Server(_Script):
    """A minimal HTTP/2 server (h2 state machine over a plain socket), one thread per connection."""

    def __init__(self) -> None:
        super().__init__()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.protocols: list[str] = []

    def __enter__(self) -> ScriptedH2Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        self.sock.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        h2conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
        h2conn.initiate_connection()
        conn.sendall(h2conn.data_to_send())
        conn.settimeout(0.2)
        headers: dict[int, dict[str, str]] = {}
        bodies: dict[int, bytearray] = {}
        with conn:
            for _ in range(100_000):  # bounded: a test connection never lives this long
                if self.stopping.is_set():
                    return
                try:
                    data = conn.recv(65535)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                for event in h2conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers[event.stream_id] = {
                            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                            for k, v in event.headers
                        }
                        bodies[event.stream_id] = bytearray()
                    elif isinstance(event, h2.events.DataReceived):
                        bodies[event.stream_id] += event.data
                        h2conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        request_headers = headers.pop(event.stream_id)
                        self.protocols.append("HTTP/2")
                        reply = self.answer(Recorded(request_headers.get(":method", ""),
                                                     request_headers.get(":path", ""), request_headers,
                                                     bytes(bodies.pop(event.stream_id))))
                        payload = reply.encoded()
                        response_headers = [(":status", str(reply.status)), ("content-length", str(len(payload))),
                                            *[(k.lower(), v) for k, v in reply.headers.items()]]
                        h2conn.send_headers(event.stream_id, response_headers, end_stream=not payload)
                        if payload:
                            h2conn.send_data(event.stream_id, payload, end_stream=True)
                conn.sendall(h2conn.data_to_send())
