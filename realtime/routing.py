from django.urls import path

from realtime.middleware import OriginCheckMiddleware
from realtime.socket import application as socket_application

websocket_urlpatterns = [
    path("ws/v1", OriginCheckMiddleware(socket_application)),
]
