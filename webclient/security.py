"""Who may talk to the server from a browser: the Content-Security-Policy of /app/ and the
WebSocket Origin rule, both derived from one setting (CORS_ALLOWED_ORIGINS).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings


def content_security_policy(*, host: str) -> str:
    """The page's policy: no inline script or style, no plug-ins, no framing; the API, the socket
    and attachment blobs of this server (and of the servers in WEB_CLIENT_CONNECT_SRC) only."""
    connect = ["'self'", f"ws://{host}", f"wss://{host}", *settings.WEB_CLIENT_CONNECT_SRC]
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        f"connect-src {' '.join(connect)}",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "worker-src 'self'",
        "manifest-src 'self'",
    ])


def _netloc(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.lower() if parts.scheme in {"http", "https"} else ""


def websocket_origin_allowed(*, origin: str | None, host: str | None) -> bool:
    """A socket opened by a page may come from this server's own pages or from an origin in
    CORS_ALLOWED_ORIGINS; anything else is a cross-site WebSocket hijack attempt.

    No Origin header means no browser (a phone app, a script): the token alone decides.
    Same-origin compares host and port with the Host header, which a browser sets to the
    server it connects to and a foreign page cannot change.
    """
    if origin is None:
        return True
    origin = origin.strip()
    if origin in settings.CORS_ALLOWED_ORIGINS:
        return True
    netloc = _netloc(origin)
    return bool(netloc) and host is not None and netloc == host.strip().lower()
