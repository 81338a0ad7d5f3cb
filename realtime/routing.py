from django.urls import path

from realtime.consumers import StreamConsumer
from realtime.middleware import TokenAuthMiddleware

websocket_urlpatterns = [
    path("ws/v1", TokenAuthMiddleware(StreamConsumer.as_asgi())),
]
