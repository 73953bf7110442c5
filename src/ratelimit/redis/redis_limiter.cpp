#include "ratelimit/redis/redis_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>

#include "core/log.hpp"

namespace syncwell::ratelimit {
namespace {

// Both scripts start by reading "now" in microseconds since the epoch: Redis's clock when ARGV[1]
// is empty, otherwise ARGV[1] (the limiter's injected clock). Numbers handed back to Redis go
// through string.format('%.0f'): Lua's default number formatting keeps only 14 digits.
constexpr const char* kNowPrelude = R"lua(
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local function int(x) return string.format('%.0f', x) end
)lua";

// TryAcquire.
// KEYS[1..nb]: Retry-After block keys (app, then the user's); KEYS[nb+1..]: buckets, each a string
// "<window index>:<tokens used>". One MGET reads them all; a grant writes each bucket with one SET
// PX (the TTL runs to the window end plus grace).
// ARGV: now_us|'', n, grace_ms, nb, then per bucket: window_us, offset_us, capacity, release_us,
// floor (the floor of the request's priority).
// Returns {granted 0|1, wait_us, blocked 0|1}. Mirrors InProcessLimiter::TryAcquire/ReadyAt.
constexpr const char* kAcquireBody = R"lua(
local n = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
local nb = tonumber(ARGV[4])
local vals = redis.call('MGET', unpack(KEYS))
local ready = now
local blocked = 0
for k = 1, nb do
  local b = tonumber(vals[k] or '')
  if b and b > now then
    blocked = 1
    if b > ready then ready = b end
  end
end
local floor = math.floor
local idxs, useds, ends = {}, {}, {}
local a = 5
for k = nb + 1, #KEYS do
  local w, off, cap = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local rel, fl = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  a = a + 5
  local x = now - off
  local idx = floor(x / w)
  if idx * w > x then idx = idx - 1 elseif (idx + 1) * w <= x then idx = idx + 1 end
  local e = (idx + 1) * w + off
  local used = 0
  local v = vals[k]
  if v then
    local si, su = string.match(v, '^(-?%d+):(%d+)$')
    if si and tonumber(si) == idx then used = tonumber(su) end
  end
  local tokens = cap - used
  if rel > 0 and now >= e - rel then fl = 0 end
  local r
  if tokens - n >= fl then
    r = now
  elseif tokens >= n and rel > 0 then
    r = e - rel
  else
    r = e
  end
  if r > ready then ready = r end
  idxs[k], useds[k], ends[k] = idx, used, e
end
if ready > now then return {0, ready - now, blocked} end
for k = nb + 1, #KEYS do
  redis.call('SET', KEYS[k], int(idxs[k]) .. ':' .. int(useds[k] + n), 'PX',
             int(math.ceil((ends[k] - now) / 1000) + grace))
end
return {1, 0, 0}
)lua";

// RecordRetryAfter. KEYS[1]: block key. ARGV: now_us|'', retry_after_us, grace_ms.
// The block only ever grows: a shorter later Retry-After does not shorten an active one.
constexpr const char* kBlockBody = R"lua(
local untilv = now + tonumber(ARGV[2])
local cur = tonumber(redis.call('GET', KEYS[1]) or '')
if cur == nil or cur < untilv then
  redis.call('SET', KEYS[1], int(untilv), 'PX', int(math.ceil((untilv - now) / 1000) + tonumber(ARGV[3])))
end
return 1
)lua";

const redis::RedisScript& AcquireScript() {
  static const redis::RedisScript s(std::string(kNowPrelude) + kAcquireBody);
  return s;
}
const redis::RedisScript& BlockScript() {
  static const redis::RedisScript s(std::string(kNowPrelude) + kBlockBody);
  return s;
}

int64_t Nanos(Duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

struct WindowSpec {
  std::string id;       // key component, unique within the provider and scope
  std::string args[4];  // window_us, offset_us, capacity, release_us (ARGV form)
  int64_t floor[3] = {0, 0, 0};
};

Duration ToRetryAfter(int64_t wait_us) {
  auto d = std::chrono::ceil<Duration>(std::chrono::microseconds{wait_us});
  return std::max(d, Duration{1});
}

Error Unavailable(const std::string& what, const Error& e) {
  return MakeError(Errc::kUnavailable, "rate limit (redis): " + what + ": " + e.message);
}

}  // namespace

