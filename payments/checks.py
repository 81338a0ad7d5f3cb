from django.conf import settings
from django.core.checks import Warning, register


@register()
def test_backend_outside_debug(app_configs, **kwargs) -> list[Warning]:
    if settings.PAYMENTS_BACKEND == "test" and not settings.DEBUG:
        return [
            Warning(
                "PAYMENTS_BACKEND=test approves every top-up without collecting money.",
                hint="Use it for development, tests and benchmarks only; set a real provider (http) in production.",
                id="payments.W001",
            )
        ]
    return []
