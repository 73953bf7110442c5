#pragma once
// PostgresStore: the scale-out Store adapter (contract in store/store.hpp; the same semantics as
// SqliteStore, executable form tests/conformance/store_suite.hpp). Schema: pg::StoreMigrations()
// (component "store"), applied by pg::Migrate before construction.
//
// Many processes share one database, so nothing relies on in-process state:
//  * a change and its idempotency record commit in one transaction; the record is inserted first
//    with INSERT ... ON CONFLICT DO UPDATE ... WHERE <expired>, so a concurrent duplicate waits for
//    the first and then finds the key taken (kAlreadyExists) instead of aborting on a unique
//    violation;
//  * optimistic versions (sync configs, connection tokens, cursors) are conditional UPDATEs
//    (WHERE version = $n); the row lock + re-check makes exactly one of racing writers win;
//  * CreateJob writes the idempotency record, the job row and its queue message
//    (PgQueueSendStatement) in one pipelined transaction: one round trip (PgConn::ExecTx);
//  * ledger batches are one statement over unnest()ed arrays, deduplicated and sorted by key so
//    concurrent batches lock rows in the same order;
//  * every time is bigint milliseconds from the injected Clock (never now() in SQL).
//
// Lifecycle: none beyond the pool's; construct after pg::Migrate. Thread-safe; methods block
// (call them from a blocking pool, never an I/O thread). Errors: server down / connection lost ->
// kUnavailable (pg.hpp), lost races -> kConflict / kAlreadyExists as the contract says.
//
// Sources: postgres_store.cpp (schema, users, connections, sync configs, jobs, idempotency, user
// deletion, control events), postgres_store_sync_state.cpp (cursors, the sync ledger and the
// tiered schedule).
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "store/postgres/pg.hpp"
#include "store/store.hpp"

namespace syncwell::store {

class PostgresStore final : public Store {
 public:
  // dedup_window: the queue dedup window used by CreateJob's send (SPEC S3).
  // idempotency_retention: records older than this are ignored and may be reused (SPEC S2).
  PostgresStore(pg::PgPool& pool, const Clock& clock,
                std::chrono::seconds dedup_window = std::chrono::seconds{300},
                std::chrono::hours idempotency_retention = std::chrono::hours{24});

  Result<User> EnsureUser(const UserId& user, Tier tier) override;
  Result<User> GetUser(const UserId& user) override;
  Status UpsertUser(const User& user) override;
  Status UpdateUserSettings(const UserId& user, const std::string& settings_json,
                            const IdempotencyRecord* idem) override;

  Status CreateConnection(const Connection& c) override;
  Status CreateConnection(const Connection& c, const IdempotencyRecord* idem) override;
  Status ReplaceConnectionGrant(const Connection& c, const IdempotencyRecord* idem) override;
  Result<Connection> GetConnection(const UserId& user, const ConnectionId& id) override;
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
  Result<Job> GetJob(const UserId& user, const JobId& id) override;
  Status UpdateJobStatus(const JobId& id, JobStatus status, const std::string& error) override;

  Result<SyncCursor> GetCursor(const SyncCursorKey& key) override;
  Result<std::vector<LedgerEntry>> GetLedgerEntries(
      const UserId& user, const ConnectionId& destination, const ConnectionId& source,
      const std::vector<std::string>& source_record_ids) override;
  Result<std::vector<std::string>> OwnWrittenRecords(
      const UserId& user, const ConnectionId& at,
      const std::vector<std::string>& record_ids) override;
  Status RecordPendingWrites(const std::vector<LedgerEntry>& entries) override;
  Status CommitSync(const SyncCommit& c) override;

  Result<std::optional<IdempotencyRecord>> GetIdempotency(const UserId& user,
                                                          const std::string& key) override;
  Result<int64_t> PurgeIdempotencyBefore(TimePoint cutoff) override;

  Status RequestUserDeletion(const UserId& user, const IdempotencyRecord* idem) override;
  Result<UserDeletion> GetUserDeletion(const UserId& user) override;
  Result<WriteGuard> GetWriteGuard(const UserId& user, const std::string& key) override;
  Result<std::vector<UserId>> PendingDeletions(size_t limit) override;
  Status PurgeUser(const UserId& user) override;

  Status AddControlEvent(const std::string& kind, const std::string& value) override;
  Result<std::vector<ControlEvent>> ControlEventsAfter(int64_t after_seq) override;

  Result<std::vector<ScheduledUser>> ListDueUsers(int shard, TimePoint now, size_t limit) override;
  Status AdvanceSchedule(const UserId& user, TimePoint expected_next, TimePoint next,
                         const std::vector<TimePoint>& recent_slots) override;
  Result<int64_t> AssignScheduleShards(size_t limit) override;

  Status Ping() override;

  // PostgreSQL-only housekeeping: deletes at most `limit` SUCCEEDED/FAILED job rows last updated
  // before `cutoff` (one bounded statement; concurrent callers skip each other's rows). Returns
  // the number deleted; call again while it returns `limit`. Without it the jobs table grows
  // forever. GetJob of a purged job is kNotFound.
  Result<int64_t> PurgeFinishedJobsBefore(TimePoint cutoff, size_t limit);

 private:
  // Runs `change` in one transaction, preceded by the idempotency insert when idem != nullptr.
  Status WriteTx(const IdempotencyRecord* idem, const std::function<Status(pg::PgConn&)>& change);
  pg::PgStatement IdempotencyClaim(const IdempotencyRecord& idem, TimePoint now) const;
  // One modifying statement: with the idempotency record in one transaction when idem !=
  // nullptr, else alone in autocommit mode (one round trip). `check` maps its result to the
  // call's status (e.g. no row changed -> kNotFound).
  Status Write(const IdempotencyRecord* idem, std::string_view sql,
               const std::vector<pg::PgParam>& params,
               const std::function<Status(const pg::PgResult&)>& check);
  // One statement in autocommit mode (atomic by itself), retried on serialization failure /
  // deadlock like WithTx.
  Result<pg::PgResult> Exec(std::string_view sql, const std::vector<pg::PgParam>& params);

  pg::PgPool& pool_;
  const Clock& clock_;
  const std::chrono::seconds dedup_window_;
  const std::chrono::hours idempotency_retention_;
};

}  // namespace syncwell::store
