from typing import Any

import orjson
from rest_framework.renderers import BaseRenderer


def dumps(data: Any) -> bytes:
    """The one JSON encoder for REST responses and socket frames."""
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str)


class ORJSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: dict | None = None) -> bytes:
        if data is None:
            return b""
        return dumps(data)
