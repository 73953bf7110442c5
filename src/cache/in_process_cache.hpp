#pragma once
// InProcessCache: the embedded Cache adapter -- a bounded LRU with per-entry TTL, private to one
// process (the single-process deployment, and the tests).
//
// Bounds: at most `capacity` entries and about `max_bytes` of keys + values; both are split evenly
// over `shards` shards (each a mutex + hash map + LRU list), so concurrent callers contend only
// when their keys hash to the same shard. When a shard is over either bound, Set evicts its least
// recently used entries. Expired entries are dropped when looked up (and are evicted first in
// practice, since nobody touches them). A value larger than a shard's byte budget is not stored.
//
// Time comes from the injected Clock (ManualClock in tests). Never returns an error except
// kInvalidArgument for ttl <= 0: it cannot be "down".
// Thread-safety: all methods are thread-safe.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cache/cache.hpp"
#include "core/clock.hpp"

namespace syncwell::cache {

struct InProcessCacheSettings {
  size_t capacity = 100'000;      // entries, whole cache
  size_t max_bytes = 256u << 20;  // keys + values, whole cache
  size_t shards = 16;
};

struct InProcessCacheStats {
  int64_t size = 0;
  int64_t bytes = 0;
  int64_t evictions = 0;    // dropped by LRU (capacity or bytes)
  int64_t expirations = 0;  // found expired on lookup
  int64_t clears = 0;       // Clear() calls
};

class InProcessCache final : public Cache {
 public:
  explicit InProcessCache(const Clock& clock, InProcessCacheSettings settings = {});
  ~InProcessCache() override;
  InProcessCache(const InProcessCache&) = delete;
  InProcessCache& operator=(const InProcessCache&) = delete;

  Result<std::optional<std::string>> Get(std::string_view key) override;
  Status Set(std::string_view key, std::string_view value, Duration ttl) override;
  Status Delete(std::string_view key) override;
  // Drops every entry (e.g. the database behind the cache was written by another process).
  void Clear();

  InProcessCacheStats Stats() const;

 private:
  struct Shard;
  Shard& ShardFor(std::string_view key);

  const Clock& clock_;
  const InProcessCacheSettings settings_;
  size_t per_shard_capacity_;
  size_t per_shard_bytes_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<int64_t> evictions_{0};
  std::atomic<int64_t> expirations_{0};
  std::atomic<int64_t> clears_{0};
};

}  // namespace syncwell::cache
