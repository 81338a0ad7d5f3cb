"""ASGI entry point: HTTP through Django, WebSocket through Channels."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

# Refuse oversized attachment uploads before Django spools the body to disk (media/asgi.py).
from media.asgi import limit_upload_bodies  # noqa: E402

application = limit_upload_bodies(application)

# Sunset read-only: the one check every HTTP write passes through, before media's layer and Django.
from core.sunset import ReadOnlyGate  # noqa: E402

application = ReadOnlyGate(application)

# Socket work that needs the ORM (connect, presence, replay, acks) runs in the loop's default
# executor: sized for database round trips, not for CPUs (asyncio's default is cpu_count + 4).
from core.executor import with_database_executor  # noqa: E402

application = with_database_executor(application)
