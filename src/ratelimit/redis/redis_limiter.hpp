#pragma once
// RedisLimiter: the shared RateLimiter (SPEC S6) for a fleet of workers — every process draws from
// the same buckets, kept in Redis. Same model and semantics as InProcessLimiter (fixed windows
// aligned to epoch + align_offset, app and user buckets, all-or-nothing, priority floors with
// release_fraction, exact retry_after, provider Retry-After blocks per app and per user,
// Retry-After clamped to max_retry_after); the conformance suite
// (tests/conformance/rate_limiter_suite.hpp) holds both to one contract.
//
// One atomic Lua script per TryAcquire: it reads every applicable bucket and block, then takes n
// tokens from all buckets or from none, so concurrent callers in any number of processes can never
// overspend a bucket. Keys (all under key_prefix, with the provider as a hash tag so that one
// script's keys share a cluster slot):
//   <prefix>{<provider>}:a:<window>            app bucket: "<window index>:<tokens used>"
//   <prefix>{<provider>}:u:<window>:<user>     user bucket
//   <prefix>{<provider>}:b                     app Retry-After block: "blocked until" (us)
//   <prefix>{<provider>}:b:<user>              user Retry-After block
// Every key written gets a TTL ending at its window end (block: its end) plus key_grace, so Redis
// memory stays bounded by the buckets actually used in the current windows. The window index
// stored in the bucket (not the TTL) decides the refill, so a late expiry never changes a decision
// and the TTL only collects garbage. (With an injected clock the TTL runs on Redis's clock: a test
// that holds its ManualClock still for longer than window end + key_grace of real time would see
// the bucket forgotten. Tests do not.)
//
// Time: by default the script reads Redis's own clock (TIME), so all workers agree on window
// boundaries whatever their clock skew. With use_redis_time = false the limiter's Clock is sent as
// an argument (deterministic tests) — the same script either way.
//
// Failure: Available() is the client's Healthy(). When Redis cannot be reached TryAcquire and
// RecordRetryAfter return kUnavailable (fast: the client fails fast during its reconnect backoff),
// and the caller goes to safe mode (rate_limiter.hpp). Redis replying with an error (OOM, BUSY,
// LOADING, READONLY...) is also kUnavailable: the state cannot be read or written safely.
//
// Thread-safety: all methods are thread-safe (the client is).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "ratelimit/limits.hpp"
#include "ratelimit/rate_limiter.hpp"
#include "redis/redis_client.hpp"

namespace syncwell::ratelimit {

struct RedisLimiterSettings {
  std::vector<ProviderLimits> providers = DefaultProviderLimits();
  ReserveSettings reserve;
  // Retry-After values from providers are clamped to this (external input is never trusted).
  Duration max_retry_after = std::chrono::hours{24 * 7};
  // Prefix of every key; empty: the client's key_prefix + "rl:".
  std::string key_prefix;
  // true: windows follow Redis's clock (production); false: the injected Clock (tests).
  bool use_redis_time = true;
  // Keys live this long past their window end / block end (absorbs clock skew between the
  // clock deciding and Redis's expiry clock; see above).
  Duration key_grace = std::chrono::seconds{60};
};

struct RedisLimiterStats {
  int64_t granted = 0;             // TryAcquire calls granted
  int64_t denied = 0;              // TryAcquire calls refused by the buckets or a block
  int64_t denied_retry_after = 0;  // ... of which while a provider Retry-After block was active
  int64_t unavailable = 0;         // TryAcquire / RecordRetryAfter calls that failed (safe mode)
  int64_t retry_after_recorded = 0;
};

class RedisLimiter final : public RateLimiter {
 public:
  // `client` and `clock` must outlive the limiter. Throws std::invalid_argument if the settings
  // are invalid (see ValidateLimits). Does not contact Redis.
  RedisLimiter(redis::RedisClient& client, const Clock& clock, RedisLimiterSettings settings);
  ~RedisLimiter() override;
  RedisLimiter(const RedisLimiter&) = delete;
  RedisLimiter& operator=(const RedisLimiter&) = delete;

  bool Available() const override;
  Result<Decision> TryAcquire(std::string_view provider, std::string_view provider_user,
                              Priority priority, int64_t n = 1) override;
  Status RecordRetryAfter(std::string_view provider, std::string_view provider_user,
                          Duration retry_after) override;

  RedisLimiterStats Stats() const;

  struct ProviderSpec;

 private:
  std::string NowArg() const;

  redis::RedisClient& client_;
  const Clock& clock_;
  RedisLimiterSettings settings_;
  std::string prefix_;
  // Immutable after construction.
  std::map<std::string, std::unique_ptr<ProviderSpec>, std::less<>> providers_;

  std::atomic<int64_t> granted_{0};
  std::atomic<int64_t> denied_{0};
  std::atomic<int64_t> denied_retry_after_{0};
  std::atomic<int64_t> unavailable_{0};
  std::atomic<int64_t> retry_after_recorded_{0};
};

}  // namespace syncwell::ratelimit
