"""The send function finds the conversations it advances and their members by key.

0004 turned nested loops off for its joins between the batch's own intermediate
results, and wrote table lookups as per-row subqueries or LATERAL. But a plain
LATERAL subquery is pulled up into an ordinary join, and without nested loops a join
with a table is a hash join over the whole table: every batch read every conversation
row (the seq UPDATE) and every active membership (the recipients). Cheap on a small
database, ruinous on a large one. Both now name their rows by `= ANY (ARRAY(...))`, an
index scan for the batch's conversations only.

And JIT is off for it: the planner's cost of the batch grows with the message table's
statistics until it passes `jit_above_cost`, and from then on every batch compiled its
plan first (about 100 ms per batch, seen on a bench database of 3 million messages),
for a few hundred rows. The rest is 0008's, unchanged.
"""

from importlib import import_module

from django.db import migrations

_previous = import_module("messaging.migrations.0008_send_batch_returns_conversation_title")

_SEQ_UPDATE = "          FROM counts WHERE cv.id = counts.c\n"
_SEQ_UPDATE_BY_KEY = ("          FROM counts WHERE cv.id = counts.c\n"
                      "           AND cv.id = ANY (ARRAY(SELECT c FROM counts))  -- by key, never the whole table\n")
_MEMBERS = """          FROM sent CROSS JOIN LATERAL (SELECT user_id, muted_until FROM messaging_membership
                                         WHERE conversation_id = sent.c AND left_at IS NULL) mb
         WHERE sent.inline
"""
_MEMBERS_BY_KEY = """          FROM sent JOIN messaging_membership mb ON mb.conversation_id = sent.c AND mb.left_at IS NULL
         WHERE sent.inline
           AND mb.conversation_id = ANY (ARRAY(SELECT c FROM sent WHERE inline))  -- by key, never the whole table
"""
_SETTINGS = "SET enable_mergejoin = off\nAS $fn$"
_SETTINGS_NO_JIT = "SET enable_mergejoin = off\nSET jit = off\nAS $fn$"
assert all(part in _previous.SEND_BATCH for part in (_SEQ_UPDATE, _MEMBERS, _SETTINGS))
SEND_BATCH = (_previous.SEND_BATCH.replace(_SEQ_UPDATE, _SEQ_UPDATE_BY_KEY).replace(_MEMBERS, _MEMBERS_BY_KEY)
              .replace(_SETTINGS, _SETTINGS_NO_JIT))


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SEND_BATCH)


def restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_previous.SEND_BATCH)


class Migration(migrations.Migration):

    dependencies = [("messaging", "0011_ack_batch_function")]

    operations = [migrations.RunPython(create, restore)]
