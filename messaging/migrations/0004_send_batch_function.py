"""The send path's write in one round trip: `messaging_send_batch(batch jsonb, inline_max int)`.

PostgreSQL only (SQLite, the embedded default, keeps the ORM path). One call
checks, writes and emits a whole batch of sends, in this lock order, the same
as every other writer: conversation rows (by id), then stream counters (by
user id). Each statement of the function sees what committed before it ran, so
membership is checked after the conversation locks are held: a member removed
concurrently is either gone before the check or removed after the send.

Input: a JSON array of requests, each validated and de-duplicated by the
caller: {"i": index, "m": new message id, "s": sender, "c": conversation,
"k": client_id, "t": type, "x": text, "r": reply_to, "l": location,
"o": content, "a": attachment id (locked and checked by the caller), "q": how
many new messages the sender may still send in this window (the send rate
limit; null for no limit): requests past it are refused, retries of stored
messages are not counted}.

Output: {"now": created_at (RFC 3339, ms), "items": [...]} in request order, each
{"i", "s": status} with status one of
  "ok"        written: "seq", "r": [[recipient, position], ...] (the sender
              included; blockers of the sender left out), "p": [[recipient,
              muted]] (recipients with a push device), "f": fan-out job id
              (conversations over inline_max: only the sender's event is
              appended now, the job promises everyone else's);
  "dup"       (sender, client_id) already stored: "d": that message's row;
  "not_found" not a current member (or no such conversation);
  "forbidden" a member but not an admin of a broadcast;
  "bad_reply" reply_to names no message of this conversation;
  "rate_limited" past the sender's allowance "q".
"ok" items with push candidates also carry "n": the sender's display name.
A concurrent batch that raced the same client_id into another conversation
raises unique_violation; the caller retries once and then sees "dup".
"""

from django.db import migrations

