#include "secrets/credential_cache.hpp"

#include <algorithm>

namespace syncwell::secrets {

CredentialCache::CredentialCache(const Clock& clock, CredentialCacheSettings settings)
    : clock_(clock), settings_{std::max<size_t>(settings.capacity, 1), settings.ttl} {}

std::optional<Secret> CredentialCache::Get(const ConnectionId& id) {
  const TimePoint now = clock_.Now();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(id);
  if (it == index_.end()) {
    ++stats_.misses;
    return std::nullopt;
  }
  if (now - it->second->stored_at >= settings_.ttl) {
    lru_.erase(it->second);
    index_.erase(it);
    ++stats_.expirations;
    ++stats_.misses;
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);  // most recently used; iterators stay valid
  ++stats_.hits;
  return it->second->value;
}

void CredentialCache::Put(const ConnectionId& id, Secret value) {
  const TimePoint now = clock_.Now();
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  PutLocked(id, std::move(value), now);
}

CredentialCache::Ticket CredentialCache::BeginLoad() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

bool CredentialCache::PutLoaded(const ConnectionId& id, Secret value, Ticket ticket) {
  const TimePoint now = clock_.Now();
  std::lock_guard<std::mutex> lock(mu_);
  if (ticket != generation_) {
    ++stats_.stale_puts;
    return false;
  }
  PutLocked(id, std::move(value), now);
  return true;
}

void CredentialCache::PutLocked(const ConnectionId& id, Secret value, TimePoint now) {
  if (auto it = index_.find(id); it != index_.end()) {
    it->second->value = std::move(value);
    it->second->stored_at = now;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (index_.size() >= settings_.capacity) {
    index_.erase(lru_.back().id);
    lru_.pop_back();
    ++stats_.evictions;
  }
  lru_.push_front(Node{id, std::move(value), now});
  index_.emplace(id, lru_.begin());
}

void CredentialCache::Invalidate(const ConnectionId& id) {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  ++stats_.invalidations;
  if (auto it = index_.find(id); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
}

void CredentialCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  stats_.invalidations += static_cast<int64_t>(index_.size());
  index_.clear();
  lru_.clear();
}

CredentialCacheStats CredentialCache::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  CredentialCacheStats s = stats_;
  s.size = static_cast<int64_t>(index_.size());
  return s;
}

}  // namespace syncwell::secrets
