from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from payments import checks  # noqa: F401  (registers the system check)
        from payments.services import forget_system_accounts

        # `flush` (the test runner between transactional tests) empties every table, then emits this.
        post_migrate.connect(forget_system_accounts, dispatch_uid="payments.forget_system_accounts")
