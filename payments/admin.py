"""Read-only views of the ledger for staff: ledger rows are never edited, here neither."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from payments.models import Account, Entry, ProviderEvent, TopUp, Transaction


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "user", "currency", "balance", "created_at")
    list_filter = ("kind", "currency")
    search_fields = ("id", "user__id")


class EntryInline(admin.TabularInline):
    model = Entry
    fields = ("account", "amount")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "key", "currency", "created_at")
    list_filter = ("kind",)
    search_fields = ("id", "key", "red_packet_id")
    inlines = [EntryInline]


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "amount", "currency", "provider", "status", "created_at", "completed_at")
    list_filter = ("status", "provider")
    search_fields = ("id", "provider_reference", "user__id")


@admin.register(ProviderEvent)
class ProviderEventAdmin(ReadOnlyAdmin):
    list_display = ("provider", "event_id", "type", "topup", "received_at")
    search_fields = ("event_id",)
