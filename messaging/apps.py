from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        from messaging.events import MESSAGE_NEW
        from messaging.selectors import messages_public_by_id
        from streams.rendering import register_renderer

        # message.new events point at their message (one row, not a copy per recipient).
        register_renderer(MESSAGE_NEW, messages_public_by_id)
