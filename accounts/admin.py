from django.contrib import admin

from accounts.models import Device, User


class DeviceInline(admin.TabularInline):
    model = Device
    extra = 0
    fields = ("name", "platform", "created_at", "last_active_at", "revoked_at", "push_provider")
    readonly_fields = fields
    can_delete = False


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ("id", "display_name", "created_at", "is_active", "is_staff", "deleted_at", "suspended_at")
    list_filter = ("is_active", "is_staff", "discoverable")
    search_fields = ("id", "display_name")
    # Suspension goes through moderation (Suspensions in the admin), which also closes the sockets.
    readonly_fields = ("id", "created_at", "last_seen_at", "deleted_at", "last_login", "suspended_at")
    exclude = ("password",)
    inlines = [DeviceInline]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "name", "platform", "created_at", "last_active_at", "revoked_at")
    list_filter = ("platform", "push_provider")
    search_fields = ("id", "user__id", "name")
    readonly_fields = ("id", "user", "token_hash", "created_at", "last_active_at")
    exclude = ("push_token",)
