"""Append to users' event streams: the one way out to clients.

Appends run inside the caller's transaction, so a change and its events
commit together or not at all. Positions come from a per-user counter row
that is locked for the rest of the transaction, so committed positions are
always a gapless prefix: a reader never sees position n+1 before n.
After commit each user's socket group is rung with the new events; a lost
ring costs nothing but latency, because clients catch up by cursor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from core import metrics
from core.serializers import timestamp
from streams.encoding import event_frame, json_text
from streams.hub import Events, events_for, ring_now
from streams.hub import key as hub_key
from streams.models import Event


@dataclass(frozen=True)
class PendingEvent:
    """An event to append. With `ref_id` the stored event only points at that row (its
    type's renderer, `streams.rendering`, renders it at read time) and `data` is what
    live sockets are rung with now; without it `data` is stored as it is."""

    user_id: UUID | str
    type: str
    data: Mapping[str, Any]
    ref_id: UUID | str | None = None


def _reserve_positions(counts: dict[str, int]) -> dict[str, int]:
    """Advance each user's counter by its count; returns the new last position per user.

    Rows are upserted in user-id order so that concurrent multi-user appends
    take their row locks in one global order and cannot deadlock.
    """
    user_ids = sorted(counts)
    values = ", ".join(["(%s, %s)"] * len(user_ids))
    params: list[Any] = []
    for user_id in user_ids:
        params.extend([user_id if connection.vendor == "postgresql" else UUID(user_id).hex, counts[user_id]])
    sql = (
        f"INSERT INTO streams_userstream (user_id, last_position) VALUES {values} "  # noqa: S608 - placeholders only
        "ON CONFLICT (user_id) DO UPDATE SET last_position = streams_userstream.last_position + "
        "EXCLUDED.last_position RETURNING user_id, last_position"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return {str(UUID(str(user_id))): last for user_id, last in rows}


def stream_append(events: Iterable[PendingEvent]) -> list[Event]:
    """Append events to their users' streams, in the given order per user.

    Must run inside the caller's transaction (it opens one if there is none).
    Rings each user's sockets once, after commit, with that user's new events.
    """
    pending = list(events)
    if not pending:
        return []
    metrics.STREAM_APPEND_EVENTS.observe(len(pending))
    with transaction.atomic():
        counts: dict[str, int] = {}
        for event in pending:
            key = str(UUID(str(event.user_id)))
            counts[key] = counts.get(key, 0) + 1
        last_positions = _reserve_positions(counts)
        next_position = {user_id: last_positions[user_id] - count + 1 for user_id, count in counts.items()}
        now = timezone.now()
        rows: list[Event] = []
        for event in pending:
            key = str(UUID(str(event.user_id)))
            rows.append(Event(user_id=key, position=next_position[key], type=event.type,
                              data=None if event.ref_id else dict(event.data), ref_id=event.ref_id,
                              created_at=now))
            next_position[key] += 1
        Event.objects.bulk_create(rows)
        created_at = timestamp(now)
        frames = events_for(
            (hub_key(row.user_id), row.position,
             event_frame(position=row.position, type=row.type, data_json=json_text(event.data), created_at=created_at))
            for row, event in zip(rows, pending, strict=True)
        )
        transaction.on_commit(lambda: _ring(frames))
    return rows


@metrics.SEND_RING.time()
def _ring(frames: Events) -> None:
    """After commit: every process's sockets of these users get their new events (best effort)."""
    ring_now(events=frames)
