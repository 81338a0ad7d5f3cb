"""Red packet endpoints: parse, call one service or selector, serialise."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.inputs import StrictIntegerField, StrictUUIDField, validated
from core.schema import ERROR_RESPONSES, ErrorBody
from core.serializers import StrictCharField, StrictSerializer, TimestampField
from redpackets import selectors, services
from redpackets.models import PACKET_STATUSES, PacketMode


class PacketSendInput(StrictSerializer):
    client_id = StrictUUIDField(help_text="Chosen by the client; a retry with the same one returns the same packet.")
    total = StrictIntegerField(min_value=1, help_text="Integer cents, at most RED_PACKET_MAX_TOTAL (20000).")
    count = StrictIntegerField(min_value=1, help_text=(
        "Shares: at most RED_PACKET_MAX_COUNT (100) and the member count; exactly 1 in a direct conversation."))
    mode = serializers.ChoiceField(choices=PacketMode.choices,
                                   help_text="random: double-average draws; fixed: equal shares.")
    greeting = StrictCharField(required=False, allow_blank=True, max_length=200,
                               help_text="At most RED_PACKET_GREETING_MAX (64) characters.")


class PacketClaimOutputItem(serializers.Serializer):
    user_id = serializers.UUIDField()
    amount = serializers.IntegerField()
    claimed_at = TimestampField()


class PacketOutput(serializers.Serializer):
    id = serializers.UUIDField()
    sender_id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    total = serializers.IntegerField()
    count = serializers.IntegerField()
    mode = serializers.ChoiceField(choices=PacketMode.choices)
    greeting = serializers.CharField(allow_blank=True)
    currency = serializers.CharField()
    remaining = serializers.IntegerField(help_text="Cents not claimed (refunded to the sender once expired).")
    remaining_count = serializers.IntegerField(help_text="Shares not claimed.")
    status = serializers.ChoiceField(choices=PACKET_STATUSES)
    claims = PacketClaimOutputItem(many=True, help_text="Oldest first.")
    best_luck_user_id = serializers.UUIDField(allow_null=True, help_text=(
        "The largest share (earliest among equals), named once every share is claimed."))
    refunded = serializers.IntegerField(allow_null=True, help_text="Cents returned to the sender at expiry.")
    created_at = TimestampField()
    expires_at = TimestampField()


class ClaimOutput(serializers.Serializer):
    amount = serializers.IntegerField(help_text="Your share, in cents (the same on every repeat).")


GONE = {410: OpenApiResponse(ErrorBody, description="red_packet_empty, red_packet_expired")}


class PacketSendApi(APIView):
    @extend_schema(
        operation_id="red_packets_send", request=PacketSendInput,
        responses={200: PacketOutput, 201: PacketOutput, **ERROR_RESPONSES},
        description=("Debit the sender at once and post a `red_packet` message. 201 with the packet; 200 with "
                     "the first one for a retried client_id. 409 `insufficient_funds` (nothing is debited)."),
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        data = validated(PacketSendInput, request.data)
        packet, created = services.packet_send(
            sender=request.user, conversation_id=conversation_id, client_id=data["client_id"], total=data["total"],
            count=data["count"], mode=data["mode"], greeting=data.get("greeting", ""),
        )
        return Response(packet, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class PacketDetailApi(APIView):
    @extend_schema(operation_id="red_packets_retrieve", responses={200: PacketOutput, **ERROR_RESPONSES},
                   description="Members of the packet's conversation (and its sender) only.")
    def get(self, request: Request, packet_id: str) -> Response:
        return Response(selectors.packet_detail_for_viewer(user_id=request.user.pk, packet_id=packet_id))


class PacketClaimApi(APIView):
    @extend_schema(
        operation_id="red_packets_claim", request=None, responses={200: ClaimOutput, **ERROR_RESPONSES, **GONE},
        description=("Claim a share: 200 with the amount the first time, and the same amount on every repeat. "
                     "410 `red_packet_empty` / `red_packet_expired`. The sender may claim in a group, not in a "
                     "direct conversation (403)."),
    )
    def post(self, request: Request, packet_id: str) -> Response:
        amount, _ = services.packet_claim(user=request.user, packet_id=packet_id)
        return Response({"amount": amount})
