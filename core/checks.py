from django.conf import settings
from django.core.checks import Warning, register


@register()
def insecure_secret_key(app_configs, **kwargs) -> list[Warning]:
    if not settings.DEBUG and settings.SECRET_KEY == settings.INSECURE_DEFAULT_SECRET_KEY:
        return [
            Warning(
                "SECRET_KEY is the embedded development default.",
                hint="Set SECRET_KEY in the environment for any real deployment.",
                id="core.W001",
            )
        ]
    return []
