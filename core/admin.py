from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from core.durable import outbox_retry
from core.models import OutboxTask


@admin.register(OutboxTask)
class OutboxTaskAdmin(admin.ModelAdmin):
    """Background work promised by the outbox: failed rows are poison inputs to look at.

    Read-only except for "Run again" (once the cause of a failure is fixed)."""

    list_display = ("id", "task", "key", "state", "attempts", "run_after", "updated_at", "error_line")
    list_filter = ("state", "task")
    search_fields = ("key",)
    ordering = ("-updated_at",)
    actions = ["run_again"]

    @admin.display(description="last error")
    def error_line(self, obj: OutboxTask) -> str:
        lines = obj.last_error.strip().splitlines()
        return lines[-1][:200] if lines else ""

    @admin.action(description="Run again")
    def run_again(self, request: HttpRequest, queryset: QuerySet[OutboxTask]) -> None:
        with transaction.atomic():
            count = outbox_retry(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} task(s) queued again.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
