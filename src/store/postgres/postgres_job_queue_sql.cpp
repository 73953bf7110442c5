// PostgresJobQueue: the queue schema and its PL/pgSQL functions (pg::QueueMigrations()). Split
// from postgres_job_queue.cpp to keep files small; the C++ side that calls these functions is
// there.
#include <vector>

#include "store/postgres/pg.hpp"

namespace syncwell::store::pg {

// The queue schema (docs/adr/0002-job-queue.md, "How the PostgreSQL adapter implements the same
// port"). Every operation is one call of a PL/pgSQL function below: one round trip, plans cached
// per connection, and a fresh READ COMMITTED snapshot per statement inside, which the head
// maintenance relies on (see queue_advance_head).
std::vector<Migration> QueueMigrations() {
  return {
      Migration{"queue", 1, "queue messages, groups, dedup, counters and functions", R"sql(
-- Messages. Only the primary key, the group order and the DLQ index exist, and none of them
-- covers a column that Receive / ChangeVisibility / Fail / Defer change (state, visible_at_ms,
-- receive_count, deliveries, history), so those updates are HOT (no index churn); fillfactor
-- leaves the room on each page for that.
CREATE TABLE queue_messages (
  id bigserial PRIMARY KEY,
  group_id text NOT NULL,
  dedup_id text NOT NULL DEFAULT '',
  priority smallint NOT NULL,
  body bytea NOT NULL,
  enqueued_at_ms bigint NOT NULL,
  due_at_ms bigint NOT NULL,
  visible_at_ms bigint NOT NULL,
  receive_count integer NOT NULL DEFAULT 0,
  deliveries bigint NOT NULL DEFAULT 0,
  -- 'ready' | 'inflight' | 'dlq'; dead_lettered_at_ms is set exactly while 'dlq'. (No CHECK
  -- constraints: PostgreSQL re-reads them for every statement that writes the table.)
  state text NOT NULL DEFAULT 'ready',
  history text NOT NULL DEFAULT '',
  dead_lettered_at_ms bigint
) WITH (fillfactor = 80,
        autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 20000,
        autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 2000,
        autovacuum_vacuum_cost_delay = 0, autovacuum_vacuum_cost_limit = 10000);
-- The group's order (next head) and a user purge; DLQ rows are filtered in the heap.
CREATE INDEX queue_messages_group_order ON queue_messages (group_id, due_at_ms, id);
-- DLQ listing/paging.
CREATE INDEX queue_messages_dlq ON queue_messages (id) WHERE dead_lettered_at_ms IS NOT NULL;

-- One row per group that has a non-dead-lettered message: its head (the message delivered next,
-- or held now) with the head's priority and the time it becomes claimable (visible_at, or the
-- lease end while held). Receive locks these small rows, never message rows, to claim.
CREATE TABLE queue_groups (
  group_id text PRIMARY KEY,
  head_id bigint NOT NULL,
  head_due_at_ms bigint NOT NULL,
  head_priority smallint NOT NULL,
  head_visible_at_ms bigint NOT NULL,
  held boolean NOT NULL DEFAULT false
) WITH (fillfactor = 70,
        autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
        autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000,
        autovacuum_vacuum_cost_delay = 0, autovacuum_vacuum_cost_limit = 10000);
CREATE INDEX queue_groups_claim ON queue_groups (head_priority, head_visible_at_ms, head_id);

CREATE TABLE queue_dedup (
  dedup_id text PRIMARY KEY,
  message_id bigint NOT NULL,
  expires_at_ms bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 2000,
        autovacuum_vacuum_cost_delay = 0, autovacuum_vacuum_cost_limit = 10000);
-- Housekeep's range: expiry grows with insertion order, so a BRIN index serves it at almost no
-- cost per send (a btree would be one more index insertion on every send).
CREATE INDEX queue_dedup_expiry ON queue_dedup USING brin (expires_at_ms);

-- Counters, sharded so that concurrent transactions do not queue on one row lock: each call
-- updates one shard row (chosen by the caller), Stats sums them.
CREATE TABLE queue_counters (
  shard smallint PRIMARY KEY,
  enqueued bigint NOT NULL DEFAULT 0,
  deduplicated bigint NOT NULL DEFAULT 0,
  delivered bigint NOT NULL DEFAULT 0,
  redelivered bigint NOT NULL DEFAULT 0,
  dead_lettered bigint NOT NULL DEFAULT 0,
  deferred bigint NOT NULL DEFAULT 0,
  redriven bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 10, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 200,
        autovacuum_vacuum_cost_delay = 0);
INSERT INTO queue_counters (shard) SELECT generate_series(0, 1023);

-- Listening connections (backend pid) of processes that have a receiver blocked in a long poll
-- right now (or did very recently). Writers NOTIFY only while a row exists: a NOTIFY takes a
-- database-wide lock at commit, which halves send throughput, and under load nobody waits.
-- Unlogged: after a crash it is empty and waiting processes register again.
CREATE UNLOGGED TABLE queue_waiters (pid integer PRIMARY KEY);

-- The NOTIFY channel of this schema (LISTENers ask for it, so both sides agree).
CREATE FUNCTION queue_channel() RETURNS text LANGUAGE sql STABLE AS $f$
  SELECT CASE WHEN octet_length('sw_queue_' || current_schema()) <= 63
              THEN 'sw_queue_' || current_schema()
              ELSE 'sw_queue_' || md5(current_schema()) END
$f$;

-- Offers message p_id as its group's head: it becomes the head when the group has none, or when
-- the head is not held and p_id sorts before it in (due_at, id) order. Locks the group row.
CREATE FUNCTION queue_offer_head(p_group text, p_id bigint, p_due bigint, p_priority smallint,
                                 p_visible bigint) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO queue_groups AS g (group_id, head_id, head_due_at_ms, head_priority,
                                 head_visible_at_ms, held)
  VALUES (p_group, p_id, p_due, p_priority, p_visible, false)
  ON CONFLICT (group_id) DO UPDATE
    SET head_id = EXCLUDED.head_id, head_due_at_ms = EXCLUDED.head_due_at_ms,
        head_priority = EXCLUDED.head_priority, head_visible_at_ms = EXCLUDED.head_visible_at_ms,
        held = false
    WHERE NOT g.held AND (EXCLUDED.head_due_at_ms, EXCLUDED.head_id) < (g.head_due_at_ms, g.head_id);
END
$f$;

-- After the head of p_group was deleted or dead-lettered: the first remaining message in
-- (due_at, id) order becomes the head, or the group row goes. The CALLER HOLDS THE GROUP ROW LOCK
-- (taken before it changed the old head), so this statement's fresh snapshot sees every message
-- whose sender got past the group row: a concurrent Send either committed before (seen here) or
-- waits for our lock and offers its message afterwards.
CREATE FUNCTION queue_advance_head(p_group text) RETURNS boolean LANGUAGE plpgsql AS $f$
DECLARE
  v_id bigint; v_due bigint; v_priority smallint; v_visible bigint; v_state text;
BEGIN
  SELECT m.id, m.due_at_ms, m.priority, m.visible_at_ms, m.state
    INTO v_id, v_due, v_priority, v_visible, v_state
    FROM queue_messages m
   WHERE m.group_id = p_group AND m.dead_lettered_at_ms IS NULL
   ORDER BY m.due_at_ms, m.id LIMIT 1;
  IF NOT FOUND THEN
    DELETE FROM queue_groups g WHERE g.group_id = p_group;
    RETURN false;
  END IF;
  INSERT INTO queue_groups AS g (group_id, head_id, head_due_at_ms, head_priority,
                                 head_visible_at_ms, held)
  VALUES (p_group, v_id, v_due, v_priority, v_visible, v_state = 'inflight')
  ON CONFLICT (group_id) DO UPDATE
    SET head_id = EXCLUDED.head_id, head_due_at_ms = EXCLUDED.head_due_at_ms,
        head_priority = EXCLUDED.head_priority, head_visible_at_ms = EXCLUDED.head_visible_at_ms,
        held = EXCLUDED.held;
  RETURN true;
END
$f$;

-- Send (also inside PostgresStore::CreateJob's transaction), one statement in the common case.
-- Dedup: a row of queue_dedup that has not expired wins (o_dedup = true, its message id
-- returned); otherwise the upsert (re)claims the row for the new message atomically, and only
-- then are the message, its group head offer (queue_offer_head, inlined), the counter and the
-- NOTIFY (only while some process waits in a long poll) written.
CREATE FUNCTION queue_send(p_group text, p_dedup text, p_priority smallint, p_body bytea,
                           p_now bigint, p_due bigint, p_expires bigint, p_shard smallint,
                           OUT o_id bigint, OUT o_dedup boolean) LANGUAGE plpgsql AS $f$
DECLARE
  v_sent bigint; v_orig bigint;
BEGIN
  o_id := nextval('queue_messages_id_seq');
  o_dedup := false;
  FOR i IN 1..3 LOOP
    WITH d AS (
      INSERT INTO queue_dedup AS d (dedup_id, message_id, expires_at_ms)
      SELECT p_dedup, o_id, p_expires WHERE p_dedup <> ''
      ON CONFLICT (dedup_id) DO UPDATE
        SET message_id = EXCLUDED.message_id, expires_at_ms = EXCLUDED.expires_at_ms
        WHERE d.expires_at_ms <= p_now
      RETURNING 1),
    m AS (
      INSERT INTO queue_messages (id, group_id, dedup_id, priority, body, enqueued_at_ms,
                                  due_at_ms, visible_at_ms)
      SELECT o_id, p_group, p_dedup, p_priority, p_body, p_now, p_due, p_due
       WHERE p_dedup = '' OR EXISTS (SELECT 1 FROM d)
      RETURNING id),
    g AS (
      INSERT INTO queue_groups AS g (group_id, head_id, head_due_at_ms, head_priority,
                                     head_visible_at_ms, held)
      SELECT p_group, m.id, p_due, p_priority, p_due, false FROM m
      ON CONFLICT (group_id) DO UPDATE
        SET head_id = EXCLUDED.head_id, head_due_at_ms = EXCLUDED.head_due_at_ms,
            head_priority = EXCLUDED.head_priority,
            head_visible_at_ms = EXCLUDED.head_visible_at_ms, held = false
        WHERE NOT g.held
          AND (EXCLUDED.head_due_at_ms, EXCLUDED.head_id) < (g.head_due_at_ms, g.head_id)),
    c AS (
      UPDATE queue_counters c SET enqueued = c.enqueued + 1
       WHERE c.shard = p_shard AND EXISTS (SELECT 1 FROM m)),
    n AS (
      SELECT pg_notify(queue_channel(), '') FROM queue_waiters
       WHERE EXISTS (SELECT 1 FROM m) LIMIT 1)
    SELECT (SELECT count(*) FROM m) + 0 * (SELECT count(*) FROM n) INTO v_sent;
    IF v_sent > 0 THEN
      RETURN;
    END IF;
    SELECT d.message_id INTO v_orig FROM queue_dedup d
     WHERE d.dedup_id = p_dedup AND d.expires_at_ms > p_now;
    IF FOUND THEN
      UPDATE queue_counters c SET deduplicated = c.deduplicated + 1 WHERE c.shard = p_shard;
      o_id := v_orig;
      o_dedup := true;
      RETURN;
    END IF;
    -- The winning row changed between the two statements (expired and re-used): again.
  END LOOP;
  RAISE EXCEPTION 'queue_send: dedup row % keeps changing', p_dedup USING ERRCODE = '40001';
END
$f$;

-- Receive, fast path, as one statement's worth of work: locks up to p_n claimable group heads per
-- priority (FOR UPDATE SKIP LOCKED, so concurrent receivers take different groups), keeps the
-- p_n first by effective time (visible since + priority lag; ties by id) and delivers those that
-- are plain ready messages below the receive limit. Heads that need the slow path (an expired
-- hold, which gets an "expired" history entry, or a receive count at the limit, which is
-- dead-lettered instead) come back with o_slow = true and unchanged; the caller handles them.
CREATE FUNCTION queue_claim(p_now bigint, p_until bigint, p_n integer, p_max integer,
                            p_lag_medium bigint, p_lag_low bigint, p_shard smallint)
RETURNS TABLE (o_ord integer, o_slow boolean, o_id bigint, o_group text, o_dedup text,
               o_priority smallint, o_body text, o_enqueued bigint, o_receive_count integer,
               o_deliveries bigint, o_history text)
LANGUAGE plpgsql AS $f$
DECLARE
  v_ids bigint[];
BEGIN
  WITH c0 AS MATERIALIZED (
         SELECT g.head_id, g.head_visible_at_ms AS eff FROM queue_groups g
          WHERE g.head_priority = 0 AND g.head_visible_at_ms <= p_now
          ORDER BY g.head_visible_at_ms, g.head_id LIMIT p_n FOR UPDATE SKIP LOCKED),
       c1 AS MATERIALIZED (
         SELECT g.head_id, g.head_visible_at_ms + p_lag_medium AS eff FROM queue_groups g
          WHERE g.head_priority = 1 AND g.head_visible_at_ms <= p_now
          ORDER BY g.head_visible_at_ms, g.head_id LIMIT p_n FOR UPDATE SKIP LOCKED),
       c2 AS MATERIALIZED (
         SELECT g.head_id, g.head_visible_at_ms + p_lag_low AS eff FROM queue_groups g
          WHERE g.head_priority = 2 AND g.head_visible_at_ms <= p_now
          ORDER BY g.head_visible_at_ms, g.head_id LIMIT p_n FOR UPDATE SKIP LOCKED)
  SELECT array_agg(u.head_id ORDER BY u.eff, u.head_id) INTO v_ids
    FROM (SELECT a.head_id, a.eff
            FROM (SELECT * FROM c0 UNION ALL SELECT * FROM c1 UNION ALL SELECT * FROM c2) a
           ORDER BY a.eff, a.head_id LIMIT p_n) u;
  IF v_ids IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
  WITH o AS (SELECT t.id, t.ord::integer AS ord FROM unnest(v_ids) WITH ORDINALITY AS t(id, ord)),
  upd AS (
    UPDATE queue_messages m
       SET state = 'inflight', receive_count = m.receive_count + 1,
           deliveries = m.deliveries + 1, visible_at_ms = p_until
      FROM o
     WHERE m.id = o.id AND m.state = 'ready' AND m.receive_count < p_max
    RETURNING o.ord, m.id, m.group_id, m.dedup_id, m.priority, m.body, m.enqueued_at_ms,
              m.receive_count, m.deliveries, m.history),
  grp AS (
    UPDATE queue_groups g SET held = true, head_visible_at_ms = p_until
      FROM upd WHERE g.group_id = upd.group_id AND g.head_id = upd.id),
  cnt AS (
    UPDATE queue_counters c
       SET delivered = c.delivered + (SELECT count(*) FROM upd),
           redelivered = c.redelivered + (SELECT count(*) FROM upd WHERE upd.deliveries > 1)
     WHERE c.shard = p_shard AND EXISTS (SELECT 1 FROM upd))
  SELECT upd.ord, false, upd.id, upd.group_id, upd.dedup_id, upd.priority,
         encode(upd.body, 'hex'), upd.enqueued_at_ms, upd.receive_count, upd.deliveries,
         upd.history
    FROM upd
  UNION ALL
  SELECT o.ord, true, m.id, m.group_id, m.dedup_id, m.priority, NULL::text, m.enqueued_at_ms,
         m.receive_count, m.deliveries, NULL::text
    FROM o JOIN queue_messages m ON m.id = o.id
   WHERE NOT (m.state = 'ready' AND m.receive_count < p_max);
END
$f$;

-- Receive, slow path: delivers one head whose history the caller rewrote (expired hold). The
-- caller holds the group row lock.
CREATE FUNCTION queue_deliver(p_id bigint, p_until bigint, p_history text, p_shard smallint,
                              OUT o_receive_count integer, OUT o_deliveries bigint)
LANGUAGE plpgsql AS $f$
DECLARE
  v_group text;
BEGIN
  UPDATE queue_messages m
     SET state = 'inflight', receive_count = m.receive_count + 1, deliveries = m.deliveries + 1,
         visible_at_ms = p_until, history = p_history
   WHERE m.id = p_id AND m.state <> 'dlq'
  RETURNING m.receive_count, m.deliveries, m.group_id INTO o_receive_count, o_deliveries, v_group;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  UPDATE queue_groups g SET held = true, head_visible_at_ms = p_until
   WHERE g.group_id = v_group AND g.head_id = p_id;
  UPDATE queue_counters c
     SET delivered = c.delivered + 1,
         redelivered = c.redelivered + (CASE WHEN o_deliveries > 1 THEN 1 ELSE 0 END)
   WHERE c.shard = p_shard;
END
$f$;

-- Moves a (held or claimed) head to the DLQ with its new history and makes the group's next
-- message the head. The caller holds the group row lock.
CREATE FUNCTION queue_dead_letter(p_id bigint, p_now bigint, p_history text, p_shard smallint)
RETURNS boolean LANGUAGE plpgsql AS $f$
DECLARE
  v_group text;
BEGIN
  UPDATE queue_messages m SET state = 'dlq', dead_lettered_at_ms = p_now, history = p_history
   WHERE m.id = p_id AND m.state <> 'dlq'
  RETURNING m.group_id INTO v_group;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  UPDATE queue_counters c SET dead_lettered = c.dead_lettered + 1 WHERE c.shard = p_shard;
  PERFORM queue_advance_head(v_group);
  RETURN true;
END
$f$;

-- Receipt operations: 0 = done, 1 = no such message (kNotFound), 2 = not held under this delivery
-- (kConflict). Each locks the group row first (the lock order everywhere is group, then message),
-- then checks the receipt in the UPDATE/DELETE itself.
CREATE FUNCTION queue_delete(p_id bigint, p_deliveries bigint) RETURNS integer
LANGUAGE plpgsql AS $f$
DECLARE
  v_group text; v_code integer;
BEGIN
  -- The group row is locked (the FOR UPDATE subquery runs when the join reaches it) before the
  -- message row is (when its deletion is executed): the lock order of every writer.
  DELETE FROM queue_messages m
   USING (SELECT g.group_id FROM queue_groups g
           WHERE g.group_id = (SELECT x.group_id FROM queue_messages x WHERE x.id = p_id)
             FOR UPDATE) lk
   WHERE m.id = p_id AND m.deliveries = p_deliveries AND m.state = 'inflight'
     AND m.group_id = lk.group_id
  RETURNING m.group_id INTO v_group;
  IF NOT FOUND THEN
    SELECT CASE WHEN m.deliveries = p_deliveries AND m.state = 'inflight' THEN 3 ELSE 2 END
      INTO v_code FROM queue_messages m WHERE m.id = p_id;
    IF NOT FOUND THEN
      RETURN 1;
    ELSIF v_code = 2 THEN
      RETURN 2;
    END IF;
    -- Held under this receipt but its group row is missing (not expected): delete anyway.
    DELETE FROM queue_messages m
     WHERE m.id = p_id AND m.deliveries = p_deliveries AND m.state = 'inflight'
    RETURNING m.group_id INTO v_group;
    IF NOT FOUND THEN
      RETURN 2;
    END IF;
  END IF;
  -- queue_advance_head as one statement (the hot path); its snapshot is taken after the lock.
  WITH n AS (
    SELECT m.id, m.due_at_ms, m.priority, m.visible_at_ms, m.state FROM queue_messages m
     WHERE m.group_id = v_group AND m.dead_lettered_at_ms IS NULL
     ORDER BY m.due_at_ms, m.id LIMIT 1),
  u AS (
    INSERT INTO queue_groups AS g (group_id, head_id, head_due_at_ms, head_priority,
                                   head_visible_at_ms, held)
    SELECT v_group, n.id, n.due_at_ms, n.priority, n.visible_at_ms, n.state = 'inflight' FROM n
    ON CONFLICT (group_id) DO UPDATE
      SET head_id = EXCLUDED.head_id, head_due_at_ms = EXCLUDED.head_due_at_ms,
          head_priority = EXCLUDED.head_priority,
          head_visible_at_ms = EXCLUDED.head_visible_at_ms, held = EXCLUDED.held)
  DELETE FROM queue_groups g WHERE g.group_id = v_group AND NOT EXISTS (SELECT 1 FROM n);
  RETURN 0;
END
$f$;

CREATE FUNCTION queue_change_visibility(p_id bigint, p_deliveries bigint, p_until bigint,
                                        p_release boolean) RETURNS integer
LANGUAGE plpgsql AS $f$
DECLARE
  v_group text;
BEGIN
  PERFORM 1 FROM queue_groups g
   WHERE g.group_id = (SELECT m.group_id FROM queue_messages m WHERE m.id = p_id) FOR UPDATE;
  UPDATE queue_messages m
     SET visible_at_ms = p_until, state = CASE WHEN p_release THEN 'ready' ELSE 'inflight' END
   WHERE m.id = p_id AND m.deliveries = p_deliveries AND m.state = 'inflight'
  RETURNING m.group_id INTO v_group;
  IF NOT FOUND THEN
    PERFORM 1 FROM queue_messages m WHERE m.id = p_id;
    RETURN CASE WHEN FOUND THEN 2 ELSE 1 END;
  END IF;
  UPDATE queue_groups g SET head_visible_at_ms = p_until, held = NOT p_release
   WHERE g.group_id = v_group AND g.head_id = p_id;
  IF p_release AND EXISTS (SELECT 1 FROM queue_waiters) THEN
    PERFORM pg_notify(queue_channel(), '');
  END IF;
  RETURN 0;
END
$f$;

-- Fail (retry) and Defer: the held message goes back to ready at p_until with the caller's
-- receive count and history. The caller holds the group row lock and checked the receipt.
CREATE FUNCTION queue_return(p_id bigint, p_until bigint, p_receive_count integer,
                             p_history text) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
  v_group text;
BEGIN
  UPDATE queue_messages m
     SET state = 'ready', visible_at_ms = p_until, receive_count = p_receive_count,
         history = p_history
   WHERE m.id = p_id
  RETURNING m.group_id INTO v_group;
  UPDATE queue_groups g SET head_visible_at_ms = p_until, held = false
   WHERE g.group_id = v_group AND g.head_id = p_id;
END
$f$;

-- DLQ redrive: back to ready (receive count 0, due now, history kept), offered as its group's
-- head (behind a held head). Lock order: the DLQ message (never a head, so nobody who holds a
-- group lock waits for it), then the group.
CREATE FUNCTION queue_redrive(p_id bigint, p_now bigint, p_shard smallint) RETURNS boolean
LANGUAGE plpgsql AS $f$
DECLARE
  v_group text; v_priority smallint;
BEGIN
  UPDATE queue_messages m
     SET state = 'ready', receive_count = 0, due_at_ms = p_now, visible_at_ms = p_now,
         dead_lettered_at_ms = NULL
   WHERE m.id = p_id AND m.state = 'dlq'
  RETURNING m.group_id, m.priority INTO v_group, v_priority;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM queue_offer_head(v_group, p_id, p_now, v_priority, p_now);
  UPDATE queue_counters c SET redriven = c.redriven + 1 WHERE c.shard = p_shard;
  IF EXISTS (SELECT 1 FROM queue_waiters) THEN
    PERFORM pg_notify(queue_channel(), '');
  END IF;
  RETURN true;
END
$f$;

CREATE FUNCTION queue_redrive_all(p_now bigint, p_shard smallint) RETURNS bigint
LANGUAGE plpgsql AS $f$
DECLARE
  v_id bigint; v_n bigint := 0;
BEGIN
  FOR v_id IN SELECT m.id FROM queue_messages m WHERE m.dead_lettered_at_ms IS NOT NULL
               ORDER BY m.id LOOP
    IF queue_redrive(v_id, p_now, p_shard) THEN
      v_n := v_n + 1;
    END IF;
  END LOOP;
  RETURN v_n;
END
$f$;

-- Removes every message of a group (a user purge) with its dedup records and its group row; the
-- group row is locked first, like every other writer of a group.
CREATE FUNCTION queue_purge_group(p_group text) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE
  v_n bigint;
BEGIN
  PERFORM 1 FROM queue_groups g WHERE g.group_id = p_group FOR UPDATE;
  DELETE FROM queue_dedup d USING queue_messages m
   WHERE m.group_id = p_group AND d.dedup_id = m.dedup_id AND d.message_id = m.id;
  DELETE FROM queue_messages m WHERE m.group_id = p_group;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  DELETE FROM queue_groups g WHERE g.group_id = p_group;
  RETURN v_n;
END
$f$;
)sql"},
      Migration{"queue", 2, "queue_send_many: a batch of sends as one statement", R"sql(
-- SendBatch: the messages of arrays p_* (in array order) as queue_send would treat them one
-- after another, as one statement instead of one call per message. Rows are locked in a fixed
-- order (dedup ids sorted, then groups sorted, one counter row), so concurrent batches do not
-- deadlock. Returns (ordinal in the arrays, message id, deduplicated).
CREATE FUNCTION queue_send_many(p_groups text[], p_dedups text[], p_priorities smallint[],
                                p_bodies bytea[], p_dues bigint[], p_now bigint,
                                p_expires bigint, p_shard smallint)
RETURNS TABLE (o_ord integer, o_id bigint, o_dedup boolean) LANGUAGE plpgsql AS $f$
DECLARE
  v_n integer := coalesce(array_length(p_groups, 1), 0);
  v_ids bigint[] := '{}';
  v_out bigint[];
  v_dedup boolean[];
  v_orig bigint;
BEGIN
  IF v_n = 0 THEN
    RETURN;
  END IF;
  -- Ids in array order, so a group's messages with equal due times keep the batch's order.
  FOR i IN 1..v_n LOOP
    v_ids := v_ids || nextval('queue_messages_id_seq');
  END LOOP;
  WITH input AS (
    SELECT u.ord::integer AS ord, v_ids[u.ord::integer] AS id, u.g, u.d, u.pr, u.b, u.due,
           CASE WHEN u.d = '' THEN u.ord::integer
                ELSE (min(u.ord) OVER (PARTITION BY u.d))::integer END AS first_ord
      FROM unnest(p_groups, p_dedups, p_priorities, p_bodies, p_dues)
           WITH ORDINALITY AS u(g, d, pr, b, due, ord)),
  -- The first message of each dedup id claims (or re-claims, when expired) its row; a live row
  -- wins (and stays locked by the upsert, so the read of it below is stable).
  claimed AS (
    INSERT INTO queue_dedup AS dd (dedup_id, message_id, expires_at_ms)
    SELECT i.d, i.id, p_expires FROM input i
     WHERE i.d <> '' AND i.ord = i.first_ord ORDER BY i.d
    ON CONFLICT (dedup_id) DO UPDATE
      SET message_id = EXCLUDED.message_id, expires_at_ms = EXCLUDED.expires_at_ms
      WHERE dd.expires_at_ms <= p_now
    RETURNING dd.dedup_id),
  sent AS (
    SELECT i.* FROM input i
     WHERE i.ord = i.first_ord AND (i.d = '' OR i.d IN (SELECT c.dedup_id FROM claimed c))),
  m AS (
    INSERT INTO queue_messages (id, group_id, dedup_id, priority, body, enqueued_at_ms,
                                due_at_ms, visible_at_ms)
    SELECT s.id, s.g, s.d, s.pr, s.b, p_now, s.due, s.due FROM sent s ORDER BY s.id
    RETURNING 1),
  -- Each group's earliest new message is offered as its head (what offering them one by one
  -- would leave), groups in sorted order.
  g AS (
    INSERT INTO queue_groups AS gr (group_id, head_id, head_due_at_ms, head_priority,
                                    head_visible_at_ms, held)
    SELECT DISTINCT ON (s.g) s.g, s.id, s.due, s.pr, s.due, false
      FROM sent s ORDER BY s.g, s.due, s.id
    ON CONFLICT (group_id) DO UPDATE
      SET head_id = EXCLUDED.head_id, head_due_at_ms = EXCLUDED.head_due_at_ms,
          head_priority = EXCLUDED.head_priority,
          head_visible_at_ms = EXCLUDED.head_visible_at_ms, held = false
      WHERE NOT gr.held
        AND (EXCLUDED.head_due_at_ms, EXCLUDED.head_id) < (gr.head_due_at_ms, gr.head_id)),
  c AS (
    UPDATE queue_counters qc
       SET enqueued = qc.enqueued + (SELECT count(*) FROM sent),
           deduplicated = qc.deduplicated + v_n - (SELECT count(*) FROM sent)
     WHERE qc.shard = p_shard),
  n AS (
    SELECT pg_notify(queue_channel(), '') FROM queue_waiters
     WHERE EXISTS (SELECT 1 FROM sent) LIMIT 1)
  SELECT array_agg(coalesce(s.id, f.id,
                            (SELECT x.message_id FROM queue_dedup x WHERE x.dedup_id = i.d))
                   ORDER BY i.ord),
         array_agg(s.id IS NULL OR (SELECT count(*) FROM n) < 0 ORDER BY i.ord)
    INTO v_out, v_dedup
    FROM input i
    LEFT JOIN sent s ON s.ord = i.ord
    LEFT JOIN sent f ON f.ord = i.first_ord;
  -- A live row committed by another batch after this statement's snapshot was taken (the upsert
  -- waited for it) is not visible above: read it now. The upsert holds its lock, so it stays.
  FOR k IN 1..v_n LOOP
    IF v_out[k] IS NULL THEN
      SELECT x.message_id INTO v_orig FROM queue_dedup x WHERE x.dedup_id = p_dedups[k];
      v_out[k] := v_orig;
    END IF;
  END LOOP;
  RETURN QUERY SELECT u.ord::integer, u.id, u.dd
                 FROM unnest(v_out, v_dedup) WITH ORDINALITY AS u(id, dd, ord);
END
$f$;
)sql"},
      Migration{"queue", 3, "queue_delete says whether the group's next message is ready", R"sql(
-- queue_delete (migration 1) with one more answer: 4 = deleted, and the group's next message is
-- now its head and ready, so the caller wakes a receiver for it. 0 now means deleted with no ready
-- next message (the group is empty, or its next message is held), and the caller wakes nobody:
-- in a fleet, a wake-up per acknowledgement was ~1 empty claim query per job.
CREATE OR REPLACE FUNCTION queue_delete(p_id bigint, p_deliveries bigint) RETURNS integer
LANGUAGE plpgsql AS $f$
DECLARE
  v_group text; v_code integer;
BEGIN
  -- The group row is locked (the FOR UPDATE subquery runs when the join reaches it) before the
  -- message row is (when its deletion is executed): the lock order of every writer.
  DELETE FROM queue_messages m
   USING (SELECT g.group_id FROM queue_groups g
           WHERE g.group_id = (SELECT x.group_id FROM queue_messages x WHERE x.id = p_id)
             FOR UPDATE) lk
   WHERE m.id = p_id AND m.deliveries = p_deliveries AND m.state = 'inflight'
     AND m.group_id = lk.group_id
  RETURNING m.group_id INTO v_group;
  IF NOT FOUND THEN
    SELECT CASE WHEN m.deliveries = p_deliveries AND m.state = 'inflight' THEN 3 ELSE 2 END
      INTO v_code FROM queue_messages m WHERE m.id = p_id;
    IF NOT FOUND THEN
      RETURN 1;
    ELSIF v_code = 2 THEN
      RETURN 2;
    END IF;
    -- Held under this receipt but its group row is missing (not expected): delete anyway.
    DELETE FROM queue_messages m
     WHERE m.id = p_id AND m.deliveries = p_deliveries AND m.state = 'inflight'
    RETURNING m.group_id INTO v_group;
    IF NOT FOUND THEN
      RETURN 2;
    END IF;
  END IF;
  -- queue_advance_head as one statement (the hot path); its snapshot is taken after the lock.
  -- (Data-modifying WITH parts run whether or not the SELECT reads them.)
  WITH n AS (
    SELECT m.id, m.due_at_ms, m.priority, m.visible_at_ms, m.state FROM queue_messages m
     WHERE m.group_id = v_group AND m.dead_lettered_at_ms IS NULL
     ORDER BY m.due_at_ms, m.id LIMIT 1),
  u AS (
    INSERT INTO queue_groups AS g (group_id, head_id, head_due_at_ms, head_priority,
                                   head_visible_at_ms, held)
    SELECT v_group, n.id, n.due_at_ms, n.priority, n.visible_at_ms, n.state = 'inflight' FROM n
    ON CONFLICT (group_id) DO UPDATE
      SET head_id = EXCLUDED.head_id, head_due_at_ms = EXCLUDED.head_due_at_ms,
          head_priority = EXCLUDED.head_priority,
          head_visible_at_ms = EXCLUDED.head_visible_at_ms, held = EXCLUDED.held),
  d AS (
    DELETE FROM queue_groups g WHERE g.group_id = v_group AND NOT EXISTS (SELECT 1 FROM n))
  SELECT CASE WHEN EXISTS (SELECT 1 FROM n WHERE n.state = 'ready') THEN 4 ELSE 0 END
    INTO v_code;
  RETURN v_code;
END
$f$;
)sql"}};
}

}  // namespace syncwell::store::pg
