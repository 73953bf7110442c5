#pragma once
// Domain records persisted by the Store port. Health data never appears here (SPEC S4/S13):
// only identifiers, times, states and sealed (encrypted) provider tokens.
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/ids.hpp"

namespace syncwell::store {

enum class Tier { kFree, kPro };
const char* TierName(Tier t);  // "FREE" / "PRO"
bool ParseTier(std::string_view s, Tier* out);

struct User {
  UserId id;
  Tier tier = Tier::kFree;
  std::string settings_json = "{}";  // {"conflictResolutionStrategy":..,"notificationsEnabled":..}
  TimePoint created_at{};
  TimePoint updated_at{};
};

enum class ConnectionStatus { kActive, kNeedsReauth, kRevoked };
const char* ConnectionStatusName(ConnectionStatus s);  // "active" / "needs_reauth" / "revoked"
bool ParseConnectionStatus(std::string_view s, ConnectionStatus* out);

struct Connection {
  ConnectionId id;  // "conn_<opaque>"
  UserId user;
  std::string provider;  // "fitbit", "strava", ...
  ConnectionStatus status = ConnectionStatus::kActive;
  std::string provider_user_id;
  // Sealed with secrets::SecretBox (AES-256-GCM, key id inside). Never plaintext.
  std::string access_token_sealed;
  std::string refresh_token_sealed;  // may be empty
  // When the access token expires (zero = unknown / never). The sync engine refreshes shortly
  // before it (sync/connection_session.hpp).
  TimePoint token_expires_at{};
  // Bumped by every UpdateConnectionTokens (compare-and-set), so a process that refreshed with
  // an old refresh token learns that another one already stored newer tokens.
  int64_t token_version = 0;
  TimePoint created_at{};
  TimePoint updated_at{};
};

struct SyncConfig {
  SyncConfigId id;  // "cfg_<uuid>"
  UserId user;
  ConnectionId source;
  ConnectionId destination;
  std::string data_type;          // workout|sleep_session|steps|weight
  std::string conflict_strategy;  // source_wins|dest_wins|newest_wins
  bool enabled = true;
  int64_t version = 1;  // optimistic concurrency; bumped on every update
  TimePoint created_at{};
  TimePoint updated_at{};
};

enum class JobStatus { kQueued, kRunning, kSucceeded, kFailed };
const char* JobStatusName(JobStatus s);  // "QUEUED" ...
bool ParseJobStatus(std::string_view s, JobStatus* out);

struct Job {
  JobId id;  // "job_<uuidv4>"
  UserId user;
  ConnectionId source;
  ConnectionId destination;
  std::string data_type;
  std::string mode;        // manual|historical
  std::string priority;    // high|medium|low
  std::string start_date;  // as given (historical only), else empty
  std::string end_date;
  JobStatus status = JobStatus::kQueued;
  std::string error;    // set when FAILED
  std::string summary;  // short outcome written by the sync engine (counts only, never values)
  TimePoint created_at{};
  TimePoint updated_at{};
};

// The stored outcome of a state-changing request (SPEC S2 idempotency). Written in the same
// transaction as the change it describes, so a replay can never disagree with the data.
struct IdempotencyRecord {
  UserId user;
  std::string key;           // the Idempotency-Key header
  std::string request_hash;  // hash of method + route + body; same key + other hash -> 422
  int status_code = 0;       // the original response
  std::string response_body;
  TimePoint created_at{};
};

// ---- sync state (SPEC S4): cursors and the sync ledger. Ids, times and fingerprints only. ----

// One cursor per (user, source connection, destination connection, data type).
struct SyncCursorKey {
  UserId user;
  ConnectionId source;
  ConnectionId destination;
  std::string data_type;
  auto operator<=>(const SyncCursorKey&) const = default;
};

struct SyncCursor {
  SyncCursorKey key;
  // High-water mark (epoch ms) of the source change times (start or modification) processed;
  // the next job fetches from here (minus a safety overlap).
  int64_t last_sync_ms = 0;
  int64_t version = 0;  // compare-and-set; 1 after the first commit
  TimePoint updated_at{};
};

enum class LedgerState { kPending, kDone };
const char* LedgerStateName(LedgerState s);  // "pending" / "done"

// One record written (or about to be written) to a destination. Key: (destination,
// source, source_record_id, fingerprint). `pending` rows are intents recorded durably BEFORE the
// push; they become `done` (with dest_record_id) in the commit after it.
struct LedgerEntry {
  UserId user;
  ConnectionId destination;      // the destination connection
  ConnectionId source;           // the source connection (or a device connection)
  std::string source_record_id;  // the source provider's record id
  std::string fingerprint;       // providers::Fingerprint of the content written
  std::string dest_record_id;    // the destination's id; empty while pending
  LedgerState state = LedgerState::kPending;
  JobId job;                       // the job that wrote it (empty for device uploads)
  int64_t source_modified_ms = 0;  // the source record's modification time when written
  TimePoint updated_at{};
};

// CommitSync: everything a sync job persists at its end, in ONE transaction.
struct SyncCommit {
  std::vector<LedgerEntry> done;  // upserted with state done (pending -> done, or inserted)
  struct CursorUpdate {
    SyncCursorKey key;
    int64_t expected_version = 0;  // 0 = no cursor exists yet
    int64_t last_sync_ms = 0;
  };
  std::optional<CursorUpdate> cursor;  // stale expected_version -> kConflict, nothing written
  struct JobUpdate {
    JobId id;
    JobStatus status = JobStatus::kSucceeded;
    std::string error;
    std::string summary;
  };
  std::optional<JobUpdate> job;
  // Store::AcksInCommit adapters, with `job` set: the receipt of the delivery being completed.
  // Its queue message is deleted in the same transaction (SPEC S4: ledger + cursor + queue delete
  // committed together). A receipt that no longer holds its message (the lease was lost or
  // released) deletes nothing and fails nothing: that delivery comes back and is dropped as
  // already done.
  std::string ack_receipt;
};

// ---- the tiered schedule (SPEC S7) ----

// Users are spread over this many scheduler shards (pg::ShardLeaseSettings::shards must match).
inline constexpr int kScheduleShards = 64;
// murmur3(userId) % kScheduleShards; stored with the user (users.shard), never recomputed.
int ScheduleShardOf(const UserId& user);
// How many recent slots a user row remembers (ScheduledUser::recent_slots).
inline constexpr size_t kRecentSlots = 4;

// One user as the scheduler sees it (Store::ListDueUsers).
struct ScheduledUser {
  UserId user;
  Tier tier = Tier::kFree;
  int shard = 0;
  // The slot: when the user is due. Epoch (TimePoint{}) = not placed yet (a new user, a tier
  // change, a row from before the schedule existed): the scheduler places it without a sync.
  TimePoint next_sync_at{};
  // The previous slots that were processed, newest first, at most kRecentSlots: scheduled job ids
  // derive from (config, slot), so these name the user's recent scheduled jobs (coalescing).
  std::vector<TimePoint> recent_slots;
  bool deletion_pending = false;  // DELETE /v1/users/me accepted, not purged yet
};
// recent_slots <-> "ms,ms,..." (the stored form; unparsable entries are dropped).
std::string EncodeSlots(const std::vector<TimePoint>& slots);
std::vector<TimePoint> DecodeSlots(std::string_view text);

enum class DeletionState { kNone, kPending, kCompleted };
struct UserDeletion {
  UserId user;
  DeletionState state = DeletionState::kNone;
  TimePoint requested_at{};
  std::optional<TimePoint> completed_at;
};

}  // namespace syncwell::store
