#include "store/sqlite/sqlite_job_queue.hpp"

#include <optional>

#include "store/sqlite/sqlite_store.hpp"

namespace syncwell::store {
namespace {

// Expired dedup rows are removed a few at a time on every send, so the table stays bounded by
// the send rate times the window without a separate sweeper.
constexpr int64_t kDedupPruneBatch = 16;

Status BumpCounter(sqlite3* db, const char* name) {
  Stmt s(db, "UPDATE queue_counters SET value = value + 1 WHERE name = ?");
  s.Bind(1, name);
  return s.Exec();
}

}  // namespace

Result<queue::SendOutcome> SqliteQueueSendInTx(sqlite3* db, const queue::OutgoingMessage& m,
                                               TimePoint now, std::chrono::seconds dedup_window) {
  const int64_t now_ms = ToUnixMillis(now);
  {
    Stmt prune(db,
               "DELETE FROM queue_dedup WHERE dedup_id IN "
               "(SELECT dedup_id FROM queue_dedup WHERE expires_at <= ? LIMIT ?)");
    prune.Bind(1, now_ms).Bind(2, kDedupPruneBatch);
    if (Status st = prune.Exec(); !st.ok()) return st.error();
  }
  if (!m.dedup_id.empty()) {
    std::optional<int64_t> original;
    {
      Stmt q(db, "SELECT message_id FROM queue_dedup WHERE dedup_id = ? AND expires_at > ?");
      q.Bind(1, m.dedup_id).Bind(2, now_ms);
      auto row = q.Step();
      if (!row.ok()) return row.error();
      if (*row) original = q.Int(0);
    }
    if (original) {
      if (Status st = BumpCounter(db, "deduplicated_total"); !st.ok()) return st.error();
      return queue::SendOutcome{std::to_string(*original), true};
    }
  }
  const int64_t delay_ms = std::max<int64_t>(0, m.delay.count());
  int64_t id = 0;
  {
    Stmt ins(db,
             "INSERT INTO queue_messages(group_id, dedup_id, priority, body, enqueued_at, "
             "visible_at, receive_count, state) VALUES(?, ?, ?, ?, ?, ?, 0, 'ready')");
    ins.Bind(1, m.group_id)
        .Bind(2, m.dedup_id)
        .Bind(3, static_cast<int64_t>(m.priority))
        .BindBlob(4, m.body)
        .Bind(5, now_ms)
        .Bind(6, now_ms + delay_ms);
    if (Status st = ins.Exec(); !st.ok()) return st.error();
    id = sqlite3_last_insert_rowid(db);
  }
  if (!m.dedup_id.empty()) {
    Stmt d(db,
           "INSERT INTO queue_dedup(dedup_id, message_id, expires_at) VALUES(?, ?, ?) "
           "ON CONFLICT(dedup_id) DO UPDATE SET message_id = excluded.message_id, "
           "expires_at = excluded.expires_at");
    d.Bind(1, m.dedup_id).Bind(2, id).Bind(3, now_ms + dedup_window.count() * 1000);
    if (Status st = d.Exec(); !st.ok()) return st.error();
  }
  if (Status st = BumpCounter(db, "enqueued_total"); !st.ok()) return st.error();
  return queue::SendOutcome{std::to_string(id), false};
}

SqliteJobQueue::SqliteJobQueue(SqliteDb& db, std::chrono::seconds dedup_window, const Clock& clock)
    : db_(db), dedup_window_(dedup_window), clock_(clock) {}

SqliteJobQueue::SqliteJobQueue(SqliteStore& store)
    : SqliteJobQueue(store.db(), store.db().settings().dedup_window, store.clock()) {}

Result<queue::SendOutcome> SqliteJobQueue::Send(const queue::OutgoingMessage& m) {
  queue::SendOutcome out;
  const TimePoint now = clock_.Now();
  Status st = db_.Write([&](sqlite3* db) -> Status {
    auto r = SqliteQueueSendInTx(db, m, now, dedup_window_);
    if (!r.ok()) return r.error();
    out = *r;
    return {};
  });
  if (!st.ok()) return st.error();
  return out;
}

Result<queue::QueueStats> SqliteJobQueue::Stats() {
  const int64_t now_ms = ToUnixMillis(clock_.Now());
  return db_.Read([&](sqlite3* db) -> Result<queue::QueueStats> {
    queue::QueueStats s;
    // One read transaction so the gauges are a consistent snapshot.
    if (Status st = ExecSql(db, "BEGIN"); !st.ok()) return st.error();
    auto run = [&]() -> Status {
      {
        Stmt q(db,
               "SELECT "
               " COALESCE(SUM(state = 'ready' AND visible_at <= ?1), 0),"
               " COALESCE(SUM(state = 'ready' AND visible_at > ?1), 0),"
               " COALESCE(SUM(state = 'inflight'), 0),"
               " COALESCE(SUM(state = 'dlq'), 0),"
               " MIN(CASE WHEN state = 'ready' AND visible_at <= ?1 THEN visible_at END)"
               " FROM queue_messages");
        q.Bind(1, now_ms);
        auto row = q.Step();
        if (!row.ok()) return row.error();
        s.visible = q.Int(0);
        s.delayed = q.Int(1);
        s.in_flight = q.Int(2);
        s.dlq = q.Int(3);
        if (!q.IsNull(4)) s.oldest_age_seconds = static_cast<double>(now_ms - q.Int(4)) / 1000.0;
      }
      Stmt c(db, "SELECT name, value FROM queue_counters");
      for (;;) {
        auto row = c.Step();
        if (!row.ok()) return row.error();
        if (!*row) break;
        const std::string name = c.Text(0);
        if (name == "enqueued_total") s.enqueued_total = c.Int(1);
        if (name == "deduplicated_total") s.deduplicated_total = c.Int(1);
      }
      return {};
    };
    Status st = run();
    (void)ExecSql(db, "COMMIT");
    if (!st.ok()) return st.error();
    return s;
  });
}

}  // namespace syncwell::store
