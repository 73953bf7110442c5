#pragma once
// Domain records persisted by the Store port. Health data never appears here (SPEC S4/S13):
// only identifiers, times, states and sealed (encrypted) provider tokens.
#include <cstdint>
#include <optional>
#include <string>

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
  std::string error;  // set when FAILED
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

enum class DeletionState { kNone, kPending, kCompleted };
struct UserDeletion {
  UserId user;
  DeletionState state = DeletionState::kNone;
  TimePoint requested_at{};
  std::optional<TimePoint> completed_at;
};

}  // namespace syncwell::store
