from django.urls import path

from moments import apis

urlpatterns = [
    path("moments", apis.MomentsApi.as_view(), name="moments"),
    path("moments/<str:moment_id>", apis.MomentDetailApi.as_view(), name="moment-detail"),
    path("moments/<str:moment_id>/like", apis.MomentLikeApi.as_view(), name="moment-like"),
    path("moments/<str:moment_id>/comments", apis.MomentCommentsApi.as_view(), name="moment-comments"),
    path("moments/<str:moment_id>/comments/<str:comment_id>", apis.MomentCommentDetailApi.as_view(),
         name="moment-comment-detail"),
    path("users/<str:user_id>/moments", apis.UserMomentsApi.as_view(), name="user-moments"),
]
