from django.apps import AppConfig


class RedpacketsConfig(AppConfig):
    name = "redpackets"
    default_auto_field = "django.db.models.BigAutoField"
