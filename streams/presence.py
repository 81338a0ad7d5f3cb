"""Who is connected right now, kept in the Django cache (Redis in the real stack).

Every live socket holds a key that expires unless its consumer refreshes it
(every WS_HEARTBEAT_SECONDS, TTL WS_PRESENCE_TTL), so the sockets of a server
that died vanish within the TTL without anyone cleaning up after it.

Keys:
- `presence:c:<connection>` -> device id: one per live socket.
- `presence:d:<device>` -> user id: the device has at least one live socket
  (what push asks, through `device_ids_online`).
- `presence:u:<user>` -> list of the user's recent connection ids: an index so
  "is this user online?" is two round trips without a scan. It is written
  read-modify-write; a race between two sockets of one user can drop an entry,
  which the next heartbeat of that socket puts back.

Only the cache API is used so the embedded default (locmem) works too.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.core.cache import cache

USER_INDEX_TTL = 24 * 3600


def _norm(value: object) -> str:
    return UUID(str(value)).hex


def _conn_key(connection_id: str) -> str:
    return f"presence:c:{connection_id}"


def _device_key(device_id: object) -> str:
    return f"presence:d:{_norm(device_id)}"


def _user_key(user_id: object) -> str:
    return f"presence:u:{_norm(user_id)}"


def device_online(*, user_id: object, device_id: object, ttl: int = 60, connection_id: str | None = None) -> bool:
    """Mark a socket of the device live for `ttl` seconds (call again to refresh).

    Returns True when the user had no live socket before (offline -> online).
    `connection_id` tells several sockets of one device apart; it defaults to
    the device id.
    """
    connection = connection_id or _norm(device_id)
    user_key = _user_key(user_id)
    connections: list[str] = cache.get(user_key) or []
    alive = cache.get_many([_conn_key(c) for c in connections]) if connections else {}
    was_online = bool(alive)
    cache.set_many({_conn_key(connection): _norm(device_id), _device_key(device_id): _norm(user_id)}, ttl)
    keep = [c for c in connections if _conn_key(c) in alive and c != connection] + [connection]
    if keep != connections:
        cache.set(user_key, keep, USER_INDEX_TTL)
    return not was_online


def device_offline(*, user_id: object, device_id: object, connection_id: str | None = None) -> bool:
    """Forget one socket. Returns True when the user has no live socket left (online -> offline).

    The device key survives while another socket of the same device lives.
    """
    connection = connection_id or _norm(device_id)
    cache.delete(_conn_key(connection))
    user_key = _user_key(user_id)
    connections = [c for c in (cache.get(user_key) or []) if c != connection]
    alive = cache.get_many([_conn_key(c) for c in connections]) if connections else {}
    if _norm(device_id) not in alive.values():
        cache.delete(_device_key(device_id))
    keep = [c for c in connections if _conn_key(c) in alive]
    if keep:
        cache.set(user_key, keep, USER_INDEX_TTL)
    else:
        cache.delete(user_key)
    return not alive


def device_ids_online(device_ids: Iterable[object]) -> set[str]:
    """The given devices that have a live socket, in one round trip (sync; fine from Celery)."""
    keys = {_device_key(device_id): str(device_id) for device_id in device_ids}
    if not keys:
        return set()
    found = cache.get_many(list(keys))
    return {keys[key] for key in found}


def user_ids_online(user_ids: Iterable[object]) -> set[str]:
    """The given users with at least one live socket, in two round trips."""
    index_keys = {_user_key(user_id): str(user_id) for user_id in user_ids}
    if not index_keys:
        return set()
    indexes = cache.get_many(list(index_keys))
    owner_of = {_conn_key(c): index_keys[key] for key, connections in indexes.items() for c in connections}
    if not owner_of:
        return set()
    return {owner_of[key] for key in cache.get_many(list(owner_of))}


def user_is_online(*, user_id: object) -> bool:
    return bool(user_ids_online([user_id]))


def refresh_many(sockets: list[tuple[str, str, str]], *, ttl: int) -> set[str]:
    """Keep many live sockets' presence alive at once, (user, device, connection) each: one
    cache round trip to re-arm their keys and one to check the users' indexes. Returns the
    users whose index had gone (Redis restarted, or a long outage): their sockets are
    registered again and they count as having come online."""
    if not sockets:
        return set()
    cache.set_many({key: value for user_id, device_id, connection_id in sockets
                    for key, value in ((_conn_key(connection_id), _norm(device_id)),
                                       (_device_key(device_id), _norm(user_id)))}, ttl)
    users = {user_id for user_id, _, _ in sockets}
    indexed = cache.get_many([_user_key(user_id) for user_id in users])
    came_online: set[str] = set()
    for user_id, device_id, connection_id in sockets:
        if _user_key(user_id) not in indexed:
            device_online(user_id=user_id, device_id=device_id, connection_id=connection_id, ttl=ttl)
            came_online.add(user_id)
    return came_online
