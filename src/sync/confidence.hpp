#pragma once
// Sync confidence (SPEC S4 step 4, S8): per (user, destination provider), how many destination
// reads in a row found nothing. After more than `skip_threshold` consecutive empty reads the
// engine skips the destination read (conflict resolution against an empty destination is a
// no-op) until the counter expires (7-day TTL, refreshed on every increment) or a read finds
// data again (reset).
//
// `Counter` is the port (ARCHITECTURE §5: confidence, hot-user rates); `InProcessCounter` is the
// embedded adapter, a Redis one comes with the scale-out work. A counter failure is never a sync
// failure: the engine then always reads the destination (SPEC S4 "cache down").
//
// Thread-safety: every Counter is safe to call from any thread.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/ids.hpp"
#include "core/result.hpp"

namespace syncwell::sync {

class Counter {
 public:
  virtual ~Counter() = default;
  // The current value; 0 when absent or expired.
  virtual Result<int64_t> Get(std::string_view key) = 0;
  // +1 and (re)sets the TTL; returns the new value.
  virtual Result<int64_t> Increment(std::string_view key, Duration ttl) = 0;
  virtual Status Reset(std::string_view key) = 0;
};

// "sync:confidence:{user}:{destProvider}" (the brief's key).
std::string ConfidenceKey(const UserId& user, std::string_view dest_provider);

// In-memory counters with TTL. Bounded: at most max_entries keys; when full, the entry closest to
// expiry (an expired one if any) is dropped -- forgetting a counter only costs some extra
// destination reads later. One mutex; O(log n) per call (an expiry index orders the entries).
class InProcessCounter final : public Counter {
 public:
  explicit InProcessCounter(const Clock& clock, size_t max_entries = 1'000'000);

  Result<int64_t> Get(std::string_view key) override;
  Result<int64_t> Increment(std::string_view key, Duration ttl) override;
  Status Reset(std::string_view key) override;

  size_t size() const;

 private:
  struct Entry;
  using Entries = std::map<std::string, Entry, std::less<>>;
  using ExpiryIndex = std::multimap<TimePoint, Entries::iterator>;
  struct Entry {
    int64_t value = 0;
    TimePoint expires_at{};
    ExpiryIndex::iterator by_expiry;
  };
  void EraseLocked(Entries::iterator it);  // mu_ held

  const Clock& clock_;
  const size_t max_entries_;
  mutable std::mutex mu_;
  Entries entries_;     // guarded by mu_
  ExpiryIndex expiry_;  // guarded by mu_; one element per entry
};

}  // namespace syncwell::sync
