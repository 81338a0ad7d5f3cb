from django.urls import path  # noqa: F401

# The consumer at /ws/v1 lands with the messaging core.
websocket_urlpatterns: list = []
