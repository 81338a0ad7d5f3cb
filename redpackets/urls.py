from django.urls import path

from redpackets import apis

urlpatterns = [
    path("conversations/<str:conversation_id>/red-packets", apis.PacketSendApi.as_view(), name="red-packet-send"),
    path("red-packets/<str:packet_id>", apis.PacketDetailApi.as_view(), name="red-packet-detail"),
    path("red-packets/<str:packet_id>/claim", apis.PacketClaimApi.as_view(), name="red-packet-claim"),
]
