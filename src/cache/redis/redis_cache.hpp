#pragma once
// RedisCache: the scale-out Cache adapter (SPEC S8, ElastiCache in the brief): GET, SET PX, DEL on
// a shared Redis 7, so every process of the fleet sees one cache and one invalidation.
//
// Keys are the client's key_prefix (RedisSettings::key_prefix, e.g. "sw:") + the cache key.
// Values are binary-safe. Redis evicts under its own maxmemory policy (allkeys-lru recommended
// for a cache-only instance; volatile-lru when it also holds rate-limit and counter keys).
// Failure: kUnavailable when Redis cannot be reached (the client fails fast after a failure);
// kInternal for an error reply (e.g. WRONGTYPE). Callers fall back to the store (CacheAside).
// Thread-safety: thread-safe (RedisClient is); each call is one blocking round trip.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache.hpp"
#include "redis/redis_client.hpp"

namespace syncwell::cache {

class RedisCache final : public Cache {
 public:
  explicit RedisCache(redis::RedisClient& client);

  Result<std::optional<std::string>> Get(std::string_view key) override;
  Status Set(std::string_view key, std::string_view value, Duration ttl) override;
  Status Delete(std::string_view key) override;
  Status DeleteMany(const std::vector<std::string>& keys) override;  // one DEL

 private:
  std::string Key(std::string_view key) const;

  redis::RedisClient& client_;
};

}  // namespace syncwell::cache
