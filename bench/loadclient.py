"""The load client: asyncio, one WebSocket connection per simulated device.

Runs as its own process (pinned apart from the server by bench/run.py). Each
scenario takes a JSON spec on the command line and prints one JSON line of
results, so the same client drives the real server and the reference relay.

    python -m bench.loadclient throughput '{"urls": [...], "pairs": [...], ...}'
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import websockets

CONNECT_CONCURRENCY = 200


def now_ns() -> int:
    return time.monotonic_ns()  # one clock for every process on the machine


async def connect(url: str, token: str) -> websockets.ClientConnection:
    ws = await websockets.connect(f"{url}?token={token}", max_queue=None, compression=None, open_timeout=30,
                                  ping_interval=None, max_size=2**22)
    return ws


async def connect_all(specs: list[tuple[str, str]]) -> list[websockets.ClientConnection]:
    limiter = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(url: str, token: str) -> websockets.ClientConnection:
        async with limiter:
            return await connect(url, token)

    return await asyncio.gather(*(one(url, token) for url, token in specs))


def send_frame(conversation_id: str, text: str) -> str:
    return orjson.dumps({
        "type": "message.send",
        "ref": uuid.uuid4().hex[:12],
        "conversation_id": conversation_id,
        "message": {"client_id": str(uuid.uuid4()), "type": "text", "text": text},
    }).decode()


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(samples)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1],
            "mean": statistics.fmean(ordered)}


async def hello(ws: websockets.ClientConnection, groups: list[str] | None = None, cursor: str = "") -> None:
    frame: dict[str, Any] = {"type": "hello", "cursor": cursor}
    if groups:
        frame["groups"] = groups  # understood by the relay only; the real server knows memberships
    await ws.send(orjson.dumps(frame).decode())


async def head_cursor(url: str, token: str) -> str:
    """The newest position of the token's stream (GET /sync/head), from the socket URL's host."""
    import httpx

    base = url.replace("ws://", "http://", 1).replace("wss://", "https://", 1).split("/ws/", 1)[0]
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        answer = await http.get("/api/v1/sync/head", headers={"Authorization": f"Bearer {token}"})
        answer.raise_for_status()
        return answer.json()["cursor"]


async def hello_all(spec: dict[str, Any], senders: list[websockets.ClientConnection],
                    receivers: list[websockets.ClientConnection]) -> None:
    """Say hello on every socket and wait for the connect-time work. Against the server, each
    device resumes from its stream's head, as a phone with its stored cursor does: the streams
    hold what earlier scenarios sent, and replaying that would be measured as live traffic."""
    cursors = [""] * (len(senders) + len(receivers))
    if spec.get("resume_at_head"):
        urls, pairs = spec["urls"], spec["pairs"]
        who = [(urls[i % len(urls)], p["sender"]) for i, p in enumerate(pairs)]
        who += [(urls[(i + 1) % len(urls)], p["receiver"]) for i, p in enumerate(pairs)]
        limiter = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(url: str, token: str) -> str:
            async with limiter:
                return await head_cursor(url, token)

        cursors = await asyncio.gather(*(one(url, token) for url, token in who))
    for ws, cursor in zip((*senders, *receivers), cursors, strict=True):
        await hello(ws, cursor=cursor)
    await settle([*senders, *receivers])


# --- 1. throughput -----------------------------------------------------------------------------


async def throughput(spec: dict[str, Any]) -> dict[str, Any]:
    """Senders keep `window` unacknowledged sends in flight; count acks and deliveries."""
    window, warmup, seconds = spec["window"], spec.get("warmup", 3), spec["seconds"]
    urls = spec["urls"]
    pairs = spec["pairs"]  # [{"sender": token, "receiver": token, "conversation_id": id}]
    senders = await connect_all([(urls[i % len(urls)], p["sender"]) for i, p in enumerate(pairs)])
    receivers = await connect_all([(urls[(i + 1) % len(urls)], p["receiver"]) for i, p in enumerate(pairs)])
    await hello_all(spec, senders, receivers)
    counting = False
    acked = delivered = errors = 0
    stop = asyncio.Event()

    async def sender(ws: websockets.ClientConnection, conversation_id: str) -> None:
        nonlocal acked, errors
        for _ in range(window):
            await ws.send(send_frame(conversation_id, "x" * 48))
        async for raw in ws:
            frame = orjson.loads(raw)
            kind = frame.get("type")
            if kind == "message.sent":
                if counting:
                    acked += 1
                if stop.is_set():
                    return
                await ws.send(send_frame(conversation_id, "x" * 48))
            elif kind == "error":
                errors += 1
                await asyncio.sleep(0.05)
                await ws.send(send_frame(conversation_id, "x" * 48))

    async def receiver(ws: websockets.ClientConnection) -> None:
        nonlocal delivered
        last_cursor = ""
        count = 0
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame.get("type") == "event" and frame["event"]["type"] == "message.new":
                count += 1
                last_cursor = frame["event"]["cursor"]
                if counting:
                    delivered += 1
                if count % 200 == 0:
                    await ws.send(orjson.dumps({"type": "ack", "cursor": last_cursor}).decode())
            if stop.is_set():
                return

    tasks = [asyncio.create_task(sender(ws, p["conversation_id"])) for ws, p in zip(senders, pairs, strict=True)]
    tasks += [asyncio.create_task(receiver(ws)) for ws in receivers]
    await asyncio.sleep(warmup)
    counting = True
    started = time.perf_counter()
    samples = []
    for _ in range(int(seconds)):
        before = delivered
        await asyncio.sleep(1)
        samples.append(delivered - before)
    elapsed = time.perf_counter() - started
    counting = False
    stop.set()
    await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await close_all([*senders, *receivers])
    return {"persisted_per_s": acked / elapsed, "delivered_per_s": delivered / elapsed, "errors": errors,
            "per_second": samples}


# --- 2. latency ------------------------------------------------------------------------------------


async def latency(spec: dict[str, Any]) -> dict[str, Any]:
    """A fixed offered rate spread over the pairs; send-to-receive time from a stamp in the text."""
    rate, seconds, warmup = spec["rate"], spec["seconds"], spec.get("warmup", 3)
    urls, pairs = spec["urls"], spec["pairs"]
    senders = await connect_all([(urls[i % len(urls)], p["sender"]) for i, p in enumerate(pairs)])
    receivers = await connect_all([(urls[(i + 1) % len(urls)], p["receiver"]) for i, p in enumerate(pairs)])
    await hello_all(spec, senders, receivers)
    samples: list[float] = []
    recording = False
    stop = asyncio.Event()

    async def drain(ws: websockets.ClientConnection, measure: bool) -> None:
        async for raw in ws:
            if not measure:
                continue
            frame = orjson.loads(raw)
            if frame.get("type") == "event" and frame["event"]["type"] == "message.new":
                text = frame["event"]["data"].get("text") or ""
                if text.startswith("t="):
                    sent = int(text[2:].split(";", 1)[0])
                    if recording:
                        samples.append((now_ns() - sent) / 1e6)

    tasks = [asyncio.create_task(drain(ws, False)) for ws in senders]
    tasks += [asyncio.create_task(drain(ws, True)) for ws in receivers]

    async def pace() -> None:
        interval = 1.0 / rate
        next_at = time.perf_counter()
        for index in itertools.count():
            if stop.is_set():
                return
            which = index % len(pairs)
            await senders[which].send(send_frame(pairs[which]["conversation_id"], f"t={now_ns()};"))
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    pacer = asyncio.create_task(pace())
    await asyncio.sleep(warmup)
    recording = True
    await asyncio.sleep(seconds)
    recording = False
    stop.set()
    await asyncio.sleep(0.5)
    for task in [*tasks, pacer]:
        task.cancel()
    await asyncio.gather(*tasks, pacer, return_exceptions=True)
    await close_all([*senders, *receivers])
    return {"rate": rate, "samples": len(samples), "latency_ms": percentiles(samples)}


# --- 3. idle connections ------------------------------------------------------------------------------


async def idle(spec: dict[str, Any]) -> dict[str, Any]:
    """Open authenticated sockets, say hello, report readiness, hold until told to stop (stdin closes)."""
    urls, tokens = spec["urls"], spec["tokens"]
    started = time.perf_counter()
    # All at once: every socket connects and says hello in the same moment (a connect burst, as
    # after a server restart); "served" is when the last one has answered a ping.
    opened = await asyncio.gather(*(connect(urls[i % len(urls)], token) for i, token in enumerate(tokens)),
                                  return_exceptions=True)
    sockets = [ws for ws in opened if not isinstance(ws, BaseException)]
    for ws in sockets:
        await hello(ws)
    await settle(sockets)
    served_s = time.perf_counter() - started
    await asyncio.sleep(spec.get("settle", 3))
    reasons = sorted({repr(ws)[:120] for ws in opened if isinstance(ws, BaseException)})[:5]
    print(json.dumps({"ready": len(sockets), "failed": len(opened) - len(sockets), "served_s": served_s,
                      "reasons": reasons}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await close_all(sockets)
    return {"held": len(sockets)}


# --- 4. group fan-out -------------------------------------------------------------------------------


async def fanout(spec: dict[str, Any]) -> dict[str, Any]:
    """One message to a big group: time from send until the last member holds it."""
    urls, members, sender_token = spec["urls"], spec["members"], spec["sender"]
    conversation_id, groups = spec["conversation_id"], spec.get("groups")
    sockets = await connect_all([(urls[i % len(urls)], token) for i, token in enumerate(members)])
    sender = await connect(urls[0], sender_token)
    for ws in (*sockets, sender):
        await hello(ws, groups)
    await asyncio.sleep(spec.get("settle", 2))
    rounds = []
    for _ in range(spec.get("rounds", 5)):
        marker = uuid.uuid4().hex
        arrived: list[float] = []

        async def wait_for(ws: websockets.ClientConnection, marker: str = marker,
                           arrived: list[float] = arrived) -> None:
            async for raw in ws:
                frame = orjson.loads(raw)
                if frame.get("type") == "event" and (frame["event"]["data"].get("text") or "") == marker:
                    arrived.append(time.perf_counter())
                    return

        waiters = [asyncio.create_task(wait_for(ws)) for ws in sockets]
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        await sender.send(send_frame(conversation_id, marker))
        await asyncio.wait_for(asyncio.gather(*waiters), timeout=60)
        rounds.append({"first_ms": (min(arrived) - started) * 1000, "last_ms": (max(arrived) - started) * 1000})
        await asyncio.sleep(0.3)
    await close_all([*sockets, sender])
    return {"members": len(members), "rounds": rounds,
            "last_ms": percentiles([r["last_ms"] for r in rounds])}


# --- 5. catch-up ----------------------------------------------------------------------------------


async def catchup(spec: dict[str, Any]) -> dict[str, Any]:
    """A device offline for N events reconnects with hello: time until it holds them all."""
    expected, rounds = spec["events"], []
    for _ in range(spec.get("rounds", 3)):
        started = time.perf_counter()
        ws = await connect(spec["urls"][0], spec["token"])
        await hello(ws, cursor=spec.get("cursor", ""))
        received = 0
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame.get("type") == "event":
                received += 1
                if received >= expected:
                    break
        rounds.append((time.perf_counter() - started) * 1000)
        await ws.close()
    return {"events": expected, "ms": percentiles(rounds)}


# --- 7. signup ---------------------------------------------------------------------------------------


async def signup(spec: dict[str, Any]) -> dict[str, Any]:
    """OTP request + verify for fresh test numbers, `concurrency` at a time: completed signups per second."""
    import httpx

    bases, prefix, seconds = spec["bases"], spec["prefix"], spec["seconds"]
    counter = itertools.count()
    done = failed = 0
    stop = asyncio.Event()

    async def worker(index: int) -> None:
        nonlocal done, failed
        async with httpx.AsyncClient(base_url=bases[index % len(bases)], timeout=30) as http:
            while not stop.is_set():
                phone = f"{prefix}{next(counter):06d}"
                requested = await http.post("/api/v1/auth/otp/request", json={"phone": phone})
                verified = await http.post("/api/v1/auth/otp/verify", json={
                    "phone": phone, "code": "000000", "device": {"name": "bench", "platform": "android"}})
                if requested.status_code == 202 and verified.status_code == 200:
                    done += 1
                else:
                    failed += 1

    workers = [asyncio.create_task(worker(i)) for i in range(spec.get("concurrency", 16))]
    await asyncio.sleep(1)
    start_done, started = done, time.perf_counter()
    await asyncio.sleep(seconds)
    per_s = (done - start_done) / (time.perf_counter() - started)
    stop.set()
    await asyncio.gather(*workers, return_exceptions=True)
    return {"per_s": per_s, "failed": failed}


async def settle(sockets: list[websockets.ClientConnection], timeout: float = 60) -> None:
    """Wait until every socket answered a ping: the server has finished its connect-time
    work (presence, replay), so what follows measures the steady state."""

    async def one(ws: websockets.ClientConnection) -> None:
        await ws.send('{"type":"ping"}')
        async for raw in ws:
            if orjson.loads(raw).get("type") == "pong":
                return

    await asyncio.wait_for(asyncio.gather(*(one(ws) for ws in sockets)), timeout=timeout)


async def close_all(sockets: list[websockets.ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


SCENARIOS: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "throughput": throughput,
    "latency": latency,
    "idle": idle,
    "fanout": fanout,
    "catchup": catchup,
    "signup": signup,
}


def main() -> None:
    scenario, spec = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else sys.stdin.readline())
    random.seed(1)
    try:
        import uvloop

        result = uvloop.run(SCENARIOS[scenario](spec))
    except ImportError:
        result = asyncio.run(SCENARIOS[scenario](spec))
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    main()
