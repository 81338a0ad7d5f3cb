from django.urls import path

from media import apis

urlpatterns = [
    path("attachments", apis.AttachmentUploadApi.as_view(), name="attachment-upload"),
    path("attachments/<str:attachment_id>", apis.AttachmentDetailApi.as_view(), name="attachment-detail"),
    path("attachments/<str:attachment_id>/content", apis.AttachmentContentApi.as_view(), name="attachment-content"),
    path("attachments/<str:attachment_id>/signed", apis.AttachmentSignedLinksApi.as_view(),
         name="attachment-signed-links"),
    path("attachments/<str:attachment_id>/thumbnail", apis.AttachmentThumbnailApi.as_view(),
         name="attachment-thumbnail"),
    path("uploads", apis.UploadCreateApi.as_view(), name="upload-create"),
    path("me/avatar", apis.MeAvatarApi.as_view(), name="me-avatar"),
    path("avatars/<str:avatar_id>", apis.AvatarApi.as_view(), name="avatar"),
    path("uploads/<str:upload_id>", apis.UploadDetailApi.as_view(), name="upload-detail"),
    path("attachments/<str:attachment_id>/compat", apis.AttachmentCompatApi.as_view(), name="attachment-compat"),
]
