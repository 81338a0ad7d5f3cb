from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from notifications.checks import ensure_push_configured

        # PUSH_BACKEND=real with missing or broken credentials stops every process
        # (web, worker, beat, manage.py) at start, not the first push at send time.
        ensure_push_configured()
