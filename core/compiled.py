"""Querysets compiled to SQL once per shape, for hot reads whose compiling costs more than running them.

Django compiles a queryset to SQL every time it is evaluated. For the presence queries
(who may see a user's presence: conversation peers, recent friends, last_seen settings,
blocks, a dozen subqueries) that is 4-5 ms of Python against half a millisecond in
PostgreSQL, paid on every socket connect: most of a connect burst's time. `per_user_sql`
builds the queryset once for a sentinel user id, keeps its SQL and parameters, and on each
call puts the real id where the sentinel was. The queryset stays the one definition of
the rule. Nothing else in it may vary between calls: `shape` names every setting the
query reads, and a query with a parameter taken from the clock must not come through here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet, UUIDField

SENTINEL = uuid.UUID("5e471ae1-c0de-4000-8000-000000000000")
_UUID_FIELD = UUIDField()


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[int, ...]  # where the sentinel sits among params


_compiled: dict[Hashable, _Compiled] = {}


def _prepared(user_id: object, using: str) -> Any:
    """The user id as the database's parameter (a UUID on PostgreSQL, hex on SQLite)."""
    return _UUID_FIELD.get_db_prep_value(uuid.UUID(str(user_id)), connections[using])


def _compile(build: Callable[..., QuerySet[Any]], args: tuple[Any, ...], using: str) -> _Compiled:
    sql, params = build(SENTINEL, *args).query.get_compiler(using).as_sql()
    sentinel = _prepared(SENTINEL, using)
    slots = tuple(i for i, param in enumerate(params) if param == sentinel)
    if not slots or SENTINEL.hex in sql or str(SENTINEL) in sql:
        raise ValueError("the user id must reach the query as a parameter, and only as one")
    return _Compiled(sql, tuple(params), slots)


def per_user_sql(build: Callable[..., QuerySet[Any]], *, user_id: object, args: tuple[Any, ...] = (),
                 shape: Hashable, using: str) -> tuple[str, list[Any]]:
    """(sql, params) of `build(user_id, *args)` on database `using`, compiled once per
    (build, args, shape, using): `args` and `shape` must be hashable and few."""
    key = (build, args, shape, using, connections[using].vendor)
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compiled[key] = _compile(build, args, using)
    value = _prepared(user_id, using)
    params = list(compiled.params)
    for slot in compiled.slots:
        params[slot] = value
    return compiled.sql, params


def per_user_values(build: Callable[..., QuerySet[Any]], *, user_id: object, args: tuple[Any, ...] = (),
                    shape: Hashable, model: type[Model]) -> list[tuple[Any, ...]]:
    """The rows of a values_list queryset, compiled once per shape (raw database values)."""
    using = QuerySet(model).db
    sql, params = per_user_sql(build, user_id=user_id, args=args, shape=shape, using=using)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def per_user_instances(build: Callable[..., QuerySet[Any]], *, user_id: object, args: tuple[Any, ...] = (),
                       shape: Hashable, model: type[Model]) -> list[Any]:
    """The model instances of a queryset (deferred fields as in `build`), compiled once per shape."""
    using = QuerySet(model).db
    sql, params = per_user_sql(build, user_id=user_id, args=args, shape=shape, using=using)
    return list(model.objects.raw(sql, params).using(using))
