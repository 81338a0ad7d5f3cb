"""Moved to `streams.groups`; these names stay importable while other work moves over."""

from streams.groups import (
    device_disconnect_on_commit,
    device_group,
    group_send_many_now,
    group_send_now,
    group_send_on_commit,
    relay,
    relay_now,
    relay_on_commit,
    user_group,
)

__all__ = ["device_disconnect_on_commit", "device_group", "group_send_many_now", "group_send_now",
           "group_send_on_commit", "relay", "relay_now", "relay_on_commit", "user_group"]
