"""The group-commit batcher on its own: batching, batches in flight, per-request results, failures.

The batch functions here touch no database."""

import asyncio

import psycopg
import pytest
from django.db import OperationalError

from core.errors import ApplicationError, NotFound
from realtime.batching import Batcher


def submit_all(batcher: Batcher, requests) -> list[asyncio.Future]:
    """Submit each request with a callback resolving its own future; return the futures."""
    loop = asyncio.get_running_loop()
    futures = []
    for request in requests:
        future = loop.create_future()

        async def done(result, future=future):
            future.set_result(result)

        batcher.submit(request, done)
        futures.append(future)
    return futures


async def test_requests_submitted_together_run_as_one_batch_in_order():
    batches: list[list[int]] = []

    async def run(requests):
        batches.append(list(requests))
        return [r * 10 for r in requests]

    batcher = Batcher(run, max_batch=64, max_in_flight=4)
    results = await asyncio.gather(*submit_all(batcher, range(10)))
    assert results == [i * 10 for i in range(10)]
    assert batches == [list(range(10))]


async def test_batches_are_capped_at_max_batch_and_run_side_by_side():
    started: list[int] = []
    release = asyncio.Event()
    most_at_once = 0
    running = 0

    async def run(requests):
        nonlocal running, most_at_once
        started.append(len(requests))
        running += 1
        most_at_once = max(most_at_once, running)
        await release.wait()
        running -= 1
        return requests

    batcher = Batcher(run, max_batch=4, max_in_flight=2)
    futures = submit_all(batcher, range(10))
    await asyncio.sleep(0.05)
    assert started == [4, 4]  # two in flight; the rest waits for a free place
    release.set()
    await asyncio.gather(*futures)
    assert started == [4, 4, 2] and most_at_once == 2


async def test_requests_arriving_while_batches_are_in_flight_go_together_next():
    sizes: list[int] = []
    gate = asyncio.Event()

    async def run(requests):
        sizes.append(len(requests))
        if len(sizes) == 1:
            await gate.wait()
        return requests

    batcher = Batcher(run, max_batch=64, max_in_flight=1)
    first = submit_all(batcher, [0])
    await asyncio.sleep(0.01)
    rest = submit_all(batcher, range(1, 8))
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(*first, *rest)
    assert sizes == [1, 7]


async def test_an_error_result_fails_only_its_own_request():
    async def run(requests):
        return [NotFound() if r == 1 else r for r in requests]

    outcomes = await asyncio.gather(*submit_all(Batcher(run, max_batch=8, max_in_flight=1), range(3)))
    assert outcomes[0] == 0 and outcomes[2] == 2
    assert isinstance(outcomes[1], NotFound)


@pytest.mark.parametrize(("raised", "code"), [(RuntimeError("bug"), "internal_error"),
                                              (OperationalError("db down"), "service_unavailable"),
                                              (psycopg.OperationalError("db down"), "service_unavailable")])
async def test_a_failed_batch_fails_every_request_with_an_application_error(raised, code):
    async def run(requests):
        raise raised

    batcher = Batcher(run, max_batch=8, max_in_flight=1)
    outcomes = await asyncio.gather(*submit_all(batcher, range(3)))
    assert all(isinstance(o, ApplicationError) and o.code == code for o in outcomes)

    async def works(requests):
        return requests

    batcher.run = works  # the batcher survives a failed batch: the next request is served
    assert await asyncio.wait_for(asyncio.gather(*submit_all(batcher, ["next"])), 1) == ["next"]
