#include "ratelimit/in_process_limiter.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "core/log.hpp"

namespace syncwell::ratelimit {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::min();

int64_t Nanos(Duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

int64_t NowNanos(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock.Now().time_since_epoch())
      .count();
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Immutable description of one window, precomputed in nanoseconds.
struct WindowSpec {
  int64_t window_ns = 0;
  int64_t offset_ns = 0;
  int64_t capacity = 0;
  int64_t release_ns = 0;  // floors are 0 in [boundary - release_ns, boundary)
  int64_t floor[3] = {0, 0, 0};

  int64_t IndexAt(int64_t now_ns) const { return FloorDiv(now_ns - offset_ns, window_ns); }
  int64_t EndOf(int64_t index) const { return (index + 1) * window_ns + offset_ns; }
  int64_t FloorAt(Priority p, int64_t now_ns, int64_t index) const {
    if (release_ns > 0 && now_ns >= EndOf(index) - release_ns) return 0;
    return floor[static_cast<int>(p)];
  }
};

// Mutable state of one bucket: tokens left in window `index`.
struct Bucket {
  int64_t tokens = 0;
  int64_t index = kNever;
};

void Refresh(Bucket& b, const WindowSpec& w, int64_t index) {
  if (b.index != index) {
    b.index = index;
    b.tokens = w.capacity;
  }
}

// Checks one bucket for n tokens at priority p. Returns now_ns when they can be taken now,
// otherwise the earliest time they can be (nobody else taking tokens meanwhile).
int64_t ReadyAt(Bucket& b, const WindowSpec& w, Priority p, int64_t n, int64_t now_ns) {
  const int64_t index = w.IndexAt(now_ns);
  Refresh(b, w, index);
  if (b.tokens - n >= w.FloorAt(p, now_ns, index)) return now_ns;
  // Only the floor is in the way and it lapses before the boundary: ready when it lapses.
  if (b.tokens >= n && w.release_ns > 0) return w.EndOf(index) - w.release_ns;
  return w.EndOf(index);  // full refill; n <= capacity - floor was checked up front
}

bool IsFull(const Bucket& b, const WindowSpec& w, int64_t now_ns) {
  return b.index != w.IndexAt(now_ns) || b.tokens >= w.capacity;
}

WindowSpec MakeSpec(const WindowLimit& l, const ReserveSettings& r) {
  WindowSpec s;
  s.window_ns = Nanos(l.window);
  s.offset_ns = Nanos(l.align_offset) % s.window_ns;
  s.capacity = l.limit;
  s.release_ns = static_cast<int64_t>(static_cast<double>(s.window_ns) * r.release_fraction);
  s.floor[static_cast<int>(Priority::kHigh)] = 0;
  s.floor[static_cast<int>(Priority::kMedium)] =
      static_cast<int64_t>(std::ceil(static_cast<double>(l.limit) * r.medium_floor));
  s.floor[static_cast<int>(Priority::kLow)] =
      static_cast<int64_t>(std::ceil(static_cast<double>(l.limit) * r.low_floor));
  return s;
}

Duration ToRetryAfter(int64_t wait_ns) {
  auto d = std::chrono::ceil<Duration>(std::chrono::nanoseconds{wait_ns});
  return std::max(d, Duration{1});
}

}  // namespace

struct InProcessLimiter::ProviderState {
  std::string name;
  std::vector<WindowSpec> app;
  std::vector<WindowSpec> user;
  int64_t max_n[3] = {0, 0, 0};  // largest n ever grantable per priority

  std::mutex mu;
  std::vector<Bucket> app_buckets;        // guarded by mu, parallel to `app`
  int64_t app_blocked_until_ns = kNever;  // guarded by mu
};

struct InProcessLimiter::UserEntry {
  const ProviderState* provider = nullptr;
  std::vector<Bucket> buckets;  // parallel to provider->user
  int64_t blocked_until_ns = kNever;

