#include "store/postgres/postgres_job_queue.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>

namespace syncwell::store {
namespace {

using queue::HistoryEntry;
using queue::HistoryKind;

// Counter rows (queue_counters.shard 0..kCounterShards-1, created by migration 1).
constexpr int kCounterShards = 1024;  // measured: 16 rows made senders queue on row locks
// Housekeep deletes expired dedup rows in batches of this many, at most kDedupMaxBatches per call.
constexpr int64_t kDedupBatch = 2000;
constexpr int kDedupMaxBatches = 50;
// Autocommit calls retried on kRetryable (deadlock, serialization failure).
constexpr int kRetries = 4;

// A counter shard per call: spread over the rows so that concurrent transactions rarely wait
// for one another's counter row lock.
int PickShard() {
  // Seeded per thread from the OS (not the thread id, which repeats across processes).
  thread_local uint32_t x = static_cast<uint32_t>(std::random_device{}()) | 1u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return static_cast<int>(x % kCounterShards);
}

std::string HexBytea(std::string_view bytes) { return "\\x" + pg::HexEncode(bytes); }

// History is a text column: PostgreSQL rejects NUL and invalid UTF-8, which an error text from
// a provider may contain. Replaces those bytes with '?' (the history is diagnostic text).
std::string SafeText(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len != 0 && c != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    }
    if (ok && len == 2) ok = c >= 0xC2;  // overlong
    if (ok && len == 3) {
      const auto d = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xE0 && d < 0xA0) && !(c == 0xED && d >= 0xA0);  // overlong, surrogates
    }
    if (ok && len == 4) {
      const auto d = static_cast<unsigned char>(s[i + 1]);
      ok = c <= 0xF4 && !(c == 0xF0 && d < 0x90) && !(c == 0xF4 && d >= 0x90);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

std::string EncodeHistorySafe(const std::vector<HistoryEntry>& history) {
  return SafeText(queue::EncodeHistory(history));
}

queue::Priority PriorityOf(int64_t p) {
  return p <= 0 ? queue::Priority::kHigh
                : (p == 1 ? queue::Priority::kMedium : queue::Priority::kLow);
}

Error Malformed() { return MakeError(Errc::kInvalidArgument, "malformed receipt"); }

// The receipt functions' answer (0 done, 1 gone, 2 not held under this delivery).
Status ReceiptStatus(int64_t code) {
  if (code == 0) return {};
  if (code == 1) return MakeError(Errc::kNotFound, "message is gone");
  return MakeError(Errc::kConflict, "stale receipt: the message is no longer held by it");
}

Error NoDlq(std::string_view id) {
  return MakeError(Errc::kNotFound, "no dead-lettered message " + std::string(id));
}

// One autocommit statement (each queue function is its own transaction), retried on deadlock /
// serialization failure: a failed attempt changed nothing.
Result<pg::PgResult> ExecRetry(pg::PgPool& pool, std::string_view sql,
                               const std::vector<pg::PgParam>& params) {
  Result<pg::PgResult> r = MakeError(Errc::kInternal, "postgres: no attempt");
  for (int attempt = 0; attempt < kRetries; ++attempt) {
    r = pool.Exec(sql, params);
    if (r || r.error().code != Errc::kRetryable) return r;
  }
  return r;
}

// Which pooled connections have which of our statements prepared, process-wide (several queue
// objects may share a pool): keyed by the connection and its server process id, so a new
// connection at a recycled address is not taken for the old one.
class PreparedStatements {
 public:
  bool Has(PGconn* c, const char* name) {
    std::lock_guard lock(mu_);
    return done_.count(Key(c, name)) != 0;
  }
  void Add(PGconn* c, const char* name) {
    std::lock_guard lock(mu_);
    if (done_.size() > 100000) done_.clear();  // dead connections' entries; re-prepared lazily
    done_.insert(Key(c, name));
  }

 private:
  static std::tuple<const void*, int, std::string> Key(PGconn* c, const char* name) {
    return {c, PQbackendPID(c), name};
  }
  std::mutex mu_;
  std::set<std::tuple<const void*, int, std::string>> done_;
};

PreparedStatements& Prepared() {
  static PreparedStatements* p = new PreparedStatements();  // never destroyed: used by any thread
  return *p;
}

// The same, as a named prepared statement (parsed and planned once per connection), prepared on
// first use on each pooled connection. If the server lost it anyway (DISCARD ALL, a pooler),
// "does not exist" (26000) prepares it again. Autocommit calls only (an error inside a
// transaction would abort it).
Result<pg::PgResult> ExecPrepared(pg::PgPool& pool, const char* name, const char* sql,
                                  const std::vector<pg::PgParam>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.value() ? p.value()->c_str() : nullptr);
  const int n = static_cast<int>(params.size());
  auto prepare = [&](PGconn* c) -> Status {
    std::unique_ptr<PGresult, decltype(&PQclear)> prep(PQprepare(c, name, sql, n, nullptr),
                                                       &PQclear);
    const char* state =
        prep ? PQresultErrorField(prep.get(), PG_DIAG_SQLSTATE) : nullptr;  // 42P05: exists
    if ((prep && PQresultStatus(prep.get()) == PGRES_COMMAND_OK) ||
        (state != nullptr && std::string_view(state) == "42P05")) {
      Prepared().Add(c, name);
      return {};
    }
    return pg::PgError(c, prep.get(), "postgres prepare");
  };
  Error last = MakeError(Errc::kInternal, "postgres: no attempt");
  for (int attempt = 0; attempt < kRetries; ++attempt) {
    auto lease = pool.Acquire();
    if (!lease) return lease.error();
    PGconn* c = (*lease)->raw();
    if (!Prepared().Has(c, name)) {
      if (Status st = prepare(c); !st.ok()) {
        last = st.error();
        if (last.code != Errc::kRetryable) return last;
        continue;
      }
    }
    for (int again = 0; again < 2; ++again) {
      PGresult* r = PQexecPrepared(c, name, n, values.data(), nullptr, nullptr, 0);
      const ExecStatusType st = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
      if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return pg::PgResult(r);
      std::unique_ptr<PGresult, decltype(&PQclear)> failed(r, &PQclear);
      const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
      last = pg::PgError(c, r, "postgres");
      if (again == 0 && state != nullptr && std::string_view(state) == "26000") {
        if (Status ps = prepare(c); !ps.ok()) {
          last = ps.error();
          break;
        }
        continue;
      }
      break;
    }
    if (last.code != Errc::kRetryable) return last;
  }
  return last;
}

constexpr const char* kSendSql =
    "SELECT o_id, o_dedup FROM queue_send($1, $2, $3::smallint, $4::bytea, $5::bigint, "
    "$6::bigint, $7::bigint, $8::smallint)";

// Columns of a DLQ entry (body last, only for DlqGet).
constexpr const char* kDlqCols =
    "id, group_id, dedup_id, priority, receive_count, enqueued_at_ms, dead_lettered_at_ms, "
    "history";

queue::DlqEntry ReadDlq(const pg::PgResult& r, int row) {
  queue::DlqEntry e;
  e.message_id = r.Str(row, 0);
  e.group_id = r.Str(row, 1);
  e.dedup_id = r.Str(row, 2);
  e.priority = PriorityOf(r.Int(row, 3));
  e.receive_count = static_cast<int>(r.Int(row, 4));
  e.enqueued_at = FromUnixMillis(r.Int(row, 5));
  e.dead_lettered_at = FromUnixMillis(r.Int(row, 6));
  e.history = queue::DecodeHistory(r.Text(row, 7));
  return e;
}

}  // namespace

