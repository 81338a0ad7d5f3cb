from django.apps import AppConfig


class WebClientConfig(AppConfig):
    name = "webclient"
    verbose_name = "Web client"
