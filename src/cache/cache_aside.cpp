#include "cache/cache_aside.hpp"

#include <algorithm>
#include <random>
#include <utility>

namespace syncwell::cache {
namespace {

obs::Counter& Make(obs::Registry& r, const char* name, const char* help, const std::string& cache,
                   const char* outcome = nullptr) {
  std::string labels = "cache=\"" + cache + "\"";
  if (outcome != nullptr) labels += std::string(",outcome=\"") + outcome + "\"";
  return r.GetCounter(name, help, labels);
}

constexpr const char* kRequests = "syncwell_cache_requests_total";
constexpr const char* kRequestsHelp =
    "Cache-aside lookups by outcome (hit, miss, error = the cache failed and the store answered)";
constexpr const char* kLoads = "syncwell_cache_loads_total";
constexpr const char* kLoadsHelp = "Loader (store) runs after cache misses, by outcome";

double Uniform(double lo, double hi) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}

}  // namespace

struct CacheAside::Flight {
  std::condition_variable cv;
  bool done = false;                          // guarded by flights_mu_
  std::optional<Result<std::string>> result;  // guarded by flights_mu_; set when done
};

CacheAside::CacheAside(Cache& cache, obs::Registry* metrics, CacheAsideSettings settings)
    : cache_(cache),
      settings_(std::move(settings)),
      own_metrics_(metrics == nullptr ? std::make_unique<obs::Registry>() : nullptr),
      hits_(Make(metrics ? *metrics : *own_metrics_, kRequests, kRequestsHelp, settings_.name,
                 "hit")),
      misses_(Make(metrics ? *metrics : *own_metrics_, kRequests, kRequestsHelp, settings_.name,
                   "miss")),
      errors_(Make(metrics ? *metrics : *own_metrics_, kRequests, kRequestsHelp, settings_.name,
                   "error")),
      loads_ok_(Make(metrics ? *metrics : *own_metrics_, kLoads, kLoadsHelp, settings_.name, "ok")),
      load_errors_(
          Make(metrics ? *metrics : *own_metrics_, kLoads, kLoadsHelp, settings_.name, "error")),
      coalesced_(Make(metrics ? *metrics : *own_metrics_, "syncwell_cache_coalesced_total",
                      "Cache misses that waited for another caller's loader (single-flight)",
                      settings_.name)),
      set_errors_(Make(metrics ? *metrics : *own_metrics_, "syncwell_cache_set_errors_total",
                       "Loaded values that could not be written to the cache", settings_.name)),
      rejected_(Make(metrics ? *metrics : *own_metrics_, "syncwell_cache_rejected_total",
                     "Cached values refused (unknown encoding) and reloaded", settings_.name)) {}

CacheAside::~CacheAside() = default;

Duration CacheAside::Jittered(Duration ttl) const {
  const double j = std::clamp(settings_.jitter, 0.0, 0.9);
  if (j == 0.0 || ttl <= Duration::zero()) return ttl;
  const double factor = 1.0 + Uniform(-j, j);
  const auto ms = static_cast<int64_t>(static_cast<double>(ttl.count()) * factor);
  return Duration{std::max<int64_t>(1, ms)};
}

Result<std::string> CacheAside::GetOrLoad(std::string_view key, Duration ttl, const Loader& loader,
                                          const Accept& accept) {
  std::string k(key);
  auto got = cache_.Get(k);
  if (got.ok()) {
    if (got->has_value()) {
      if (!accept || accept(**got)) {
        hits_.Inc();
        return std::move(**got);
      }
      rejected_.Inc();
    }
    misses_.Inc();
  } else {
    errors_.Inc();  // fall through to the loader: a cache failure is never a request failure
  }

  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    std::lock_guard lock(flights_mu_);
    auto [it, inserted] = flights_.try_emplace(k);
    if (inserted) it->second = std::make_shared<Flight>();
    flight = it->second;
    leader = inserted;
  }
  if (!leader) {
    coalesced_.Inc();
    std::unique_lock lock(flights_mu_);
    flight->cv.wait(lock, [&] { return flight->done; });
    return *flight->result;
  }
  return Lead(k, ttl, loader, flight);
}

Result<std::string> CacheAside::Lead(const std::string& key, Duration ttl, const Loader& loader,
                                     const std::shared_ptr<Flight>& flight) {
  // Publishes the outcome to the waiters and retires the flight; later misses start a new one.
  auto publish = [&](const Result<std::string>& r) {
    std::lock_guard lock(flights_mu_);
    flights_.erase(key);
    flight->result = r;
    flight->done = true;
    flight->cv.notify_all();
  };

  Result<Loaded> loaded = MakeError(Errc::kInternal, "cache loader did not run");
  try {
    loaded = loader();
  } catch (...) {
    publish(MakeError(Errc::kInternal, "cache loader threw"));
    throw;
  }
  if (!loaded.ok()) {
    load_errors_.Inc();
    Result<std::string> out = loaded.error();
    publish(out);
    return out;
  }
  loads_ok_.Inc();
  const Duration t = loaded->ttl.value_or(ttl);
  if (t > Duration::zero()) {
    // Before publishing, so that a miss arriving after the flight ends finds the value.
    if (auto st = cache_.Set(key, loaded->value, Jittered(t)); !st.ok()) set_errors_.Inc();
  }
  Result<std::string> out = std::move(loaded->value);
  publish(out);
  return out;
}

CacheAsideStats CacheAside::Stats() const {
  CacheAsideStats s;
  s.hits = hits_.Value();
  s.misses = misses_.Value();
  s.errors = errors_.Value();
  s.loads = loads_ok_.Value() + load_errors_.Value();
  s.load_errors = load_errors_.Value();
  s.coalesced = coalesced_.Value();
  s.set_errors = set_errors_.Value();
  s.rejected = rejected_.Value();
  return s;
}

}  // namespace syncwell::cache
