"""The socket fixtures of tests/realtime (an in-process communicator per socket, a fresh channel layer per test)."""

from tests.realtime.conftest import _fresh_channel_layer, socket  # noqa: F401  (fixtures)
