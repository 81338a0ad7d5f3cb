"""The devices' acks in one round trip: `messaging_ack_batch(batch jsonb, inline_max int, group_max int)`.

PostgreSQL only (SQLite keeps the ORM path of messaging.services.receipts.device_ack).
`batch` is a JSON array of {"d": device, "u": its user, "p": stream position the
device stored}, at most one per device. In one transaction, in the lock order of
every writer (device cursors by device id, then memberships by (conversation,
user), then stream counters by user id inside `streams_append`):

1. each device's cursor moves forward to `p`, clamped to its user's stream head
   (a cursor row is created on a device's first ack; a device that no longer exists
   is skipped);
2. every `message.new` newly covered (by another sender) moves the reader's
   delivered pointer in that conversation up to the newest seq (never back, not
   for a member who left);
3. for each pointer that moved: in a small conversation (not a broadcast, at most
   `inline_max` members) each sender of a covered message gets one
   `receipt.delivered` {conversation_id, user_id, seq} appended to its stream; in a
   group of more than `inline_max` and at most `group_max` members the move is
   returned for the coalesced counts (messaging.services.receipt_counts).

Returns {"now": the events' created_at (RFC 3339, ms), "receipts": [[recipient,
position, conversation, reader, seq], ...], "counted": [[conversation, after, upto], ...]}.
"""

from django.db import migrations

ACK_BATCH = r"""
CREATE OR REPLACE FUNCTION messaging_ack_batch(batch jsonb, inline_max integer, group_max integer)
RETURNS jsonb
LANGUAGE plpgsql
-- Every row it touches is found by key (a few per ack), and the planner cannot estimate the
-- batch's rows: nested loops over index scans only, never a scan of the event or message table.
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
-- (whose disabled-path costs would otherwise set off JIT compilation, for a few rows)
SET jit = off
AS $fn$
DECLARE
    now_ts timestamptz := clock_timestamp();
    moves jsonb;
    receipts jsonb;
    counted jsonb;
BEGIN
    -- 1. Cursor rows: created for a device's first ack, then locked in device-id order.
    INSERT INTO messaging_devicecursor (device_id, position)
    SELECT q.d, 0 FROM jsonb_to_recordset(batch) AS q(d uuid)
     WHERE EXISTS (SELECT 1 FROM accounts_device WHERE id = q.d)
     ORDER BY q.d
    ON CONFLICT (device_id) DO NOTHING;
    PERFORM 1 FROM messaging_devicecursor
     WHERE device_id = ANY (ARRAY(SELECT (e->>'d')::uuid FROM jsonb_array_elements(batch) e))
     ORDER BY device_id FOR UPDATE;

    -- 2. Move the cursors (a later snapshot sees the locked rows as they are now) and find the
    --    newest covered seq per (reader, conversation).
    WITH q AS (
        SELECT * FROM jsonb_to_recordset(batch) AS q(d uuid, u uuid, p bigint)
    ), old AS (
        SELECT q.d, q.u, dc.position AS was,
               least(q.p, coalesce((SELECT last_position FROM streams_userstream WHERE user_id = q.u), 0)) AS upto
          FROM q JOIN messaging_devicecursor dc ON dc.device_id = q.d
    ), moved AS (
        UPDATE messaging_devicecursor dc SET position = old.upto
          FROM old WHERE dc.device_id = old.d AND old.upto > old.was
        RETURNING old.u, old.was, old.upto
    ), covered AS (
        SELECT moved.u AS reader, msg.conversation_id AS c, msg.seq, msg.sender_id AS s
          FROM moved
          CROSS JOIN LATERAL (SELECT ref_id FROM streams_event ev
                               WHERE ev.user_id = moved.u AND ev.position > moved.was AND ev.position <= moved.upto
                                 AND ev.type = 'message.new') ev
          CROSS JOIN LATERAL (SELECT conversation_id, seq, sender_id FROM messaging_message
                               WHERE id = ev.ref_id) msg
         WHERE msg.sender_id <> moved.u
    )
    SELECT jsonb_agg(jsonb_build_object('u', reader, 'c', c, 'newest', newest, 'oldest', oldest, 'senders', senders)
                     ORDER BY c, reader)
      INTO moves
      FROM (SELECT reader, c, max(seq) AS newest, min(seq) AS oldest, array_agg(DISTINCT s ORDER BY s) AS senders
              FROM covered GROUP BY reader, c) per_conversation;
    IF moves IS NULL THEN
        RETURN jsonb_build_object('now', to_char(now_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                                  'receipts', '[]'::jsonb, 'counted', '[]'::jsonb);
    END IF;

    -- 3. The readers' memberships, locked in (conversation, user) order, then moved.
    PERFORM 1 FROM messaging_membership mb
      JOIN jsonb_to_recordset(moves) AS m(u uuid, c uuid) ON mb.conversation_id = m.c AND mb.user_id = m.u
     ORDER BY mb.conversation_id, mb.user_id FOR UPDATE OF mb;
    WITH m AS (
        SELECT * FROM jsonb_to_recordset(moves) AS m(u uuid, c uuid, newest integer, oldest integer, senders uuid[])
    ), moved AS (
        UPDATE messaging_membership mb SET delivered_seq = m.newest, delivered_at = now_ts
          FROM m
         WHERE mb.conversation_id = m.c AND mb.user_id = m.u AND mb.delivered_seq < m.newest AND mb.left_at IS NULL
        RETURNING m.u, m.c, m.newest, m.oldest, m.senders
    ), kinds AS (
        SELECT moved.*, cv.type, cv.member_count FROM moved JOIN messaging_conversation cv ON cv.id = moved.c
    ), owed AS (
        -- One receipt per sender of a small conversation, in (reader, conversation, sender) order.
        SELECT row_number() OVER (ORDER BY kinds.u, kinds.c, s.sender) AS i, s.sender, kinds.c, kinds.u, kinds.newest
          FROM kinds CROSS JOIN LATERAL unnest(kinds.senders) AS s(sender)
         WHERE kinds.type <> 'broadcast' AND kinds.member_count <= inline_max
    ), appended AS (
        SELECT a.i, a."position" FROM streams_append(
            (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'u', sender, 't', 'receipt.delivered', 'r', NULL,
                        'd', jsonb_build_object('conversation_id', c, 'user_id', u, 'seq', newest)) ORDER BY i),
                     '[]'::jsonb) FROM owed),
            now_ts) a
    )
    SELECT (SELECT coalesce(jsonb_agg(jsonb_build_array(owed.sender, appended."position", owed.c, owed.u, owed.newest)
                                      ORDER BY owed.i), '[]'::jsonb)
              FROM owed JOIN appended ON appended.i = owed.i),
           (SELECT coalesce(jsonb_agg(jsonb_build_array(kinds.c, kinds.oldest - 1, kinds.newest)), '[]'::jsonb)
              FROM kinds WHERE kinds.type = 'group' AND kinds.member_count > inline_max
                           AND kinds.member_count <= group_max)
      INTO receipts, counted;

    RETURN jsonb_build_object('now', to_char(now_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                              'receipts', receipts, 'counted', counted);
END
$fn$;
"""

DROP = "DROP FUNCTION IF EXISTS messaging_ack_batch(jsonb, integer, integer);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ACK_BATCH)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):

    dependencies = [
        ("messaging", "0010_membership_receipt_times"),
        ("streams", "0004_streams_append_function"),
        ("accounts", "0001_users_devices_verifications"),
    ]

    operations = [migrations.RunPython(create, drop)]
