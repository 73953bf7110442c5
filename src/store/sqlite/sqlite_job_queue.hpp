#pragma once
// SqliteJobQueue: the embedded JobQueue adapter (SPEC S3, contract in queue/job_queue.hpp) on the
// store's SQLite database.
//
// It shares the SqliteDb (and so its single group-committing writer) with SqliteStore, so a job
// row, its queue message and the idempotency record commit in one transaction
// (SqliteQueueSendInTx is called from inside the store's CreateJob closure). Every state change
// (send, receive, delete, visibility, defer, fail, dead-letter, DLQ operations) is ONE write
// closure, so it is atomic, group-committed and durable (receipts included) when the call returns.
//
// Schema (migrations 1 and 2 in sqlite_db.cpp; docs/adr/0002-job-queue.md):
// queue_messages(id AUTOINCREMENT, group_id, dedup_id, priority, body, enqueued_at, due_at,
// visible_at, receive_count, deliveries, state 'ready'|'inflight'|'dlq', is_head, history,
// dead_lettered_at). Exactly one non-dead-lettered message per group has is_head = 1 (the first in
// (due_at, id) order, except that a held head is never displaced); Receive reads only heads
// through the partial index queue_messages_heads(priority, visible_at, id) WHERE is_head = 1, one
// range per priority, so its cost does not grow with the backlog behind the heads.
// queue_dedup(dedup_id -> message_id, expires_at); queue_counters and queue_delivery_counters.
//
// Long polling (queue::LongPoll, queue/long_poll.hpp): Receive with wait > 0 sleeps on a wake-up
// signal bumped by this object's Send/redrive and re-checks every settings.long_poll_interval
// (messages sent through SqliteStore::CreateJob or another process, and delays that come due, are
// seen that way).
//
// Thread-safe; methods block (run them off I/O threads). The SqliteDb must be started and must
// outlive this object.
#include <chrono>
#include <cstdint>

#include "core/clock.hpp"
#include "queue/job_queue.hpp"
#include "queue/long_poll.hpp"
#include "store/sqlite/sqlite_db.hpp"

namespace syncwell::store {

class SqliteStore;

// Sends `m` inside the caller's write transaction (a SqliteDb write closure). If `m.dedup_id`
// was seen less than `dedup_window` ago: nothing is enqueued, deduplicated = true and the
// original message id is returned. An empty dedup id never deduplicates.
Result<queue::SendOutcome> SqliteQueueSendInTx(sqlite3* db, const queue::OutgoingMessage& m,
                                               TimePoint now, std::chrono::seconds dedup_window);

// Deletes the message held under `receipt` inside the caller's write transaction (what Delete
// does; SqliteStore::CommitSync acks with it). The contract's errors when the receipt does not
// hold the message (nothing changed). *promoted: the group's next message became its head.
Status SqliteQueueDeleteInTx(sqlite3* db, std::string_view receipt, bool* promoted);

class SqliteJobQueue final : public queue::JobQueue {
 public:
  SqliteJobQueue(SqliteDb& db, queue::QueueSettings settings, const Clock& clock);
  // Default settings with this dedup window.
  SqliteJobQueue(SqliteDb& db, std::chrono::seconds dedup_window, const Clock& clock);
  // Shares the store's database and clock; the dedup window is the store's
  // (SqliteSettings::dedup_window, which CreateJob uses), overriding settings.dedup_window.
  // Registers its wake-up with the store (SqliteStore::SetJobWakeups), so jobs the store creates
  // wake idle receivers at once.
  explicit SqliteJobQueue(SqliteStore& store, queue::QueueSettings settings = {});
  ~SqliteJobQueue() override;
  SqliteJobQueue(const SqliteJobQueue&) = delete;
  SqliteJobQueue& operator=(const SqliteJobQueue&) = delete;

  Result<queue::SendOutcome> Send(const queue::OutgoingMessage& m) override;
  std::vector<Result<queue::SendOutcome>> SendBatch(
      const std::vector<queue::OutgoingMessage>& messages) override;
  Result<queue::QueueStats> Stats() override;
  Result<std::vector<queue::ReceivedMessage>> Receive(
      const queue::ReceiveOptions& options) override;
  Status Delete(std::string_view receipt) override;
  // Every receipt as its own write closure, submitted together: one group commit, one wait.
  std::vector<Status> DeleteBatch(const std::vector<std::string>& receipts) override;
  Status ChangeVisibility(std::string_view receipt, std::chrono::milliseconds timeout) override;
  Status Defer(std::string_view receipt, std::chrono::milliseconds delay,
               std::string_view reason) override;
  Result<queue::FailOutcome> Fail(std::string_view receipt, std::string_view error,
                                  std::chrono::milliseconds retry_delay) override;
  Status DeadLetter(std::string_view receipt, std::string_view error) override;
  Result<std::vector<queue::DlqEntry>> DlqList(const queue::DlqListOptions& options) override;
  Result<queue::DlqEntry> DlqGet(std::string_view message_id) override;
  Status DlqRedrive(std::string_view message_id) override;
  Result<int64_t> DlqRedriveAll() override;
  Result<int64_t> DlqPurge() override;

  const queue::QueueSettings& settings() const { return settings_; }

 private:
  Result<std::vector<queue::ReceivedMessage>> ReceiveOnce(const queue::ReceiveOptions& options);
  // `n` messages may have become receivable: wakes n blocked receivers.
  void Wake(size_t n = 1);

  SqliteDb& db_;
  SqliteStore* store_ = nullptr;  // registered with (the SqliteStore constructor only)
  const queue::QueueSettings settings_;
  const Clock& clock_;

  queue::WakeupSignal wakeups_;  // long-poll wake-ups (Wake())
};

}  // namespace syncwell::store
