"""Keep socket tokens out of server logs.

Browsers authenticate the socket with `?token=`, and uvicorn logs every
handshake's path with its query string on `uvicorn.error` at INFO (whatever
`--no-access-log` says). This filter rewrites the token before any handler
sees the record.
"""

from __future__ import annotations

import logging
import re

TOKEN_IN_QUERY = re.compile(r"([?&](?:access_)?token=)[^&\s\"']+", re.IGNORECASE)
REDACTED = r"\1[redacted]"
SERVER_LOGGERS = ("uvicorn.error", "uvicorn.access", "daphne.server", "django.channels.server")


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = TOKEN_IN_QUERY.sub(REDACTED, record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            if any(isinstance(arg, str) and "token=" in arg.lower() for arg in args):
                redacted = tuple(TOKEN_IN_QUERY.sub(REDACTED, arg) if isinstance(arg, str) else arg for arg in args)
                record.args = redacted if isinstance(record.args, tuple) else redacted[0]
        return True


def install() -> None:
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
