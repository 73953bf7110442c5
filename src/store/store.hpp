#pragma once
// The Store port: users, connections, sync configs, jobs, idempotency records, user deletion,
// and the sync engine's state (connection tokens, cursors, the sync ledger).
//
// Contract for every adapter:
//  * Thread-safe; methods block the calling thread (never call from an I/O thread).
//  * Every read is scoped by the owning UserId where the record belongs to a user: another
//    user's id yields kNotFound, never the record (SPEC S13).
//  * A mutation that takes `const IdempotencyRecord* idem` writes that record in the SAME
//    transaction as the change; if the change fails, nothing (record included) is written.
//    If a record for (idem->user, idem->key) already exists the call fails with kAlreadyExists
//    and changes nothing.
//  * A successful return means the change is durable (committed; group commit allowed).
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "queue/job_queue.hpp"
#include "store/model.hpp"

namespace syncwell::store {

class Store {
 public:
  virtual ~Store() = default;

  // Users. EnsureUser creates the user with `tier` if absent and returns the stored user
  // (the stored tier wins over `tier` when the user exists). Every created user gets its
  // schedule shard (ScheduleShardOf) and an unplaced slot (see the schedule section below);
  // UpsertUser with a different tier unplaces the slot again, so the scheduler re-places the
  // user within its new tier's interval (an upgrade to PRO does not wait a day).
  virtual Result<User> EnsureUser(const UserId& user, Tier tier) = 0;
  virtual Result<User> GetUser(const UserId& user) = 0;
  virtual Status UpsertUser(const User& user) = 0;  // admin: create or change tier
  virtual Status UpdateUserSettings(const UserId& user, const std::string& settings_json,
                                    const IdempotencyRecord* idem) = 0;

  // Connections.
  virtual Status CreateConnection(const Connection& c) = 0;
  // The same with the idempotency record in the same transaction (POST /v1/connections).
  virtual Status CreateConnection(const Connection& c, const IdempotencyRecord* idem) = 0;
  // Re-consent (POST /v1/connections/{id}/reauth): replaces the grant of an existing connection
  // of c.user -- sealed tokens, token_expires_at, provider_user_id, status -- and bumps
  // token_version, so that a refresh racing with it (holding the old version) adopts the new
  // grant instead of overwriting it. Absent -> kNotFound.
  virtual Status ReplaceConnectionGrant(const Connection& c, const IdempotencyRecord* idem) = 0;
  virtual Result<Connection> GetConnection(const UserId& user, const ConnectionId& id) = 0;
  // Those of `ids` that are connections of `user`, in one read (absent ones are left out; order
  // unspecified). The default calls GetConnection per id; a networked store answers in one round
  // trip (the API checks a job's source and destination together).
  virtual Result<std::vector<Connection>> GetConnections(const UserId& user,
                                                         const std::vector<ConnectionId>& ids);
  virtual Result<std::vector<Connection>> ListConnections(const UserId& user) = 0;
  // Webhook mapping (SPEC S7): every connection (any user, any status) of `provider` whose
  // provider_user_id matches. NOT scoped by user: call it only after the notification's
  // authenticity was verified. Order: created_at, id.
  virtual Result<std::vector<Connection>> FindConnectionsByProviderUser(
      const std::string& provider, const std::string& provider_user_id) = 0;
  // Deletes the connection, its tokens, every sync config that uses it and every cursor and
  // ledger row where it is the source or the destination (one transaction; SPEC S13).
  virtual Status DeleteConnection(const UserId& user, const ConnectionId& id,
                                  const IdempotencyRecord* idem) = 0;
  // Stores refreshed (sealed) tokens when the stored token_version == expected_token_version,
  // storing expected_token_version + 1. Stale -> kConflict (another process refreshed first:
  // re-read and use its tokens); absent -> kNotFound.
  virtual Status UpdateConnectionTokens(const UserId& user, const ConnectionId& id,
                                        const std::string& access_sealed,
                                        const std::string& refresh_sealed, TimePoint expires_at,
                                        int64_t expected_token_version) = 0;
  // absent -> kNotFound.
  virtual Status SetConnectionStatus(const UserId& user, const ConnectionId& id,
                                     ConnectionStatus status) = 0;

