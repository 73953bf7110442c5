#pragma once
// PostgresJobQueue: the scale-out JobQueue adapter (SPEC S3; contract in queue/job_queue.hpp;
// design in docs/adr/0002-job-queue.md "How the PostgreSQL adapter implements the same port").
//
// Many processes share one PostgreSQL database: claims lock one queue_groups row per group with
// FOR UPDATE SKIP LOCKED, so one in-flight message per user never blocks other users; receipts are
// optimistic ("<id>.<deliveries>" checked in the UPDATE's WHERE); dedup is a table with expiry;
// sends NOTIFY a channel so idle long-polling workers wake at once (LISTEN on a dedicated
// connection), with a periodic re-check for delays that come due. A NOTIFY takes a database-wide
// lock at commit (it halved send throughput when measured), so senders notify only while some
// process has a receiver blocked in a long poll: the listener thread registers its connection in
// queue_waiters while that is so (and for a moment after), and under load nobody waits. Every
// state change is one transaction (mostly one call of a PL/pgSQL function: one round trip); all
// times come from the injected Clock.
//
// The hot autocommit calls (send, receive, delete, change visibility) run as named prepared
// statements, prepared once per pooled connection: behind a transaction-pooling PgBouncer older
// than 1.21 they would need session pooling.
//
// Lifecycle: construct (after pg::Migrate) -> Start() (starts the LISTEN thread) -> Stop(); the
// destructor stops. Without Start() the queue works, with long polls woken only by this object's
// own sends and the periodic re-check. Thread-safe; methods block (run them off I/O threads).
//
// Sources: postgres_job_queue.cpp (the calls), postgres_job_queue_listener.cpp (Start/Stop and
// the LISTEN thread), postgres_job_queue_sql.cpp (the schema and PL/pgSQL: pg::QueueMigrations()).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "queue/job_queue.hpp"
#include "queue/long_poll.hpp"
#include "store/postgres/pg.hpp"

namespace syncwell::store {

// The statement that sends `m` as part of the caller's transaction (PostgresStore::CreateJob
// runs it in one pipelined transaction with the job row and the idempotency record, so they
// commit together), and the reading of its result. Dedup as in SqliteQueueSendInTx: a non-empty
// dedup id seen less than `dedup_window` ago -> nothing enqueued, deduplicated = true, the
// original message id returned. Issues the NOTIFY (delivered at commit) when some process waits
// in a long poll.
pg::PgStatement PgQueueSendStatement(const queue::OutgoingMessage& m, TimePoint now,
                                     std::chrono::seconds dedup_window);
Result<queue::SendOutcome> PgQueueSendOutcome(const pg::PgResult& r);

// Removes every message of `group` (a user purge), its dedup records and its group row, inside
// the caller's transaction; locks the group row first like every queue writer. Returns the
// number of messages removed.
Result<int64_t> PgQueuePurgeGroupInTx(pg::PgConn& conn, std::string_view group);

// Housekeeping counts (one pass).
struct QueueHousekeeping {
  int64_t dedup_rows_deleted = 0;
};

class PostgresJobQueue final : public queue::JobQueue {
 public:
  PostgresJobQueue(pg::PgPool& pool, queue::QueueSettings settings, const Clock& clock);
  ~PostgresJobQueue() override;

  Status Start();  // LISTEN thread; idempotent
  void Stop();

  Result<queue::SendOutcome> Send(const queue::OutgoingMessage& m) override;
  std::vector<Result<queue::SendOutcome>> SendBatch(
      const std::vector<queue::OutgoingMessage>& messages) override;
  Result<queue::QueueStats> Stats() override;
  Result<std::vector<queue::ReceivedMessage>> Receive(
      const queue::ReceiveOptions& options) override;
  Status Delete(std::string_view receipt) override;
  // One statement (one commit) for the whole batch; messages are deleted in id order.
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

  // Deletes expired dedup rows (bounded batches), keeping the tables small. Called periodically
  // by the serve housekeeper.
  Result<QueueHousekeeping> Housekeep();

  const queue::QueueSettings& settings() const { return settings_; }

 private:
  Result<std::vector<queue::ReceivedMessage>> ReceiveOnce(const queue::ReceiveOptions& options);
  // The heads the claim left to the slow path (expired holds, receive count at the limit);
  // returns how many it delivered or dead-lettered.
  Result<int> ReceiveSlow(const std::vector<std::pair<int64_t, std::string>>& heads, int64_t now,
                          int64_t until, std::vector<queue::ReceivedMessage>* out);
  // Fail / Defer / DeadLetter: lock the group, check the receipt, then `apply` the change.
  template <class Fn>
  Status WithHeld(std::string_view receipt, Fn&& apply);
  void ListenLoop();
  // Sleeps up to `d` or until Stop(); false when stopping.
  bool ListenerSleep(std::chrono::milliseconds d);
  // `n` acknowledged messages each made their group's next message receivable.
  void WakeAfterDelete(size_t n = 1);
  // `n` messages may have become receivable: wakes n blocked receivers of this process.
  void Wake(size_t n = 1);
  // Tells the listener thread that a receiver started waiting (so it registers as a waiter).
  void Kick();

  pg::PgPool& pool_;
  const queue::QueueSettings settings_;
  const Clock& clock_;

  queue::WakeupSignal wakeups_;  // long-poll wake-ups (Wake())
  // Receivers blocked in a long poll now, and when the last one stopped waiting (steady clock,
  // ns): while either is recent the listener keeps this process in queue_waiters, which is what
  // makes senders NOTIFY.
  std::atomic<int> waiting_{0};
  std::atomic<int64_t> last_wait_ns_{0};

  std::mutex start_mu_;  // Start/Stop/Kick (guards kick_pipe_)
  std::atomic<bool> stop_{false};
  // Stop() and Kick() write a byte so that the listener's poll returns at once.
  int kick_pipe_[2] = {-1, -1};
  std::thread listener_;
};

}  // namespace syncwell::store
