"""The browser client at /app/: index.html for the app and its client-side routes.

The built assets (web/dist/assets, hashed names) are served by WhiteNoise
(webclient.middleware); everything else under /app/ is a route of the
single-page app and gets index.html, with the page's Content-Security-Policy.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from core.errors import json_error
from webclient.security import content_security_policy


@lru_cache(maxsize=1)
def _index_html(path: Path, mtime: float) -> bytes:
    return path.read_bytes()


def index_html() -> bytes | None:
    path = Path(settings.WEB_CLIENT_DIR) / "index.html"
    try:
        return _index_html(path, path.stat().st_mtime)
    except FileNotFoundError:
        return None


@require_safe
def app_page(request: HttpRequest, route: str = "") -> HttpResponse:
    if route.startswith("assets/"):
        # A missing asset is a 404, not the page (a stale tab asking for an old bundle must fail loudly).
        return json_error(404, "not_found", "Not found.")
    body = index_html()
    if body is None:
        return json_error(404, "not_found", "The web client is not built: run `make web`.")
    response = HttpResponse(body, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = content_security_policy(host=request.get_host())
    # The page names the current hashed bundles, so it must be revalidated; the bundles are immutable.
    response["Cache-Control"] = "no-cache"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Content-Type-Options"] = "nosniff"
    # Camera and microphone (calls, voice notes) for this page itself, never for a frame; no location.
    response["Permissions-Policy"] = "camera=(self), microphone=(self), display-capture=(self), geolocation=()"
    return response