  // Sync configs.
  virtual Status CreateSyncConfig(const SyncConfig& c, const IdempotencyRecord* idem) = 0;
  virtual Result<SyncConfig> GetSyncConfig(const UserId& user, const SyncConfigId& id) = 0;
  virtual Result<std::vector<SyncConfig>> ListSyncConfigs(const UserId& user) = 0;
  // Replaces the mutable fields when the stored version == expected_version, storing
  // expected_version + 1; stale -> kConflict; absent -> kNotFound.
  virtual Status UpdateSyncConfig(const SyncConfig& c, int64_t expected_version,
                                  const IdempotencyRecord* idem) = 0;
  // expected_version empty = unconditional.
  virtual Status DeleteSyncConfig(const UserId& user, const SyncConfigId& id,
                                  std::optional<int64_t> expected_version,
                                  const IdempotencyRecord* idem) = 0;

  // Jobs. Inserts the job row and sends its queue message in one transaction (the queue lives
  // in the same database), plus the idempotency record.
  virtual Status CreateJob(const Job& job, const queue::OutgoingMessage& msg,
                           const IdempotencyRecord* idem) = 0;
  // A message whose dedup id was seen inside the window is not enqueued again (the job row is
  // still written; SPEC S3 "accepted but not enqueued").
  //
  // CreateJob without blocking the caller, for adapters that say SupportsAsyncWrites(): `done`
  // runs exactly once with what CreateJob would have returned, on a thread of the adapter's
  // choosing (SQLite: its completer thread, after the group commit), and must not block. The
  // default runs CreateJob on the calling thread, so it blocks like CreateJob does. The API runs
  // intake on its I/O threads only when the adapter supports this (docs/adr/0001).
  virtual bool SupportsAsyncWrites() const { return false; }
  // By value: the asynchronous adapters keep them beyond the call.
  virtual void CreateJobAsync(Job job,                                // NOLINT(*-value-param)
                              queue::OutgoingMessage msg,             // NOLINT(*-value-param)
                              std::optional<IdempotencyRecord> idem,  // NOLINT(*-value-param)
                              std::function<void(Status)> done) {     // NOLINT(*-value-param)
    done(CreateJob(job, msg, idem ? &*idem : nullptr));
  }
  virtual Result<Job> GetJob(const UserId& user, const JobId& id) = 0;
  virtual Status UpdateJobStatus(const JobId& id, JobStatus status, const std::string& error) = 0;
  // UpdateJobStatus without waiting for the commit (SupportsAsyncWrites adapters; the default
  // runs it on the calling thread). `done` runs exactly once, must not block. Order: a status
  // written this way commits before any write submitted after it returned (SQLite: one writer,
  // one FIFO), so a worker may announce RUNNING and go on to the provider; its final status,
  // written later, always lands after it.
  virtual void UpdateJobStatusAsync(const JobId& id, JobStatus status,
                                    std::string error,                   // NOLINT(*-value-param)
                                    std::function<void(Status)> done) {  // NOLINT(*-value-param)
    done(UpdateJobStatus(id, status, error));
  }

