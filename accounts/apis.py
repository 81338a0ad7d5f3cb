"""Accounts and devices endpoints: parse, call one service or selector, serialise."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import Device, MomentsWindow, Platform, PushProvider, User, Visibility
from core.net import client_ip
from core.schema import ERROR_RESPONSES
from core.serializers import StrictBooleanField, StrictCharField, StrictSerializer, TimestampField, timestamp

# --- Output shapes -----------------------------------------------------------------


class UserSettingsOutput(serializers.Serializer):
    discoverable = serializers.ChoiceField(choices=Visibility.choices)
    last_seen = serializers.ChoiceField(choices=Visibility.choices)
    read_receipts = serializers.BooleanField()
    message_preview_in_push = serializers.BooleanField()
    moments_window = serializers.ChoiceField(
        choices=MomentsWindow.choices, help_text="How far back others may page through your moments (default all).")
    moments_notifications = serializers.BooleanField(
        help_text="Extension: push for likes and comments on your moments (default true).")
    group_add = serializers.ChoiceField(choices=Visibility.choices, help_text=(
        "Who may add this user to a group or broadcast (default `contacts`: users in this user's address "
        "book); anyone else gets the user listed under `invited` and the user gets a `group.invited` event."))


class PublicUserOutput(serializers.Serializer):
    id = serializers.UUIDField()
    display_name = serializers.CharField()
    about = serializers.CharField()
    avatar_url = serializers.CharField(allow_blank=True)
    last_seen = serializers.CharField(required=False, allow_null=True,
                                      help_text="Present only when the user's privacy lets the caller see it.")


class MeOutput(serializers.Serializer):
    id = serializers.UUIDField()
    phone = serializers.CharField()
    display_name = serializers.CharField()
    about = serializers.CharField()
    avatar_url = serializers.CharField(allow_blank=True)
    created_at = TimestampField()
    settings = UserSettingsOutput()


class DeviceOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    platform = serializers.ChoiceField(choices=Platform.choices)
    created_at = TimestampField()
    last_active_at = TimestampField()
    current = serializers.BooleanField()


def public_user_data(user: User) -> dict[str, Any]:
    """The public `User` shape; every app renders other users through this."""
    return {
        "id": str(user.pk),
        "display_name": user.display_name,
        "about": user.about,
        "avatar_url": user.avatar_url,
    }


def me_data(user: User) -> dict[str, Any]:
    return {
        **public_user_data(user),
        "phone": user.phone,
        "created_at": timestamp(user.created_at),
        "settings": selectors.user_settings(user),
    }


def device_data(device: Device, *, current_id: object) -> dict[str, Any]:
    return {
        "id": str(device.pk),
        "name": device.name,
        "platform": device.platform,
        "created_at": timestamp(device.created_at),
        "last_active_at": timestamp(device.last_active_at),
        "current": str(device.pk) == str(current_id),
    }


# --- OTP -----------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.STR)
class PhoneInputField(serializers.JSONField):
    """Any JSON reaches the phone parser, so a non-string is `invalid_phone`, as the contract says."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_null=True, **kwargs)


class OtpRequestInput(StrictSerializer):
    phone = PhoneInputField(help_text="A phone number; E.164, or national with `region`.")
    region = StrictCharField(required=False, allow_blank=True, max_length=2)


class OtpRequestOutput(serializers.Serializer):
    phone = serializers.CharField()
    expires_in = serializers.IntegerField()
    resend_after = serializers.IntegerField()


class OtpRequestApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="otp_request",
        request=OtpRequestInput,
        responses={202: OtpRequestOutput, **ERROR_RESPONSES},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = OtpRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.otp_request(
            phone=data.validated_data["phone"], region=data.validated_data.get("region"),
            client_ip=client_ip(request),
        )
        return Response(
            {"phone": result.phone, "expires_in": result.expires_in, "resend_after": result.resend_after},
            status=status.HTTP_202_ACCEPTED,
        )


class DeviceInput(StrictSerializer):
    name = StrictCharField(min_length=1, max_length=64)
    platform = serializers.ChoiceField(choices=Platform.choices)


class OtpVerifyInput(StrictSerializer):
    phone = PhoneInputField()
    region = StrictCharField(required=False, allow_blank=True, max_length=2)
    code = StrictCharField(max_length=16)
    device = DeviceInput()


