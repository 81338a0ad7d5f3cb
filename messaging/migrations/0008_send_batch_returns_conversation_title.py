"""The send function also returns the conversation's title for pushes ("t", beside the
sender's name "n"), so the push title rule (messaging.services.push.message_push_title)
needs no extra query on the send path. The rest of the function is 0004's, unchanged."""

from importlib import import_module

from django.db import migrations

_previous = import_module("messaging.migrations.0004_send_batch_function")
_NAME = "'n', CASE WHEN positions.p IS NOT NULL THEN (SELECT display_name FROM accounts_user WHERE id = j.s) END,"
_TITLE = "'t', CASE WHEN positions.p IS NOT NULL THEN (SELECT title FROM messaging_conversation WHERE id = j.c) END,"
assert _NAME in _previous.SEND_BATCH
SEND_BATCH = _previous.SEND_BATCH.replace(_NAME, _NAME + "\n               " + _TITLE)


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SEND_BATCH)


def restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_previous.SEND_BATCH)


class Migration(migrations.Migration):

    dependencies = [("messaging", "0007_durable_fanout_failures")]

    operations = [migrations.RunPython(create, restore)]
