"""Shared fixtures: the suite talks to real PostgreSQL and Redis (see Makefile)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from tests.factories import SignedInDevice, sign_in


@pytest.fixture(autouse=True)
def _clean_redis() -> Iterator[None]:
    """Every test starts with an empty Redis database (rate limits, channel layer)."""
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.flushdb()
        client.close()
    # The process's memo of the sunset schedule (core.sunset) must not outlive a test's rows.
    from core.sunset import forget_schedule

    forget_schedule()
    yield


@pytest.fixture(autouse=True)
def _eager_celery() -> Iterator[None]:
    """Tasks run in-process unless a test starts a real worker (see tests/processes.py)."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def user_factory(db: None) -> Callable[..., SignedInDevice]:
    return sign_in


@pytest.fixture
def alice(db: None) -> SignedInDevice:
    return sign_in(phone="+447700900001", display_name="Alice")


@pytest.fixture
def bob(db: None) -> SignedInDevice:
    return sign_in(phone="+447700900002", display_name="Bob")


@pytest.fixture
def carol(db: None) -> SignedInDevice:
    return sign_in(phone="+447700900003", display_name="Carol")