struct RedisLimiter::ProviderSpec {
  std::string name;
  std::string key_base;  // <prefix>{<provider>}:
  std::vector<WindowSpec> app;
  std::vector<WindowSpec> user;
  std::vector<std::string> app_keys;  // parallel to app
  int64_t max_n[3] = {0, 0, 0};       // largest n ever grantable per priority
};

RedisLimiter::RedisLimiter(redis::RedisClient& client, const Clock& clock,
                           RedisLimiterSettings settings)
    : client_(client), clock_(clock), settings_(std::move(settings)) {
  if (auto st = ValidateLimits(settings_.providers, settings_.reserve); !st.ok()) {
    throw std::invalid_argument(st.error().message);
  }
  if (settings_.key_grace < Duration{0}) {
    throw std::invalid_argument("rate limit: key_grace must not be negative");
  }
  prefix_ =
      settings_.key_prefix.empty() ? client_.settings().key_prefix + "rl:" : settings_.key_prefix;
  const ReserveSettings& r = settings_.reserve;
  for (const auto& p : settings_.providers) {
    auto ps = std::make_unique<ProviderSpec>();
    ps->name = p.provider;
    ps->key_base = prefix_ + "{" + p.provider + "}:";
    for (auto& m : ps->max_n) m = std::numeric_limits<int64_t>::max();
    std::set<std::string> ids;
    for (size_t j = 0; j < p.windows.size(); ++j) {
      const WindowLimit& l = p.windows[j];
      // Same arithmetic as InProcessLimiter's MakeSpec, in microseconds (windows and offsets are
      // whole milliseconds; the release time is rounded down to a microsecond, which decides
      // exactly like the nanosecond comparison for clocks of microsecond resolution).
      const int64_t window_ns = Nanos(l.window);
      const int64_t offset_ns = Nanos(l.align_offset) % window_ns;
      const int64_t release_ns =
          static_cast<int64_t>(static_cast<double>(window_ns) * r.release_fraction);
      WindowSpec s;
      s.args[0] = std::to_string(window_ns / 1000);
      s.args[1] = std::to_string(offset_ns / 1000);
      s.args[2] = std::to_string(l.limit);
      s.args[3] = std::to_string(release_ns / 1000);
      s.floor[static_cast<int>(Priority::kHigh)] = 0;
      s.floor[static_cast<int>(Priority::kMedium)] =
          static_cast<int64_t>(std::ceil(static_cast<double>(l.limit) * r.medium_floor));
      s.floor[static_cast<int>(Priority::kLow)] =
          static_cast<int64_t>(std::ceil(static_cast<double>(l.limit) * r.low_floor));
      for (int pr = 0; pr < 3; ++pr) {
        const int64_t usable = release_ns / 1000 > 0 ? l.limit : l.limit - s.floor[pr];
        ps->max_n[pr] = std::min(ps->max_n[pr], usable);
      }
      // The key follows the window's definition (length, alignment), not its position in the
      // configuration, so reordering the table keeps the counts.
      s.id = std::to_string(l.window.count());
      if (offset_ns != 0) s.id += "+" + std::to_string(offset_ns / 1'000'000);
      if (!ids.insert((l.scope == Scope::kApp ? "a" : "u") + s.id).second) {
        s.id += "#" + std::to_string(j);
      }
      if (l.scope == Scope::kApp) {
        ps->app_keys.push_back(ps->key_base + "a:" + s.id);
        ps->app.push_back(std::move(s));
      } else {
        ps->user.push_back(std::move(s));
      }
    }
    providers_.emplace(p.provider, std::move(ps));
  }
}

RedisLimiter::~RedisLimiter() = default;

bool RedisLimiter::Available() const { return client_.Healthy(); }

std::string RedisLimiter::NowArg() const {
  if (settings_.use_redis_time) return {};
  return std::to_string(
      std::chrono::duration_cast<std::chrono::microseconds>(clock_.Now().time_since_epoch())
          .count());
}

