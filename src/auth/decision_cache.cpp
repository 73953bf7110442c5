#include "auth/decision_cache.hpp"

#include <openssl/sha.h>

#include <algorithm>

namespace syncwell::auth {

DecisionCache::DecisionCache(size_t max_entries)
    : per_shard_max_(max_entries == 0 ? 0 : std::max<size_t>(1, max_entries / kShards)) {}

TokenDigest DecisionCache::Digest(std::string_view token) {
  TokenDigest d;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  return d;
}

std::optional<Principal> DecisionCache::Find(const TokenDigest& digest, TimePoint now) {
  if (per_shard_max_ == 0) return std::nullopt;
  Shard& shard = ShardFor(digest);
  std::lock_guard lock(shard.mu);
  auto it = shard.map.find(digest);
  if (it == shard.map.end()) return std::nullopt;
  if (now >= it->second.expires) {
    shard.map.erase(it);
    return std::nullopt;
  }
  return it->second.principal;
}

void DecisionCache::Insert(const TokenDigest& digest, Principal principal, TimePoint expires,
                           uint64_t epoch, TimePoint now) {
  if (per_shard_max_ == 0 || expires <= now) return;
  Shard& shard = ShardFor(digest);
  std::lock_guard lock(shard.mu);
  // Checked under the shard lock: ForgetKid bumps the epoch before it sweeps this shard, so
  // either we see the new epoch here or the sweep sees our entry.
  if (epoch_.load() != epoch) return;
  if (shard.map.size() >= per_shard_max_ && !shard.map.contains(digest)) EvictOne(shard, now);
  shard.map.insert_or_assign(digest, Entry{std::move(principal), expires});
}

void DecisionCache::EvictOne(Shard& shard, TimePoint now) {
  Map& map = shard.map;
  if (map.empty()) return;
  uint64_t& x = shard.rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  const size_t buckets = map.bucket_count();
  for (size_t i = 0; i < buckets; ++i) {
    const size_t b = (x + i) % buckets;
    if (map.bucket_size(b) == 0) continue;
    auto victim = map.cbegin(b);
    for (auto it = map.cbegin(b); it != map.cend(b); ++it) {
      if (now >= it->second.expires) {
        victim = it;
        break;
      }
    }
    const TokenDigest key = victim->first;
    map.erase(key);
    return;
  }
}

size_t DecisionCache::ForgetKid(std::string_view kid) {
  epoch_.fetch_add(1);
  size_t removed = 0;
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    removed +=
        std::erase_if(shard.map, [&](const auto& kv) { return kv.second.principal.kid == kid; });
  }
  return removed;
}

size_t DecisionCache::size() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    n += shard.map.size();
  }
  return n;
}

}  // namespace syncwell::auth
