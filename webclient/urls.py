from django.urls import path, re_path

from webclient import views

urlpatterns = [
    path("", views.app_page, name="web-client"),
    re_path(r"^(?P<route>.+)$", views.app_page, name="web-client-route"),
]