Result<Decision> RedisLimiter::TryAcquire(std::string_view provider, std::string_view provider_user,
                                          Priority priority, int64_t n) {
  auto pit = providers_.find(provider);
  if (pit == providers_.end()) {
    return MakeError(Errc::kInvalidArgument,
                     "rate limit: unknown provider " + std::string(provider));
  }
  const ProviderSpec& ps = *pit->second;
  const int pr = static_cast<int>(priority);
  if (pr < 0 || pr > 2) return MakeError(Errc::kInvalidArgument, "rate limit: bad priority");
  if (n <= 0 || n > ps.max_n[pr]) {
    return MakeError(Errc::kInvalidArgument, "rate limit: " + std::to_string(n) +
                                                 " tokens can never be granted to " +
                                                 PriorityName(priority) + " for " + ps.name);
  }
  const bool has_user = !provider_user.empty();
  const size_t nb = has_user ? 2 : 1;
  const size_t nbuckets = ps.app.size() + (has_user ? ps.user.size() : 0);

  std::vector<std::string> keys;
  keys.reserve(nb + nbuckets);
  keys.push_back(ps.key_base + "b");
  if (has_user) keys.push_back(ps.key_base + "b:" + std::string(provider_user));
  keys.insert(keys.end(), ps.app_keys.begin(), ps.app_keys.end());
  std::vector<std::string> args;
  args.reserve(4 + 5 * nbuckets);
  args.push_back(NowArg());
  args.push_back(std::to_string(n));
  args.push_back(std::to_string(settings_.key_grace.count()));
  args.push_back(std::to_string(nb));
  auto add = [&](const WindowSpec& w) {
    for (const auto& a : w.args) args.push_back(a);
    args.push_back(std::to_string(w.floor[pr]));
  };
  for (const auto& w : ps.app) add(w);
  if (has_user) {
    for (const auto& w : ps.user) {
      keys.push_back(ps.key_base + "u:" + w.id + ":" + std::string(provider_user));
      add(w);
    }
  }

  auto r = client_.Eval(AcquireScript(), keys, args);
  if (!r) {
    unavailable_.fetch_add(1, std::memory_order_relaxed);
    return Unavailable("acquire", r.error());
  }
  if (r->type != redis::RedisReply::Type::kArray || r->elements.size() != 3) {
    unavailable_.fetch_add(1, std::memory_order_relaxed);
    std::string msg = r->type == redis::RedisReply::Type::kError ? r->str : "unexpected reply";
    log::Warn("rate limit: redis refused the acquire script", {{"error", msg}});
    return MakeError(Errc::kUnavailable, "rate limit (redis): acquire: " + msg);
  }
  if (r->elements[0].integer == 1) {
    granted_.fetch_add(1, std::memory_order_relaxed);
    return Decision{true, Duration{0}};
  }
  denied_.fetch_add(1, std::memory_order_relaxed);
  if (r->elements[2].integer == 1) denied_retry_after_.fetch_add(1, std::memory_order_relaxed);
  return Decision{false, ToRetryAfter(r->elements[1].integer)};
}

Status RedisLimiter::RecordRetryAfter(std::string_view provider, std::string_view provider_user,
                                      Duration retry_after) {
  auto pit = providers_.find(provider);
  if (pit == providers_.end()) {
    return MakeError(Errc::kInvalidArgument,
                     "rate limit: unknown provider " + std::string(provider));
  }
  if (retry_after <= Duration{0}) return {};
  retry_after = std::min(retry_after, settings_.max_retry_after);
  const ProviderSpec& ps = *pit->second;
  std::string key = ps.key_base + "b";
  if (!provider_user.empty()) key += ":" + std::string(provider_user);
  auto r = client_.Eval(
      BlockScript(), {key},
      {NowArg(),
       std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(retry_after).count()),
       std::to_string(settings_.key_grace.count())});
  if (!r) {
    unavailable_.fetch_add(1, std::memory_order_relaxed);
    return Unavailable("retry-after", r.error());
  }
  if (r->type == redis::RedisReply::Type::kError) {
    unavailable_.fetch_add(1, std::memory_order_relaxed);
    log::Warn("rate limit: redis refused the retry-after script", {{"error", r->str}});
    return MakeError(Errc::kUnavailable, "rate limit (redis): retry-after: " + r->str);
  }
  retry_after_recorded_.fetch_add(1, std::memory_order_relaxed);
  return {};
}

RedisLimiterStats RedisLimiter::Stats() const {
  RedisLimiterStats s;
  s.granted = granted_.load(std::memory_order_relaxed);
  s.denied = denied_.load(std::memory_order_relaxed);
  s.denied_retry_after = denied_retry_after_.load(std::memory_order_relaxed);
  s.unavailable = unavailable_.load(std::memory_order_relaxed);
  s.retry_after_recorded = retry_after_recorded_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace syncwell::ratelimit
