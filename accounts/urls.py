from django.urls import path

from accounts import apis

urlpatterns = [
    path("auth/otp/request", apis.OtpRequestApi.as_view(), name="otp-request"),
    path("auth/otp/verify", apis.OtpVerifyApi.as_view(), name="otp-verify"),
    path("auth/logout", apis.LogoutApi.as_view(), name="logout"),
    path("me", apis.MeApi.as_view(), name="me"),
    path("users/<str:user_id>", apis.UserDetailApi.as_view(), name="user-detail"),
    path("devices", apis.DeviceListApi.as_view(), name="device-list"),
    path("devices/current/push", apis.DevicePushApi.as_view(), name="device-push"),
    path("devices/<str:device_id>", apis.DeviceDetailApi.as_view(), name="device-detail"),
]
