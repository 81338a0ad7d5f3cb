"""The group-commit batcher on its own: batching, per-request results, failures.

The batch functions here touch no database, so they hop with plain sync_to_async."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError

from core.errors import ApplicationError, NotFound
from realtime.batching import GroupCommitBatcher


async def test_requests_queued_together_run_as_one_batch_in_order():
    batches: list[list[int]] = []

    def run(requests):
        batches.append(list(requests))
        return [r * 10 for r in requests]

    batcher = GroupCommitBatcher(run, max_batch=64, hop=sync_to_async)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert batches == [list(range(10))]


async def test_batches_are_capped_at_max_batch():
    batches: list[int] = []

    def run(requests):
        batches.append(len(requests))
        return requests

    batcher = GroupCommitBatcher(run, max_batch=4, hop=sync_to_async)
    await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert batches == [4, 4, 2]


async def test_an_error_result_fails_only_its_own_request():
    batcher = GroupCommitBatcher(lambda requests: [NotFound() if r == 1 else r for r in requests], max_batch=8,
                                 hop=sync_to_async)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert outcomes[0] == 0 and outcomes[2] == 2
    assert isinstance(outcomes[1], NotFound)


@pytest.mark.parametrize(("raised", "code"), [(RuntimeError("bug"), "internal_error"),
                                              (OperationalError("db down"), "service_unavailable")])
async def test_a_failed_batch_fails_every_request_with_an_application_error(raised, code):
    def run(requests):
        raise raised

    batcher = GroupCommitBatcher(run, max_batch=8, hop=sync_to_async)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, ApplicationError) and o.code == code for o in outcomes)
    assert await asyncio.wait_for(serves_next_request(batcher), 1)


async def serves_next_request(batcher):
    """The drain task survives a failed batch: the next request is served."""
    batcher.run = lambda requests: requests
    return await batcher.submit("next") == "next"
