"""Moments endpoints: parse, call one service or selector, serialise."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.inputs import StrictUUIDField, int_param, validated
from core.schema import ERROR_RESPONSES
from core.serializers import StrictCharField, StrictSerializer, TimestampField
from media.apis import AttachmentOutput
from messaging.inputs import StrictFloatField
from moments import selectors, services
from moments.models import Visibility

# --- Input ---------------------------------------------------------------------------------------


class MomentLocationInput(StrictSerializer):
    lat = StrictFloatField(min_value=-90, max_value=90)
    lng = StrictFloatField(min_value=-180, max_value=180)
    name = StrictCharField(required=False, allow_blank=True, max_length=100, help_text="A place name to show.")


class MomentVisibilityInput(StrictSerializer):
    mode = serializers.ChoiceField(choices=Visibility.choices)
    user_ids = serializers.ListField(
        child=StrictUUIDField(), required=False, max_length=settings.MOMENTS_AUDIENCE_MAX,
        help_text="`only`: the friends who may see it; `except`: the friends who may not. Friends only; "
                  "empty (or absent) for `friends` and `private`.")


class MomentPostInput(StrictSerializer):
    client_id = StrictUUIDField(help_text="Chosen by the client; a retry with the same one returns the same post.")
    text = StrictCharField(required=False, allow_blank=True, trim_whitespace=False,
                           max_length=settings.MOMENTS_TEXT_MAX)
    attachment_ids = serializers.ListField(
        child=StrictUUIDField(), required=False, max_length=settings.MOMENTS_MAX_IMAGES,
        help_text="Your own uploads: up to 9 images, or one video.")
    location = MomentLocationInput(required=False, allow_null=True)
    visibility = MomentVisibilityInput()


class MomentCommentInput(StrictSerializer):
    client_id = StrictUUIDField(help_text="A retry with the same one returns the same comment.")
    text = StrictCharField(trim_whitespace=False, max_length=settings.MOMENTS_COMMENT_MAX)
    reply_to_user_id = StrictUUIDField(required=False, allow_null=True, help_text=(
        "The post's author, or someone whose comment on this post you can see."))


# --- Output --------------------------------------------------------------------------------------


class MomentLikeOutput(serializers.Serializer):
    user_id = serializers.UUIDField()
    created_at = TimestampField()


class MomentCommentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    user_id = serializers.UUIDField()
    text = serializers.CharField()
    reply_to_user_id = serializers.UUIDField(allow_null=True)
    created_at = TimestampField()


class MomentVisibilityOutput(serializers.Serializer):
    mode = serializers.ChoiceField(choices=Visibility.choices)
    user_ids = serializers.ListField(child=serializers.UUIDField(),
                                     help_text="Shown to the author only; empty for everyone else.")


class MomentLocationOutput(serializers.Serializer):
    lat = serializers.FloatField()
    lng = serializers.FloatField()
    name = serializers.CharField(required=False)


class MomentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    author_id = serializers.UUIDField()
    text = serializers.CharField(allow_blank=True)
    attachments = AttachmentOutput(many=True)
    location = MomentLocationOutput(allow_null=True)
    visibility = MomentVisibilityOutput()
    created_at = TimestampField()
    likes = MomentLikeOutput(many=True, help_text='Oldest first; only those the caller may see (README, "Moments").')
    comments = MomentCommentOutput(many=True, help_text="Oldest first; only those the caller may see.")


class MomentPageOutput(serializers.Serializer):
    moments = MomentOutput(many=True)
    cursor = serializers.CharField(help_text="Pass as `before` for the next (older) page.")
    has_more = serializers.BooleanField()


PAGING = [
    OpenApiParameter("before", str, description="The `cursor` of the previous page (older posts)."),
    OpenApiParameter("limit", int, description=f"At most {settings.MOMENTS_PAGE_MAX} "
                                               f"(default {settings.MOMENTS_PAGE_DEFAULT})."),
]


def _paging(request: Request) -> dict[str, Any]:
    return {
        "before": request.query_params.get("before") or None,
        "limit": int_param(request.query_params, "limit", default=settings.MOMENTS_PAGE_DEFAULT, minimum=1,
                           maximum=settings.MOMENTS_PAGE_MAX),
    }


# --- Views ---------------------------------------------------------------------------------------


class MomentsApi(APIView):
    @extend_schema(operation_id="moments_timeline", parameters=PAGING,
                   responses={200: MomentPageOutput, **ERROR_RESPONSES},
                   description="The caller's timeline: their own posts and the friends' posts they may see, "
                               "newest first. Paging by `before` never repeats or skips a post, whatever is "
                               "posted meanwhile.")
    def get(self, request: Request) -> Response:
        return Response(selectors.timeline(viewer_id=request.user.pk, **_paging(request)))

    @extend_schema(operation_id="moments_post", request=MomentPostInput,
                   responses={200: MomentOutput, 201: MomentOutput, **ERROR_RESPONSES},
                   description="201 with the new post; 200 with the first one for a retried client_id. "
                               "403 `service_read_only` in the sunset's read-only phase.")
    def post(self, request: Request) -> Response:
        data = validated(MomentPostInput, request.data)
        visibility = data["visibility"]
        location = data.get("location")
        moment, created = services.moment_post(
            author=request.user, client_id=data["client_id"], text=data.get("text", ""),
            attachment_ids=data.get("attachment_ids", []), location=dict(location) if location else None,
            mode=visibility["mode"], user_ids=visibility.get("user_ids", []),
        )
        return Response(moment, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MomentDetailApi(APIView):
    @extend_schema(operation_id="moments_retrieve", responses={200: MomentOutput, **ERROR_RESPONSES},
                   description="Extension: one post, as the caller sees it (404 when they may not).")
    def get(self, request: Request, moment_id: str) -> Response:
        return Response(selectors.moment_detail(viewer_id=request.user.pk, moment_id=moment_id))

    @extend_schema(operation_id="moments_delete", responses={204: None, **ERROR_RESPONSES},
                   description="The author deletes a post, with its likes and comments. 403 for a friend who "
                               "sees it, 404 for anyone else.")
    def delete(self, request: Request, moment_id: str) -> Response:
        services.moment_delete(user=request.user, moment_id=moment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MomentLikeApi(APIView):
    @extend_schema(operation_id="moments_like", request=None, responses={204: None, **ERROR_RESPONSES},
                   description="Like a post you may see (again: no change).")
    def post(self, request: Request, moment_id: str) -> Response:
        services.moment_like(user=request.user, moment_id=moment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="moments_unlike", responses={204: None, **ERROR_RESPONSES})
    def delete(self, request: Request, moment_id: str) -> Response:
        services.moment_unlike(user=request.user, moment_id=moment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MomentCommentsApi(APIView):
    @extend_schema(operation_id="moments_comment", request=MomentCommentInput,
                   responses={200: MomentCommentOutput, 201: MomentCommentOutput, **ERROR_RESPONSES},
                   description="Comment on a post you may see (404 otherwise). 201, or 200 with the first "
                               "comment for a retried client_id.")
    def post(self, request: Request, moment_id: str) -> Response:
        data = validated(MomentCommentInput, request.data)
        comment, created = services.comment_add(user=request.user, moment_id=moment_id,
                                                client_id=data["client_id"], text=data["text"],
                                                reply_to_user_id=data.get("reply_to_user_id"))
        return Response(comment, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MomentCommentDetailApi(APIView):
    @extend_schema(operation_id="moments_comment_delete", responses={204: None, **ERROR_RESPONSES},
                   description="The commenter or the post's author removes a comment.")
    def delete(self, request: Request, moment_id: str, comment_id: str) -> Response:
        services.comment_delete(user=request.user, moment_id=moment_id, comment_id=comment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserMomentsApi(APIView):
    @extend_schema(operation_id="moments_of_user", parameters=PAGING,
                   responses={200: MomentPageOutput, **ERROR_RESPONSES},
                   description="One person's posts that the caller may see, newest first, within that "
                               "person's `settings.moments_window` (their own: all).")
    def get(self, request: Request, user_id: str) -> Response:
        return Response(selectors.user_moments(viewer_id=request.user.pk, user_id=user_id, **_paging(request)))
