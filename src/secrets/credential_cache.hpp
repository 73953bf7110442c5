#pragma once
// CredentialCache: per-process LRU of decrypted provider tokens (SPEC S8: ~1,000 entries, 5 min),
// keyed by connection id, so a worker does not unseal the same tokens for every job.
//
// Semantics:
//   - Get(): a hit returns a copy of the Secret and makes the entry most recently used; an entry
//     older than ttl (from its Put, by the injected clock) is a miss and is dropped.
//   - When full, Put() evicts the least recently used entry.
//   - Invalidate(id) after every token refresh/revocation; Clear() on key rotation.
//   - Read-through without stale writes: a loader takes a ticket with BeginLoad() BEFORE reading
//     the store and stores with PutLoaded(); the value is dropped if any Put/Invalidate/Clear
//     happened since the ticket, because it may be older than the refreshed token (Fitbit refresh
//     tokens are single-use: caching a stale one would turn into a false "revoked"). The check is
//     cache-wide, not per id: rarely an extra miss, never a stale token.
// Evicted, expired and invalidated values are wiped (Secret's destructor). A cache failure is never
// a request failure: callers fall back to the store on a miss (SPEC S8).
// Thread-safety: all methods are thread-safe (one mutex; the critical sections are O(1)).
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "core/clock.hpp"
#include "core/ids.hpp"
#include "secrets/secret.hpp"

namespace syncwell::secrets {

struct CredentialCacheSettings {
  size_t capacity = 1000;
  Duration ttl = std::chrono::minutes{5};
};

struct CredentialCacheStats {
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t evictions = 0;    // dropped by LRU when full
  int64_t expirations = 0;  // found older than ttl
  int64_t invalidations = 0;
  int64_t stale_puts = 0;  // PutLoaded values dropped because of a newer Put/Invalidate
  int64_t size = 0;
};

class CredentialCache {
 public:
  using Ticket = uint64_t;

  explicit CredentialCache(const Clock& clock, CredentialCacheSettings settings = {});
  CredentialCache(const CredentialCache&) = delete;
  CredentialCache& operator=(const CredentialCache&) = delete;

  std::optional<Secret> Get(const ConnectionId& id);

  // Stores a value known to be current (e.g. the token just refreshed).
  void Put(const ConnectionId& id, Secret value);

  // Read-through: ticket before reading the store, PutLoaded after. False if dropped as stale.
  Ticket BeginLoad() const;
  bool PutLoaded(const ConnectionId& id, Secret value, Ticket ticket);

  void Invalidate(const ConnectionId& id);
  void Clear();

  CredentialCacheStats Stats() const;

 private:
  struct Node {
    ConnectionId id;
    Secret value;
    TimePoint stored_at;
  };
  void PutLocked(const ConnectionId& id, Secret value, TimePoint now);  // mu_ held

  const Clock& clock_;
  const CredentialCacheSettings settings_;
  mutable std::mutex mu_;
  std::list<Node> lru_;  // front = most recently used; guarded by mu_
  std::unordered_map<ConnectionId, std::list<Node>::iterator> index_;  // guarded by mu_
  uint64_t generation_ = 0;     // bumped by Put/Invalidate/Clear; guarded by mu_
  CredentialCacheStats stats_;  // guarded by mu_ (size computed on read)
};

}  // namespace syncwell::secrets
