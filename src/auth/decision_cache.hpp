#pragma once
// DecisionCache: successful token verifications keyed by SHA-256 of the token (internal to
// TokenVerifier; separate so its eviction rules can be read and tested on their own).
//
// 64 shards, each a mutex + hash map, so the per-request hit path contends only with requests
// whose tokens hash to the same shard. Bounded: when a shard is full an insert evicts one entry
// from a random bucket (preferring an expired one there): O(1), no LRU bookkeeping on the hit
// path, and random eviction degrades gracefully under a flood of distinct valid tokens.
// Expired entries are also removed lazily when looked up.
//
// ForgetKid bumps an epoch before sweeping; an Insert carries the epoch read before its
// verification started and is discarded if the epoch moved, so a verification racing with
// ForgetKid cannot re-insert a decision made with the forgotten key.
// Thread-safety: all methods are thread-safe.
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "auth/jwt.hpp"
#include "core/clock.hpp"

namespace syncwell::auth {

using TokenDigest = std::array<uint8_t, 32>;

class DecisionCache {
 public:
  static constexpr size_t kShards = 64;

  explicit DecisionCache(size_t max_entries);

  static TokenDigest Digest(std::string_view token);

  std::optional<Principal> Find(const TokenDigest& digest, TimePoint now);
  // Caches `principal` until `expires`, unless ForgetKid ran since `epoch` was read.
  void Insert(const TokenDigest& digest, Principal principal, TimePoint expires, uint64_t epoch,
              TimePoint now);
  uint64_t epoch() const { return epoch_.load(); }
  // Removes every decision made with `kid`; returns how many.
  size_t ForgetKid(std::string_view kid);
  size_t size() const;

 private:
  struct Entry {
    Principal principal;
    TimePoint expires;
  };
  struct DigestHash {
    size_t operator()(const TokenDigest& d) const noexcept {
      size_t h;
      std::memcpy(&h, d.data(), sizeof h);  // already uniformly distributed
      return h;
    }
  };
  using Map = std::unordered_map<TokenDigest, Entry, DigestHash>;
  struct alignas(64) Shard {
    mutable std::mutex mu;
    Map map;
    uint64_t rng = 0x9e3779b97f4a7c15ull;  // xorshift state for eviction
  };

  static void EvictOne(Shard& shard, TimePoint now);
  Shard& ShardFor(const TokenDigest& d) { return shards_[d[31] % kShards]; }

  std::array<Shard, kShards> shards_;
  const size_t per_shard_max_;
  std::atomic<uint64_t> epoch_{0};
};

}  // namespace syncwell::auth