namespace pg {

// The queue schema (docs/adr/0002-job-queue.md, "How the PostgreSQL adapter implements the same
// port"). Every operation is one call of a PL/pgSQL function below: one round trip, plans cached
// per connection, and a fresh READ COMMITTED snapshot per statement inside, which the head
// maintenance relies on (see queue_advance_head).
std::vector<Migration> QueueMigrations() {
  return {Migration{"queue", 1, "queue messages, groups, dedup, counters and functions", R"sql(
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
)sql"}};
}

}  // namespace pg

Result<queue::SendOutcome> PgQueueSendInTx(pg::PgConn& conn, const queue::OutgoingMessage& m,
                                           TimePoint now, std::chrono::seconds dedup_window) {
  const int64_t now_ms = ToUnixMillis(now);
  const int64_t due = now_ms + std::max<int64_t>(0, m.delay.count());
  auto r = conn.Exec(
      kSendSql,
      {pg::PgParam(m.group_id), pg::PgParam(m.dedup_id), pg::PgParam(static_cast<int>(m.priority)),
       pg::PgParam(HexBytea(m.body)), pg::PgParam(now_ms), pg::PgParam(due),
       pg::PgParam(now_ms + dedup_window.count() * 1000), pg::PgParam(PickShard())});
  if (!r) return r.error();
  if (r->rows() != 1) return MakeError(Errc::kInternal, "queue_send returned no row");
  return queue::SendOutcome{r->Str(0, 0), r->Bool(0, 1)};
}

Result<int64_t> PgQueuePurgeGroupInTx(pg::PgConn& conn, std::string_view group) {
  auto r = conn.Exec("SELECT queue_purge_group($1)", {pg::PgParam(group)});
  if (!r) return r.error();
  return r->Int(0, 0);
}

PostgresJobQueue::PostgresJobQueue(pg::PgPool& pool, queue::QueueSettings settings,
                                   const Clock& clock)
    : pool_(pool), settings_(settings), clock_(clock) {}

PostgresJobQueue::~PostgresJobQueue() { Stop(); }

Status PostgresJobQueue::Start() {
  std::lock_guard lock(start_mu_);
  if (listener_.joinable()) return {};
  if (::pipe2(kick_pipe_, O_NONBLOCK | O_CLOEXEC) != 0) {
    return MakeError(Errc::kInternal, "queue listener: pipe() failed");
  }
  stop_ = false;
  listener_ = std::thread([this] { ListenLoop(); });
  return {};
}

void PostgresJobQueue::Stop() {
  std::lock_guard lock(start_mu_);
  if (!listener_.joinable()) return;
  stop_ = true;
  const char byte = 'x';
  (void)!::write(kick_pipe_[1], &byte, 1);
  listener_.join();
  ::close(kick_pipe_[0]);
  ::close(kick_pipe_[1]);
  kick_pipe_[0] = kick_pipe_[1] = -1;
}

void PostgresJobQueue::Kick() {
  std::lock_guard lock(start_mu_);
  if (kick_pipe_[1] < 0) return;
  const char byte = 'k';
  (void)!::write(kick_pipe_[1], &byte, 1);  // non-blocking: a full pipe is kicked enough
}

void PostgresJobQueue::Wake() {
  {
    std::lock_guard lock(wake_mu_);
    ++wakeups_;
  }
  wake_cv_.notify_all();
}

bool PostgresJobQueue::ListenerSleep(std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (!stop_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd fd{kick_pipe_[0], POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left.count())) > 0) {
      char buf[64];
      while (::read(kick_pipe_[0], buf, sizeof buf) > 0) {
      }
    }
  }
  return !stop_;
}

