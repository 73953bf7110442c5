#pragma once
// CacheAside: the read path of SPEC S8 over any Cache -- look the key up; on a miss run the
// loader (the store read), cache what it returns and return it.
//
//  * TTL jitter: every Set uses ttl * (1 + u), u uniform in [-jitter, +jitter] (default ±10%), so
//    keys filled together (a deploy, a burst of users) do not all expire in the same second.
//  * Single-flight: concurrent misses of ONE key in this process run ONE loader; the others wait
//    for it and share its result (value or error). Different keys never wait for each other.
//  * A cache failure is never a request failure: a Get or Set error is counted and the loader's
//    value is returned anyway (SPEC S8 "fall back to the store and count it").
//  * Loader errors are returned to every waiter and never cached. A loader may ask for its value
//    not to be cached or to be cached for another ttl (negative lookups: 1 min) via Loaded::ttl.
//  * `accept` (optional) rejects a cached value (e.g. an unknown encoding version): it is treated
//    as a miss, reloaded and overwritten.
//
// Metrics (registry given at construction; label cache="<name>"):
//   syncwell_cache_requests_total{cache,outcome=hit|miss|error}  lookups (error = cache failed)
//   syncwell_cache_loads_total{cache,outcome=ok|error}           loader runs
//   syncwell_cache_coalesced_total{cache}                        misses that waited for a loader
//   syncwell_cache_set_errors_total{cache}                       Set failures (value not cached)
//   syncwell_cache_rejected_total{cache}                         cached values refused by accept
//
// Thread-safety: all methods are thread-safe; GetOrLoad blocks while its loader (or the loader it
// joined) runs. The Cache and the Registry must outlive this object.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cache/cache.hpp"
#include "core/clock.hpp"
#include "core/result.hpp"
#include "obs/metrics.hpp"

namespace syncwell::cache {

struct CacheAsideSettings {
  std::string name = "default";  // metrics label
  double jitter = 0.10;          // fraction of the ttl, 0 = none
};

struct CacheAsideStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t errors = 0;  // cache Get failures (each also ran the loader)
  uint64_t loads = 0;
  uint64_t load_errors = 0;
  uint64_t coalesced = 0;
  uint64_t set_errors = 0;
  uint64_t rejected = 0;
};

// What a loader returns: the value and, optionally, its own ttl (nullopt = the GetOrLoad ttl;
// zero or negative = return it without caching it).
struct Loaded {
  std::string value;
  std::optional<Duration> ttl;
};

class CacheAside {
 public:
  using Loader = std::function<Result<Loaded>()>;
  using Accept = std::function<bool(std::string_view)>;

  // `metrics` may be null (counters are then private to this object).
  CacheAside(Cache& cache, obs::Registry* metrics, CacheAsideSettings settings = {});
  ~CacheAside();
  CacheAside(const CacheAside&) = delete;
  CacheAside& operator=(const CacheAside&) = delete;

  Result<std::string> GetOrLoad(std::string_view key, Duration ttl, const Loader& loader,
                                const Accept& accept = {});

  // ttl with jitter applied (what GetOrLoad passes to Cache::Set). Exposed for callers that Set
  // directly and for tests.
  Duration Jittered(Duration ttl) const;

  Cache& cache() { return cache_; }
  const std::string& name() const { return settings_.name; }
  CacheAsideStats Stats() const;

 private:
  struct Flight;
  Result<std::string> Lead(const std::string& key, Duration ttl, const Loader& loader,
                           const std::shared_ptr<Flight>& flight);

  Cache& cache_;
  const CacheAsideSettings settings_;
  std::unique_ptr<obs::Registry> own_metrics_;  // when none was given
  obs::Counter& hits_;
  obs::Counter& misses_;
  obs::Counter& errors_;
  obs::Counter& loads_ok_;
  obs::Counter& load_errors_;
  obs::Counter& coalesced_;
  obs::Counter& set_errors_;
  obs::Counter& rejected_;

  std::mutex flights_mu_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;  // guarded by flights_mu_
};

}  // namespace syncwell::cache
