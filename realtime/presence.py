"""Moved to `streams.presence`; these names stay importable while other work moves over."""

from streams.presence import device_ids_online, device_offline, device_online, user_ids_online, user_is_online

__all__ = ["device_ids_online", "device_offline", "device_online", "user_ids_online", "user_is_online"]
