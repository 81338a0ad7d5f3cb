from django.contrib import admin

from media.models import Attachment


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "content_type", "size", "uploader", "created_at", "used_at")
    list_filter = ("kind",)
    readonly_fields = [field.name for field in Attachment._meta.fields]
    raw_id_fields = ("uploader",)
