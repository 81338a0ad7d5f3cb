from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"

    def ready(self) -> None:
        # System checks; the Celery signals (request ids, the task log line, task metrics, the worker
        # heartbeat).
        from core import checks, tasklog, workers  # noqa: F401
