from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from redpackets.models import Packet, Share


class ShareInline(admin.TabularInline):
    model = Share
    fields = ("index", "amount", "claimed_by", "claimed_at", "refunded_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Packet)
class PacketAdmin(admin.ModelAdmin):
    list_display = ("id", "sender", "conversation", "mode", "total", "count", "created_at", "expires_at", "settled_at")
    list_filter = ("mode",)
    search_fields = ("id", "sender__id", "conversation__id")
    readonly_fields = [field.name for field in Packet._meta.fields]
    inlines = [ShareInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
