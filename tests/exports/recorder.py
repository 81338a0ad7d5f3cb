"""A push seam for tests: settings point EXPORT_READY_PUSH / SUNSET_ANNOUNCEMENT_PUSH here."""

from __future__ import annotations

from typing import Any

PUSHES: list[dict[str, Any]] = []


def record_push(**kwargs: Any) -> None:
    PUSHES.append(kwargs)
