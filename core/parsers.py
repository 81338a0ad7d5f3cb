from typing import Any

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from core.errors import PayloadTooLarge


class StrictJSONParser(BaseParser):
    """JSON bodies must be UTF-8 objects no larger than DATA_UPLOAD_MAX_MEMORY_SIZE.

    DRF reads the raw stream, which bypasses Django's own body size check, so
    the cap is enforced here.
    """

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: dict | None = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        if limit and declared > limit:
            raise PayloadTooLarge()
        raw = stream.read(limit + 1) if limit else stream.read()
        if limit and len(raw) > limit:
            raise PayloadTooLarge()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError("Malformed JSON.") from exc
        if not isinstance(data, dict):
            raise ParseError("The JSON body must be an object.")
        return data
