from django.urls import path

from contacts import apis

urlpatterns = [
    path("contacts/discovery", apis.ContactsDiscoveryApi.as_view(), name="contacts-discovery"),
    path("contacts/sync", apis.ContactsSyncApi.as_view(), name="contacts-sync"),
    path("contacts", apis.ContactListApi.as_view(), name="contacts-list"),
    path("blocks", apis.BlockListApi.as_view(), name="blocks"),
    path("blocks/<uuid:user_id>", apis.BlockDetailApi.as_view(), name="block-detail"),
]
