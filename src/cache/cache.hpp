#pragma once
// The Cache port (SPEC S8, ARCHITECTURE §5): a key -> bytes store with a time to live, used
// cache-aside (cache_aside.hpp) in front of the Store. Adapters: InProcessCache (embedded, one
// process) and redis::RedisCache (shared by a fleet).
//
// Contract for every adapter (tests/conformance/cache_suite.hpp):
//  * Get: the value last Set for the key, or nullopt when absent, deleted or older than its ttl.
//  * Set: stores (or replaces, ttl included) the value for `ttl`; ttl must be > 0
//    (kInvalidArgument otherwise). Values are arbitrary bytes (NUL included); keys are any
//    non-empty byte string.
//  * Delete / DeleteMany: removing an absent key is not an error.
//  * An adapter may forget any entry at any time (eviction) -- a cache is never a store of record.
//  * kUnavailable when the backing server cannot be reached. A cache failure is never a request
//    failure (SPEC S8): callers fall back to the store and count it (CacheAside does).
//  * Thread-safe; calls may block briefly (Redis: one round trip with a deadline), so call them
//    from worker/handler threads, never from an I/O thread.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"

namespace syncwell::cache {

class Cache {
 public:
  virtual ~Cache() = default;
  virtual Result<std::optional<std::string>> Get(std::string_view key) = 0;
  virtual Status Set(std::string_view key, std::string_view value, Duration ttl) = 0;
  virtual Status Delete(std::string_view key) = 0;
  // Several keys at once (Redis: one DEL). The default deletes one by one.
  virtual Status DeleteMany(const std::vector<std::string>& keys) {
    for (const auto& k : keys) {
      if (auto st = Delete(k); !st.ok()) return st;
    }
    return {};
  }
};

}  // namespace syncwell::cache