// LISTEN on a dedicated connection; every notification (or reconnect, after which some may have
// been missed) wakes the long-polling receivers of this process. Receivers also re-check every
// long_poll_interval, so a dead listener costs latency, never messages.
//
// The same connection keeps this process's row in queue_waiters while a receiver waits (or
// waited less than `linger` ago), so that senders NOTIFY only then. Right after registering it
// wakes the receivers once: a send that checked queue_waiters just before the row existed did
// not notify, and its message is found by that re-check (or, in a microsecond-wide window, by
// the periodic one).
void PostgresJobQueue::ListenLoop() {
  std::chrono::milliseconds backoff{100};
  const int interval_ms =
      static_cast<int>(std::clamp<int64_t>(settings_.long_poll_interval.count(), 10, 1000));
  const int64_t linger_ns =
      std::max<int64_t>(1'000'000'000, settings_.long_poll_interval.count() * 10'000'000);
  auto drain_pipe = [&] {
    char buf[64];
    while (::read(kick_pipe_[0], buf, sizeof buf) > 0) {
    }
  };
  while (!stop_) {
    auto conn = pool_.OpenDedicated();
    bool listening = false;
    if (conn) {
      auto ch = (*conn)->Exec("SELECT queue_channel()");
      listening = ch && ch->rows() == 1 &&
                  (*conn)->ExecScript("LISTEN " + pg::QuoteIdent(ch->Text(0, 0))).ok() &&
                  // Rows of listeners that are gone (crashed processes, dropped connections).
                  (*conn)
                      ->Exec(
                          "DELETE FROM queue_waiters w WHERE NOT EXISTS "
                          "(SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.pid)")
                      .ok();
    }
    if (listening) {
      backoff = std::chrono::milliseconds{100};
      Wake();
      bool registered = false;
      for (;;) {
        const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count();
        const bool want = waiting_.load() > 0 || now_ns - last_wait_ns_.load() < linger_ns;
        if (want != registered) {
          auto r = (*conn)->Exec(want ? "INSERT INTO queue_waiters (pid) VALUES "
                                        "(pg_backend_pid()) ON CONFLICT DO NOTHING"
                                      : "DELETE FROM queue_waiters WHERE pid = pg_backend_pid()");
          if (!r) break;
          registered = want;
          if (want) Wake();
          auto got = (*conn)->DrainNotifications();  // any that arrived during the statement
          if (!got) break;
          if (!got->empty()) Wake();
        }
        pollfd fds[2] = {{(*conn)->Socket(), POLLIN, 0}, {kick_pipe_[0], POLLIN, 0}};
        if (fds[0].fd < 0) break;
        const int rc = ::poll(fds, 2, interval_ms);
        if (stop_) {
          if (registered) {
            (void)(*conn)->Exec("DELETE FROM queue_waiters WHERE pid = pg_backend_pid()");
          }
          return;
        }
        if (rc < 0) {
          if (errno == EINTR) continue;
          break;
        }
        if ((fds[1].revents & POLLIN) != 0) drain_pipe();
        if ((fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
          auto got = (*conn)->DrainNotifications();
          if (!got) break;  // the connection died: reconnect
          if (!got->empty()) Wake();
          if ((*conn)->broken()) break;
        }
      }
    }
    if (!ListenerSleep(backoff)) return;
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds{5});
  }
}

Result<queue::SendOutcome> PostgresJobQueue::Send(const queue::OutgoingMessage& m) {
  const int64_t now_ms = ToUnixMillis(clock_.Now());
  const int64_t due = now_ms + std::max<int64_t>(0, m.delay.count());
  auto r = ExecPrepared(
      pool_, "sw_queue_send", kSendSql,
      {pg::PgParam(m.group_id), pg::PgParam(m.dedup_id), pg::PgParam(static_cast<int>(m.priority)),
       pg::PgParam(HexBytea(m.body)), pg::PgParam(now_ms), pg::PgParam(due),
       pg::PgParam(now_ms + settings_.dedup_window.count() * 1000), pg::PgParam(PickShard())});
  if (!r) return r.error();
  if (r->rows() != 1) return MakeError(Errc::kInternal, "queue_send returned no row");
  queue::SendOutcome out{r->Str(0, 0), r->Bool(0, 1)};
  if (!out.deduplicated) Wake();
  return out;
}

Result<std::vector<queue::ReceivedMessage>> PostgresJobQueue::Receive(
    const queue::ReceiveOptions& options) {
  if (Status st = queue::ValidateReceive(options); !st.ok()) return st.error();
  // The wait is a bound on blocking, so it is real time; visibility uses the injected clock.
  const auto deadline = std::chrono::steady_clock::now() + options.wait;
  for (;;) {
    uint64_t seen = 0;
    {
      std::lock_guard lock(wake_mu_);
      seen = wakeups_;
    }
    auto got = ReceiveOnce(options);
    if (!got.ok() || !got->empty()) return got;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= decltype(left)::zero()) return got;
    if (waiting_.fetch_add(1) == 0) Kick();  // the first waiter: register for NOTIFYs
    {
      std::unique_lock lock(wake_mu_);
      wake_cv_.wait_for(
          lock, std::min<std::chrono::steady_clock::duration>(left, settings_.long_poll_interval),
          [&] { return wakeups_ != seen; });
    }
    last_wait_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count();
    waiting_.fetch_sub(1);
  }
}

