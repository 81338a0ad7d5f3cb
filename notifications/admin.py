from django.contrib import admin

from notifications.models import PushDelivery


@admin.register(PushDelivery)
class PushDeliveryAdmin(admin.ModelAdmin):
    """Read-only: operators look at what was pushed and why one failed; the tasks own the rows."""

    list_display = ("id", "kind", "status", "attempts", "device", "created_at", "sent_at", "last_error")
    list_filter = ("status", "kind")
    search_fields = ("dedupe_key", "message_id", "conversation_id")
    raw_id_fields = ("device", "collapsed_into")
    exclude = ("title", "body")  # message text while pending: not for the admin screen

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
