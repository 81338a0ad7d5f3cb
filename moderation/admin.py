"""Staff's side of moderation: the report queue with the reported messages, and suspensions.

Every action calls a moderation service, so a suspension closes the user's
sockets and a removal reaches every member's stream, as from anywhere else.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from messaging.models import Message
from moderation import services
from moderation.models import Report, ReportStatus, Suspension
from moderation.spam import spam_score

BOLD = mark_safe(' style="font-weight:bold"')
CONTEXT_MESSAGES = 5  # messages shown before the reported one, and from a reported user


def _messages_table(rows: list[Message], *, highlight: object = None) -> str:
    if not rows:
        return "-"
    body = format_html_join(
        "", "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((BOLD if m.pk == highlight else "", m.seq, m.sender_id,
          m.created_at.strftime("%Y-%m-%d %H:%M:%S"), "(deleted)" if m.deleted_at else (m.text or f"[{m.type}]"))
         for m in rows),
    )
    return format_html("<table><tr><th>seq</th><th>sender</th><th>sent</th><th>text</th></tr>{}</table>", body)


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("created_at", "reason", "status", "reported_user", "message", "reporter")
    list_filter = ("status", "reason")
    search_fields = ("id", "reported_user__id", "reporter__id", "message__id")
    ordering = ("-created_at",)
    readonly_fields = ("id", "reporter", "reason", "reported_user", "message", "text", "created_at",
                       "handled_by", "handled_at", "reported_messages", "reported_user_spam_score")
    fields = ("id", "status", "reason", "text", "reporter", "reported_user", "reported_user_spam_score",
              "message", "reported_messages", "created_at", "handled_by", "handled_at")
    actions = ["suspend_reported_users", "remove_reported_messages", "dismiss"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # reports come from users

    @admin.display(description="reported messages (the message and what came before it)")
    def reported_messages(self, report: Report) -> str:
        if report.message_id is not None:
            message = report.message
            rows = list(Message.objects.filter(conversation_id=message.conversation_id, seq__lte=message.seq)
                        .order_by("-seq")[: CONTEXT_MESSAGES + 1])
            return _messages_table(list(reversed(rows)), highlight=message.pk)
        # A user report: the user's latest messages in conversations the reporter shares with them.
        rows = list(Message.objects.filter(sender_id=report.reported_user_id,
                                           conversation__memberships__user_id=report.reporter_id)
                    .order_by("-created_at")[: CONTEXT_MESSAGES * 2])
        return _messages_table(list(reversed(rows)))

    @admin.display(description="spam score of the reported user")
    def reported_user_spam_score(self, report: Report) -> str:
        score = spam_score(user_id=report.reported_user_id)
        return (f"{score.value:.1f} (strangers in 24 h: {score.strangers_24h}, reporters in 30 days: "
                f"{score.reporters_30d}, sends in the last hour: {score.sends_1h})")

    @admin.action(description="Suspend the reported users (closes their sockets, refuses sign-in)")
    def suspend_reported_users(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        for report in queryset:
            services.report_suspend_user(report=report, staff=request.user)
        self.message_user(request, f"Suspended the users of {queryset.count()} report(s).", messages.SUCCESS)

    @admin.action(description="Remove the reported messages for everyone")
    def remove_reported_messages(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        removed = 0
        for report in queryset.filter(message__isnull=False):
            services.report_remove_message(report=report, staff=request.user)
            removed += 1
        self.message_user(request, f"Removed {removed} message(s).", messages.SUCCESS)

    @admin.action(description="Dismiss (no action)")
    def dismiss(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        for report in queryset.filter(status=ReportStatus.OPEN):
            services.report_close(report=report, staff=request.user, status=ReportStatus.DISMISSED)


@admin.register(Suspension)
class SuspensionAdmin(admin.ModelAdmin):
    list_display = ("user", "created_at", "created_by", "lifted_at", "reason")
    list_filter = ("lifted_at",)
    search_fields = ("user__id",)
    raw_id_fields = ("user",)
    fields = ("user", "reason")
    actions = ["lift"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Suspension, form: Any, change: bool) -> None:
        # Through the service: the flag on the user, and the sockets closed after commit.
        suspension = services.user_suspend(user_id=obj.user_id, staff=request.user, reason=obj.reason)
        obj.pk = suspension.pk

    @admin.action(description="Lift the suspensions")
    def lift(self, request: HttpRequest, queryset: QuerySet[Suspension]) -> None:
        for suspension in queryset.filter(lifted_at__isnull=True):
            services.user_unsuspend(user_id=suspension.user_id, staff=request.user)
