"""Moved to `streams.groups`; these names stay importable while other work moves over."""

from streams.groups import device_disconnect_on_commit, relay, relay_now, relay_on_commit

__all__ = ["device_disconnect_on_commit", "relay", "relay_now", "relay_on_commit"]
