"""`streams_append(items jsonb, at timestamptz)`: the stream's append as a database function.

PostgreSQL only. What `streams.services.stream_append` does, for callers that are
themselves one statement per batch (the ack batch, messaging 0011): they append
through this function instead of writing the stream's tables. `items` is a JSON
array of {"u": user, "t": type, "d": data, "r": ref id or null}; events are
appended in array order per user, counters advanced once per user and locked in
user-id order (the lock order of every appender). Returns (i, user_id, position)
per item, i counting from 1 in array order. As in stream_append, an event with a
ref stores no data (it is rendered from the row at read time).
"""

from django.db import migrations

STREAMS_APPEND = r"""
CREATE OR REPLACE FUNCTION streams_append(items jsonb, at timestamptz)
RETURNS TABLE (i integer, user_id uuid, "position" bigint)
LANGUAGE sql
AS $fn$
    WITH q AS (
        SELECT x.ord::integer AS i, (x.e->>'u')::uuid AS u, x.e->>'t' AS t, x.e->'d' AS d, (x.e->>'r')::uuid AS r
          FROM jsonb_array_elements(items) WITH ORDINALITY AS x(e, ord)
    ), ranked AS (
        SELECT q.*, row_number() OVER (PARTITION BY q.u ORDER BY q.i) AS rank, count(*) OVER (PARTITION BY q.u) AS n
          FROM q
    ), heads AS (
        INSERT INTO streams_userstream (user_id, last_position)
        SELECT u, n FROM ranked WHERE rank = 1 ORDER BY u
        ON CONFLICT (user_id) DO UPDATE SET last_position = streams_userstream.last_position + EXCLUDED.last_position
        RETURNING streams_userstream.user_id, streams_userstream.last_position
    ), placed AS (
        SELECT ranked.*, heads.last_position - ranked.n + ranked.rank AS pos
          FROM ranked JOIN heads ON heads.user_id = ranked.u
    ), appended AS (
        INSERT INTO streams_event (user_id, position, type, data, ref_id, created_at)
        SELECT u, pos, t, CASE WHEN r IS NULL THEN d END, r, at FROM placed
    )
    SELECT placed.i, placed.u, placed.pos FROM placed ORDER BY placed.i
$fn$;
"""

DROP = "DROP FUNCTION IF EXISTS streams_append(jsonb, timestamptz);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STREAMS_APPEND)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):

    dependencies = [("streams", "0003_event_user_without_constraint")]

    operations = [migrations.RunPython(create, drop)]