Result<std::vector<queue::ReceivedMessage>> PostgresJobQueue::ReceiveOnce(
    const queue::ReceiveOptions& options) {
  const int64_t now = ToUnixMillis(clock_.Now());
  const int64_t until =
      now + options.visibility_timeout.value_or(settings_.visibility_timeout).count();
  const auto want = static_cast<size_t>(options.max_messages);
  std::vector<queue::ReceivedMessage> out;
  // Usually one pass; heads that need the slow path are handled and the claim repeated for the
  // slots they left (a dead-lettered head frees its group's next message in the same receive).
  for (int pass = 0; pass < 2 * queue::kMaxReceiveBatch && out.size() < want; ++pass) {
    auto r = ExecPrepared(
        pool_, "sw_queue_claim",
        "SELECT o_ord, o_slow, o_id, o_group, o_dedup, o_priority, o_body, o_enqueued, "
        "o_receive_count, o_deliveries, o_history FROM queue_claim($1::bigint, $2::bigint, "
        "$3::integer, $4::integer, $5::bigint, $6::bigint, $7::smallint) ORDER BY o_ord",
        {pg::PgParam(now), pg::PgParam(until), pg::PgParam(static_cast<int64_t>(want - out.size())),
         pg::PgParam(settings_.max_receive_count),
         pg::PgParam(queue::PriorityLagMillis(settings_, queue::Priority::kMedium)),
         pg::PgParam(queue::PriorityLagMillis(settings_, queue::Priority::kLow)),
         pg::PgParam(PickShard())});
    if (!r) {
      if (!out.empty()) break;  // what was claimed is held: hand it out
      return r.error();
    }
    std::vector<std::pair<int64_t, std::string>> slow;
    for (int i = 0; i < r->rows(); ++i) {
      if (r->Bool(i, 1)) {
        slow.emplace_back(r->Int(i, 2), r->Str(i, 3));
        continue;
      }
      queue::ReceivedMessage m;
      m.message_id = r->Str(i, 2);
      m.receipt = queue::FormatReceipt(r->Int(i, 2), r->Int(i, 9));
      m.group_id = r->Str(i, 3);
      m.dedup_id = r->Str(i, 4);
      m.priority = PriorityOf(r->Int(i, 5));
      m.body = pg::HexDecode(r->Text(i, 6));
      m.enqueued_at = FromUnixMillis(r->Int(i, 7));
      m.receive_count = static_cast<int>(r->Int(i, 8));
      m.visible_until = FromUnixMillis(until);
      m.history = queue::DecodeHistory(r->Text(i, 10));
      out.push_back(std::move(m));
    }
    if (slow.empty()) break;
    auto handled = ReceiveSlow(slow, now, until, &out);
    if (!handled.ok()) {
      if (!out.empty()) break;
      return handled.error();
    }
    if (*handled == 0) break;  // other receivers have them
  }
  return out;
}

