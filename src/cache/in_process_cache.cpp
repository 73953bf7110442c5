#include "cache/in_process_cache.hpp"

#include <algorithm>
#include <functional>
#include <utility>

namespace syncwell::cache {
namespace {

struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Rough per-entry overhead (list node, hash node, bookkeeping) counted against max_bytes.
constexpr size_t kEntryOverhead = 96;

}  // namespace

struct InProcessCache::Shard {
  struct Node {
    std::string key;
    std::string value;
    TimePoint expires_at;
  };
  using Lru = std::list<Node>;  // front = most recently used

  std::mutex mu;
  Lru lru;                                                             // guarded by mu
  std::unordered_map<std::string_view, Lru::iterator, KeyHash> index;  // guarded by mu
  size_t bytes = 0;                                                    // guarded by mu

  static size_t Cost(const Node& n) { return n.key.size() + n.value.size() + kEntryOverhead; }

  void Erase(Lru::iterator it) {  // mu held
    bytes -= Cost(*it);
    index.erase(std::string_view(it->key));
    lru.erase(it);
  }
};

InProcessCache::InProcessCache(const Clock& clock, InProcessCacheSettings settings)
    : clock_(clock), settings_(settings) {
  const size_t n = std::max<size_t>(1, settings_.shards);
  per_shard_capacity_ = std::max<size_t>(1, (settings_.capacity + n - 1) / n);
  per_shard_bytes_ = std::max<size_t>(1, (settings_.max_bytes + n - 1) / n);
  shards_.reserve(n);
  for (size_t i = 0; i < n; ++i) shards_.push_back(std::make_unique<Shard>());
}

InProcessCache::~InProcessCache() = default;

InProcessCache::Shard& InProcessCache::ShardFor(std::string_view key) {
  // Mix the hash so the shard choice and the shard's own bucket choice use different bits.
  uint64_t h = std::hash<std::string_view>{}(key);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return *shards_[h % shards_.size()];
}

Result<std::optional<std::string>> InProcessCache::Get(std::string_view key) {
  Shard& s = ShardFor(key);
  const TimePoint now = clock_.Now();
  std::lock_guard lock(s.mu);
  auto it = s.index.find(key);
  if (it == s.index.end()) return std::optional<std::string>{};
  auto node = it->second;
  if (node->expires_at <= now) {
    s.Erase(node);
    expirations_.fetch_add(1, std::memory_order_relaxed);
    return std::optional<std::string>{};
  }
  s.lru.splice(s.lru.begin(), s.lru, node);
  return std::optional<std::string>(node->value);
}

Status InProcessCache::Set(std::string_view key, std::string_view value, Duration ttl) {
  if (ttl <= Duration::zero()) return MakeError(Errc::kInvalidArgument, "cache ttl must be > 0");
  Shard& s = ShardFor(key);
  const TimePoint expires = clock_.Now() + ttl;
  std::lock_guard lock(s.mu);
  if (auto it = s.index.find(key); it != s.index.end()) s.Erase(it->second);
  Shard::Node node{std::string(key), std::string(value), expires};
  const size_t cost = Shard::Cost(node);
  if (cost > per_shard_bytes_) return {};  // too big to cache: behaves as an immediate eviction
  while (!s.lru.empty() &&
         (s.lru.size() >= per_shard_capacity_ || s.bytes + cost > per_shard_bytes_)) {
    s.Erase(std::prev(s.lru.end()));
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  s.lru.push_front(std::move(node));
  s.bytes += cost;
  s.index.emplace(std::string_view(s.lru.front().key), s.lru.begin());
  return {};
}

Status InProcessCache::Delete(std::string_view key) {
  Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  if (auto it = s.index.find(key); it != s.index.end()) s.Erase(it->second);
  return {};
}

void InProcessCache::Clear() {
  for (auto& s : shards_) {
    std::lock_guard lock(s->mu);
    s->index.clear();  // its keys are views into the nodes: first
    s->lru.clear();
    s->bytes = 0;
  }
  clears_.fetch_add(1);
}

InProcessCacheStats InProcessCache::Stats() const {
  InProcessCacheStats st;
  for (const auto& s : shards_) {
    std::lock_guard lock(s->mu);
    st.size += static_cast<int64_t>(s->lru.size());
    st.bytes += static_cast<int64_t>(s->bytes);
  }
  st.evictions = evictions_.load(std::memory_order_relaxed);
  st.expirations = expirations_.load(std::memory_order_relaxed);
  st.clears = clears_.load(std::memory_order_relaxed);
  return st;
}

}  // namespace syncwell::cache
