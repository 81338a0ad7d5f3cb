"""Conversations, messages and sync endpoints: parse, call one service or selector, return."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ValidationFailed
from core.schema import ERROR_RESPONSES
from core.serializers import TimestampField
from media.apis import AvatarInput, avatar_upload
from messaging import selectors, services
from messaging.inputs import (
    ConversationCreateInput,
    ConversationUpdateInput,
    MemberRoleInput,
    MembersAddInput,
    MessageEditInput,
    MessageSendInput,
    MuteInput,
    ReadInput,
    int_param,
    validated,
)
from messaging.models import ConversationType, MessageType, Role

# --- Output shapes (for the schema; views return the selectors' dicts) ------------------------


class ConversationMemberOutput(serializers.Serializer):
    user_id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=Role.choices)


class MessageLocationOutput(serializers.Serializer):
    lat = serializers.FloatField()
    lng = serializers.FloatField()


class MessageOutput(serializers.Serializer):
    id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    seq = serializers.IntegerField()
    sender_id = serializers.UUIDField()
    client_id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=MessageType.choices)
    text = serializers.CharField(allow_blank=True)
    attachment = serializers.DictField(allow_null=True, help_text="The attachment shape of /attachments.")
    location = MessageLocationOutput(allow_null=True, help_text="Extension: set on location messages.")
    reply_to = serializers.UUIDField(allow_null=True)
    created_at = TimestampField()
    edited_at = TimestampField(allow_null=True)
    deleted = serializers.BooleanField()
    call = serializers.DictField(required=False, help_text=(
        "On `call` messages (made by the server when a call ends): "
        "{call_id, media, outcome, duration_ms, caller_id}."))
    red_packet = serializers.DictField(required=False, help_text=(
        "On `red_packet` messages (made by the server): {id, total, count, mode, greeting}."))


class ConversationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=ConversationType.choices)
    title = serializers.CharField(allow_blank=True)
    avatar_url = serializers.CharField(allow_blank=True, help_text=(
        "Extension: the group's picture (PUT /conversations/{id}/avatar), a path on this server; \"\" for none."))
    members = ConversationMemberOutput(many=True, help_text="Broadcasts list only their owner and admins.")
    member_count = serializers.IntegerField(help_text="Extension: current number of members.")
    last_seq = serializers.IntegerField()
    last_message = MessageOutput(allow_null=True)
    unread_count = serializers.IntegerField()
    read_seq = serializers.IntegerField()
    muted_until = TimestampField(allow_null=True)
    created_at = TimestampField()
    updated_at = TimestampField()


class ConversationPageOutput(serializers.Serializer):
    conversations = ConversationOutput(many=True)
    cursor = serializers.CharField(help_text="Opaque; pass it back as `cursor`.")
    has_more = serializers.BooleanField()


class ConversationWithInvitedOutput(ConversationOutput):
    invited = serializers.ListField(child=serializers.UUIDField(), help_text=(
        "Users asked for but not added because their `settings.group_add` does not let the caller add them: "
        "each gets a `group.invited` event instead and becomes a member with POST /conversations/{id}/join. "
        "Always empty for direct conversations."))


class MessagePageOutput(serializers.Serializer):
    messages = MessageOutput(many=True, help_text="Oldest first.")
    has_more = serializers.BooleanField(help_text="More messages lie beyond this page in the reading direction.")


class EventOutput(serializers.Serializer):
    cursor = serializers.CharField()
    type = serializers.CharField()
    data = serializers.DictField()
    created_at = TimestampField()


class SyncOutput(serializers.Serializer):
    events = EventOutput(many=True)
    cursor = serializers.CharField()
    has_more = serializers.BooleanField()


class ReceiptPointerOutput(serializers.Serializer):
    user_id = serializers.UUIDField()
    delivered_seq = serializers.IntegerField(allow_null=True, help_text="Has received every message up to here.")
    read_seq = serializers.IntegerField(allow_null=True, help_text=(
        "Has read every message up to here; null when that member turned read receipts off."))


class ConversationReceiptsOutput(serializers.Serializer):
    receipts = ReceiptPointerOutput(many=True, help_text="The other current members; empty for broadcasts and "
                                                         "conversations too big for per-member receipts.")


class MessageReceiptOutput(serializers.Serializer):
    user_id = serializers.UUIDField()
    delivered_at = TimestampField(allow_null=True, help_text=(
        "Null until delivered. Otherwise when the member's delivered pointer last moved: delivered by then "
        "at the latest (exact when this message moved it)."))
    read_at = TimestampField(allow_null=True, help_text=(
        "Null until read, and always for a member who turned `read_receipts` off. Same meaning as "
        "`delivered_at`, for the read pointer."))


class MessageReceiptsOutput(serializers.Serializer):
    receipts = MessageReceiptOutput(many=True, help_text=(
        "The members when it was sent (not the sender), by user id; empty for a broadcast."))
    cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page; null on the last.")
    has_more = serializers.BooleanField()
    delivered_count = serializers.IntegerField(required=False, help_text=(
        "Extension, broadcasts only: how many subscribers it was delivered to."))
    read_count = serializers.IntegerField(required=False, help_text=(
        "Extension, broadcasts only: how many read it (not counting those with `read_receipts` off)."))


class SyncHeadOutput(serializers.Serializer):
    cursor = serializers.CharField(help_text="The position of the newest event in the caller's stream.")


def _body(request: Request) -> object:
    return request.data


# --- Conversations ----------------------------------------------------------------------


class ConversationListApi(APIView):
    @extend_schema(
        operation_id="conversations_list",
        parameters=[
            OpenApiParameter("limit", int, description="At most 200 (default 100)."),
            OpenApiParameter("cursor", str, description=(
                "The `cursor` of the previous page; empty for the first. The walk is stable while new "
                "activity reorders the list: a conversation that moves during it is not repeated in "
                "place but comes again after the others, before `has_more` turns false, so a walk that "
                "ends has reached every conversation. The last page's `cursor`, used later, returns "
                "the conversations with activity since.")),
        ],
        responses={200: ConversationPageOutput, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        limit = int_param(request.query_params, "limit", default=100, minimum=1, maximum=200)
        raw = request.query_params.get("cursor") or None
        cursor = None
        if raw is not None:
            try:
                cursor = selectors.ConversationListCursor.decode(raw)
            except ValueError as exc:
                raise ValidationFailed(details={"cursor": ["Not a cursor this server handed out."]}) from exc
        return Response(selectors.conversation_list(user_id=request.user.pk, limit=limit, cursor=cursor))

    @extend_schema(operation_id="conversations_create", request=ConversationCreateInput,
                   responses={200: ConversationWithInvitedOutput, 201: ConversationWithInvitedOutput,
                              **ERROR_RESPONSES},
                   description="429 `rate_limited` (with `Retry-After`) when the invitations it would send take "
                               "the caller past MESSAGING_GROUP_INVITATIONS_PER_DAY open invitations in 24 hours; "
                               "nothing is created then.")
    def post(self, request: Request) -> Response:
        data = validated(ConversationCreateInput, _body(request))
        conversation, created = services.conversation_create(
            creator=request.user, type=data["type"], user_id=data.get("user_id"), title=data.get("title", ""),
            member_ids=data.get("member_ids", []),
        )
        return Response(conversation, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ConversationDetailApi(APIView):
    @extend_schema(operation_id="conversations_retrieve", responses={200: ConversationOutput, **ERROR_RESPONSES})
    def get(self, request: Request, conversation_id: str) -> Response:
        return Response(selectors.conversation_detail(user_id=request.user.pk, conversation_id=conversation_id))

    @extend_schema(operation_id="conversations_update", request=ConversationUpdateInput,
                   responses={200: ConversationOutput, **ERROR_RESPONSES})
    def patch(self, request: Request, conversation_id: str) -> Response:
        selectors.conversation_get_for_member(user_id=request.user.pk, conversation_id=conversation_id)
        data = validated(ConversationUpdateInput, _body(request))
        return Response(services.conversation_update(actor=request.user, conversation_id=conversation_id,
                                                     title=data["title"]))


class ConversationMembersApi(APIView):
    @extend_schema(operation_id="conversations_members_add", request=MembersAddInput,
                   responses={200: ConversationWithInvitedOutput, **ERROR_RESPONSES},
                   description="Users whose `settings.group_add` does not let the caller add them are invited "
                               "(`invited`). 429 `rate_limited` past the daily invitation allowance; nothing "
                               "is added then.")
    def post(self, request: Request, conversation_id: str) -> Response:
        selectors.conversation_get_for_member(user_id=request.user.pk, conversation_id=conversation_id)
        data = validated(MembersAddInput, _body(request))
        return Response(services.members_add(actor=request.user, conversation_id=conversation_id,
                                             user_ids=data["user_ids"]))


class ConversationJoinApi(APIView):
    @extend_schema(
        operation_id="conversations_join", request=None,
        responses={200: ConversationOutput, **ERROR_RESPONSES},
        description="Accept a `group.invited` invitation: the caller becomes a member (members get "
                    "`member.added` with `by` = the inviter; the caller gets `conversation.created`). "
                    "Already a member: 200, nothing changes. No open invitation (never invited, expired "
                    "after 7 days, or unknown conversation): 404 `not_found`. A full group: 409 `conflict`.",
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        return Response(services.conversation_join(user=request.user, conversation_id=conversation_id))


class ConversationMemberDetailApi(APIView):
    @extend_schema(operation_id="conversations_members_role",
                   description="Extension: the owner makes a member an admin, or an admin a member.",
                   request=MemberRoleInput, responses={200: ConversationOutput, **ERROR_RESPONSES})
    def patch(self, request: Request, conversation_id: str, user_id: str) -> Response:
        selectors.conversation_get_for_member(user_id=request.user.pk, conversation_id=conversation_id)
        data = validated(MemberRoleInput, _body(request))
        return Response(services.member_role_set(actor=request.user, conversation_id=conversation_id,
                                                 user_id=user_id, role=data["role"]))

    @extend_schema(operation_id="conversations_members_remove", request=None,
                   responses={204: None, **ERROR_RESPONSES})
    def delete(self, request: Request, conversation_id: str, user_id: str) -> Response:
        services.member_remove(actor=request.user, conversation_id=conversation_id, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationMuteApi(APIView):
    @extend_schema(operation_id="conversations_mute", request=MuteInput,
                   responses={200: ConversationOutput, **ERROR_RESPONSES})
    def put(self, request: Request, conversation_id: str) -> Response:
        selectors.conversation_get_for_member(user_id=request.user.pk, conversation_id=conversation_id)
        data = validated(MuteInput, _body(request))
        return Response(services.conversation_mute(user=request.user, conversation_id=conversation_id,
                                                   until=data["until"]))


class ConversationReadApi(APIView):
    @extend_schema(operation_id="conversations_read", request=ReadInput, responses={204: None, **ERROR_RESPONSES})
    def post(self, request: Request, conversation_id: str) -> Response:
        selectors.conversation_get_for_member(user_id=request.user.pk, conversation_id=conversation_id)
        data = validated(ReadInput, _body(request))
        services.conversation_read(user=request.user, conversation_id=conversation_id, seq=data["seq"])
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Messages ---------------------------------------------------------------------------


class ConversationMessagesApi(APIView):
    @extend_schema(
        operation_id="conversations_messages_list",
        parameters=[
            OpenApiParameter("before_seq", int, description="Newest messages before this seq (default: latest)."),
            OpenApiParameter("after_seq", int, description="Oldest messages after this seq (reads forward)."),
            OpenApiParameter("limit", int, description="At most 200 (default 50)."),
        ],
        responses={200: MessagePageOutput, **ERROR_RESPONSES},
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        params = request.query_params
        selectors.conversation_get_for_member(user_id=request.user.pk, conversation_id=conversation_id)
        messages, has_more = selectors.message_history(
            user_id=request.user.pk, conversation_id=conversation_id,
            before_seq=int_param(params, "before_seq", default=None),
            after_seq=int_param(params, "after_seq", default=None),
            limit=int_param(params, "limit", default=50, minimum=1, maximum=200),
        )
        return Response({"messages": selectors.messages_public(messages), "has_more": has_more})

    @extend_schema(operation_id="conversations_messages_send", request=MessageSendInput,
                   responses={200: MessageOutput, 201: MessageOutput, **ERROR_RESPONSES})
    def post(self, request: Request, conversation_id: str) -> Response:
        message, created = services.message_send(sender=request.user, conversation_id=conversation_id,
                                                 payload=_body(request), device_id=request.auth.pk)
        return Response(message, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MessageDetailApi(APIView):
    @extend_schema(operation_id="messages_edit", request=MessageEditInput,
                   responses={200: MessageOutput, **ERROR_RESPONSES})
    def patch(self, request: Request, message_id: str) -> Response:
        selectors.message_get_for_member(user_id=request.user.pk, message_id=message_id)
        data = validated(MessageEditInput, _body(request))
        return Response(services.message_edit(user=request.user, message_id=message_id, text=data["text"]))

    @extend_schema(operation_id="messages_delete",
                   parameters=[OpenApiParameter("for", str, enum=["everyone", "me"], description="Default: me.")],
                   request=None, responses={204: None, **ERROR_RESPONSES})
    def delete(self, request: Request, message_id: str) -> Response:
        services.message_delete(user=request.user, message_id=message_id,
                                scope=request.query_params.get("for") or "me")
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationReceiptsApi(APIView):
    @extend_schema(
        operation_id="conversations_receipts",
        responses={200: ConversationReceiptsOutput, **ERROR_RESPONSES},
        description="Extension: the other members' delivered and read pointers, so a client that starts "
                    "afresh can draw sent/delivered/read ticks; `receipt.delivered`/`receipt.read` events "
                    "move them afterwards.",
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        receipts = selectors.conversation_receipts(user_id=request.user.pk, conversation_id=conversation_id)
        return Response({"receipts": receipts})


# --- Sync ----------------------------------------------------------------------------------


class SyncApi(APIView):
    @extend_schema(
        operation_id="sync",
        parameters=[
            OpenApiParameter("cursor", str, description="The last cursor this device stored (empty: from the start)."),
            OpenApiParameter("limit", int, description="At most 500 (default 100)."),
        ],
        responses={200: SyncOutput, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        limit = int_param(request.query_params, "limit", default=100, minimum=1, maximum=500)
        return Response(services.sync_read(user=request.user, device_id=request.auth.pk,
                                           cursor=request.query_params.get("cursor"), limit=limit))


class SyncHeadApi(APIView):
    @extend_schema(
        operation_id="sync_head",
        responses={200: SyncHeadOutput, **ERROR_RESPONSES},
        description="Extension: the cursor of the newest event. A client that keeps no local history "
                    "(the web client) reads it before loading conversations, then says `hello` with it, "
                    "instead of replaying the whole stream on a new device. It acknowledges nothing.",
    )
    def get(self, request: Request) -> Response:
        return Response({"cursor": selectors.sync_head(user_id=request.user.pk)})
# --- Group avatars and voice notes played --------------------------------------------------


class ConversationAvatarApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="conversations_avatar_set",
        description="Extension: the group's or broadcast's picture (admins; 403 for other members, 404 for "
                    "non-members, 400 for direct conversations). Square crops, re-encoded without EXIF; members "
                    "get `conversation.updated` with `avatar_url`.",
        request={"multipart/form-data": AvatarInput},
        responses={200: ConversationOutput, **ERROR_RESPONSES},
    )
    def put(self, request: Request, conversation_id: str) -> Response:
        selectors.conversation_get_for_member(user_id=request.user.pk, conversation_id=conversation_id)
        return Response(services.conversation_avatar_set(actor=request.user, conversation_id=conversation_id,
                                                         upload=avatar_upload(request)))

    @extend_schema(operation_id="conversations_avatar_delete", responses={200: ConversationOutput,
                                                                          **ERROR_RESPONSES})
    def delete(self, request: Request, conversation_id: str) -> Response:
        return Response(services.conversation_avatar_delete(actor=request.user, conversation_id=conversation_id))


class MessageReceiptsApi(APIView):
    @extend_schema(
        operation_id="messages_receipts",
        parameters=[
            OpenApiParameter("cursor", str, description="From the previous page (empty: the first page)."),
            OpenApiParameter("limit", int, description="Extension: at most 200 per page (default 100)."),
        ],
        responses={200: MessageReceiptsOutput, **ERROR_RESPONSES},
        description="Who got and who read the message; the sender only (anyone else gets 404). Groups list "
                    "every member; a broadcast answers counts only (extension: `delivered_count`, `read_count`, "
                    "with `receipts` empty). Times are those of the member's pointer, see the fields.",
    )
    def get(self, request: Request, message_id: str) -> Response:
        limit = int_param(request.query_params, "limit", default=100, minimum=1, maximum=200)
        return Response(selectors.message_receipts(user_id=request.user.pk, message_id=message_id,
                                                   cursor=request.query_params.get("cursor"), limit=limit))


class MessagePlayedApi(APIView):
    @extend_schema(
        operation_id="messages_played",
        description="Extension: the caller played this voice note. The sender gets `receipt.played` "
                    "`{conversation_id, message_id, seq, user_id}` unless the caller turned `read_receipts` off; "
                    "the caller's own devices get it always. Idempotent; 400 for a message that is not a voice note.",
        request=None, responses={204: None, **ERROR_RESPONSES},
    )
    def post(self, request: Request, message_id: str) -> Response:
        services.message_played(user=request.user, message_id=message_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