SEND_BATCH = r"""
CREATE OR REPLACE FUNCTION messaging_send_batch(batch jsonb, inline_max integer)
RETURNS jsonb
LANGUAGE plpgsql
-- Joins between the batch's own intermediate results (a few hundred rows whose counts the
-- planner cannot estimate) are hash joins; every lookup into a table is written as a
-- per-row subquery or LATERAL, which stays an index scan whatever this says.
SET enable_nestloop = off
SET enable_mergejoin = off
AS $fn$
DECLARE
    now_ts timestamptz;
    items jsonb;
BEGIN
    -- 1. Conversation row locks, in id order (the lock every writer of a conversation takes).
    PERFORM 1 FROM messaging_conversation
     WHERE id = ANY (ARRAY(SELECT DISTINCT (e->>'c')::uuid FROM jsonb_array_elements(batch) e))
     ORDER BY id FOR UPDATE;
    -- Taken once the locks are held: within a conversation, later seqs get later times.
    now_ts := clock_timestamp();

    -- 2. One statement, whose snapshot is taken now that the locks are held: judge every
    --    request, allocate seqs, write the messages, their recipients' positions and events.
    WITH q AS (
        SELECT * FROM jsonb_to_recordset(batch)
            AS q(i int, m uuid, s uuid, c uuid, k uuid, t text, x text, r uuid, l jsonb, o jsonb, a uuid, q int)
    ), checked AS (
        SELECT q.*, look.dup_id, look.member_count <= inline_max AS inline,
               CASE WHEN look.dup_id IS NOT NULL THEN 'dup'
                    WHEN look.role IS NULL THEN 'not_found'
                    WHEN look.ctype = 'broadcast' AND look.role NOT IN ('owner', 'admin') THEN 'forbidden'
                    WHEN q.r IS NOT NULL AND NOT look.reply_ok THEN 'bad_reply'
                    ELSE 'ok' END AS status
          FROM q CROSS JOIN LATERAL (SELECT
                (SELECT id FROM messaging_message WHERE sender_id = q.s AND client_id = q.k) AS dup_id,
                (SELECT role FROM messaging_membership
                  WHERE conversation_id = q.c AND user_id = q.s AND left_at IS NULL) AS role,
                (SELECT type FROM messaging_conversation WHERE id = q.c) AS ctype,
                (SELECT member_count FROM messaging_conversation WHERE id = q.c) AS member_count,
                q.r IS NOT NULL AND EXISTS (SELECT 1 FROM messaging_message
                                             WHERE id = q.r AND conversation_id = q.c) AS reply_ok
          ) look
    ), judged AS (
        -- The send rate: each sender's new messages beyond its allowance are refused.
        SELECT c.i, c.m, c.s, c.c, c.k, c.t, c.x, c.r, c.l, c.o, c.a, c.dup_id, c.inline,
               CASE WHEN c.status = 'ok' AND c.q IS NOT NULL
                         AND row_number() OVER (PARTITION BY c.s, c.status = 'ok' ORDER BY c.i) > c.q
                    THEN 'rate_limited' ELSE c.status END AS status
          FROM checked c
    ), counts AS (
        SELECT c, count(*) AS n, (array_agg(m ORDER BY i DESC))[1] AS last_m
          FROM judged WHERE status = 'ok' GROUP BY c
    ), moved AS (
        -- Seqs: one UPDATE for every conversation of the batch, gapless under the row locks.
        UPDATE messaging_conversation cv
           SET last_seq = cv.last_seq + counts.n, updated_at = now_ts, last_message_id = counts.last_m
          FROM counts WHERE cv.id = counts.c
        RETURNING cv.id, cv.last_seq - counts.n AS base
    ), sent AS (
        SELECT j.*, moved.base + row_number() OVER (PARTITION BY j.c ORDER BY j.i) AS seq
          FROM judged j JOIN moved ON moved.id = j.c
         WHERE j.status = 'ok'
    ), inserted AS (
        INSERT INTO messaging_message (id, conversation_id, seq, sender_id, client_id, type, text, content,
                                       attachment_id, reply_to_id, location, created_at, edited_at, deleted_at)
        SELECT m, c, seq, s, k, t, coalesce(x, ''), o, a, r, l, now_ts, NULL, NULL FROM sent
    ), recipients AS (
        -- Current members, minus those who blocked the sender (they get the message hidden
        -- instead); in big conversations only the sender now, and a fan-out job for the rest.
        SELECT sent.i, sent.m, sent.s, mb.user_id AS u, coalesce(mb.muted_until > now_ts, false) AS muted,
               mb.user_id <> sent.s AND EXISTS (SELECT 1 FROM contacts_block bl
                                                 WHERE bl.blocker_id = mb.user_id AND bl.blocked_id = sent.s)
                   AS blocked
          FROM sent CROSS JOIN LATERAL (SELECT user_id, muted_until FROM messaging_membership
                                         WHERE conversation_id = sent.c AND left_at IS NULL) mb
         WHERE sent.inline
        UNION ALL
        SELECT sent.i, sent.m, sent.s, sent.s, false, false FROM sent WHERE NOT sent.inline
    ), hidden AS (
        INSERT INTO messaging_messagehidden (message_id, user_id)
        SELECT m, u FROM recipients WHERE blocked
        ON CONFLICT DO NOTHING
    ), ranked AS (
        SELECT r.*, row_number() OVER (PARTITION BY r.u ORDER BY r.i) AS rank,
               count(*) OVER (PARTITION BY r.u) AS n
          FROM recipients r WHERE NOT r.blocked
    ), heads AS (
        -- Each recipient's stream counter advanced once, locked in user-id order.
        INSERT INTO streams_userstream (user_id, last_position)
        SELECT u, n FROM ranked WHERE rank = 1 ORDER BY u
        ON CONFLICT (user_id) DO UPDATE SET last_position = streams_userstream.last_position + EXCLUDED.last_position
        RETURNING user_id, last_position
    ), placed AS (
        SELECT ranked.*, heads.last_position - ranked.n + ranked.rank AS position
          FROM ranked JOIN heads ON heads.user_id = ranked.u
    ), appended AS (
        -- The events point at their message (rendered at read time); none copies it.
        INSERT INTO streams_event (user_id, position, type, data, ref_id, created_at)
        SELECT u, position, 'message.new', NULL, m, now_ts FROM placed
    ), jobs AS (
        INSERT INTO messaging_fanoutjob (conversation_id, message_id, event_type, data, exclude_user_ids,
                                         cutoff, created_at, after_user_id, finished_at)
        SELECT c, m, 'message.new', '{}'::jsonb, jsonb_build_array(s::text), now_ts, now_ts, NULL, NULL
          FROM sent WHERE NOT inline
        RETURNING id, message_id
    ), positions AS (
        SELECT i, jsonb_agg(jsonb_build_array(u, position)) AS r,
               jsonb_agg(jsonb_build_array(u, muted)) FILTER (
                   WHERE u <> s AND EXISTS (SELECT 1 FROM accounts_device d WHERE d.user_id = placed.u
                                             AND d.revoked_at IS NULL AND d.push_token <> '')) AS p
          FROM placed GROUP BY i
    )
    SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'i', j.i, 's', j.status, 'seq', sent.seq, 'r', positions.r, 'p', positions.p, 'f', jobs.id,
               'n', CASE WHEN positions.p IS NOT NULL THEN (SELECT display_name FROM accounts_user WHERE id = j.s) END,
               'd', CASE WHEN j.status = 'dup' THEN (SELECT to_jsonb(d) FROM messaging_message d WHERE d.id = j.dup_id)
                    END)) ORDER BY j.i)
      INTO items
      FROM judged j
      LEFT JOIN sent ON sent.i = j.i
      LEFT JOIN positions ON positions.i = j.i
      LEFT JOIN jobs ON jobs.message_id = j.m;

    RETURN jsonb_build_object(
        'now', to_char(now_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'items', coalesce(items, '[]'::jsonb));
END
$fn$;
"""

DROP = "DROP FUNCTION IF EXISTS messaging_send_batch(jsonb, integer);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SEND_BATCH)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):

    dependencies = [
        ("messaging", "0003_message_new_events_reference_their_message"),
        ("streams", "0002_event_references_a_row"),
        ("contacts", "0001_peppers_index_books_blocks"),
        ("accounts", "0001_users_devices_verifications"),
    ]

    operations = [migrations.RunPython(create, drop)]