  // ---- Sync state (SPEC S4; the sync engine). Ids, times and fingerprints only. ----
  // kNotFound when the key has no cursor yet.
  virtual Result<SyncCursor> GetCursor(const SyncCursorKey& key) = 0;
  // Ledger rows (pending and done, any fingerprint) of `user` for records of `source` written to
  // `destination`, restricted to the given source record ids. Order unspecified.
  virtual Result<std::vector<LedgerEntry>> GetLedgerEntries(
      const UserId& user, const ConnectionId& destination, const ConnectionId& source,
      const std::vector<std::string>& source_record_ids) = 0;
  // Loop suppression: the subset of `record_ids` that are the dest_record_id of a done ledger
  // row of `user` at connection `at` (records SyncWell wrote there). Order unspecified.
  virtual Result<std::vector<std::string>> OwnWrittenRecords(
      const UserId& user, const ConnectionId& at, const std::vector<std::string>& record_ids) = 0;
  // Durable write intents recorded BEFORE a push (state pending, dest_record_id empty), one
  // transaction. A row that exists already keeps its state: done stays done; a pending row
  // takes the new job id, time and source_modified_ms.
  virtual Status RecordPendingWrites(const std::vector<LedgerEntry>& entries) = 0;
  // In ONE transaction: the cursor compare-and-set (if c.cursor; expected_version 0 = create;
  // stale -> kConflict and NOTHING is written), the ledger rows (upserted as done), the job's
  // status (if c.job; unknown job -> kNotFound and nothing written).
  virtual Status CommitSync(const SyncCommit& c) = 0;
  // True when CommitSync honours SyncCommit::ack_receipt: the adapter keeps the job queue in the
  // same database (SQLite). The worker then does not delete the message itself.
  virtual bool AcksInCommit() const { return false; }

  // Idempotency. Records older than `retention` are ignored and eventually purged.
  virtual Result<std::optional<IdempotencyRecord>> GetIdempotency(const UserId& user,
                                                                  const std::string& key) = 0;
  virtual Result<int64_t> PurgeIdempotencyBefore(TimePoint cutoff) = 0;

  // Account deletion (SPEC S2/S13): RequestUserDeletion records a pending deletion (idempotent);
  // PurgeUser hard-deletes everything the user owns (cursors and ledger rows included) and marks
  // the deletion completed.
  virtual Status RequestUserDeletion(const UserId& user, const IdempotencyRecord* idem) = 0;
  virtual Result<UserDeletion> GetUserDeletion(const UserId& user) = 0;
  // What an idempotent write checks before it runs, in one read: the live idempotency record of
  // (user, key), if any (as GetIdempotency), and the user's deletion state (as GetUserDeletion).
  // The default makes the two calls; a networked store answers in one round trip.
  struct WriteGuard {
    std::optional<IdempotencyRecord> idempotency;
    UserDeletion deletion;
  };
  virtual Result<WriteGuard> GetWriteGuard(const UserId& user, const std::string& key);
  virtual Result<std::vector<UserId>> PendingDeletions(size_t limit) = 0;
  virtual Status PurgeUser(const UserId& user) = 0;

  // Control records written by admin commands and picked up by running servers
  // (e.g. "jwks_drop:<kid>"). Returned in insertion order after `after_seq`.
  struct ControlEvent {
    int64_t seq;
    std::string kind;
    std::string value;
  };
  virtual Status AddControlEvent(const std::string& kind, const std::string& value) = 0;
  virtual Result<std::vector<ControlEvent>> ControlEventsAfter(int64_t after_seq) = 0;

  // ---- Tiered schedule (SPEC S7; src/schedule). ----
  // Each user row holds its shard and its next slot (next_sync_at). Not virtual-pure so that
  // test doubles that do not schedule need not implement them; every adapter overrides them.
  //
  // Users of `shard` whose next_sync_at <= now (unplaced ones included, they have epoch),
  // ordered by next_sync_at then id, at most `limit`; deletion_pending set for users with a
  // pending deletion. Served by an index on (shard, next_sync_at).
  virtual Result<std::vector<ScheduledUser>> ListDueUsers(int shard, TimePoint now,
                                                          size_t limit) = 0;
  // Compare-and-set of the slot: when the stored next_sync_at == expected_next, stores `next`
  // and `recent_slots` (newest first; truncated to kRecentSlots). Another value -> kConflict
  // (another scheduler advanced it first, or the tier changed); absent user -> kNotFound.
  virtual Status AdvanceSchedule(const UserId& user, TimePoint expected_next, TimePoint next,
                                 const std::vector<TimePoint>& recent_slots) = 0;
  // Rows written before the schedule existed (shard -1 after the migration) get their shard, at
  // most `limit` per call; returns how many. Idempotent; safe to run from several processes.
  virtual Result<int64_t> AssignScheduleShards(size_t limit) = 0;

  virtual Status Ping() = 0;  // readiness
};

}  // namespace syncwell::store