// Expired holds and heads at the receive limit, each in its own short transaction: lock the
// group row (skip it if another receiver has it), re-check that the message is still its
// claimable head, then record the expiry and deliver it, or dead-letter it.
Result<int> PostgresJobQueue::ReceiveSlow(const std::vector<std::pair<int64_t, std::string>>& heads,
                                          int64_t now, int64_t until,
                                          std::vector<queue::ReceivedMessage>* out) {
  int handled = 0;
  for (const auto& head : heads) {
    const int64_t id = head.first;  // (not a structured binding: captured below)
    const std::string& group = head.second;
    std::optional<queue::ReceivedMessage> delivered;
    bool dead_lettered = false;
    Status st = pool_.WithTx([&](pg::PgConn& c) -> Status {
      delivered.reset();
      dead_lettered = false;
      auto g = c.Exec(
          "SELECT head_id, head_visible_at_ms FROM queue_groups WHERE group_id = $1 "
          "FOR UPDATE SKIP LOCKED",
          {pg::PgParam(group)});
      if (!g) return g.error();
      if (g->rows() != 1 || g->Int(0, 0) != id || g->Int(0, 1) > now) return {};
      auto m = c.Exec(
          "SELECT state, receive_count, deliveries, history, dedup_id, priority, "
          "encode(body, 'hex'), enqueued_at_ms FROM queue_messages WHERE id = $1",
          {pg::PgParam(id)});
      if (!m) return m.error();
      if (m->rows() != 1 || m->Text(0, 0) == "dlq") return {};
      const int receive_count = static_cast<int>(m->Int(0, 1));
      std::vector<HistoryEntry> history = queue::DecodeHistory(m->Text(0, 3));
      if (m->Text(0, 0) == "inflight") {  // its holder's visibility timeout expired
        queue::AppendHistory(&history,
                             {FromUnixMillis(now), HistoryKind::kExpired, receive_count,
                              "visibility timeout expired"},
                             settings_.history_limit);
      }
      const std::string encoded = EncodeHistorySafe(history);
      if (receive_count >= settings_.max_receive_count) {
        auto d = c.Exec(
            "SELECT queue_dead_letter($1::bigint, $2::bigint, $3, $4::smallint)",
            {pg::PgParam(id), pg::PgParam(now), pg::PgParam(encoded), pg::PgParam(PickShard())});
        if (!d) return d.error();
        dead_lettered = d->Bool(0, 0);
        return {};
      }
      auto d = c.Exec(
          "SELECT o_receive_count, o_deliveries FROM queue_deliver($1::bigint, $2::bigint, $3, "
          "$4::smallint)",
          {pg::PgParam(id), pg::PgParam(until), pg::PgParam(encoded), pg::PgParam(PickShard())});
      if (!d) return d.error();
      if (d->rows() != 1 || d->IsNull(0, 0)) return {};
      queue::ReceivedMessage msg;
      msg.message_id = std::to_string(id);
      msg.receipt = queue::FormatReceipt(id, d->Int(0, 1));
      msg.group_id = group;
      msg.dedup_id = m->Str(0, 4);
      msg.priority = PriorityOf(m->Int(0, 5));
      msg.body = pg::HexDecode(m->Text(0, 6));
      msg.enqueued_at = FromUnixMillis(m->Int(0, 7));
      msg.receive_count = static_cast<int>(d->Int(0, 0));
      msg.visible_until = FromUnixMillis(until);
      msg.history = queue::DecodeHistory(encoded);
      delivered = std::move(msg);
      return {};
    });
    if (!st.ok()) return st.error();
    if (dead_lettered) ++handled;
    if (delivered) {
      ++handled;
      out->push_back(std::move(*delivered));
    }
  }
  return handled;
}

Status PostgresJobQueue::Delete(std::string_view receipt) {
  int64_t id = 0, delivery = 0;
  if (!queue::ParseReceipt(receipt, &id, &delivery)) return Malformed();
  auto r = ExecPrepared(pool_, "sw_queue_delete", "SELECT queue_delete($1::bigint, $2::bigint)",
                        {pg::PgParam(id), pg::PgParam(delivery)});
  if (!r) return r.error();
  return ReceiptStatus(r->Int(0, 0));
}