class SignedInOutput(serializers.Serializer):
    user = MeOutput()
    device = DeviceOutput()
    token = serializers.CharField()
    is_new_user = serializers.BooleanField()


class OtpVerifyApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="otp_verify", request=OtpVerifyInput, responses={200: SignedInOutput, **ERROR_RESPONSES},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = OtpVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        signed_in = services.otp_verify(
            phone=values["phone"],
            region=values.get("region"),
            code=values["code"],
            device_name=values["device"]["name"],
            platform=values["device"]["platform"],
            client_ip=client_ip(request),
        )
        return Response(
            {
                "user": me_data(signed_in.user),
                "device": device_data(signed_in.device, current_id=signed_in.device.pk),
                "token": signed_in.token,
                "is_new_user": signed_in.is_new_user,
            }
        )


class LogoutApi(APIView):
    @extend_schema(operation_id="logout", request=None, responses={204: None, **ERROR_RESPONSES})
    def post(self, request: Request) -> Response:
        services.device_revoke(user=request.user, device_id=request.auth.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Me, users ---------------------------------------------------------------------


class SettingsInput(StrictSerializer):
    discoverable = serializers.ChoiceField(choices=Visibility.choices, required=False)
    last_seen = serializers.ChoiceField(choices=Visibility.choices, required=False)
    read_receipts = StrictBooleanField(required=False)
    message_preview_in_push = StrictBooleanField(required=False)
    moments_window = serializers.ChoiceField(choices=MomentsWindow.choices, required=False)
    moments_notifications = StrictBooleanField(required=False)
    group_add = serializers.ChoiceField(choices=Visibility.choices, required=False)


class MeUpdateInput(StrictSerializer):
    display_name = StrictCharField(min_length=1, max_length=64, required=False)
    about = StrictCharField(max_length=140, required=False, allow_blank=True, trim_whitespace=False)
    settings = SettingsInput(required=False)


class MeApi(APIView):
    @extend_schema(operation_id="me_get", responses={200: MeOutput, **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        return Response(me_data(request.user))

    @extend_schema(operation_id="me_update", request=MeUpdateInput, responses={200: MeOutput, **ERROR_RESPONSES})
    def patch(self, request: Request) -> Response:
        data = MeUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        user = services.user_update(
            user=request.user,
            display_name=values.get("display_name"),
            about=values.get("about"),
            settings_changes=values.get("settings"),
        )
        return Response(me_data(user))

    @extend_schema(operation_id="me_delete", responses={204: None, **ERROR_RESPONSES})
    def delete(self, request: Request) -> Response:
        services.user_delete(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserDetailApi(APIView):
    @extend_schema(operation_id="user_get", responses={200: PublicUserOutput, **ERROR_RESPONSES})
    def get(self, request: Request, user_id: str) -> Response:
        user, last_seen, visible = selectors.user_get_public(user_id=user_id, viewer_id=request.user.pk)
        body = public_user_data(user)
        if visible:
            body["last_seen"] = timestamp(last_seen)
        return Response(body)


# --- Devices ----------------------------------------------------------------------


class DeviceListApi(APIView):
    @extend_schema(operation_id="device_list", responses={200: DeviceOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        devices = selectors.device_list(user=request.user)
        return Response([device_data(device, current_id=request.auth.pk) for device in devices])


class DeviceDetailApi(APIView):
    @extend_schema(operation_id="device_revoke", responses={204: None, **ERROR_RESPONSES})
    def delete(self, request: Request, device_id: str) -> Response:
        services.device_revoke(user=request.user, device_id=device_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PushTokenInput(StrictSerializer):
    provider = serializers.ChoiceField(choices=PushProvider.choices)
    token = StrictCharField(min_length=1, max_length=4096)


class DevicePushApi(APIView):
    @extend_schema(operation_id="device_push_set", request=PushTokenInput, responses={204: None, **ERROR_RESPONSES})
    def put(self, request: Request) -> Response:
        data = PushTokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.device_push_set(device=request.auth, provider=data.validated_data["provider"],
                                 token=data.validated_data["token"])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="device_push_clear", responses={204: None, **ERROR_RESPONSES})
    def delete(self, request: Request) -> Response:
        services.device_push_clear(device=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)

