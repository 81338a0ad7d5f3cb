"""Which ASGI server? WebSocket echo throughput of each candidate, one process on one core.

    .venv/bin/python -m bench.asgi_servers [--seconds 8] [--connections 100] [--window 10]

The server runs pinned to CPU 0 and the load client to CPU 1 (taskset), both on
127.0.0.1. Each connection keeps `window` messages in flight; the figure is echoes
received per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import websockets

from bench.run import free_port, pinned

VENV_BIN = os.path.dirname(sys.executable)

SERVERS = {
    "uvicorn+websockets+uvloop": [f"{VENV_BIN}/uvicorn", "bench.echo_asgi:app", "--ws", "websockets",
                                  "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
                                  "--lifespan", "off"],
    "granian": [f"{VENV_BIN}/granian", "--interface", "asgi", "--workers", "1", "--log-level", "warning",
                "--loop", "uvloop", "bench.echo_asgi:app"],
    "daphne": [f"{VENV_BIN}/daphne", "-v", "0", "bench.echo_asgi:app"],
}


def port_args(name: str, port: int) -> list[str]:
    if name.startswith("uvicorn"):
        return ["--host", "127.0.0.1", "--port", str(port)]
    if name == "granian":
        return ["--host", "127.0.0.1", "--port", str(port)]
    return ["-b", "127.0.0.1", "-p", str(port)]


async def load(port: int, seconds: float, connections: int, window: int) -> float:
    payload = json.dumps({"type": "message.send", "text": "x" * 64})
    received = 0
    counting = False
    stop = asyncio.Event()

    async def one() -> None:
        nonlocal received
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_queue=None, compression=None) as ws:
            for _ in range(window):
                await ws.send(payload)
            while not stop.is_set():
                await ws.recv()
                if counting:
                    received += 1
                await ws.send(payload)

    tasks = [asyncio.create_task(one()) for _ in range(connections)]
    await asyncio.sleep(2)  # warm-up
    counting = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    counting = False
    elapsed = time.perf_counter() - started
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return received / elapsed


def measure(name: str, seconds: float, connections: int, window: int) -> float:
    port = free_port()
    server = subprocess.Popen(pinned(0, SERVERS[name] + port_args(name, port)), cwd=os.getcwd(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        client = subprocess.run(
            pinned(1, [sys.executable, "-c",
                       "import asyncio,sys; from bench.asgi_servers import load; "
                       f"print(asyncio.run(load({port}, {seconds}, {connections}, {window})))"]),
            capture_output=True, text=True, timeout=seconds + 60,
        )
        return float(client.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--window", type=int, default=10)
    args = parser.parse_args()
    results = {name: measure(name, args.seconds, args.connections, args.window) for name in SERVERS}
    for name, rate in sorted(results.items(), key=lambda item: -item[1]):
        print(f"{name:30s} {rate:10.0f} echoes/s")


if __name__ == "__main__":
    main()