std::vector<Status> PostgresJobQueue::DeleteBatch(const std::vector<std::string>& receipts) {
  std::vector<Status> out(receipts.size());
  std::string ids = "{", deliveries = "{", ords = "{";
  size_t n = 0;
  for (size_t i = 0; i < receipts.size(); ++i) {
    int64_t id = 0, delivery = 0;
    if (!queue::ParseReceipt(receipts[i], &id, &delivery)) {
      out[i] = Malformed();
      continue;
    }
    const char* sep = n++ == 0 ? "" : ",";
    ids += sep + std::to_string(id);
    deliveries += sep + std::to_string(delivery);
    ords += sep + std::to_string(i);
  }
  if (n == 0) return out;
  ids += "}";
  deliveries += "}";
  ords += "}";
  // Id order: concurrent batches lock group rows in one order.
  auto r = ExecPrepared(pool_, "sw_queue_delete_batch",
                        "SELECT b.ord, queue_delete(b.id, b.d) FROM (SELECT * FROM "
                        "unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, d, ord) "
                        "ORDER BY u.id) b",
                        {pg::PgParam(ids), pg::PgParam(deliveries), pg::PgParam(ords)});
  for (size_t i = 0; i < receipts.size(); ++i) {
    if (!r && out[i].ok()) out[i] = r.error();
  }
  if (!r) return out;
  for (int row = 0; row < r->rows(); ++row) {
    out[static_cast<size_t>(r->Int(row, 0))] = ReceiptStatus(r->Int(row, 1));
  }
  return out;
}

Status PostgresJobQueue::ChangeVisibility(std::string_view receipt,
                                          std::chrono::milliseconds timeout) {
  if (timeout.count() < 0) return MakeError(Errc::kInvalidArgument, "timeout must be >= 0");
  int64_t id = 0, delivery = 0;
  if (!queue::ParseReceipt(receipt, &id, &delivery)) return Malformed();
  const int64_t now = ToUnixMillis(clock_.Now());
  const bool release = timeout.count() == 0;  // released: the receipt ends here
  auto r = ExecPrepared(pool_, "sw_queue_change_visibility",
                        "SELECT queue_change_visibility($1::bigint, $2::bigint, $3::bigint, "
                        "$4::boolean)",
                        {pg::PgParam(id), pg::PgParam(delivery), pg::PgParam(now + timeout.count()),
                         pg::PgParam(release)});
  if (!r) return r.error();
  Status st = ReceiptStatus(r->Int(0, 0));
  if (st.ok() && release) Wake();
  return st;
}

// The held message of `receipt`, read after its group row was locked (so nobody changes it
// until commit): what Fail/Defer/DeadLetter need to rewrite its history.
struct HeldRow {
  int64_t id = 0;
  int receive_count = 0;
  std::vector<HistoryEntry> history;
};

template <class Fn>
Status PostgresJobQueue::WithHeld(std::string_view receipt, Fn&& apply) {
  int64_t id = 0, delivery = 0;
  if (!queue::ParseReceipt(receipt, &id, &delivery)) return Malformed();
  return pool_.WithTx([&](pg::PgConn& c) -> Status {
    auto lock = c.Exec(
        "SELECT 1 FROM queue_groups WHERE group_id = "
        "(SELECT group_id FROM queue_messages WHERE id = $1) FOR UPDATE",
        {pg::PgParam(id)});
    if (!lock) return lock.error();
    auto m =
        c.Exec("SELECT state, deliveries, receive_count, history FROM queue_messages WHERE id = $1",
               {pg::PgParam(id)});
    if (!m) return m.error();
    if (m->rows() != 1) return ReceiptStatus(1);
    if (m->Text(0, 0) != "inflight" || m->Int(0, 1) != delivery) return ReceiptStatus(2);
    HeldRow row;
    row.id = id;
    row.receive_count = static_cast<int>(m->Int(0, 2));
    row.history = queue::DecodeHistory(m->Text(0, 3));
    return apply(c, row);
  });
}

