"""The per-user event stream: the record every client catches up from.

It is the foundation under every app (messaging, contacts, accounts, exports,
calls, moments, red packets all emit events), so it lives in its own app below
them; apps use its public functions (`streams.services.stream_append`,
`streams.selectors.stream_read`, `streams.groups.relay_*`), never its tables.
"""

from django.conf import settings
from django.db import models


class UserStream(models.Model):
    """The last position handed out in a user's stream. Its row lock orders appends."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                related_name="+")
    last_position = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"stream {self.user_id} @ {self.last_position}"


class Event(models.Model):
    """One event in one user's stream, at a gapless per-user position."""

    id = models.BigAutoField(primary_key=True)
    # No database constraint: two rows per message are appended on the hot path, for users
    # whose rows always exist (accounts are erased, never deleted).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                             db_index=False, db_constraint=False)
    position = models.BigIntegerField()
    type = models.CharField(max_length=48)
    # The payload, or NULL when the event references a row that is rendered at read time
    # (`ref_id`: a message.new points at its message instead of carrying a copy per recipient).
    data = models.JSONField(null=True, blank=True)
    ref_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "position"], name="event_user_position_uniq")]

    def __str__(self) -> str:
        return f"{self.type} #{self.position} for {self.user_id}"
