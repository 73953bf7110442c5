#pragma once
// RedisCounter: sync::Counter on a shared Redis 7 (sync confidence, hot-user rates), so every
// worker process counts into the same key.
//
//  * Get: GET; absent (or expired) -> 0.
//  * Increment: INCR and PEXPIRE in one Lua script (atomic: a counter never exists without a TTL,
//    even if the process dies between the two), returns the new value.
//  * Reset: DEL.
// Keys are the client's key_prefix + the counter key. Failure: kUnavailable when Redis cannot be
// reached; kInternal for an error reply or a non-integer value. A counter failure is never a sync
// failure (sync/confidence.hpp).
// Thread-safety: thread-safe (RedisClient is).
#include <string>
#include <string_view>

#include "redis/redis_client.hpp"
#include "sync/confidence.hpp"

namespace syncwell::cache {

class RedisCounter final : public sync::Counter {
 public:
  explicit RedisCounter(redis::RedisClient& client);

  Result<int64_t> Get(std::string_view key) override;
  Result<int64_t> Increment(std::string_view key, Duration ttl) override;
  Status Reset(std::string_view key) override;

 private:
  std::string Key(std::string_view key) const;

  redis::RedisClient& client_;
  const redis::RedisScript incr_;
};

}  // namespace syncwell::cache
