from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.apis import HealthApi
from core.metrics_view import metrics

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("contacts.urls")),
    path("", include("messaging.urls")),
    path("", include("media.urls")),
    path("", include("notifications.urls")),
    path("", include("exports.urls")),
    path("", include("payments.urls")),
    path("", include("redpackets.urls")),
    path("", include("calls.urls")),
    path("", include("moments.urls")),
    path("", include("moderation.urls")),
]

urlpatterns = [
    path("healthz", HealthApi.as_view(), name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include(api_v1)),
    path("admin/", admin.site.urls),
    path("app/", include("webclient.urls")),
]

handler400 = "core.errors.handler400"
handler403 = "core.errors.handler403"
handler404 = "core.errors.handler404"
handler500 = "core.errors.handler500"