Status PostgresJobQueue::Defer(std::string_view receipt, std::chrono::milliseconds delay,
                               std::string_view reason) {
  if (delay.count() < 0) return MakeError(Errc::kInvalidArgument, "delay must be >= 0");
  const int64_t now = ToUnixMillis(clock_.Now());
  return WithHeld(receipt, [&](pg::PgConn& c, HeldRow& r) -> Status {
    queue::AppendHistory(
        &r.history,
        {FromUnixMillis(now), HistoryKind::kDeferred, r.receive_count, std::string(reason)},
        settings_.history_limit);
    auto u = c.Exec(
        "SELECT queue_return($1::bigint, $2::bigint, $3::integer, $4)",
        {pg::PgParam(r.id), pg::PgParam(now + delay.count()),
         pg::PgParam(std::max(0, r.receive_count - 1)), pg::PgParam(EncodeHistorySafe(r.history))});
    if (!u) return u.error();
    auto k = c.Exec("UPDATE queue_counters SET deferred = deferred + 1 WHERE shard = $1",
                    {pg::PgParam(PickShard())});
    if (!k) return k.error();
    return {};
  });
}

Result<queue::FailOutcome> PostgresJobQueue::Fail(std::string_view receipt, std::string_view error,
                                                  std::chrono::milliseconds retry_delay) {
  if (retry_delay.count() < 0) return MakeError(Errc::kInvalidArgument, "delay must be >= 0");
  const int64_t now = ToUnixMillis(clock_.Now());
  queue::FailOutcome outcome = queue::FailOutcome::kRetrying;
  Status st = WithHeld(receipt, [&](pg::PgConn& c, HeldRow& r) -> Status {
    queue::AppendHistory(
        &r.history,
        {FromUnixMillis(now), HistoryKind::kFailed, r.receive_count, std::string(error)},
        settings_.history_limit);
    if (r.receive_count >= settings_.max_receive_count) {
      outcome = queue::FailOutcome::kDeadLettered;
      auto d = c.Exec("SELECT queue_dead_letter($1::bigint, $2::bigint, $3, $4::smallint)",
                      {pg::PgParam(r.id), pg::PgParam(now),
                       pg::PgParam(EncodeHistorySafe(r.history)), pg::PgParam(PickShard())});
      if (!d) return d.error();
      return {};
    }
    outcome = queue::FailOutcome::kRetrying;
    auto u = c.Exec("SELECT queue_return($1::bigint, $2::bigint, $3::integer, $4)",
                    {pg::PgParam(r.id), pg::PgParam(now + retry_delay.count()),
                     pg::PgParam(r.receive_count), pg::PgParam(EncodeHistorySafe(r.history))});
    if (!u) return u.error();
    return {};
  });
  if (!st.ok()) return st.error();
  if (outcome == queue::FailOutcome::kDeadLettered) Wake();  // the group's next message
  return outcome;
}

Status PostgresJobQueue::DeadLetter(std::string_view receipt, std::string_view error) {
  const int64_t now = ToUnixMillis(clock_.Now());
  Status st = WithHeld(receipt, [&](pg::PgConn& c, HeldRow& r) -> Status {
    queue::AppendHistory(
        &r.history,
        {FromUnixMillis(now), HistoryKind::kFailed, r.receive_count, std::string(error)},
        settings_.history_limit);
    auto d = c.Exec("SELECT queue_dead_letter($1::bigint, $2::bigint, $3, $4::smallint)",
                    {pg::PgParam(r.id), pg::PgParam(now), pg::PgParam(EncodeHistorySafe(r.history)),
                     pg::PgParam(PickShard())});
    if (!d) return d.error();
    return {};
  });
  if (st.ok()) Wake();  // the group's next message may be deliverable now
  return st;
}

Result<std::vector<queue::DlqEntry>> PostgresJobQueue::DlqList(
    const queue::DlqListOptions& options) {
  int64_t after = 0;
  if (!options.after_message_id.empty() &&
      !queue::ParseMessageId(options.after_message_id, &after)) {
    return MakeError(Errc::kInvalidArgument, "bad message id");
  }
  auto r =
      pool_.Exec(std::string("SELECT ") + kDlqCols +
                     " FROM queue_messages WHERE dead_lettered_at_ms IS NOT NULL AND id > $1 "
                     "ORDER BY id LIMIT $2",
                 {pg::PgParam(after),
                  pg::PgParam(static_cast<int64_t>(std::min<size_t>(options.limit, 1u << 30)))});
  if (!r) return r.error();
  std::vector<queue::DlqEntry> out;
  out.reserve(static_cast<size_t>(r->rows()));
  for (int i = 0; i < r->rows(); ++i) out.push_back(ReadDlq(*r, i));
  return out;
}

Result<queue::DlqEntry> PostgresJobQueue::DlqGet(std::string_view message_id) {
  int64_t id = 0;
  if (!queue::ParseMessageId(message_id, &id)) return NoDlq(message_id);
  auto r = pool_.Exec(std::string("SELECT ") + kDlqCols +
                          ", encode(body, 'hex') FROM queue_messages WHERE id = $1 AND "
                          "dead_lettered_at_ms IS NOT NULL",
                      {pg::PgParam(id)});
  if (!r) return r.error();
  if (r->rows() != 1) return NoDlq(message_id);
  queue::DlqEntry e = ReadDlq(*r, 0);
  e.body = pg::HexDecode(r->Text(0, 8));
  return e;
}

