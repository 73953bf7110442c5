#include "app/wiring.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "cache/redis/redis_cache.hpp"
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

void Backend::Stop() {
  if (pg_queue) pg_queue->Stop();
  if (sqlite) sqlite->Stop();
}

store::pg::PgPoolSettings PgSettings(const config::Settings& s) {
  store::pg::PgPoolSettings ps;
  ps.url = s.storage.postgres_url;
  ps.schema = s.storage.postgres_schema;
  ps.size = static_cast<size_t>(s.storage.postgres_pool_size);
  return ps;
}

redis::RedisSettings RedisClientSettings(const config::Settings& s) {
  redis::RedisSettings rs;
  rs.url = s.storage.redis_url;
  rs.pool_size = static_cast<size_t>(std::clamp(s.storage.postgres_pool_size, 2, 64));
  rs.key_prefix = "sw:" + s.storage.postgres_schema + ":";
  return rs;
}

Result<std::unique_ptr<Backend>> OpenBackend(const config::Settings& s, const Clock& clock,
                                             const BackendOptions& options,
                                             obs::Registry* metrics) {
  auto b = std::make_unique<Backend>();
  if (s.storage.postgres_url.empty()) {
    auto st = OpenStore(s, clock);
    if (!st) return st.error();
    b->sqlite = std::move(*st);
    b->sqlite_queue = std::make_unique<store::SqliteJobQueue>(*b->sqlite, options.queue);
    b->store = b->sqlite.get();
    b->queue = b->sqlite_queue.get();
    if (options.embedded_cache) {
      // Reads of a job's configuration otherwise start cold: a SQLite reader drops its page
      // cache whenever the WAL changed, i.e. at nearly every read under load (measured: ~25% of
      // the server's CPU in an incremental sync). Writes through this process invalidate by
      // generation (CachingStore); a commit by anyone else (`syncwell admin`, a sqlite3 shell)
      // clears the whole cache within sqlite.external_write_check (100 ms).
      auto local = std::make_unique<cache::InProcessCache>(
          clock, cache::InProcessCacheSettings{
                     .max_bytes = static_cast<size_t>(s.storage.embedded_cache_mb) << 20});
      b->local_cache = local.get();
      b->cache = std::move(local);
      b->cache_aside = std::make_unique<cache::CacheAside>(
          *b->cache, metrics, cache::CacheAsideSettings{.name = "config"});
      b->caching_store =
          std::make_unique<cache::CachingStore>(*b->sqlite, *b->cache_aside, clock, metrics);
      // Unfinished jobs and sync cursors, written through by the store's own commits: a worker
      // reads both right after they were written (measured: ~9% of the server's CPU in cold
      // reads in an incremental sync).
      b->sqlite->EnableRowCache(kEmbeddedRowCacheEntries);
      b->sqlite->db().SetExternalWriteListener([c = b->local_cache, st = b->sqlite.get()] {
        c->Clear();
        st->ClearRowCache();
      });
      b->store = b->caching_store.get();
    }
    return b;
  }
  b->scale_out = true;
  b->pg = std::make_unique<store::pg::PgPool>(PgSettings(s));
  const auto migrations = store::pg::AllMigrations();
  if (options.migrate) {
    auto n = store::pg::Migrate(*b->pg, migrations);
    if (!n) return MakeError(n.error().code, "postgres migrate: " + n.error().message);
  } else {
    auto pending = store::pg::PendingMigrations(*b->pg, migrations);
    if (!pending) return MakeError(pending.error().code, "postgres: " + pending.error().message);
    if (*pending > 0) {
      return MakeError(Errc::kPermanent,
                       "postgres schema '" + s.storage.postgres_schema + "' needs " +
                           std::to_string(*pending) +
                           " migration(s): run `syncwell admin migrate` with the same "
                           "--postgres-url first");
    }
  }
  const auto dedup = std::chrono::duration_cast<std::chrono::seconds>(s.api.dedup_window);
  b->pg_store = std::make_unique<store::PostgresStore>(
      *b->pg, clock, dedup,
      std::chrono::duration_cast<std::chrono::hours>(s.api.idempotency_retention));
  queue::QueueSettings qs = options.queue;
  qs.dedup_window = dedup;
  b->pg_queue = std::make_unique<store::PostgresJobQueue>(*b->pg, qs, clock);
  if (options.listen) {
    if (auto st = b->pg_queue->Start(); !st) return st.error();
  }
  // Redis is not contacted here: a Redis that is down at start-up only means cache misses and
  // deferred jobs until it is back (SPEC S8), never a process that refuses to start.
  b->redis = std::make_unique<redis::RedisClient>(RedisClientSettings(s));
  b->cache = std::make_unique<cache::RedisCache>(*b->redis);
  b->cache_aside = std::make_unique<cache::CacheAside>(*b->cache, metrics,
                                                       cache::CacheAsideSettings{.name = "config"});
  // Connections (sealed provider tokens) are always read from PostgreSQL: a refresh that races
  // another process must see the newest tokens, even if a Redis blip lost an invalidation.
  b->caching_store = std::make_unique<cache::CachingStore>(
      *b->pg_store, *b->cache_aside, clock, metrics,
      cache::CachingStoreSettings{.cache_connections = false});
  b->store = b->caching_store.get();
  b->queue = b->pg_queue.get();
  return b;
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
