"""Socket tokens never reach the server's logs."""

import logging

import pytest


@pytest.mark.parametrize("logger_name", ["uvicorn.error", "uvicorn.access"])
def test_handshake_log_line_has_the_token_redacted(caplog, logger_name):
    caplog.set_level(logging.INFO, logger=logger_name)
    logging.getLogger(logger_name).info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000",
                                        "/ws/v1?x=1&token=s3cr3t-t0ken_value&y=2")
    assert "s3cr3t" not in caplog.text
    assert "/ws/v1?x=1&token=[redacted]&y=2" in caplog.text


def test_a_token_in_the_message_itself_is_redacted(caplog):
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    logging.getLogger("uvicorn.error").info("GET /ws/v1?token=abc123")
    assert "abc123" not in caplog.text