  bool Evictable(int64_t now_ns) const {
    if (blocked_until_ns > now_ns) return false;
    for (size_t i = 0; i < buckets.size(); ++i) {
      if (!IsFull(buckets[i], provider->user[i], now_ns)) return false;
    }
    return true;
  }
  int64_t EvictableAt() const {
    int64_t t = blocked_until_ns;
    for (size_t i = 0; i < buckets.size(); ++i) {
      if (buckets[i].index != kNever && buckets[i].tokens < provider->user[i].capacity) {
        t = std::max(t, provider->user[i].EndOf(buckets[i].index));
      }
    }
    return t;
  }
};

struct InProcessLimiter::Shard {
  std::mutex mu;
  std::unordered_map<std::string, UserEntry> users;  // key: provider '\x1f' provider_user
  int64_t sweep_not_before_ns = kNever;              // full and nothing evictable before this
};

InProcessLimiter::InProcessLimiter(const Clock& clock, InProcessLimiterSettings settings)
    : clock_(clock), settings_(std::move(settings)) {
  if (auto st = ValidateLimits(settings_.providers, settings_.reserve); !st.ok()) {
    throw std::invalid_argument(st.error().message);
  }
  if (settings_.shards == 0 || settings_.max_user_entries == 0) {
    throw std::invalid_argument("rate limit: shards and max_user_entries must be positive");
  }
  per_shard_capacity_ =
      std::max<size_t>(1, (settings_.max_user_entries + settings_.shards - 1) / settings_.shards);
  for (const auto& p : settings_.providers) {
    auto ps = std::make_unique<ProviderState>();
    ps->name = p.provider;
    for (auto& m : ps->max_n) m = std::numeric_limits<int64_t>::max();
    for (const auto& w : p.windows) {
      WindowSpec s = MakeSpec(w, settings_.reserve);
      for (int pr = 0; pr < 3; ++pr) {
        const int64_t usable = s.release_ns > 0 ? s.capacity : s.capacity - s.floor[pr];
        ps->max_n[pr] = std::min(ps->max_n[pr], usable);
      }
      (w.scope == Scope::kApp ? ps->app : ps->user).push_back(s);
    }
    ps->app_buckets.resize(ps->app.size());
    providers_.emplace(p.provider, std::move(ps));
  }
  shards_.reserve(settings_.shards);
  for (size_t i = 0; i < settings_.shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

InProcessLimiter::~InProcessLimiter() = default;

InProcessLimiter::Shard& InProcessLimiter::ShardFor(const std::string& key) {
  return *shards_[std::hash<std::string>{}(key) % shards_.size()];
}

InProcessLimiter::UserEntry* InProcessLimiter::GetOrCreate(Shard& shard, const std::string& key,
                                                           const ProviderState& ps, int64_t now_ns,
                                                           int64_t* ready_ns) {
  if (auto it = shard.users.find(key); it != shard.users.end()) return &it->second;
  if (shard.users.size() >= per_shard_capacity_) {
    if (now_ns < shard.sweep_not_before_ns) {
      *ready_ns = shard.sweep_not_before_ns;
      return nullptr;
    }
    // One sweep frees every evictable entry, so the next inserts are O(1) again.
    const size_t before = shard.users.size();
    std::erase_if(shard.users, [&](const auto& kv) { return kv.second.Evictable(now_ns); });
    evicted_.fetch_add(static_cast<int64_t>(before - shard.users.size()),
                       std::memory_order_relaxed);
    if (shard.users.size() >= per_shard_capacity_) {
      int64_t t = std::numeric_limits<int64_t>::max();
      for (const auto& kv : shard.users) t = std::min(t, kv.second.EvictableAt());
      shard.sweep_not_before_ns = std::max(t, now_ns + 1);
      *ready_ns = shard.sweep_not_before_ns;
      return nullptr;
    }
  }
  UserEntry& e = shard.users[key];
  e.provider = &ps;
  e.buckets.reserve(ps.user.size());
  for (const auto& w : ps.user) e.buckets.push_back(Bucket{w.capacity, w.IndexAt(now_ns)});
  return &e;
}

Result<Decision> InProcessLimiter::TryAcquire(std::string_view provider,
                                              std::string_view provider_user, Priority priority,
                                              int64_t n) {
  auto pit = providers_.find(provider);
  if (pit == providers_.end()) {
    return MakeError(Errc::kInvalidArgument,
                     "rate limit: unknown provider " + std::string(provider));
  }
  ProviderState& ps = *pit->second;
  const int pr = static_cast<int>(priority);
  if (pr < 0 || pr > 2) return MakeError(Errc::kInvalidArgument, "rate limit: bad priority");
  if (n <= 0 || n > ps.max_n[pr]) {
    return MakeError(Errc::kInvalidArgument, "rate limit: " + std::to_string(n) +
                                                 " tokens can never be granted to " +
                                                 PriorityName(priority) + " for " + ps.name);
  }
  const int64_t now_ns = NowNanos(clock_);

  std::unique_lock<std::mutex> shard_lock;
  UserEntry* entry = nullptr;
  if (!provider_user.empty()) {
    std::string key;
    key.reserve(provider.size() + 1 + provider_user.size());
    key.append(provider).push_back('\x1f');
    key.append(provider_user);
    Shard& shard = ShardFor(key);
    shard_lock = std::unique_lock<std::mutex>(shard.mu);
    if (!ps.user.empty()) {
      int64_t ready_ns = now_ns;
      entry = GetOrCreate(shard, key, ps, now_ns, &ready_ns);
      if (entry == nullptr) {
        denied_.fetch_add(1, std::memory_order_relaxed);
        table_full_.fetch_add(1, std::memory_order_relaxed);
        return Decision{false, ToRetryAfter(ready_ns - now_ns)};
      }
    } else if (auto it = shard.users.find(key); it != shard.users.end()) {
      entry = &it->second;  // only there to carry a Retry-After block
    }
  }
  std::lock_guard<std::mutex> app_lock(ps.mu);

  int64_t ready_ns = now_ns;
  bool blocked = false;
  if (ps.app_blocked_until_ns > now_ns) {
    ready_ns = std::max(ready_ns, ps.app_blocked_until_ns);
    blocked = true;
  }
  if (entry != nullptr && entry->blocked_until_ns > now_ns) {
    ready_ns = std::max(ready_ns, entry->blocked_until_ns);
    blocked = true;
  }
  for (size_t i = 0; i < ps.app.size(); ++i) {
    ready_ns = std::max(ready_ns, ReadyAt(ps.app_buckets[i], ps.app[i], priority, n, now_ns));
  }
  if (entry != nullptr) {
    for (size_t i = 0; i < entry->buckets.size(); ++i) {
      ready_ns = std::max(ready_ns, ReadyAt(entry->buckets[i], ps.user[i], priority, n, now_ns));
    }
  }
  if (ready_ns > now_ns) {
    denied_.fetch_add(1, std::memory_order_relaxed);
    if (blocked) denied_retry_after_.fetch_add(1, std::memory_order_relaxed);
    return Decision{false, ToRetryAfter(ready_ns - now_ns)};
  }
  // Every bucket was refreshed and checked above under the same locks: take from all of them.
  for (auto& b : ps.app_buckets) b.tokens -= n;
  if (entry != nullptr) {
    for (auto& b : entry->buckets) b.tokens -= n;
  }
  granted_.fetch_add(1, std::memory_order_relaxed);
  return Decision{true, Duration{0}};
}

Status InProcessLimiter::RecordRetryAfter(std::string_view provider, std::string_view provider_user,
                                          Duration retry_after) {
  auto pit = providers_.find(provider);
  if (pit == providers_.end()) {
    return MakeError(Errc::kInvalidArgument,
                     "rate limit: unknown provider " + std::string(provider));
  }
  if (retry_after <= Duration{0}) return {};
  retry_after = std::min(retry_after, settings_.max_retry_after);
  ProviderState& ps = *pit->second;
  const int64_t now_ns = NowNanos(clock_);
  const int64_t until_ns = now_ns + Nanos(retry_after);
  retry_after_recorded_.fetch_add(1, std::memory_order_relaxed);

  if (!provider_user.empty()) {
    std::string key;
    key.append(provider).push_back('\x1f');
    key.append(provider_user);
    Shard& shard = ShardFor(key);
    std::lock_guard<std::mutex> lock(shard.mu);
    int64_t unused = 0;
    if (UserEntry* e = GetOrCreate(shard, key, ps, now_ns, &unused)) {
      e->blocked_until_ns = std::max(e->blocked_until_ns, until_ns);
      return {};
    }
    // No room to remember the user's block: block the whole app instead (safe, over-cautious).
    log::Warn("rate limit: user table full, applying Retry-After to the provider app",
              {{"provider", ps.name}});
  }
  std::lock_guard<std::mutex> lock(ps.mu);
  ps.app_blocked_until_ns = std::max(ps.app_blocked_until_ns, until_ns);
  return {};
}

LimiterStats InProcessLimiter::Stats() const {
  LimiterStats s;
  s.granted = granted_.load(std::memory_order_relaxed);
  s.denied = denied_.load(std::memory_order_relaxed);
  s.denied_retry_after = denied_retry_after_.load(std::memory_order_relaxed);
  s.table_full = table_full_.load(std::memory_order_relaxed);
  s.retry_after_recorded = retry_after_recorded_.load(std::memory_order_relaxed);
  s.evicted = evicted_.load(std::memory_order_relaxed);
  for (const auto& sh : shards_) {
    std::lock_guard<std::mutex> lock(sh->mu);
    s.user_entries += static_cast<int64_t>(sh->users.size());
  }
  return s;
}

}  // namespace syncwell::ratelimit
