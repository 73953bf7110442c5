#include "app/wiring.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "providers/capabilities.hpp"

namespace syncwell::app {

Status CheckEmbeddedOnly(const config::Settings& s) {
  if (!s.storage.postgres_url.empty() || !s.storage.redis_url.empty()) {
    return MakeError(Errc::kInvalidArgument,
                     "the PostgreSQL/Redis scale-out adapters are not built yet; remove "
                     "--postgres-url/--redis-url to run embedded");
  }
  return {};
}

Status EnsureDataDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return MakeError(Errc::kUnavailable,
                     "cannot create data directory " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  return {};
}

Result<std::unique_ptr<store::SqliteStore>> OpenStore(const config::Settings& s,
                                                      const Clock& clock) {
  if (auto st = CheckEmbeddedOnly(s); !st) return st.error();
  if (auto st = EnsureDataDir(s.storage.data_dir); !st) return st.error();
  store::SqliteSettings ss;
  ss.data_dir = s.storage.data_dir;
  ss.synchronous = s.storage.synchronous;
  ss.dedup_window = std::chrono::duration_cast<std::chrono::seconds>(s.api.dedup_window);
  // One read connection per handler thread (bounded) so readers never queue for a connection.
  ss.read_connections = static_cast<size_t>(std::clamp(s.server.handler_threads, 2, 32));
  ss.idempotency_retention =
      std::chrono::duration_cast<std::chrono::hours>(s.api.idempotency_retention);
  auto store = std::make_unique<store::SqliteStore>(ss, clock);
  if (auto st = store->Start(); !st) {
    return MakeError(st.error().code, "cannot open the database in " + s.storage.data_dir + ": " +
                                          st.error().message);
  }
  return store;
}

Result<ratelimit::InProcessLimiterSettings> LimiterSettings(const config::Settings& s) {
  ratelimit::InProcessLimiterSettings out;
  std::map<std::string, std::vector<ratelimit::WindowLimit>> overrides;
  for (const auto& text : s.ratelimit.limits) {
    auto spec = config::ParseLimitSpec(text);
    if (!spec)
      return MakeError(Errc::kInvalidArgument, "ratelimit.limits: " + spec.error().message);
    if (!providers::FindProvider(spec->provider))
      return MakeError(Errc::kInvalidArgument,
                       "ratelimit.limits: unknown provider '" + spec->provider + "'");
    overrides[spec->provider].push_back(
        ratelimit::WindowLimit{spec->user_scope ? ratelimit::Scope::kUser : ratelimit::Scope::kApp,
                               spec->window, spec->limit, Duration{0}});
  }
  for (auto& p : out.providers) {
    if (auto it = overrides.find(p.provider); it != overrides.end()) {
      p.windows = it->second;
      overrides.erase(it);
    }
  }
  for (auto& [name, windows] : overrides) out.providers.push_back({name, windows});
  for (const auto& info : providers::AllProviders()) {
    bool present = false;
    for (const auto& p : out.providers) present = present || p.provider == info.name;
    if (!present) out.providers.push_back({std::string(info.name), {}});
  }
  if (auto st = ratelimit::ValidateLimits(out.providers, out.reserve); !st) return st.error();
  return out;
}

}  // namespace syncwell::app
