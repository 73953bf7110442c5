#pragma once
// CachingStore: a store::Store decorator that serves a user's configuration reads from a Cache
// (SPEC S8 `config:{userId}`, 15 min, invalidated on every write; negative lookups 1 min).
//
// Cached (per user): GetUser, GetSyncConfig, ListSyncConfigs, GetConnection, ListConnections
// (connections only with cache_connections). kNotFound answers are cached for negative_ttl; other
// errors never. Everything else passes straight through to the inner store.
//
// Invalidation is by generation, one per user: key `config:{userId}` holds a random generation
// token, and every cached record of the user lives under `config:{userId}:{gen}:v1:<kind>`. Every
// write method that can change one of those records (EnsureUser, UpsertUser, UpdateUserSettings,
// connection create/grant/tokens/status/delete, sync config create/update/delete, PurgeUser)
// replaces the token after the inner call returns -- also when it failed, because a failed call
// may have committed (timeout after commit) and a kConflict means our copy is stale. Why a
// generation instead of deleting keys: a reader that loaded a value BEFORE a write but stores it
// AFTER the write's invalidation (the classic cache-aside race, also across processes sharing
// Redis) stores it under the old generation, where nobody looks any more. Readers take the
// generation before reading the store, so a value under the current generation was read after the
// last invalidation. One invalidation drops all of the user's cached records (writes are rare).
//
// Cache down (SPEC S8): a failed cache read falls back to the inner store (counted). A failed
// invalidation is remembered: this process reads that user from the inner store, and retries the
// invalidation (at most every invalidation_retry_interval), until it succeeds or 2 x ttl has passed
// (by then every stale value has expired); if too many are pending, every read bypasses the cache
// for 2 x ttl. Other processes may serve the stale value until the retry succeeds or it expires.
//
// Cached values: "v1|" + JSON (Boost.JSON), times in nanoseconds, tokens as stored (sealed); the
// value carries the user id and is refused unless it matches the caller's (defence in depth for
// user scoping, SPEC S13). An unknown version prefix is a miss (reloaded and overwritten); the
// version is also in the key, so two binary versions side by side never share entries.
//
// Metrics (label cache="<CacheAside name>"), besides CacheAside's hit/miss counters:
//   syncwell_cache_invalidations_total{cache,outcome=ok|error}
//   syncwell_cache_store_fallbacks_total{cache,reason=cache_error|invalidation_pending|decode}
//
// Thread-safety: like every Store, thread-safe; blocking. The inner store, the CacheAside, the
// Clock and the Registry must outlive this object.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/cache_aside.hpp"
#include "core/clock.hpp"
#include "obs/metrics.hpp"
#include "store/store.hpp"

namespace syncwell::cache {

struct CachingStoreSettings {
  Duration ttl = std::chrono::minutes{15};          // users, sync configs, connections
  Duration negative_ttl = std::chrono::minutes{1};  // kNotFound answers
  Duration generation_ttl = std::chrono::hours{1};  // the per-user generation token
  // Connections carry the (sealed) provider tokens; set false to always read them from the store.
  bool cache_connections = true;
  Duration invalidation_retry_interval = std::chrono::milliseconds{200};
  size_t max_pending_invalidations = 10'000;
  // Decoded values kept by their exact cached bytes: a hit whose bytes are unchanged costs a
  // compare and a copy instead of a JSON parse (measured ~7% of the embedded server's CPU in
  // incremental syncs). Bounded: a shard that reaches its share is emptied. 0 = off.
  size_t decoded_memo_entries = 16'384;
};

struct CachingStoreStats {
  uint64_t invalidations = 0;
  uint64_t invalidation_errors = 0;
  uint64_t fallback_cache_error = 0;
  uint64_t fallback_pending = 0;
  uint64_t fallback_decode = 0;
  size_t pending_invalidations = 0;
  uint64_t decodes = 0;  // JSON decodes of cached values (memo misses)
};

class CachingStore final : public store::Store {
 public:
  // `metrics` may be null.
  CachingStore(store::Store& inner, CacheAside& cache, const Clock& clock, obs::Registry* metrics,
               CachingStoreSettings settings = {});
  ~CachingStore() override;
  CachingStore(const CachingStore&) = delete;
  CachingStore& operator=(const CachingStore&) = delete;

