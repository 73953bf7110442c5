#pragma once
// Construction helpers shared by the subcommands (composition root only).
#include <memory>
#include <string>

#include "cache/cache.hpp"
#include "cache/cache_aside.hpp"
#include "cache/caching_store.hpp"
#include "cache/in_process_cache.hpp"
#include "config/settings.hpp"
#include "core/clock.hpp"
#include "core/result.hpp"
#include "obs/metrics.hpp"
#include "ratelimit/in_process_limiter.hpp"
#include "redis/redis_client.hpp"
#include "store/postgres/pg.hpp"
#include "store/postgres/postgres_job_queue.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_job_queue.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace syncwell::app {

// Refuses scale-out settings in commands that only work on the embedded store.
Status CheckEmbeddedOnly(const config::Settings& s);

// The store and queue every subcommand uses: the embedded SQLite pair, or (storage.postgres_url
// set) the PostgreSQL pair on one bounded connection pool, with the store wrapped in a
// CachingStore over Redis (SPEC S8: config reads cached, every write invalidates, a cache failure
// falls back to PostgreSQL) -- admin commands use the same wrapper, so their writes invalidate
// too. Stop() (also the destructor) stops the queue's listener and closes the databases.
struct Backend {
  bool scale_out = false;
  store::Store* store = nullptr;
  queue::JobQueue* queue = nullptr;

  std::unique_ptr<store::SqliteStore> sqlite;
  std::unique_ptr<store::SqliteJobQueue> sqlite_queue;
  std::unique_ptr<store::pg::PgPool> pg;
  std::unique_ptr<store::PostgresStore> pg_store;
  std::unique_ptr<store::PostgresJobQueue> pg_queue;
  // Scale-out: Redis (limiter, counters and this cache). Declared last: destroyed first.
  std::unique_ptr<redis::RedisClient> redis;
  std::unique_ptr<cache::Cache> cache;
  cache::InProcessCache* local_cache = nullptr;  // == cache when embedded_cache
  std::unique_ptr<cache::CacheAside> cache_aside;
  std::unique_ptr<cache::CachingStore> caching_store;

  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;
  ~Backend() { Stop(); }
  void Stop();
};

struct BackendOptions {
  queue::QueueSettings queue;
  // PostgreSQL: apply pending migrations (`admin migrate`) instead of refusing to start.
  bool migrate = false;
  // PostgreSQL: start the queue's LISTEN thread (long-polling receivers need it).
  bool listen = true;
  // SQLite: serve users, sync configs and connections through an in-process cache (CachingStore
  // over InProcessCache), dropped whenever another process commits to the database. For the
  // long-running server; a short `admin` command has no use for it. Also keeps up to
  // kEmbeddedRowCacheEntries unfinished jobs and as many sync cursors in memory
  // (SqliteStore::EnableRowCache).
  bool embedded_cache = false;
};
// ~600 bytes per cached job: 16,384 cost ~10 MB of RSS (65,536 measured +40 MB in the intake
// bench, whose jobs all stay QUEUED); a backlog larger than this keeps its oldest jobs cached.
inline constexpr size_t kEmbeddedRowCacheEntries = 16'384;

// The PostgreSQL pool settings from storage.* (url, schema, pool size).
store::pg::PgPoolSettings PgSettings(const config::Settings& s);

// The Redis client settings from storage.redis_url; keys are prefixed "sw:<schema>:" so several
// installations can share one Redis.
redis::RedisSettings RedisClientSettings(const config::Settings& s);

// `metrics` (may be null) receives the cache's counters.
Result<std::unique_ptr<Backend>> OpenBackend(const config::Settings& s, const Clock& clock,
                                             const BackendOptions& options,
                                             obs::Registry* metrics = nullptr);
// Creates the data directory (0700) if needed.
Status EnsureDataDir(const std::string& dir);
// Opens (and migrates) the embedded store.
Result<std::unique_ptr<store::SqliteStore>> OpenStore(const config::Settings& s,
                                                      const Clock& clock);

// The in-process limiter's settings: the SPEC S6 defaults, each provider named in
// ratelimit.limits replaced by its entries, and every other known provider present without
// limits (so the limiter knows every provider a connection can have).
Result<ratelimit::InProcessLimiterSettings> LimiterSettings(const config::Settings& s);

}  // namespace syncwell::app
