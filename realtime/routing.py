from django.urls import path

from realtime.socket import application as socket_application

websocket_urlpatterns = [
    path("ws/v1", socket_application),
]
