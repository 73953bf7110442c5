// Operator commands: `syncwell token`, `syncwell admin ...`. They work directly on the data
// directory (the embedded database is safe to share with a running server: WAL + busy timeout).
#include <iomanip>
#include <iostream>

#include "app/commands.hpp"
#include "app/wiring.hpp"
#include "auth/dev_issuer.hpp"
#include "core/random.hpp"
#include "providers/capabilities.hpp"
#include "secrets/secret_box.hpp"
#include "store/sqlite/sqlite_job_queue.hpp"

namespace syncwell::app {

std::string SecretKeyPath(const config::Settings& s) { return s.storage.data_dir + "/secret.key"; }

int RunToken(const config::Settings& s, const TokenOptions& o) {
  if (!s.DevModeEnabled()) {
    std::cerr << "syncwell token: dev mode is off (an identity provider is configured); tokens "
                 "come from it\n";
    return 2;
  }
  if (auto st = EnsureDataDir(s.storage.data_dir); !st) {
    std::cerr << "syncwell token: " << st.error().message << "\n";
    return 1;
  }
  auto dev = auth::DevIssuer::LoadOrCreate(s.storage.data_dir);
  if (!dev) {
    std::cerr << "syncwell token: " << dev.error().message << "\n";
    return 1;
  }
  SystemClock clock;
  std::cout << dev->Mint(o.user, o.tier, o.ttl, clock.Now()) << "\n";
  return 0;
}

int RunAdminUserCreate(const config::Settings& s, const UserCreateOptions& o) {
  SystemClock clock;
  auto store = OpenStore(s, clock);
  if (!store) {
    std::cerr << "syncwell admin user create: " << store.error().message << "\n";
    return 1;
  }
  store::User u;
  u.id = UserId(o.user);
  store::ParseTier(o.tier, &u.tier);
  u.created_at = u.updated_at = clock.Now();
  if (auto existing = (*store)->GetUser(u.id)) {
    u.settings_json = existing->settings_json;
    u.created_at = existing->created_at;
  }
  if (auto st = (*store)->UpsertUser(u); !st) {
    std::cerr << "syncwell admin user create: " << st.error().message << "\n";
    return 1;
  }
  std::cout << o.user << "\n";
  return 0;
}

int RunAdminConnectionCreate(const config::Settings& s, const ConnectionCreateOptions& o) {
  if (!providers::FindProvider(o.provider)) {
    std::cerr << "syncwell admin connection create: unknown provider '" << o.provider
              << "' (known:";
    for (const auto& p : providers::AllProviders()) std::cerr << " " << p.name;
    std::cerr << ")\n";
    return 2;
  }
  SystemClock clock;
  auto store = OpenStore(s, clock);
  if (!store) {
    std::cerr << "syncwell admin connection create: " << store.error().message << "\n";
    return 1;
  }
  auto box = secrets::SecretBox::LoadOrCreate(SecretKeyPath(s));
  if (!box) {
    std::cerr << "syncwell admin connection create: secret key: " << box.error().message << "\n";
    return 1;
  }
  store::Connection c;
  c.id = ConnectionId(o.connection_id.empty() ? "conn_" + RandomToken(12) : o.connection_id);
  c.user = UserId(o.user);
  c.provider = o.provider;
  store::ParseConnectionStatus(o.status, &c.status);
  c.provider_user_id = o.provider_user_id;
  auto access = box->Seal(secrets::Secret(o.access_token));
  if (!access) {
    std::cerr << "syncwell admin connection create: " << access.error().message << "\n";
    return 1;
  }
  c.access_token_sealed = *access;
  if (!o.refresh_token.empty()) {
    auto refresh = box->Seal(secrets::Secret(o.refresh_token));
    if (!refresh) {
      std::cerr << "syncwell admin connection create: " << refresh.error().message << "\n";
      return 1;
    }
    c.refresh_token_sealed = *refresh;
  }
  c.created_at = c.updated_at = clock.Now();
  if (auto st = (*store)->CreateConnection(c); !st) {
    std::cerr << "syncwell admin connection create: " << st.error().message << "\n";
    return 1;
  }
  std::cout << c.id.str() << "\n";
  return 0;
}

int RunAdminJwksDrop(const config::Settings& s, const std::string& kid) {
  SystemClock clock;
  auto store = OpenStore(s, clock);
  if (!store) {
    std::cerr << "syncwell admin jwks drop: " << store.error().message << "\n";
    return 1;
  }
  if (auto st = (*store)->AddControlEvent("jwks_drop", kid); !st) {
    std::cerr << "syncwell admin jwks drop: " << st.error().message << "\n";
    return 1;
  }
  std::cout << "dropped " << kid << " (running servers forget it within about a second)\n";
  return 0;
}

int RunAdminQueueStats(const config::Settings& s) {
  SystemClock clock;
  auto store = OpenStore(s, clock);
  if (!store) {
    std::cerr << "syncwell admin queue stats: " << store.error().message << "\n";
    return 1;
  }
  store::SqliteJobQueue queue(**store);
  auto st = queue.Stats();
  if (!st) {
    std::cerr << "syncwell admin queue stats: " << st.error().message << "\n";
    return 1;
  }
  auto row = [](const char* k, const std::string& v) {
    std::cout << std::left << std::setw(24) << k << v << "\n";
  };
  row("visible", std::to_string(st->visible));
  row("delayed", std::to_string(st->delayed));
  row("in flight", std::to_string(st->in_flight));
  row("dead-lettered", std::to_string(st->dlq));
  row("oldest age (s)", std::to_string(st->oldest_age_seconds));
  row("enqueued (total)", std::to_string(st->enqueued_total));
  row("deduplicated (total)", std::to_string(st->deduplicated_total));
  return 0;
}

}  // namespace syncwell::app
