"""Contacts endpoints: parse, call one service or selector, serialise."""

from __future__ import annotations

import base64
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import PublicUserOutput, public_user_data
from accounts.models import User
from contacts import selectors, services
from core.net import client_ip
from core.schema import ERROR_RESPONSES
from core.serializers import StrictCharField, StrictSerializer, TimestampField, timestamp


class DiscoveryOutput(serializers.Serializer):
    algorithm = serializers.CharField(help_text="Always hmac-sha256.")
    pepper_id = serializers.CharField()
    pepper = serializers.CharField(help_text="The HMAC key, base64url without padding.")
    normalization = serializers.CharField(help_text="Always E.164.")
    max_batch = serializers.IntegerField()


class ContactsDiscoveryApi(APIView):
    @extend_schema(operation_id="contacts_discovery", responses={200: DiscoveryOutput, **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        pepper = services.pepper_ensure_current()
        return Response({
            "algorithm": "hmac-sha256",
            "pepper_id": pepper.pk,
            "pepper": base64.urlsafe_b64encode(bytes(pepper.secret)).rstrip(b"=").decode(),
            "normalization": "E.164",
            "max_batch": settings.CONTACTS_MAX_BATCH,
        })


@extend_schema_field({
    "type": "array",
    "items": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
    "maxItems": 5000,
    "uniqueItems": True,
})
class HashListField(serializers.JSONField):
    """Checked by the service in one pass: per-item DRF fields cost too much for 5,000 hashes."""


class ContactsSyncInput(StrictSerializer):
    pepper_id = StrictCharField(max_length=16)
    mode = serializers.ChoiceField(choices=services.SYNC_MODES)
    hashes = HashListField()


class ContactMatchOutput(serializers.Serializer):
    hash = serializers.CharField()
    user = PublicUserOutput()


class ContactsSyncOutput(serializers.Serializer):
    matches = ContactMatchOutput(many=True)
    stored = serializers.IntegerField(help_text="Numbers in the caller's stored address book after this request.")


class ContactsSyncApi(APIView):
    @extend_schema(operation_id="contacts_sync", request=ContactsSyncInput,
                   responses={200: ContactsSyncOutput, **ERROR_RESPONSES})
    def post(self, request: Request) -> Response:
        data = ContactsSyncInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = services.contacts_sync(user=request.user, pepper_id=values["pepper_id"], mode=values["mode"],
                                        hashes=values["hashes"], client_ip=client_ip(request))
        return Response({
            "matches": [{"hash": digest, "user": public_user_data(user)} for digest, user in result.matches],
            "stored": result.stored,
        })


class ContactOutput(serializers.Serializer):
    user = PublicUserOutput()
    mutual = serializers.BooleanField(help_text="Each has the other in their address book.")


class ContactListApi(APIView):
    @extend_schema(operation_id="contacts_list", responses={200: ContactOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        users = selectors.contact_list(viewer_id=request.user.pk)
        return Response([{"user": _contact_user_data(user), "mutual": user.mutual} for user in users])


def _contact_user_data(user: User) -> dict[str, Any]:
    """Public User, plus `last_seen` when the contact's privacy lets the caller see it (as GET /users/{id})."""
    body = public_user_data(user)
    if user.last_seen_visible:
        body["last_seen"] = timestamp(user.last_seen_at)
    return body


class StrictUUIDField(serializers.UUIDField):
    """Only JSON strings: DRF would otherwise read 5 as UUID(int=5)."""

    def to_internal_value(self, data: object) -> object:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class BlockCreateInput(StrictSerializer):
    user_id = StrictUUIDField()


class BlockOutput(serializers.Serializer):
    user = PublicUserOutput()
    created_at = TimestampField()


class BlockListApi(APIView):
    @extend_schema(operation_id="blocks_list", responses={200: BlockOutput(many=True), **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        blocks = selectors.block_list(blocker_id=request.user.pk)
        return Response([{"user": public_user_data(block.blocked), "created_at": timestamp(block.created_at)}
                         for block in blocks])

    @extend_schema(operation_id="blocks_create", request=BlockCreateInput, responses={204: None, **ERROR_RESPONSES})
    def post(self, request: Request) -> Response:
        data = BlockCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.block_create(blocker=request.user, blocked_id=data.validated_data["user_id"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class BlockDetailApi(APIView):
    @extend_schema(operation_id="blocks_delete", responses={204: None, **ERROR_RESPONSES})
    def delete(self, request: Request, user_id: str) -> Response:
        services.block_delete(blocker=request.user, blocked_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
