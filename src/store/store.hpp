#pragma once
// The Store port: users, connections, sync configs, jobs, idempotency records, user deletion.
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
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "queue/job_queue.hpp"
#include "store/model.hpp"

namespace syncwell::store {

class Store {
 public:
  virtual ~Store() = default;

  // Users. EnsureUser creates the user with `tier` if absent and returns the stored user
  // (the stored tier wins over `tier` when the user exists).
  virtual Result<User> EnsureUser(const UserId& user, Tier tier) = 0;
  virtual Result<User> GetUser(const UserId& user) = 0;
  virtual Status UpsertUser(const User& user) = 0;  // admin: create or change tier
  virtual Status UpdateUserSettings(const UserId& user, const std::string& settings_json,
                                    const IdempotencyRecord* idem) = 0;

  // Connections.
  virtual Status CreateConnection(const Connection& c) = 0;
  virtual Result<Connection> GetConnection(const UserId& user, const ConnectionId& id) = 0;
  virtual Result<std::vector<Connection>> ListConnections(const UserId& user) = 0;
  // Deletes the connection, its tokens and every sync config that uses it (one transaction).
  virtual Status DeleteConnection(const UserId& user, const ConnectionId& id,
                                  const IdempotencyRecord* idem) = 0;

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
  virtual Result<Job> GetJob(const UserId& user, const JobId& id) = 0;
  virtual Status UpdateJobStatus(const JobId& id, JobStatus status, const std::string& error) = 0;

  // Idempotency. Records older than `retention` are ignored and eventually purged.
  virtual Result<std::optional<IdempotencyRecord>> GetIdempotency(const UserId& user,
                                                                  const std::string& key) = 0;
  virtual Result<int64_t> PurgeIdempotencyBefore(TimePoint cutoff) = 0;

  // Account deletion (SPEC S2/S13): RequestUserDeletion records a pending deletion (idempotent);
  // PurgeUser hard-deletes everything the user owns and marks the deletion completed.
  virtual Status RequestUserDeletion(const UserId& user, const IdempotencyRecord* idem) = 0;
  virtual Result<UserDeletion> GetUserDeletion(const UserId& user) = 0;
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

  virtual Status Ping() = 0;  // readiness
};

}  // namespace syncwell::store
