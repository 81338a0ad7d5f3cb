from django.urls import path

from exports import apis

urlpatterns = [
    path("me/exports", apis.ExportListApi.as_view(), name="export-list"),
    path("me/exports/latest", apis.ExportLatestApi.as_view(), name="export-latest"),
    path("me/exports/<str:export_id>", apis.ExportDetailApi.as_view(), name="export-detail"),
    path("me/exports/<str:export_id>/download", apis.ExportDownloadApi.as_view(), name="export-download"),
    path("announcements", apis.AnnouncementListApi.as_view(), name="announcement-list"),
]
