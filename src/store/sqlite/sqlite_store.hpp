#pragma once
// SqliteStore: the embedded Store adapter (one SQLite file in the data directory).
//
// Every mutation is one write closure on the shared SqliteDb writer: the change, its
// idempotency record and (CreateJob) the queue message commit together, group-committed with
// other callers' writes. Reads go to the pooled read connections.
//
// Lifecycle: construct -> Start() (opens + migrates; a schema newer than the binary is refused
// with kPermanent) -> ... -> Stop() (drains queued writes). Methods called outside Start/Stop
// return kUnavailable. Thread-safe; methods block, so call them from a blocking pool, never an
// I/O thread.
//
// Sharing the database with the queue:
//   SqliteStore store(SqliteSettings{.data_dir = dir}, clock);
//   if (auto st = store.Start(); !st.ok()) ...;
//   SqliteJobQueue queue(store);   // same SqliteDb, same writer, same dedup window and clock
#include <atomic>

#include "core/clock.hpp"
#include "queue/long_poll.hpp"
#include "store/sqlite/row_cache.hpp"
#include "store/sqlite/sqlite_db.hpp"
#include "store/store.hpp"

namespace syncwell::store {

class SqliteStore final : public Store {
 public:
  using Settings = SqliteSettings;

  SqliteStore(SqliteSettings settings, const Clock& clock);
  ~SqliteStore() override;

  Status Start();
  void Stop();

  SqliteDb& db() { return db_; }

  // Keeps up to `max_entries` unfinished jobs (QUEUED/RUNNING) and as many sync cursors in
  // memory, written through by this store's own commits (row_cache.hpp): a worker's GetJob and
  // GetCursor right after intake / the previous sync then cost no cold SQLite read. Finished jobs
  // are never kept, so the worker's "already done" check always reads the database. Call before
  // the store is used from other threads; the owner must call ClearRowCache() when another
  // process wrote (SqliteDb::SetExternalWriteListener). 0 = off (the default).
  void EnableRowCache(size_t max_entries);
  void ClearRowCache();
  struct RowCacheCounts {
    RowCacheStats jobs;
    RowCacheStats cursors;
  };
  RowCacheCounts GetRowCacheStats() const;
  const Clock& clock() const { return clock_; }

  Result<User> EnsureUser(const UserId& user, Tier tier) override;
  Result<User> GetUser(const UserId& user) override;
  Status UpsertUser(const User& user) override;
  Status UpdateUserSettings(const UserId& user, const std::string& settings_json,
                            const IdempotencyRecord* idem) override;

  Status CreateConnection(const Connection& c) override;
  Status CreateConnection(const Connection& c, const IdempotencyRecord* idem) override;
  Status ReplaceConnectionGrant(const Connection& c, const IdempotencyRecord* idem) override;
  Result<Connection> GetConnection(const UserId& user, const ConnectionId& id) override;
  // One read transaction for all of them: each transaction starts with a cold page cache (the
  // WAL changed), so the lookups after the first reuse the pages the first one read.
  Result<std::vector<Connection>> GetConnections(const UserId& user,
                                                 const std::vector<ConnectionId>& ids) override;
  Result<std::vector<Connection>> ListConnections(const UserId& user) override;
  Result<std::vector<Connection>> FindConnectionsByProviderUser(
      const std::string& provider, const std::string& provider_user_id) override;
  Status DeleteConnection(const UserId& user, const ConnectionId& id,
                          const IdempotencyRecord* idem) override;
  Status UpdateConnectionTokens(const UserId& user, const ConnectionId& id,
                                const std::string& access_sealed, const std::string& refresh_sealed,
                                TimePoint expires_at, int64_t expected_token_version) override;
  Status SetConnectionStatus(const UserId& user, const ConnectionId& id,
                             ConnectionStatus status) override;

  Status CreateSyncConfig(const SyncConfig& c, const IdempotencyRecord* idem) override;
  Result<SyncConfig> GetSyncConfig(const UserId& user, const SyncConfigId& id) override;
  Result<std::vector<SyncConfig>> ListSyncConfigs(const UserId& user) override;
  Status UpdateSyncConfig(const SyncConfig& c, int64_t expected_version,
                          const IdempotencyRecord* idem) override;
  Status DeleteSyncConfig(const UserId& user, const SyncConfigId& id,
                          std::optional<int64_t> expected_version,
                          const IdempotencyRecord* idem) override;

