"""Reads that may go to a streaming replica, and the router that sends them there.

A read is sent to the `replica` alias (`DATABASE_REPLICA_URL`) only when all hold:
- it runs inside a selector marked `@replica_ok` (a read that tolerates being a
  moment behind: a history page, a conversation list, a profile);
- it is not inside a transaction on the primary (a read there must see that
  transaction's own writes and locks);
- a replica is configured.
Everything else reads and writes the primary. A replica is a moment behind;
it is never wrong about what it shows, because PostgreSQL replays commits in
order, so a page read there is a consistent (slightly older) snapshot.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

F = TypeVar("F", bound=Callable[..., Any])
REPLICA = "replica"

_replica_ok: contextvars.ContextVar[bool] = contextvars.ContextVar("replica_ok", default=False)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


@contextmanager
def reading_from_replica() -> Iterator[None]:
    token = _replica_ok.set(True)
    try:
        yield
    finally:
        _replica_ok.reset(token)


def replica_ok(function: F) -> F:
    """Mark a read-only selector whose queries may be answered by the replica."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with reading_from_replica():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class ReplicaRouter:
    def db_for_read(self, model: type, **hints: Any) -> str:
        if _replica_ok.get() and replica_configured() and not connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return REPLICA
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model: type, **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the replica holds the same rows

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS  # the replica follows the primary's schema by replication
