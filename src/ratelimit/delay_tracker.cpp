#include "ratelimit/delay_tracker.hpp"

#include <algorithm>

namespace syncwell::ratelimit {

DelayTracker::DelayTracker(const Clock& clock, DelayTrackerSettings settings)
    : clock_(clock), settings_(settings) {
  settings_.max_entries = std::max<size_t>(settings_.max_entries, 1);
}

std::string DelayTracker::Key(const UserId& user, std::string_view provider) {
  std::string key(provider);
  key.push_back('\x1f');
  key += user.str();
  return key;
}

std::optional<Duration> DelayTracker::OnDeferred(const UserId& user, std::string_view provider) {
  const TimePoint now = clock_.Now();
  std::string key = Key(user, provider);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it != entries_.end() && now - it->second.last_deferred > settings_.forget_after) {
    entries_.erase(it);  // stale: the job went away without OnCompleted; a new episode starts
    it = entries_.end();
  }
  if (it == entries_.end()) {
    if (entries_.size() >= settings_.max_entries) MakeRoom(now);
    it = entries_.emplace(std::move(key), Entry{now, now, false}).first;
  }
  Entry& e = it->second;
  e.last_deferred = now;
  const auto delayed = std::chrono::duration_cast<Duration>(now - e.first_deferred);
  if (!e.reported && delayed > settings_.threshold) {
    e.reported = true;
    return delayed;
  }
  return std::nullopt;
}

void DelayTracker::OnCompleted(const UserId& user, std::string_view provider) {
  const std::string key = Key(user, provider);
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(key);
}

std::optional<TimePoint> DelayTracker::FirstDeferredAt(const UserId& user,
                                                       std::string_view provider) const {
  const std::string key = Key(user, provider);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.first_deferred;
}

size_t DelayTracker::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

void DelayTracker::MakeRoom(TimePoint now) {
  std::erase_if(entries_, [&](const auto& kv) {
    return now - kv.second.last_deferred > settings_.forget_after;
  });
  if (entries_.size() < settings_.max_entries) return;
  auto oldest = std::min_element(
      entries_.begin(), entries_.end(),
      [](const auto& a, const auto& b) { return a.second.last_deferred < b.second.last_deferred; });
  entries_.erase(oldest);
}

}  // namespace syncwell::ratelimit
