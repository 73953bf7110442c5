// World: the simulator's shared state. Synthetic ("native") data comes from synth:: on demand;
// this file keeps only what cannot be derived: OAuth grants, provider user ids handed out,
// records written through the API or appended by /_sim, rate-limit windows and counters.
//
// Locks (never nested): mu_ (profiles, admission, counters), oauth_mu_, ids_mu_, data_mu_.
// Each is held for map operations only; record generation runs outside any lock.
#include "providers/sim/world.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <unordered_map>

#include "core/random.hpp"
#include "providers/sim/synthetic.hpp"

namespace syncwell::sim {

using providers::DataType;
using providers::Record;

double SentinelValue(double whole) { return std::floor(whole) + 0.4242; }

bool HasSentinelFraction(double v) { return std::fabs((v - std::floor(v)) - 0.4242) < 1e-6; }

bool HasSentinel(const Record& r) {
  if (const auto* w = std::get_if<providers::WorkoutData>(&r.data)) {
    return w->name.find(kSentinelTag) != std::string::npos || HasSentinelFraction(w->energy_kcal) ||
           HasSentinelFraction(w->distance_m);
  }
  if (const auto* s = std::get_if<providers::StepsData>(&r.data)) return s->count % 100 == 42;
  if (const auto* k = std::get_if<providers::WeightData>(&r.data)) {
    return std::llround(k->kg * 1e5) % 100 == 42;
  }
  return false;
}

namespace {

constexpr int64_t kRefreshGraceMs = 60'000;
constexpr int64_t kCodeTtlMs = 10 * 60'000;
constexpr int64_t kExpiredKeepMs = 3'600'000;  // expired access tokens are forgotten after 1 h
constexpr int kSweepEvery = 1024;              // token issues between sweeps
constexpr int64_t kWrittenIdBase = 9'000'000'000'000;
constexpr int64_t kAppendedIdBase = 8'000'000'000'000;

std::string Key(const std::string& a, const std::string& b) { return a + '\n' + b; }

struct CodeEntry {
  std::string provider, user;
  int64_t expires_ms = 0;
};
struct AccessEntry {
  std::string provider, user;
  uint64_t grant = 0;
  int64_t expires_ms = 0;
};
struct RefreshEntry {
  std::string provider, user;
  uint64_t grant = 0;
  int64_t used_at_ms = 0;  // 0 = not used yet
};
struct LimitWindow {
  int64_t index = -1;
  int64_t count = 0;
};
struct UserData {
  std::vector<WrittenRecord> written;
  std::vector<std::string> written_keys;  // parallel to `written`: origin or fingerprint key
  std::unordered_map<std::string, int> key_counts;
  std::vector<Record> appended;
};

std::string_view ScopeFor(const std::string& provider) {
  if (provider == "strava") return "read,activity:read_all,activity:write";
  if (provider == "fitbit") return "activity heartrate sleep weight";
  if (provider == "withings") return "user.info,user.metrics,user.activity";
  return "";
}

std::string ProviderIdCandidate(uint64_t seed, const std::string& provider, const std::string& user,
                                uint64_t salt) {
  const uint64_t h = synth::Mix(
      synth::Mix(synth::Mix(seed, synth::HashString(provider)), synth::HashString(user)), salt);
  if (provider == "strava") return std::to_string(10'000'000 + h % 90'000'000'000ull);
  if (provider == "withings") return std::to_string(1'000'000'000 + h % 9'000'000'000ull);
  if (provider == "fitbit") {
    static constexpr char kAlnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    std::string out;
    uint64_t v = h;
    for (int i = 0; i < 7; ++i) {
      out += kAlnum[v % 36];
      v /= 36;
    }
    return out;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  const uint64_t h2 = synth::Mix(h, 7);
  std::string hex;
  for (uint64_t v : {h, h2}) {
    for (int i = 0; i < 16; ++i) hex += kHex[(v >> (60 - 4 * i)) & 15];
  }
  if (provider == "garmin") {  // UUID-shaped
    return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-4" + hex.substr(13, 3) + "-8" +
           hex.substr(17, 3) + "-" + hex.substr(20, 12);
  }
  return "sim" + hex.substr(0, 12);
}

int64_t SecondsUntil(int64_t end_ms, int64_t now_ms) {
  return std::max<int64_t>(1, (end_ms - now_ms + 999) / 1000);
}

}  // namespace

class World::Impl {
 public:
  Impl(SimSettings s, const Clock& c)
      : settings_(std::move(s)),
        clock_(c),
        profiles_(settings_.profiles),
        rng_key_(synth::Mix(settings_.seed, 0xad317)) {}

  int64_t NowMs() const { return ToUnixMillis(clock_.Now()); }
  synth::Window DataWindow() const {
    return synth::Window{settings_.seed, settings_.days_of_history, NowMs()};
  }

  // --- profiles ---
  ProviderProfile Profile(const std::string& provider) const {
    std::lock_guard lock(mu_);
    auto it = profiles_.find(provider);
    return it == profiles_.end() ? ProviderProfile{} : it->second;
  }
  void SetProfile(const std::string& provider, const ProviderProfile& p) {
    std::lock_guard lock(mu_);
    profiles_[provider] = p;
  }

  // --- OAuth ---
  std::string IssueAuthCode(const std::string& provider, const std::string& user) {
    std::string code = RandomToken(16);
    std::lock_guard lock(oauth_mu_);
    codes_[code] = CodeEntry{provider, user, NowMs() + kCodeTtlMs};
    return code;
  }

  Result<providers::TokenGrant> ExchangeCode(const std::string& provider, const std::string& code) {
    std::string user;
    {
      std::lock_guard lock(oauth_mu_);
      auto it = codes_.find(code);
      if (it == codes_.end() || it->second.provider != provider ||
          it->second.expires_ms <= NowMs()) {
        return MakeError(Errc::kAuthRevoked, "invalid_grant: unknown, used or expired code");
      }
      user = it->second.user;
      codes_.erase(it);
    }
    return Issue(provider, user, next_grant_.fetch_add(1) + 1);
  }

  Result<providers::TokenGrant> Refresh(const std::string& provider, const std::string& token) {
    std::string user;
    uint64_t grant = 0;
    {
      std::lock_guard lock(oauth_mu_);
      auto it = refresh_.find(token);
      if (it == refresh_.end() || it->second.provider != provider)
        return MakeError(Errc::kAuthRevoked, "invalid_grant: unknown refresh token");
      const int64_t now = NowMs();
      if (it->second.used_at_ms != 0 && now - it->second.used_at_ms > kRefreshGraceMs) {
        refresh_.erase(it);
        return MakeError(Errc::kAuthRevoked, "invalid_grant: refresh token already rotated");
      }
      if (it->second.used_at_ms == 0) it->second.used_at_ms = now;
      user = it->second.user;
      grant = it->second.grant;
    }
    return Issue(provider, user, grant);
  }

  void RevokeUser(const std::string& provider, const std::string& user) {
    std::lock_guard lock(oauth_mu_);
    auto match = [&](const auto& e) { return e.provider == provider && e.user == user; };
    std::erase_if(codes_, [&](const auto& kv) { return match(kv.second); });
    std::erase_if(access_, [&](const auto& kv) { return match(kv.second); });
    std::erase_if(refresh_, [&](const auto& kv) { return match(kv.second); });
  }

  void RevokeToken(const std::string& provider, const std::string& access_token) {
    std::lock_guard lock(oauth_mu_);
    auto it = access_.find(access_token);
    if (it == access_.end() || it->second.provider != provider) return;
    const uint64_t grant = it->second.grant;
    std::erase_if(access_, [&](const auto& kv) { return kv.second.grant == grant; });
    std::erase_if(refresh_, [&](const auto& kv) { return kv.second.grant == grant; });
  }

  Result<std::string> Authorize(const std::string& provider, const std::string& token) const {
    std::lock_guard lock(oauth_mu_);
    auto it = access_.find(token);
    if (it == access_.end() || it->second.provider != provider)
      return MakeError(Errc::kUnauthenticated, "invalid access token");
    if (it->second.expires_ms <= NowMs())
      return MakeError(Errc::kUnauthenticated, "expired access token");
    return it->second.user;
  }

  void ExpireTokens(const std::string& provider, const std::string& user) {
    const int64_t now = NowMs();
    std::lock_guard lock(oauth_mu_);
    for (auto& [token, e] : access_) {
      if (e.provider == provider && e.user == user) e.expires_ms = std::min(e.expires_ms, now);
    }
  }

  // --- provider user ids ---
  std::string ProviderUserId(const std::string& provider, const std::string& user) const {
    std::lock_guard lock(ids_mu_);
    const std::string fwd = Key(provider, user);
    if (auto it = pid_by_user_.find(fwd); it != pid_by_user_.end()) return it->second;
    for (uint64_t salt = 0;; ++salt) {
      std::string pid = ProviderIdCandidate(settings_.seed, provider, user, salt);
      const std::string rev = Key(provider, pid);
      if (user_by_pid_.contains(rev)) continue;  // a collision with another user: next salt
      user_by_pid_[rev] = user;
      pid_by_user_[fwd] = pid;
      return pid;
    }
  }

  std::optional<std::string> SimUserFor(const std::string& provider, const std::string& pid) const {
    std::lock_guard lock(ids_mu_);
    auto it = user_by_pid_.find(Key(provider, pid));
    if (it == user_by_pid_.end()) return std::nullopt;
    return it->second;
  }

  // --- data ---
  std::vector<Record> Records(const std::string& provider, const std::string& user, DataType type,
                              int64_t from_ms, int64_t to_ms) const {
    std::vector<Record> out = synth::Generate(DataWindow(), provider, user, type, from_ms, to_ms);
    {
      std::lock_guard lock(data_mu_);
      auto it = data_.find(Key(provider, user));
      if (it != data_.end()) {
        auto take = [&](const Record& r) {
          if (r.meta.type == type && r.meta.start_ms >= from_ms && r.meta.start_ms < to_ms)
            out.push_back(r);
        };
        for (const auto& r : it->second.appended) take(r);
        for (const auto& w : it->second.written) take(w.record);
      }
    }
    std::stable_sort(out.begin(), out.end(), [](const Record& a, const Record& b) {
      return a.meta.start_ms < b.meta.start_ms;
    });
    return out;
  }

  std::optional<Record> Find(const std::string& provider, const std::string& user, DataType type,
                             const std::string& id) const {
    {
      std::lock_guard lock(data_mu_);
      auto it = data_.find(Key(provider, user));
      if (it != data_.end()) {
        for (const auto& r : it->second.appended) {
          if (r.meta.id == id && r.meta.type == type) return r;
        }
        for (const auto& w : it->second.written) {
          if (w.record.meta.id == id && w.record.meta.type == type) return w.record;
        }
      }
    }
    return synth::FindById(DataWindow(), provider, user, type, id);
  }

  std::string Write(const std::string& provider, const std::string& user, Record record) {
    const std::string key = record.meta.origin.empty() ? "fp:" + providers::Fingerprint(record)
                                                       : "origin:" + record.meta.origin;
    const int64_t now = NowMs();
    std::lock_guard lock(data_mu_);
    record.meta.id = std::to_string(kWrittenIdBase + ++write_seq_);
    record.meta.modified_ms = now;
    UserData& d = data_[Key(provider, user)];
    const int count = ++d.key_counts[key];
    ++totals_.writes;
    if (count == 1) ++totals_.records;
    if (count == 2) ++totals_.duplicates;
    std::string id = record.meta.id;
    d.written.push_back(WrittenRecord{std::move(record), count, now});
    d.written_keys.push_back(key);
    return id;
  }

  std::vector<WrittenRecord> Written(const std::string& provider, const std::string& user) const {
    std::lock_guard lock(data_mu_);
    auto it = data_.find(Key(provider, user));
    if (it == data_.end()) return {};
    std::vector<WrittenRecord> out = it->second.written;
    for (size_t i = 0; i < out.size(); ++i)
      out[i].write_count = it->second.key_counts.at(it->second.written_keys[i]);
    return out;
  }

  WriteTotals Totals() const {
    std::lock_guard lock(data_mu_);
    return totals_;
  }

  Result<Record> AppendNative(const std::string& provider, const std::string& user, DataType type) {
    if (!synth::Holds(provider, type)) {
      return MakeError(Errc::kInvalidArgument, provider + " holds no " +
                                                   std::string(providers::DataTypeName(type)) +
                                                   " data in the simulator");
    }
    const int64_t now = NowMs();
    std::lock_guard lock(data_mu_);
    const int64_t seq = ++append_seq_;
    Record r = synth::Fresh(settings_.seed, provider, user, type, now, static_cast<uint64_t>(seq));
    r.meta.id = std::to_string(kAppendedIdBase + seq);
    data_[Key(provider, user)].appended.push_back(r);
    return r;
  }

  // --- admission ---
  Admission Admit(const std::string& provider, const std::string& user, bool is_write) {
    const int64_t now = NowMs();
    std::lock_guard lock(mu_);
    ProviderProfile& p = profiles_[provider];
    Admission a;
    const int64_t span = std::max<int64_t>(0, (p.latency_max - p.latency_min).count());
    a.latency =
        p.latency_min +
        std::chrono::milliseconds(
            span > 0 ? static_cast<int64_t>(NextRandom() % static_cast<uint64_t>(span + 1)) : 0);

    struct Scope {
      const char* name;
      int64_t limit;
      LimitWindow* window;
      int64_t window_end_ms;
    };
    std::vector<Scope> scopes;
    auto add_scope = [&](const char* name, int64_t limit, std::chrono::seconds window_len,
                         LimitWindow& w) {
      if (limit <= 0 || window_len.count() <= 0) return;
      const int64_t len_ms = window_len.count() * 1000;
      const int64_t index = now / len_ms;
      if (w.index != index) w = LimitWindow{index, 0};
      scopes.push_back(Scope{name, limit, &w, (index + 1) * len_ms});
    };
    add_scope("app", p.app_limit, p.app_window, app_windows_[provider]);
    add_scope("user", p.user_limit, p.user_window, user_windows_[Key(provider, user)]);

    for (const Scope& s : scopes) {
      if (s.window->count >= s.limit) {
        a.kind = Admission::Kind::kRateLimited;
        a.limit_scope = s.name;
        a.limit = s.limit;
        a.used = s.window->count;
        a.retry_after = std::chrono::seconds(SecondsUntil(s.window_end_ms, now));
        ++counters_[provider + ".rate_limited_" + s.name];
        return a;
      }
    }
    for (const Scope& s : scopes) ++s.window->count;
    // Usage of the scope with the least quota left, for the module's headers.
    const Scope* tight = nullptr;
    for (const Scope& s : scopes) {
      if (!tight || s.limit - s.window->count < tight->limit - tight->window->count) tight = &s;
    }
    if (tight) {
      a.limit_scope = tight->name;
      a.limit = tight->limit;
      a.used = tight->window->count;
      a.retry_after = std::chrono::seconds(SecondsUntil(tight->window_end_ms, now));
    }

    const double r = static_cast<double>(NextRandom() >> 11) * 0x1.0p-53;
    if (r < p.error_rate) {
      a.kind = Admission::Kind::kError5xx;
      ++counters_[provider + ".error_5xx"];
    } else if (r < p.error_rate + p.timeout_rate) {
      a.kind = Admission::Kind::kTimeout;
      ++counters_[provider + ".timeout"];
    } else if (is_write && p.fail_next_writes > 0) {
      --p.fail_next_writes;
      if (p.fail_after_apply) {
        a.fail_after_apply = true;
      } else {
        a.kind = Admission::Kind::kError5xx;
      }
      ++counters_[provider + ".write_failed"];
    } else {
      ++counters_[provider + ".ok"];
    }
    return a;
  }

  std::map<std::string, int64_t> Counters() const {
    std::lock_guard lock(mu_);
    return counters_;
  }

  const SimSettings settings_;

 private:
  // New access + refresh token of `grant`. Takes ids_mu_, mu_ and oauth_mu_ one after the other
  // (never nested), so callers must hold none of them.
  Result<providers::TokenGrant> Issue(const std::string& provider, const std::string& user,
                                      uint64_t grant) {
    providers::TokenGrant g;
    g.access_token = RandomToken(20);
    g.refresh_token = RandomToken(20);
    g.provider_user_id = ProviderUserId(provider, user);
    g.scope = std::string(ScopeFor(provider));
    const int64_t now = NowMs();
    const int64_t expires = now + Profile(provider).token_ttl.count() * 1000;
    g.expires_at = FromUnixMillis(expires);
    std::lock_guard lock(oauth_mu_);
    access_[g.access_token] = AccessEntry{provider, user, grant, expires};
    refresh_[g.refresh_token] = RefreshEntry{provider, user, grant, 0};
    if (++issued_since_sweep_ >= kSweepEvery) {
      issued_since_sweep_ = 0;
      std::erase_if(codes_, [&](const auto& kv) { return kv.second.expires_ms <= now; });
      std::erase_if(access_,
                    [&](const auto& kv) { return kv.second.expires_ms + kExpiredKeepMs <= now; });
      std::erase_if(refresh_, [&](const auto& kv) {
        return kv.second.used_at_ms != 0 && now - kv.second.used_at_ms > kRefreshGraceMs;
      });
    }
    return g;
  }

  uint64_t NextRandom() { return synth::Mix(rng_key_, rng_counter_++); }  // under mu_

  const Clock& clock_;

  mutable std::mutex mu_;
  std::map<std::string, ProviderProfile> profiles_;
  std::unordered_map<std::string, LimitWindow> app_windows_;
  std::unordered_map<std::string, LimitWindow> user_windows_;
  std::map<std::string, int64_t> counters_;
  const uint64_t rng_key_;
  uint64_t rng_counter_ = 0;

  mutable std::mutex oauth_mu_;
  std::unordered_map<std::string, CodeEntry> codes_;
  std::unordered_map<std::string, AccessEntry> access_;
  std::unordered_map<std::string, RefreshEntry> refresh_;
  std::atomic<uint64_t> next_grant_{0};
  int issued_since_sweep_ = 0;

  mutable std::mutex ids_mu_;
  mutable std::unordered_map<std::string, std::string> pid_by_user_;
  mutable std::unordered_map<std::string, std::string> user_by_pid_;

  mutable std::mutex data_mu_;
  std::unordered_map<std::string, UserData> data_;
  WriteTotals totals_;
  int64_t write_seq_ = 0;
  int64_t append_seq_ = 0;
};

World::World(SimSettings settings, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(settings), clock)) {}
World::~World() = default;

const SimSettings& World::settings() const { return impl_->settings_; }
ProviderProfile World::Profile(const std::string& provider) const {
  return impl_->Profile(provider);
}
void World::SetProfile(const std::string& provider, const ProviderProfile& p) {
  impl_->SetProfile(provider, p);
}
std::string World::IssueAuthCode(const std::string& provider, const std::string& sim_user) {
  return impl_->IssueAuthCode(provider, sim_user);
}
Result<providers::TokenGrant> World::ExchangeCode(const std::string& provider,
                                                  const std::string& code) {
  return impl_->ExchangeCode(provider, code);
}
Result<providers::TokenGrant> World::Refresh(const std::string& provider,
                                             const std::string& refresh_token) {
  return impl_->Refresh(provider, refresh_token);
}
void World::RevokeUser(const std::string& provider, const std::string& sim_user) {
  impl_->RevokeUser(provider, sim_user);
}
void World::RevokeToken(const std::string& provider, const std::string& access_token) {
  impl_->RevokeToken(provider, access_token);
}
Result<std::string> World::Authorize(const std::string& provider, const std::string& access_token) {
  return impl_->Authorize(provider, access_token);
}
void World::ExpireTokens(const std::string& provider, const std::string& sim_user) {
  impl_->ExpireTokens(provider, sim_user);
}
std::string World::ProviderUserId(const std::string& provider, const std::string& sim_user) const {
  return impl_->ProviderUserId(provider, sim_user);
}
std::optional<std::string> World::SimUserFor(const std::string& provider,
                                             const std::string& provider_user_id) const {
  return impl_->SimUserFor(provider, provider_user_id);
}
std::vector<Record> World::Records(const std::string& provider, const std::string& sim_user,
                                   DataType type, int64_t from_ms, int64_t to_ms) const {
  return impl_->Records(provider, sim_user, type, from_ms, to_ms);
}
std::optional<Record> World::Find(const std::string& provider, const std::string& sim_user,
                                  DataType type, const std::string& id) const {
  return impl_->Find(provider, sim_user, type, id);
}
std::string World::Write(const std::string& provider, const std::string& sim_user, Record record) {
  return impl_->Write(provider, sim_user, std::move(record));
}
std::vector<WrittenRecord> World::Written(const std::string& provider,
                                          const std::string& sim_user) const {
  return impl_->Written(provider, sim_user);
}
World::WriteTotals World::Totals() const { return impl_->Totals(); }
Result<Record> World::AppendNative(const std::string& provider, const std::string& sim_user,
                                   DataType type) {
  return impl_->AppendNative(provider, sim_user, type);
}
Admission World::Admit(const std::string& provider, const std::string& sim_user, bool is_write) {
  return impl_->Admit(provider, sim_user, is_write);
}
std::map<std::string, int64_t> World::Counters() const { return impl_->Counters(); }

}  // namespace syncwell::sim
