from django.urls import path

from realtime.consumers import StreamConsumer
from realtime.middleware import OriginCheckMiddleware, TokenAuthMiddleware

websocket_urlpatterns = [
    path("ws/v1", OriginCheckMiddleware(TokenAuthMiddleware(StreamConsumer.as_asgi()))),
]
