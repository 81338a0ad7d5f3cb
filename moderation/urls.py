from django.urls import path

from moderation import apis

urlpatterns = [
    path("reports", apis.ReportCreateApi.as_view(), name="reports"),
]
