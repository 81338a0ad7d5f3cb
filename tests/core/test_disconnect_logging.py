"""An ordinary client disconnect is one INFO line without a traceback; a real failure stays an ERROR."""

import logging

from uvicorn.protocols.utils import ClientDisconnected
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Close

from core.errors import is_client_disconnect, log_failure

log = logging.getLogger("tests.disconnect")


def test_client_disconnects_are_recognised_and_bugs_are_not():
    assert is_client_disconnect(ClientDisconnected())
    assert is_client_disconnect(ConnectionClosedOK(Close(1000, ""), Close(1000, ""), True))
    assert is_client_disconnect(BrokenPipeError())
    assert is_client_disconnect(RuntimeError("Unexpected ASGI message 'websocket.send', after sending "
                                             "'websocket.close' or response already completed."))
    assert is_client_disconnect(OSError("closing connection"))
    assert not is_client_disconnect(KeyError("type"))
    assert not is_client_disconnect(RuntimeError("something else"))


def test_a_disconnect_during_a_frame_is_logged_at_info_without_traceback(caplog):
    caplog.set_level(logging.INFO, logger="tests.disconnect")
    log_failure(log, "socket frame handler failed", ClientDisconnected())
    [record] = caplog.records
    assert record.levelno == logging.INFO and record.exc_info is None
    assert "client disconnected" in record.getMessage()


def test_a_real_failure_is_still_an_error_with_its_traceback(caplog):
    caplog.set_level(logging.INFO, logger="tests.disconnect")
    try:
        {}["missing"]
    except KeyError as exc:
        log_failure(log, "socket frame handler failed", exc)
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
