#include "sync/confidence.hpp"

#include <algorithm>
#include <utility>

namespace syncwell::sync {

std::string ConfidenceKey(const UserId& user, std::string_view dest_provider) {
  std::string k = "sync:confidence:";
  k += user.str();
  k += ':';
  k += dest_provider;
  return k;
}

InProcessCounter::InProcessCounter(const Clock& clock, size_t max_entries)
    : clock_(clock), max_entries_(std::max<size_t>(1, max_entries)) {}

Result<int64_t> InProcessCounter::Get(std::string_view key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return int64_t{0};
  if (it->second.expires_at <= clock_.Now()) {
    EraseLocked(it);
    return int64_t{0};
  }
  return it->second.value;
}

Result<int64_t> InProcessCounter::Increment(std::string_view key, Duration ttl) {
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    if (it->second.expires_at <= now) it->second.value = 0;
    expiry_.erase(it->second.by_expiry);
  } else {
    if (entries_.size() >= max_entries_ && !expiry_.empty()) {
      EraseLocked(expiry_.begin()->second);  // expired or closest to expiry
    }
    it = entries_.emplace(std::string(key), Entry{}).first;
  }
  it->second.value += 1;
  it->second.expires_at = now + ttl;
  it->second.by_expiry = expiry_.emplace(it->second.expires_at, it);
  return it->second.value;
}

Status InProcessCounter::Reset(std::string_view key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) EraseLocked(it);
  return {};
}

size_t InProcessCounter::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void InProcessCounter::EraseLocked(Entries::iterator it) {
  expiry_.erase(it->second.by_expiry);
  entries_.erase(it);
}

}  // namespace syncwell::sync
