from django.apps import AppConfig


class MomentsConfig(AppConfig):
    name = "moments"
    default_auto_field = "django.db.models.BigAutoField"
