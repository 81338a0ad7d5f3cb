from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from core.errors import ValidationFailed
from exports import services
from exports.models import Export, Sunset


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "status", "progress", "size", "created_at", "finished_at", "expires_at", "attempt")
    list_filter = ("status",)
    search_fields = ("id", "user__id")
    readonly_fields = [field.name for field in Export._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SunsetForm(forms.ModelForm):
    class Meta:
        model = Sunset
        fields = ("announce_at", "read_only_at", "shutdown_at", "message")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        try:
            services.sunset_validate(
                announce_at=cleaned.get("announce_at"), read_only_at=cleaned.get("read_only_at"),
                shutdown_at=cleaned.get("shutdown_at"), message=cleaned.get("message") or "",
            )
        except ValidationFailed as exc:
            for field, problems in exc.details.items():
                for problem in problems:
                    self.add_error(field if field in self.fields else None, problem)
        return cleaned


@admin.register(Sunset)
class SunsetAdmin(admin.ModelAdmin):
    """Adding a row plans the sunset (the newest row rules); rows are never edited, only cancelled."""

    form = SunsetForm
    list_display = ("id", "announce_at", "read_only_at", "shutdown_at", "created_at", "cancelled_at", "dispatched_at")
    actions = ["cancel_sunset"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Sunset, form: forms.ModelForm, change: bool) -> None:
        created = services.sunset_schedule(
            announce_at=obj.announce_at, read_only_at=obj.read_only_at, shutdown_at=obj.shutdown_at,
            message=obj.message,
        )
        obj.pk = created.pk
        obj.created_at = created.created_at

    @admin.action(description="Cancel the sunset in force")
    def cancel_sunset(self, request: HttpRequest, queryset: Any) -> None:
        cancelled = services.sunset_cancel()
        self.message_user(request, "Sunset cancelled." if cancelled else "No sunset was in force.",
                          messages.SUCCESS if cancelled else messages.WARNING)