Status PostgresJobQueue::DlqRedrive(std::string_view message_id) {
  int64_t id = 0;
  if (!queue::ParseMessageId(message_id, &id)) return NoDlq(message_id);
  auto r = ExecRetry(
      pool_, "SELECT queue_redrive($1::bigint, $2::bigint, $3::smallint)",
      {pg::PgParam(id), pg::PgParam(ToUnixMillis(clock_.Now())), pg::PgParam(PickShard())});
  if (!r) return r.error();
  if (!r->Bool(0, 0)) return NoDlq(message_id);
  Wake();
  return {};
}

Result<int64_t> PostgresJobQueue::DlqRedriveAll() {
  auto r = ExecRetry(pool_, "SELECT queue_redrive_all($1::bigint, $2::smallint)",
                     {pg::PgParam(ToUnixMillis(clock_.Now())), pg::PgParam(PickShard())});
  if (!r) return r.error();
  const int64_t n = r->Int(0, 0);
  if (n > 0) Wake();
  return n;
}

Result<int64_t> PostgresJobQueue::DlqPurge() {
  auto r = ExecRetry(pool_, "DELETE FROM queue_messages WHERE dead_lettered_at_ms IS NOT NULL", {});
  if (!r) return r.error();
  return r->affected();
}

Result<queue::QueueStats> PostgresJobQueue::Stats() {
  const int64_t now = ToUnixMillis(clock_.Now());
  // One statement, so the gauges and counters are one snapshot. The gauges scan queue_messages
  // (no index on state/visible_at, which would make every receive update non-HOT).
  auto r = pool_.Exec(
      "SELECT m.visible, m.delayed, m.in_flight, m.dlq, m.oldest, c.enqueued, c.deduplicated, "
      "c.delivered, c.redelivered, c.dead_lettered, c.deferred, c.redriven FROM "
      "(SELECT count(*) FILTER (WHERE state <> 'dlq' AND visible_at_ms <= $1) AS visible, "
      "        count(*) FILTER (WHERE state = 'ready' AND visible_at_ms > $1) AS delayed, "
      "        count(*) FILTER (WHERE state = 'inflight' AND visible_at_ms > $1) AS in_flight, "
      "        count(*) FILTER (WHERE state = 'dlq') AS dlq, "
      "        min(visible_at_ms) FILTER (WHERE state <> 'dlq' AND visible_at_ms <= $1) AS oldest "
      "   FROM queue_messages) m, "
      "(SELECT sum(enqueued) AS enqueued, sum(deduplicated) AS deduplicated, "
      "        sum(delivered) AS delivered, sum(redelivered) AS redelivered, "
      "        sum(dead_lettered) AS dead_lettered, sum(deferred) AS deferred, "
      "        sum(redriven) AS redriven FROM queue_counters) c",
      {pg::PgParam(now)});
  if (!r) return r.error();
  if (r->rows() != 1) return MakeError(Errc::kInternal, "queue stats: no row");
  queue::QueueStats s;
  s.visible = r->Int(0, 0);
  s.delayed = r->Int(0, 1);
  s.in_flight = r->Int(0, 2);
  s.groups_in_flight = s.in_flight;  // at most one held message per group
  s.dlq = r->Int(0, 3);
  if (!r->IsNull(0, 4)) s.oldest_age_seconds = static_cast<double>(now - r->Int(0, 4)) / 1000.0;
  s.enqueued_total = r->Int(0, 5);
  s.deduplicated_total = r->Int(0, 6);
  s.delivered_total = r->Int(0, 7);
  s.redelivered_total = r->Int(0, 8);
  s.dead_lettered_total = r->Int(0, 9);
  s.deferred_total = r->Int(0, 10);
  s.redriven_total = r->Int(0, 11);
  return s;
}

Result<QueueHousekeeping> PostgresJobQueue::Housekeep() {
  const int64_t now = ToUnixMillis(clock_.Now());
  QueueHousekeeping out;
  for (int i = 0; i < kDedupMaxBatches; ++i) {
    auto r =
        ExecRetry(pool_,
                  "DELETE FROM queue_dedup WHERE dedup_id IN (SELECT dedup_id FROM queue_dedup "
                  "WHERE expires_at_ms <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                  {pg::PgParam(now), pg::PgParam(kDedupBatch)});
    if (!r) return r.error();
    out.dedup_rows_deleted += r->affected();
    if (r->affected() < kDedupBatch) break;
  }
  return out;
}

}  // namespace syncwell::store
