from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from messaging.models import FanoutJob


@admin.register(FanoutJob)
class FanoutJobAdmin(admin.ModelAdmin):
    """Fan-out jobs of big conversations; failed ones are poison inputs to look at.

    Read-only except for "Run again" (clears the failure; the sweep picks the job up)."""

    list_display = ("id", "conversation_id", "event_type", "created_at", "finished_at", "attempts", "failed_at")
    list_filter = (("failed_at", admin.EmptyFieldListFilter), ("finished_at", admin.EmptyFieldListFilter))
    fields = ("conversation_id", "message_id", "event_type", "cutoff", "after_user_id", "created_at",
              "finished_at", "attempts", "failed_at", "last_error")
    readonly_fields = fields
    actions = ["run_again"]

    @admin.action(description="Run again")
    def run_again(self, request: HttpRequest, queryset: QuerySet[FanoutJob]) -> None:
        count = queryset.filter(finished_at__isnull=True).update(failed_at=None, attempts=0)
        self.message_user(request, f"{count} job(s) handed back to the sweep.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
