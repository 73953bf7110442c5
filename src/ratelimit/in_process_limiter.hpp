#pragma once
// InProcessLimiter: the embedded RateLimiter (SPEC S6). Holds the provider quotas of this process
// in memory — correct when one process makes all provider calls (the embedded deployment); a fleet
// needs the shared (Redis) adapter so that every worker draws from the same buckets.
//
// Model: fixed-window token buckets (see limits.hpp), one per (provider, window) for the provider
// app and one per (provider, provider user, window) for each user. A request takes n tokens from
// every applicable bucket or from none, under the locks of all the buckets involved, so concurrent
// callers can never overspend a bucket. Priority floors and Retry-After blocks as in
// rate_limiter.hpp / limits.hpp.
//
// Memory is bounded: at most max_user_entries per-user entries (spread over the shards). When a
// shard is full, entries whose buckets are all full again (nothing spent in the current windows)
// and that are not blocked by a Retry-After are evicted — forgetting them loses no information, so
// eviction can never cause an overspend. If nothing can be evicted, the request is refused with
// retry_after = when the first entry becomes evictable (counted in LimiterStats::table_full).
//
// Lifecycle: construct with the clock and settings; no background threads, nothing to stop.
// Thread-safety: all methods are thread-safe. Per-user state is split over `shards` mutexes; each
// provider's app buckets have their own mutex. Lock order: user shard, then provider.
// Always available: Available() is true and TryAcquire never returns kUnavailable.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "ratelimit/limits.hpp"
#include "ratelimit/rate_limiter.hpp"

namespace syncwell::ratelimit {

struct InProcessLimiterSettings {
  std::vector<ProviderLimits> providers = DefaultProviderLimits();
  ReserveSettings reserve;
  // Upper bound on per-user entries (about 150 bytes each with one window).
  size_t max_user_entries = 500'000;
  size_t shards = 64;
  // Retry-After values from providers are clamped to this (external input is never trusted).
  Duration max_retry_after = std::chrono::hours{24 * 7};
};

struct LimiterStats {
  int64_t granted = 0;             // TryAcquire calls granted
  int64_t denied = 0;              // TryAcquire calls refused (all reasons)
  int64_t denied_retry_after = 0;  // ... of which while a provider Retry-After block was active
  int64_t table_full = 0;          // ... of which because the user table was full
  int64_t retry_after_recorded = 0;
  int64_t evicted = 0;  // idle, full user entries dropped to bound memory
  int64_t user_entries = 0;
};

class InProcessLimiter final : public RateLimiter {
 public:
  // Throws std::invalid_argument if the settings are invalid (a start-up error; see
  // ValidateLimits).
  InProcessLimiter(const Clock& clock, InProcessLimiterSettings settings);
  ~InProcessLimiter() override;
  InProcessLimiter(const InProcessLimiter&) = delete;
  InProcessLimiter& operator=(const InProcessLimiter&) = delete;

  bool Available() const override { return true; }
  Result<Decision> TryAcquire(std::string_view provider, std::string_view provider_user,
                              Priority priority, int64_t n = 1) override;
  Status RecordRetryAfter(std::string_view provider, std::string_view provider_user,
                          Duration retry_after) override;

  LimiterStats Stats() const;

  struct ProviderState;
  struct Shard;
  struct UserEntry;

 private:
  Shard& ShardFor(const std::string& key);
  // Finds or creates the entry (shard lock held). nullptr when the shard is full and nothing can
  // be evicted; *ready_ns is then when something can.
  UserEntry* GetOrCreate(Shard& shard, const std::string& key, const ProviderState& ps,
                         int64_t now_ns, int64_t* ready_ns);

  const Clock& clock_;
  InProcessLimiterSettings settings_;
  size_t per_shard_capacity_;
  std::map<std::string, std::unique_ptr<ProviderState>, std::less<>> providers_;  // immutable map
  std::vector<std::unique_ptr<Shard>> shards_;

  std::atomic<int64_t> granted_{0};
  std::atomic<int64_t> denied_{0};
  std::atomic<int64_t> denied_retry_after_{0};
  std::atomic<int64_t> table_full_{0};
  std::atomic<int64_t> retry_after_recorded_{0};
  std::atomic<int64_t> evicted_{0};
};

}  // namespace syncwell::ratelimit