  // The SPEC S8 generation key of a user ("config:{userId}").
  static std::string GenerationKey(const UserId& user);
  CachingStoreStats Stats() const;

  // ---- users ----
  Result<store::User> EnsureUser(const UserId& user, store::Tier tier) override;
  Result<store::User> GetUser(const UserId& user) override;
  Status UpsertUser(const store::User& user) override;
  Status UpdateUserSettings(const UserId& user, const std::string& settings_json,
                            const store::IdempotencyRecord* idem) override;
  // ---- connections ----
  Status CreateConnection(const store::Connection& c) override;
  Status CreateConnection(const store::Connection& c,
                          const store::IdempotencyRecord* idem) override;
  Status ReplaceConnectionGrant(const store::Connection& c,
                                const store::IdempotencyRecord* idem) override;
  Result<store::Connection> GetConnection(const UserId& user, const ConnectionId& id) override;
  Result<std::vector<store::Connection>> GetConnections(
      const UserId& user, const std::vector<ConnectionId>& ids) override;
  Result<std::vector<store::Connection>> ListConnections(const UserId& user) override;
  Result<std::vector<store::Connection>> FindConnectionsByProviderUser(
      const std::string& provider, const std::string& provider_user_id) override;
  Status DeleteConnection(const UserId& user, const ConnectionId& id,
                          const store::IdempotencyRecord* idem) override;
  Status UpdateConnectionTokens(const UserId& user, const ConnectionId& id,
                                const std::string& access_sealed, const std::string& refresh_sealed,
                                TimePoint expires_at, int64_t expected_token_version) override;
  Status SetConnectionStatus(const UserId& user, const ConnectionId& id,
                             store::ConnectionStatus status) override;
  // ---- sync configs ----
  Status CreateSyncConfig(const store::SyncConfig& c,
                          const store::IdempotencyRecord* idem) override;
  Result<store::SyncConfig> GetSyncConfig(const UserId& user, const SyncConfigId& id) override;
  Result<std::vector<store::SyncConfig>> ListSyncConfigs(const UserId& user) override;
  Status UpdateSyncConfig(const store::SyncConfig& c, int64_t expected_version,
                          const store::IdempotencyRecord* idem) override;
  Status DeleteSyncConfig(const UserId& user, const SyncConfigId& id,
                          std::optional<int64_t> expected_version,
                          const store::IdempotencyRecord* idem) override;
  // ---- pass-through ----
  Status CreateJob(const store::Job& job, const queue::OutgoingMessage& msg,
                   const store::IdempotencyRecord* idem) override;
  bool SupportsAsyncWrites() const override { return inner_.SupportsAsyncWrites(); }
  void CreateJobAsync(store::Job job, queue::OutgoingMessage msg,
                      std::optional<store::IdempotencyRecord> idem,
                      std::function<void(Status)> done) override {
    inner_.CreateJobAsync(std::move(job), std::move(msg), std::move(idem), std::move(done));
  }
  Result<store::Job> GetJob(const UserId& user, const JobId& id) override;
  Status UpdateJobStatus(const JobId& id, store::JobStatus status,
                         const std::string& error) override;
  void UpdateJobStatusAsync(const JobId& id, store::JobStatus status, std::string error,
                            std::function<void(Status)> done) override {
    inner_.UpdateJobStatusAsync(id, status, std::move(error), std::move(done));
  }
  Result<store::SyncCursor> GetCursor(const store::SyncCursorKey& key) override;
  Result<std::vector<store::LedgerEntry>> GetLedgerEntries(
      const UserId& user, const ConnectionId& destination, const ConnectionId& source,
      const std::vector<std::string>& source_record_ids) override;
  Result<std::vector<std::string>> OwnWrittenRecords(
      const UserId& user, const ConnectionId& at,
      const std::vector<std::string>& record_ids) override;
  Status RecordPendingWrites(const std::vector<store::LedgerEntry>& entries) override;
  Status CommitSync(const store::SyncCommit& c) override;
  bool AcksInCommit() const override { return inner_.AcksInCommit(); }
  Result<std::optional<store::IdempotencyRecord>> GetIdempotency(const UserId& user,
                                                                 const std::string& key) override;
  Result<int64_t> PurgeIdempotencyBefore(TimePoint cutoff) override;
  Status RequestUserDeletion(const UserId& user, const store::IdempotencyRecord* idem) override;
  Result<store::UserDeletion> GetUserDeletion(const UserId& user) override;
  Result<WriteGuard> GetWriteGuard(const UserId& user, const std::string& key) override;
  Result<std::vector<UserId>> PendingDeletions(size_t limit) override;
  Status PurgeUser(const UserId& user) override;
  Status AddControlEvent(const std::string& kind, const std::string& value) override;
  Result<std::vector<ControlEvent>> ControlEventsAfter(int64_t after_seq) override;
  // The schedule (SPEC S7) is never cached: the scheduler reads it once per tick.
  Result<std::vector<store::ScheduledUser>> ListDueUsers(int shard, TimePoint now,
                                                         size_t limit) override;
  Status AdvanceSchedule(const UserId& user, TimePoint expected_next, TimePoint next,
                         const std::vector<TimePoint>& recent_slots) override;
  Result<int64_t> AssignScheduleShards(size_t limit) override;
  Status Ping() override;

