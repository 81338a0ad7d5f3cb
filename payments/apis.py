"""Wallet, top-up and provider webhook endpoints: parse, call one service or selector, serialise."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.inputs import StrictIntegerField, StrictUUIDField, int_param, validated
from core.schema import ERROR_RESPONSES, ErrorBody
from core.serializers import StrictSerializer, TimestampField
from payments import selectors, services
from payments.models import TopUpStatus, TransactionKind


class WalletOutput(serializers.Serializer):
    balance = serializers.IntegerField(help_text="Integer cents.")
    currency = serializers.CharField(help_text="ISO 4217 (PAYMENTS_CURRENCY).")


class TopUpInput(StrictSerializer):
    client_id = StrictUUIDField(help_text="Chosen by the client; a retry with the same one returns the same top-up.")
    amount = StrictIntegerField(min_value=1, help_text="Integer cents, at most PAYMENTS_TOPUP_MAX.")


class TopUpOutput(serializers.Serializer):
    id = serializers.UUIDField()
    client_id = serializers.UUIDField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=TopUpStatus.choices,
                                     help_text="`pending` until the provider confirms the payment.")
    provider = serializers.CharField()
    next_action = serializers.DictField(allow_null=True, help_text=(
        "While pending: what the client does to pay, from the provider (e.g. a checkout URL)."))
    failure_reason = serializers.CharField(allow_null=True)
    created_at = TimestampField()
    completed_at = TimestampField(allow_null=True)


class StatementLineOutput(serializers.Serializer):
    id = serializers.UUIDField(help_text="The ledger transaction.")
    kind = serializers.ChoiceField(choices=TransactionKind.choices)
    amount = serializers.IntegerField(help_text="What this wallet gained, in cents (negative: spent).")
    currency = serializers.CharField()
    red_packet_id = serializers.UUIDField(allow_null=True)
    topup_id = serializers.UUIDField(allow_null=True)
    created_at = TimestampField()


class StatementPageOutput(serializers.Serializer):
    transactions = StatementLineOutput(many=True, help_text="Newest first.")
    cursor = serializers.CharField(allow_null=True, help_text="Pass as `before` for the next (older) page.")
    has_more = serializers.BooleanField()


class WalletApi(APIView):
    @extend_schema(operation_id="wallet_retrieve", responses={200: WalletOutput, **ERROR_RESPONSES})
    def get(self, request: Request) -> Response:
        return Response(selectors.wallet_get(user_id=request.user.pk))


class TopUpListApi(APIView):
    @extend_schema(
        operation_id="wallet_topups_create", request=TopUpInput,
        responses={200: TopUpOutput, 201: TopUpOutput, **ERROR_RESPONSES},
        description=("Top up the wallet through the payment provider (PAYMENTS_BACKEND). 201 with the new "
                     "top-up; 200 with the first one for a retried client_id. `test` approves at once; a real "
                     "provider leaves it `pending` until its webhook confirms. 403 `payments_disabled` when no "
                     "provider is configured; 503 `service_unavailable` (details.check = payments) when the "
                     "provider is unreachable (retry with the same client_id)."),
    )
    def post(self, request: Request) -> Response:
        data = validated(TopUpInput, request.data)
        topup, created = services.topup_create(user=request.user, client_id=data["client_id"], amount=data["amount"])
        return Response(topup, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class TopUpDetailApi(APIView):
    @extend_schema(operation_id="wallet_topups_retrieve", responses={200: TopUpOutput, **ERROR_RESPONSES},
                   description="Extension: a top-up of yours, to follow a pending one.")
    def get(self, request: Request, topup_id: str) -> Response:
        return Response(selectors.topup_get_for_owner(user_id=request.user.pk, topup_id=topup_id))


class WalletTransactionsApi(APIView):
    @extend_schema(
        operation_id="wallet_transactions_list",
        parameters=[
            OpenApiParameter("before", str, description="The `cursor` of the previous page (empty: the newest)."),
            OpenApiParameter("limit", int, description="At most 200 (default 50)."),
        ],
        responses={200: StatementPageOutput, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        return Response(selectors.wallet_transactions(
            user_id=request.user.pk,
            before=int_param(params, "before", default=None, minimum=1) if params.get("before") else None,
            limit=int_param(params, "limit", default=50, minimum=1, maximum=200),
        ))


class WebhookApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="payments_webhook", auth=[], request=OpenApiTypes.OBJECT,
        responses={200: OpenApiResponse(description="Received (also for an event seen before)."),
                   400: OpenApiResponse(ErrorBody, description="invalid_signature"),
                   404: OpenApiResponse(ErrorBody, description="not_found: no such provider is configured"),
                   413: OpenApiResponse(ErrorBody, description="payload_too_large")},
        description=("Called by the payment provider, not by clients: the raw body is verified against the "
                     "`Payments-Signature` header (docs/payments.md). Each event id is applied once."),
    )
    def post(self, request: Request, provider: str) -> Response:
        # The raw bytes, as signed: the body is never parsed before its signature is checked.
        services.webhook_receive(provider_name=provider, headers=dict(request.headers), body=request.body)
        return Response({"received": True})
