from uuid import UUID

from core.errors import NotFound


def uuid_or_not_found(value: object) -> UUID:
    """Parse an id from a URL or body; anything malformed is simply "not found"."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (ValueError, TypeError, AttributeError) as exc:
        raise NotFound() from exc
