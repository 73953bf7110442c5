#pragma once
// SqliteJobQueue: the embedded JobQueue adapter (SPEC S3) on the store's SQLite database.
//
// It shares the SqliteDb (and so its single group-committing writer) with SqliteStore, so a job
// row, its queue message and the idempotency record commit in one transaction
// (SqliteQueueSendInTx is called from inside the store's CreateJob closure).
//
// Schema (migration 1 in sqlite_db.cpp): queue_messages(id AUTOINCREMENT = FIFO order, group_id,
// dedup_id, priority, body, enqueued_at, visible_at, receive_count, state 'ready'|'inflight'|'dlq')
// indexed by (state, priority, visible_at) and (group_id, id) for group heads; queue_dedup
// (dedup_id -> message_id, expires_at); queue_counters (enqueued_total, deduplicated_total).
//
// Thread-safe; methods block (run them off I/O threads). The SqliteDb must be started and must
// outlive this object.
#include <chrono>

#include "core/clock.hpp"
#include "queue/job_queue.hpp"
#include "store/sqlite/sqlite_db.hpp"

namespace syncwell::store {

class SqliteStore;

// Sends `m` inside the caller's write transaction (a SqliteDb write closure). If `m.dedup_id`
// was seen less than `dedup_window` ago: nothing is enqueued, deduplicated = true and the
// original message id is returned. An empty dedup id never deduplicates.
Result<queue::SendOutcome> SqliteQueueSendInTx(sqlite3* db, const queue::OutgoingMessage& m,
                                               TimePoint now, std::chrono::seconds dedup_window);

class SqliteJobQueue final : public queue::JobQueue {
 public:
  SqliteJobQueue(SqliteDb& db, std::chrono::seconds dedup_window, const Clock& clock);
  // Shares the store's database, dedup window and clock.
  explicit SqliteJobQueue(SqliteStore& store);

  Result<queue::SendOutcome> Send(const queue::OutgoingMessage& m) override;
  Result<queue::QueueStats> Stats() override;

 private:
  SqliteDb& db_;
  std::chrono::seconds dedup_window_;
  const Clock& clock_;
};

}  // namespace syncwell::store
