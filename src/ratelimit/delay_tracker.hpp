#pragma once
// DelayTracker: notices when a user's sync with a provider has been held back by rate limits for
// longer than a threshold (SPEC S6: 15 min), so the worker emits ONE event per episode (for a user
// notification). An episode starts at the first deferral of (user, provider) and ends when the sync
// runs (OnCompleted) or is abandoned; the delay is measured from the first deferral, so it is the
// total delay, however many deferrals it took.
//
// Worker usage:
//   limiter refused -> if (auto d = tracker.OnDeferred(user, provider)) EmitSyncDelayed(*d);
//   sync ran        -> tracker.OnCompleted(user, provider);
//
// In-process state: with several worker processes, a job may be deferred by one process and retried
// by another; then the first-deferral time should travel with the job instead (FirstDeferredAt()
// helps carry it) — this class is the embedded deployment's bookkeeping.
// Memory is bounded: entries not deferred again within forget_after are dropped, and when full the
// least recently deferred entry is dropped. All time from the injected clock. Thread-safe.
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/ids.hpp"

namespace syncwell::ratelimit {

struct DelayTrackerSettings {
  Duration threshold = std::chrono::minutes{15};
  Duration forget_after = std::chrono::hours{24};
  size_t max_entries = 100'000;
};

class DelayTracker {
 public:
  explicit DelayTracker(const Clock& clock, DelayTrackerSettings settings = {});

  // Records a rate-limit deferral. Returns the total delay so far exactly once per episode: on the
  // first call at which it exceeds the threshold. nullopt otherwise.
  std::optional<Duration> OnDeferred(const UserId& user, std::string_view provider);
  // The sync ran (or was given up): ends the episode.
  void OnCompleted(const UserId& user, std::string_view provider);
  // First deferral of the current episode, if any.
  std::optional<TimePoint> FirstDeferredAt(const UserId& user, std::string_view provider) const;
  size_t size() const;

 private:
  struct Entry {
    TimePoint first_deferred;
    TimePoint last_deferred;
    bool reported = false;
  };
  static std::string Key(const UserId& user, std::string_view provider);
  void MakeRoom(TimePoint now);  // mu_ held

  const Clock& clock_;
  DelayTrackerSettings settings_;
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;  // guarded by mu_
};

}  // namespace syncwell::ratelimit
