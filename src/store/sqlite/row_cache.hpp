#pragma once
// RowCache: rows of the embedded database kept in memory, exactly as committed by this process.
//
// Why: a SQLite reader drops its whole page cache whenever the WAL changed since its last read
// transaction, which under load is nearly every read, so a point lookup by primary key pays a
// pread and a WAL-index probe per B-tree level (~20 us measured for a job). SqliteStore keeps
// the rows a sync job reads back right after they were written (the job, its cursor) here.
//
// Consistency: every write of a cached table goes through the one SqliteDb writer of this
// process. Its closures report what they changed with SqliteDb::OnCommit, and the writer applies
// those changes here (Put / Update / Erase / Clear) after the COMMIT succeeded, in commit order,
// before the writers' callers are answered. A reader that missed fills the entry from its own
// read only if no change reached the key's shard since it took the shard's epoch BEFORE reading
// (FillEpoch): a read that started before a commit can then never overwrite that commit's
// change. Writes by other processes (`syncwell admin`, a sqlite3 shell) are not seen: the owner
// calls Clear() from the SqliteDb external-write listener (at most external_write_check later).
//
// Bounded: at most `max_entries` in all; a shard that is full takes no new keys until one goes.
// Thread-safe.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>

namespace syncwell::store {

struct RowCacheStats {
  size_t entries = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
};

template <class K, class V, class Hash = std::hash<K>>
class RowCache {
 public:
  explicit RowCache(size_t max_entries)
      : per_shard_(max_entries / kShards), shards_(std::make_unique<Shard[]>(kShards)) {}

  bool enabled() const { return per_shard_ > 0; }

  std::optional<V> Get(const K& k) const {
    if (!enabled()) return std::nullopt;
    const Shard& s = ShardOf(k);
    std::lock_guard lock(s.mu);
    auto it = s.rows.find(k);
    if (it == s.rows.end()) {
      ++s.misses;
      return std::nullopt;
    }
    ++s.hits;
    return it->second;
  }

  // The cached row, or what `read()` (a Result<V> from the database) returns, kept if
  // `keep(row)` and the fill rule above allows: every reader goes through here.
  template <class Read, class Keep>
  auto GetOrRead(const K& k, Read&& read, Keep&& keep) -> std::invoke_result_t<Read> {
    if (auto hit = Get(k)) return std::move(*hit);
    if (!enabled()) return read();
    const uint64_t epoch = FillEpoch(k);
    auto row = read();
    if (row.ok() && keep(*row)) Fill(k, *row, epoch);
    return row;
  }

  // Take BEFORE reading the database; pass to Fill with what the read returned.
  uint64_t FillEpoch(const K& k) const {
    const Shard& s = ShardOf(k);
    std::lock_guard lock(s.mu);
    return s.epoch;
  }
  void Fill(const K& k, V v, uint64_t epoch) {
    if (!enabled()) return;
    Shard& s = ShardOf(k);
    std::lock_guard lock(s.mu);
    if (s.epoch != epoch) return;  // a commit touched this shard meanwhile: the read may be old
    Insert(s, k, std::move(v));
  }

  // The writer, after a commit: the key now holds `v` / holds `fn(old)` if cached / is gone.
  void Put(const K& k, V v) {
    if (!enabled()) return;
    Shard& s = ShardOf(k);
    std::lock_guard lock(s.mu);
    ++s.epoch;
    Insert(s, k, std::move(v));
  }
  void Update(const K& k, const std::function<void(V&)>& fn) {
    if (!enabled()) return;
    Shard& s = ShardOf(k);
    std::lock_guard lock(s.mu);
    ++s.epoch;
    if (auto it = s.rows.find(k); it != s.rows.end()) fn(it->second);
  }
  void Erase(const K& k) {
    if (!enabled()) return;
    Shard& s = ShardOf(k);
    std::lock_guard lock(s.mu);
    ++s.epoch;
    s.rows.erase(k);
  }
  void Clear() {
    for (size_t i = 0; i < kShards; ++i) {
      std::lock_guard lock(shards_[i].mu);
      ++shards_[i].epoch;
      shards_[i].rows.clear();
    }
  }

  RowCacheStats GetStats() const {
    RowCacheStats st;
    for (size_t i = 0; i < kShards; ++i) {
      std::lock_guard lock(shards_[i].mu);
      st.entries += shards_[i].rows.size();
      st.hits += shards_[i].hits;
      st.misses += shards_[i].misses;
    }
    return st;
  }

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<K, V, Hash> rows;
    uint64_t epoch = 0;
    mutable uint64_t hits = 0;
    mutable uint64_t misses = 0;
  };

  void Insert(Shard& s, const K& k, V v) {
    auto it = s.rows.find(k);
    if (it != s.rows.end()) {
      it->second = std::move(v);
    } else if (s.rows.size() < per_shard_) {
      s.rows.emplace(k, std::move(v));
    }
  }
  Shard& ShardOf(const K& k) { return shards_[Hash{}(k) % kShards]; }
  const Shard& ShardOf(const K& k) const { return shards_[Hash{}(k) % kShards]; }

  const size_t per_shard_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace syncwell::store
