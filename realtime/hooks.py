"""Other apps' reactions to a socket opening or closing (SOCKET_OPENED_HOOKS / SOCKET_CLOSED_HOOKS).

Dotted paths in settings, so `realtime` imports none of those apps for it.
Each hook is called with user_id=..., device_id=... (strings). Async hooks
are awaited on the event loop (they should be cheap: every socket runs them);
sync ones run through one database thread hop. A failing hook is logged and
never breaks the socket.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from functools import cache
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


@cache
def _resolve(path: str) -> Any:
    return import_string(path)


async def run_socket_hooks(setting: str, *, user_id: str, device_id: str) -> None:
    for path in getattr(settings, setting, ()):
        try:
            hook = _resolve(path)
            if inspect.iscoroutinefunction(hook):
                await hook(user_id=user_id, device_id=device_id)
            else:
                await database_sync_to_async(hook)(user_id=user_id, device_id=device_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("socket hook %s failed", path, exc_info=True)
