from django.urls import path

from calls import apis

urlpatterns = [
    path("calls", apis.CallLogApi.as_view(), name="call-log"),
    path("calls/turn", apis.CallTurnApi.as_view(), name="call-turn"),
    path("calls/<str:call_id>", apis.CallDetailApi.as_view(), name="call-detail"),
]