 private:
  template <class T>
  Result<T> Read(const UserId& user, const std::string& kind, bool negative,
                 const std::function<Result<T>()>& load);
  Result<std::string> Generation(const UserId& user);
  // After a write of `user`'s records (whatever its outcome); returns `st` unchanged.
  template <class R>
  R Invalidated(const UserId& user, R st);
  void Invalidate(const UserId& user);
  bool MustBypass(const UserId& user);
  void RetryPendingInvalidations();
  // The memo (CachingStoreSettings::decoded_memo_entries). Values are Result<T> behind void: a
  // key names its kind, so one key always holds one T.
  std::shared_ptr<const void> MemoGet(const std::string& key, std::string_view cached);
  void MemoPut(const std::string& key, std::string_view cached, std::shared_ptr<const void> value);
  struct MemoShard {
    std::mutex mu;
    std::unordered_map<std::string, std::pair<std::string, std::shared_ptr<const void>>> entries;
  };
  static constexpr size_t kMemoShards = 16;
  std::unique_ptr<MemoShard[]> memo_;
  std::atomic<uint64_t> decodes_{0};

  store::Store& inner_;
  CacheAside& aside_;
  // Creates missing generation tokens single-flight (concurrent first readers of a user agree on
  // one token); metrics as cache="<name>_generation", so they do not skew the data hit rate.
  std::unique_ptr<CacheAside> generations_;
  const Clock& clock_;
  const CachingStoreSettings settings_;
  std::unique_ptr<obs::Registry> own_metrics_;
  obs::Counter& invalidations_ok_;
  obs::Counter& invalidations_error_;
  obs::Counter& fallback_cache_error_;
  obs::Counter& fallback_pending_;
  obs::Counter& fallback_decode_;

  // Failed invalidations (see the class comment).
  struct Pending {
    TimePoint until;  // after this, every stale value has expired: forget it
    uint64_t seq;     // which failure; a retry removes only the failure it covered
  };
  std::atomic<bool> degraded_{false};  // pending_ non-empty or bypass_all_until_ in the future
  mutable std::mutex pending_mu_;
  std::unordered_map<UserId, Pending> pending_;  // guarded by pending_mu_
  TimePoint bypass_all_until_{};                 // guarded by pending_mu_
  TimePoint next_retry_{};                       // guarded by pending_mu_
  uint64_t pending_seq_ = 0;                     // guarded by pending_mu_
  std::mutex retry_mu_;                          // one retrying thread at a time
};

}  // namespace syncwell::cache