  Status CreateJob(const Job& job, const queue::OutgoingMessage& msg,
                   const IdempotencyRecord* idem) override;
  // The queue's long-poll wake-up, notified once a job's message committed (CreateJob,
  // CreateJobAsync), so idle receivers start it now instead of at their next recheck
  // (QueueSettings::long_poll_interval, 100 ms). The SqliteJobQueue built on this store registers
  // its own and unregisters (nullptr) when destroyed.
  void SetJobWakeups(queue::WakeupSignal* wakeups) { job_wakeups_.store(wakeups); }
  // The writer's completer thread runs `done` after the group commit.
  bool SupportsAsyncWrites() const override { return true; }
  void CreateJobAsync(Job job, queue::OutgoingMessage msg, std::optional<IdempotencyRecord> idem,
                      std::function<void(Status)> done) override;
  Result<Job> GetJob(const UserId& user, const JobId& id) override;
  Status UpdateJobStatus(const JobId& id, JobStatus status, const std::string& error) override;
  // Submitted to the writer without waiting; `done` runs on the completer thread.
  void UpdateJobStatusAsync(const JobId& id, JobStatus status, std::string error,
                            std::function<void(Status)> done) override;

  Result<SyncCursor> GetCursor(const SyncCursorKey& key) override;
  Result<std::vector<LedgerEntry>> GetLedgerEntries(
      const UserId& user, const ConnectionId& destination, const ConnectionId& source,
      const std::vector<std::string>& source_record_ids) override;
  Result<std::vector<std::string>> OwnWrittenRecords(
      const UserId& user, const ConnectionId& at,
      const std::vector<std::string>& record_ids) override;
  Status RecordPendingWrites(const std::vector<LedgerEntry>& entries) override;
  Status CommitSync(const SyncCommit& c) override;
  // The queue lives in the same file (SqliteJobQueue): the ack commits with the rest.
  bool AcksInCommit() const override { return true; }

  Result<std::optional<IdempotencyRecord>> GetIdempotency(const UserId& user,
                                                          const std::string& key) override;
  Result<int64_t> PurgeIdempotencyBefore(TimePoint cutoff) override;

  Status RequestUserDeletion(const UserId& user, const IdempotencyRecord* idem) override;
  Result<UserDeletion> GetUserDeletion(const UserId& user) override;
  Result<std::vector<UserId>> PendingDeletions(size_t limit) override;
  Status PurgeUser(const UserId& user) override;

  Status AddControlEvent(const std::string& kind, const std::string& value) override;
  Result<std::vector<ControlEvent>> ControlEventsAfter(int64_t after_seq) override;

  Result<std::vector<ScheduledUser>> ListDueUsers(int shard, TimePoint now, size_t limit) override;
  Status AdvanceSchedule(const UserId& user, TimePoint expected_next, TimePoint next,
                         const std::vector<TimePoint>& recent_slots) override;
  Result<int64_t> AssignScheduleShards(size_t limit) override;

  Status Ping() override;

 private:
  // Runs `change` in one write closure preceded by the idempotency insert (if idem != nullptr).
  Status WriteWithIdem(const IdempotencyRecord* idem, std::function<Status(sqlite3*)> change);
  // The closure WriteWithIdem runs: `change` after the idempotency insert, if any.
  SqliteDb::WriteFn WithIdem(const IdempotencyRecord* idem, SqliteDb::WriteFn change) const;
  // CreateJob's closure; owns copies of its inputs.
  SqliteDb::WriteFn CreateJobFn(Job job, queue::OutgoingMessage msg, const IdempotencyRecord* idem);

  void JobSent() {
    if (queue::WakeupSignal* w = job_wakeups_.load()) w->Notify();
  }

  SqliteDb::WriteFn UpdateJobStatusFn(const JobId& id, JobStatus status, std::string error);
  // Changes the cached copy of a job after a status write commits (terminal -> dropped).
  void JobStatusCommitted(const JobId& id, JobStatus status, const std::string& error,
                          const std::string* summary, int64_t updated_ms);

  struct CursorKeyHash {
    size_t operator()(const SyncCursorKey& k) const;
  };

  SqliteDb db_;
  const Clock& clock_;
  // Never null (0 entries = off; EnableRowCache replaces them).
  std::unique_ptr<RowCache<std::string, Job>> jobs_;  // by job id
  std::unique_ptr<RowCache<SyncCursorKey, SyncCursor, CursorKeyHash>> cursors_;
  std::atomic<queue::WakeupSignal*> job_wakeups_{nullptr};
};

}  // namespace syncwell::store
