"""Call endpoints: the call log, one call, TURN credentials. Signalling is on the socket."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from calls import selectors
from calls.models import CallState, EndReason, Media, Outcome, ParticipantRole, ParticipantState
from core.schema import ERROR_RESPONSES
from core.serializers import TimestampField
from messaging.inputs import int_param


class ParticipantOutput(serializers.Serializer):
    user_id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=ParticipantRole.choices)
    state = serializers.ChoiceField(choices=ParticipantState.choices)


class CallOutput(serializers.Serializer):
    call_id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    caller_id = serializers.UUIDField()
    direction = serializers.ChoiceField(choices=["outgoing", "incoming"], help_text="Seen from the caller of the API.")
    group = serializers.BooleanField()
    media = serializers.ChoiceField(choices=Media.choices, help_text="As offered.")
    remote_control = serializers.BooleanField(help_text="Remote assistance was asked for.")
    control_granted = serializers.BooleanField(help_text="The callee granted control (in its answer or later).")
    state = serializers.ChoiceField(choices=CallState.choices)
    outcome = serializers.ChoiceField(choices=Outcome.choices, allow_null=True, help_text="Once ended.")
    reason = serializers.ChoiceField(choices=EndReason.choices, allow_null=True,
                                     help_text="Once ended: the `reason` of `call.ended`.")
    duration_ms = serializers.IntegerField()
    created_at = TimestampField()
    answered_at = TimestampField(allow_null=True)
    ended_at = TimestampField(allow_null=True)
    participants = ParticipantOutput(many=True)


class CallLogOutput(serializers.Serializer):
    calls = CallOutput(many=True)
    cursor = serializers.CharField(help_text="Pass as `before` for the next (older) page.")
    has_more = serializers.BooleanField()


class TurnOutput(serializers.Serializer):
    urls = serializers.ListField(child=serializers.CharField(), help_text="TURN_URLS; empty when TURN is not set up.")
    username = serializers.CharField(help_text='"<expiry unix time>:<user id>"')
    credential = serializers.CharField(help_text="base64(HMAC-SHA1(TURN_SECRET, username))")
    ttl = serializers.IntegerField(help_text="Seconds the credential is valid.")


class CallLogApi(APIView):
    @extend_schema(
        operation_id="calls_log",
        parameters=[
            OpenApiParameter("before", str, description="The `cursor` of the previous page (older calls)."),
            OpenApiParameter("limit", int, description="At most 100 (default 50)."),
        ],
        responses={200: CallLogOutput, **ERROR_RESPONSES},
        description="The caller's calls (placed and received), newest first.",
    )
    def get(self, request: Request) -> Response:
        limit = int_param(request.query_params, "limit", default=50, minimum=1, maximum=100)
        before = request.query_params.get("before") or None
        return Response(selectors.call_log(user_id=request.user.pk, before=before, limit=limit))


class CallTurnApi(APIView):
    @extend_schema(
        operation_id="calls_turn",
        responses={200: TurnOutput, **ERROR_RESPONSES},
        description="TURN credentials in coturn's REST scheme (use-auth-secret), valid for `ttl` seconds.",
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.turn_credentials(user_id=request.user.pk))


class CallDetailApi(APIView):
    @extend_schema(
        operation_id="calls_retrieve",
        responses={200: CallOutput, **ERROR_RESPONSES},
        description="Extension: one call of the caller's, e.g. to tell whether a `call.ring` replayed "
                    "after a reconnect (or a late VoIP push) still rings (`state` ringing and your "
                    "participant `state` ringing).",
    )
    def get(self, request: Request, call_id: str) -> Response:
        return Response(selectors.call_get_for_participant(user_id=request.user.pk, call_id=call_id))
