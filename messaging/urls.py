from django.urls import path

from messaging import apis

urlpatterns = [
    path("conversations", apis.ConversationListApi.as_view(), name="conversation-list"),
    path("conversations/<str:conversation_id>", apis.ConversationDetailApi.as_view(), name="conversation-detail"),
    path("conversations/<str:conversation_id>/members", apis.ConversationMembersApi.as_view(),
         name="conversation-members"),
    path("conversations/<str:conversation_id>/members/<str:user_id>", apis.ConversationMemberDetailApi.as_view(),
         name="conversation-member-detail"),
    path("conversations/<str:conversation_id>/join", apis.ConversationJoinApi.as_view(), name="conversation-join"),
    path("conversations/<str:conversation_id>/mute", apis.ConversationMuteApi.as_view(), name="conversation-mute"),
    path("conversations/<str:conversation_id>/read", apis.ConversationReadApi.as_view(), name="conversation-read"),
    path("conversations/<str:conversation_id>/messages", apis.ConversationMessagesApi.as_view(),
         name="conversation-messages"),
    path("conversations/<str:conversation_id>/receipts", apis.ConversationReceiptsApi.as_view(),
         name="conversation-receipts"),
    path("conversations/<str:conversation_id>/avatar", apis.ConversationAvatarApi.as_view(),
         name="conversation-avatar"),
    path("messages/<str:message_id>", apis.MessageDetailApi.as_view(), name="message-detail"),
    path("messages/<str:message_id>/receipts", apis.MessageReceiptsApi.as_view(), name="message-receipts"),
    path("messages/<str:message_id>/played", apis.MessagePlayedApi.as_view(), name="message-played"),
    path("sync", apis.SyncApi.as_view(), name="sync"),
    path("sync/head", apis.SyncHeadApi.as_view(), name="sync-head"),
]
