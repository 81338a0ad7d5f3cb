"""Renderers for events that reference a row instead of carrying a copy of it.

A `message.new` in a 500-member group would otherwise store the message 500
times; instead each event holds the message's id and the app that owns the
row registers how to render a batch of ids (at start-up, from its AppConfig).
The stream stays below the apps: it knows renderers, not their tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

# ids -> {str(id): the event's data}; one call (a query or two) per page of events.
Renderer = Callable[[list[str]], dict[str, dict[str, Any]]]

_renderers: dict[str, Renderer] = {}


def register_renderer(event_type: str, renderer: Renderer) -> None:
    _renderers[event_type] = renderer


def render_references(refs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """{(type, ref id): data} for the given (type, ref id) pairs, one renderer call per type.
    A row that is gone renders as an empty payload rather than breaking the page."""
    by_type: dict[str, set[str]] = {}
    for event_type, ref_id in refs:
        by_type.setdefault(event_type, set()).add(ref_id)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for event_type, ids in by_type.items():
        renderer = _renderers.get(event_type)
        rendered = renderer(sorted(ids)) if renderer else {}
        for ref_id in ids:
            out[(event_type, ref_id)] = rendered.get(ref_id, {})
    return out
