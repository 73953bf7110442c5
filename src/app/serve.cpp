// `syncwell serve`: wires the embedded adapters, the API and the HTTP server, then waits for
// SIGTERM/SIGINT and drains.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "api/api_service.hpp"
#include "api/http_server.hpp"
#include "app/commands.hpp"
#include "app/openapi.hpp"
#include "app/provider_gateway.hpp"
#include "app/wiring.hpp"
#include "auth/dev_issuer.hpp"
#include "auth/jwks.hpp"
#include "auth/jwt.hpp"
#include "cache/redis/redis_counter.hpp"
#include "core/fan_out.hpp"
#include "core/log.hpp"
#include "net/http_client.hpp"
#include "obs/process_metrics.hpp"
#include "ratelimit/backoff.hpp"
#include "ratelimit/delay_tracker.hpp"
#include "ratelimit/redis/redis_limiter.hpp"
#include "schedule/scheduler.hpp"
#include "secrets/secret_box.hpp"
#include "store/postgres/pg_leases.hpp"
#include "sync/circuit_breaker.hpp"
#include "sync/sync_engine.hpp"
#include "worker/scripted_handler.hpp"
#include "worker/worker_pool.hpp"

namespace syncwell::app {
namespace {

// The embedded store's single writer: how busy it is, by phase (STYLE: one writer thread is the
// embedded ceiling, so operators need to see it), and its group commits.
void AddSqliteWriterMetrics(obs::Registry& metrics, const store::SqliteDb& db) {
  auto seconds = [&db](int64_t store::SqliteDb::WriterTime::*field) {
    return [&db, field] { return static_cast<double>(db.WriterBusy().*field) / 1e9; };
  };
  metrics.AddCounterFn("syncwell_sqlite_writer_closures_seconds_total",
                       "Writer thread time running the write closures of group commits",
                       seconds(&store::SqliteDb::WriterTime::closures_ns));
  metrics.AddCounterFn("syncwell_sqlite_writer_commit_seconds_total",
                       "Writer thread time in COMMIT (WAL write and fsync)",
                       seconds(&store::SqliteDb::WriterTime::commit_ns));
  metrics.AddCounterFn("syncwell_sqlite_writer_checkpoint_seconds_total",
                       "Writer thread time in WAL checkpoints",
                       seconds(&store::SqliteDb::WriterTime::checkpoint_ns));
  metrics.AddCounterFn("syncwell_sqlite_group_commits_total", "Group commits that succeeded",
                       [&db] { return static_cast<double>(db.CommittedTransactions()); });
  metrics.AddCounterFn("syncwell_sqlite_writes_total", "Write closures completed",
                       [&db] { return static_cast<double>(db.CompletedWrites()); });
  metrics.AddCounterFn("syncwell_sqlite_checkpoints_total", "WAL checkpoints run by the writer",
                       [&db] { return static_cast<double>(db.Checkpoints()); });
  metrics.AddCounterFn("syncwell_sqlite_background_checkpoints_total",
                       "WAL checkpoint passes run by the background checkpointer",
                       [&db] { return static_cast<double>(db.BackgroundCheckpoints()); });
  metrics.AddCounterFn("syncwell_sqlite_background_checkpoint_seconds_total",
                       "Checkpointer thread time in WAL checkpoint passes",
                       [&db] { return static_cast<double>(db.BackgroundCheckpointNs()) / 1e9; });
}

// The embedded store's row cache (SqliteStore::EnableRowCache), by table.
void AddSqliteRowCacheMetrics(obs::Registry& metrics, const store::SqliteStore& st) {
  using Counts = store::SqliteStore::RowCacheCounts;
  for (auto [table, part] :
       {std::pair{"jobs", &Counts::jobs}, std::pair{"cursors", &Counts::cursors}}) {
    const std::string labels = std::string("table=\"") + table + "\"";
    metrics.AddCounterFn(
        "syncwell_sqlite_row_cache_hits_total", "Reads served by the embedded store's row cache",
        [&st, part = part] { return static_cast<double>((st.GetRowCacheStats().*part).hits); },
        labels);
    metrics.AddCounterFn(
        "syncwell_sqlite_row_cache_misses_total",
        "Reads the embedded store's row cache could not serve",
        [&st, part = part] { return static_cast<double>((st.GetRowCacheStats().*part).misses); },
        labels);
  }
}

class VerifierAuthenticator final : public api::Authenticator {
 public:
  explicit VerifierAuthenticator(auth::TokenVerifier& v) : v_(v) {}
  Result<api::Caller> Authenticate(std::string_view token) override {
    auto p = v_.Verify(token);
    if (!p) return p.error();
    return api::Caller{p->user, p->tier};
  }

 private:
  auth::TokenVerifier& v_;
};

// Background upkeep on one thread, once a second:
//  * every process: admin control events (JWKS key drops) -- each API process caches keys;
//  * global duties, run by ONE process of a fleet: asynchronous user deletion, idempotency
//    record expiry and, on PostgreSQL, queue dedup expiry and finished-job deletion. Embedded:
//    this process. Scale-out: the scheduler-role process that holds shard 0's lease (shard
//    ownership leases in PostgreSQL, renewed every ttl/3; a dead owner's shards move to the
//    others after the ttl).
// Stops promptly on Stop() and releases its leases so another process takes over at once.
class Housekeeper {
 public:
  Housekeeper(Backend& backend, auth::TokenVerifier& verifier, const Clock& clock,
              const config::Settings& s, bool scheduler_role, obs::Registry& metrics)
      : backend_(backend),
        store_(*backend.store),
        verifier_(verifier),
        clock_(clock),
        idem_retention_(s.api.idempotency_retention),
        job_retention_(s.storage.job_retention) {
    if (backend.scale_out && scheduler_role) {
      store::pg::ShardLeaseSettings ls;
      ls.shards = store::kScheduleShards;
      leases_ = std::make_unique<store::pg::ShardLeases>(*backend.pg, FleetMemberId(s), ls, clock);
    } else if (!backend.scale_out && scheduler_role) {
      shards_owned_ = store::kScheduleShards;  // embedded: the only process owns every shard
    }
    metrics.AddGauge(
        "syncwell_scheduler_shards_owned",
        "Scheduler shards this process owns (scale-out: holds a lease on; embedded: all)",
        [this] { return static_cast<double>(shards_owned_.load()); });
    metrics.AddGauge("syncwell_housekeeping_leader",
                     "1 when this process runs the fleet-wide housekeeping duties",
                     [this] { return leader_.load() ? 1.0 : 0.0; });
  }

  // The scheduler shards this process may tick now: every shard when embedded (one process),
  // else the ones it holds a lease on (empty until the first renewal, and after a failed one).
  std::vector<int> OwnedShards() const {
    if (!backend_.scale_out) {
      std::vector<int> all(store::kScheduleShards);
      for (int i = 0; i < store::kScheduleShards; ++i) all[static_cast<size_t>(i)] = i;
      return all;
    }
    std::lock_guard lock(held_mu_);
    return held_;
  }

  void Start() {
    // Control events written before this start are history: skip them.
    if (auto ev = store_.ControlEventsAfter(0); ev && !ev->empty()) last_seq_ = ev->back().seq;
    if (!backend_.scale_out) leader_ = true;
    thread_ = std::thread([this] { Loop(); });
  }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (leases_) {
      if (auto st = leases_->ReleaseAll(); !st)
        log::Warn("shard leases not released", {{"error", st.error().message}});
    }
  }

 private:
  static std::string FleetMemberId(const config::Settings& s) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    return std::string(host) + ":" + std::to_string(::getpid()) + ":" + s.server.listen;
  }

  void Loop() {
    int tick = 0;
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      PollControl();
      if (leases_ && tick % 5 == 0) RenewLeases();
      if (leader_) {
        PurgeDeletedUsers();
        if (tick % 600 == 0) PurgeExpired();
      }
      ++tick;
      lock.lock();
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
    }
  }

  void RenewLeases() {
    auto held = leases_->Renew();
    if (!held) {
      // Cannot prove ownership: stop the global duties and the schedule until a renewal
      // succeeds.
      leader_ = false;
      shards_owned_ = 0;
      {
        std::lock_guard lock(held_mu_);
        held_.clear();
      }
      log::Warn("shard lease renewal failed", {{"error", held.error().message}});
      return;
    }
    const bool was = leader_;
    leader_ = !held->empty() && held->front() == 0;
    shards_owned_ = static_cast<int64_t>(held->size());
    {
      std::lock_guard lock(held_mu_);
      held_ = *held;
    }
    if (leader_ != was)
      log::Info(
          leader_ ? "housekeeping leader: this process" : "housekeeping leader: another process",
          {{"shards", std::to_string(held->size())}});
  }

  void PurgeExpired() {
    auto n = store_.PurgeIdempotencyBefore(clock_.Now() - idem_retention_);
    if (n && *n > 0)
      log::Info("expired idempotency records purged", {{"count", std::to_string(*n)}});
    if (backend_.pg_queue) {
      auto h = backend_.pg_queue->Housekeep();
      if (h && h->dedup_rows_deleted > 0)
        log::Info("expired dedup rows purged", {{"count", std::to_string(h->dedup_rows_deleted)}});
    }
    if (backend_.pg_store) {
      int64_t total = 0;
      for (int i = 0; i < 100; ++i) {  // bounded batches: short transactions, vacuum-friendly
        auto j = backend_.pg_store->PurgeFinishedJobsBefore(clock_.Now() - job_retention_, 5000);
        if (!j || *j == 0) break;
        total += *j;
      }
      if (total > 0) log::Info("finished jobs purged", {{"count", std::to_string(total)}});
    }
  }

  void PollControl() {
    auto ev = store_.ControlEventsAfter(last_seq_);
    if (!ev) return;
    for (const auto& e : *ev) {
      last_seq_ = e.seq;
      if (e.kind == "jwks_drop") {
        verifier_.ForgetKid(e.value);
        log::Info("signing key dropped", {{"kid", e.value}});
      }
    }
  }

  void PurgeDeletedUsers() {
    auto pending = store_.PendingDeletions(100);
    if (!pending) return;
    for (const auto& u : *pending) {
      // Provider grants are revoked here once connectors exist (SPEC S13); today the tokens are
      // deleted with everything else.
      if (auto st = store_.PurgeUser(u); !st) {
        log::Warn("user deletion failed; will retry",
                  {{"user", api::HashUserId(u)}, {"error", st.error().message}});
      } else {
        log::Info("user deleted", {{"user", api::HashUserId(u)}});
      }
    }
  }

  Backend& backend_;
  store::Store& store_;
  auth::TokenVerifier& verifier_;
  const Clock& clock_;
  std::chrono::milliseconds idem_retention_;
  std::chrono::milliseconds job_retention_;
  std::unique_ptr<store::pg::ShardLeases> leases_;
  std::atomic<bool> leader_{false};
  std::atomic<int64_t> shards_owned_{0};
  mutable std::mutex held_mu_;
  std::vector<int> held_;  // guarded by held_mu_
  int64_t last_seq_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// The SPEC S7 tiered schedule on its own thread: every scheduler.tick, one Scheduler::Tick over
// the shards the Housekeeper says this process owns (all when embedded, leased ones when scaled
// out). Ticks of a lost shard are harmless: job ids derive from (config, slot) and slots advance
// by compare-and-set. Stop() wakes the thread and joins it (a tick in progress finishes first).
class ScheduleRunner {
 public:
  ScheduleRunner(schedule::Scheduler& scheduler, const Housekeeper& owner, const Clock& clock,
                 std::chrono::milliseconds tick)
      : scheduler_(scheduler), owner_(owner), clock_(clock), tick_(tick) {}
  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      const std::vector<int> shards = owner_.OwnedShards();
      if (!shards.empty()) {
        const auto stats = scheduler_.Tick(shards, clock_.Now());
        if (stats.jobs_enqueued > 0 || stats.placed > 0) {
          log::Debug("scheduler tick", {{"shards", std::to_string(shards.size())},
                                        {"due", std::to_string(stats.due_users)},
                                        {"placed", std::to_string(stats.placed)},
                                        {"enqueued", std::to_string(stats.jobs_enqueued)},
                                        {"coalesced", std::to_string(stats.jobs_coalesced)}});
        }
      }
      lock.lock();
      cv_.wait_for(lock, tick_, [this] { return stop_; });
    }
  }

  schedule::Scheduler& scheduler_;
  const Housekeeper& owner_;
  const Clock& clock_;
  const std::chrono::milliseconds tick_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Queue stats for /metrics: one Stats() query per scrape at most every 500 ms, however many
// gauges read it. Thread-safe.
class QueueStatsCache {
 public:
  explicit QueueStatsCache(queue::JobQueue& q) : q_(q) {}
  std::optional<queue::QueueStats> Get() {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (!cached_ || now - at_ > std::chrono::milliseconds(500)) {
      auto st = q_.Stats();
      if (!st) return std::nullopt;
      cached_ = *st;
      at_ = now;
    }
    return cached_;
  }

 private:
  queue::JobQueue& q_;
  std::mutex mu_;
  std::optional<queue::QueueStats> cached_;
  std::chrono::steady_clock::time_point at_{};
};

void AddQueueMetrics(obs::Registry& metrics, QueueStatsCache& cache) {
  using Field = int64_t queue::QueueStats::*;
  struct G {
    const char* name;
    const char* help;
    Field f;
    bool counter;
  };
  static const G kFields[] = {
      {"syncwell_queue_visible_messages", "Messages ready to be received",
       &queue::QueueStats::visible, false},
      {"syncwell_queue_delayed_messages", "Messages not yet visible (delay, retry, deferral)",
       &queue::QueueStats::delayed, false},
      {"syncwell_queue_in_flight_messages", "Messages held under a visibility timeout",
       &queue::QueueStats::in_flight, false},
      {"syncwell_queue_dlq_messages", "Dead-letter queue depth", &queue::QueueStats::dlq, false},
      {"syncwell_queue_groups_in_flight", "Message groups with a message in flight",
       &queue::QueueStats::groups_in_flight, false},
      {"syncwell_queue_enqueued_total", "Messages enqueued", &queue::QueueStats::enqueued_total,
       true},
      {"syncwell_queue_deduplicated_total", "Sends deduplicated inside the window",
       &queue::QueueStats::deduplicated_total, true},
      {"syncwell_queue_delivered_total", "Deliveries", &queue::QueueStats::delivered_total, true},
      {"syncwell_queue_redelivered_total", "Deliveries of a message delivered before",
       &queue::QueueStats::redelivered_total, true},
      {"syncwell_queue_dead_lettered_total", "Messages moved to the dead-letter queue",
       &queue::QueueStats::dead_lettered_total, true},
      {"syncwell_queue_deferred_total", "Deferrals (rate limits; not failed deliveries)",
       &queue::QueueStats::deferred_total, true},
      {"syncwell_queue_redriven_total", "Messages redriven from the dead-letter queue",
       &queue::QueueStats::redriven_total, true},
  };
  for (const auto& g : kFields) {
    auto read = [&cache, f = g.f] {
      auto st = cache.Get();
      return st ? static_cast<double>((*st).*f) : -1.0;
    };
    if (g.counter)
      metrics.AddCounterFn(g.name, g.help, read);
    else
      metrics.AddGauge(g.name, g.help, read);
  }
  metrics.AddGauge("syncwell_queue_oldest_message_age_seconds", "Age of the oldest visible message",
                   [&cache] {
                     auto st = cache.Get();
                     return st ? st->oldest_age_seconds : -1.0;
                   });
}

// The HTTP surface of `--role worker` and `--role scheduler`: health, readiness and metrics only
// (no API routes).
api::HttpResponse OpsOnly(const api::HttpRequest& r, obs::Registry& metrics,
                          const std::atomic<bool>& draining, const std::string& role) {
  api::HttpResponse resp;
  resp.route = r.path;
  if (r.method == "GET" && r.path == "/healthz") {
    resp.body = R"({"status":"ok"})";
  } else if (r.method == "GET" && r.path == "/readyz") {
    resp.status = draining ? 503 : 200;
    resp.body = draining ? R"({"status":"draining"})" : R"({"status":"ready"})";
  } else if (r.method == "GET" && r.path == "/metrics") {
    resp.content_type = "text/plain; version=0.0.4";
    resp.body = metrics.Render();
  } else {
    resp.status = 404;
    resp.route = "unmatched";
    resp.body =
        R"({"code":"NOT_FOUND","detail":")" + role + R"( role: only /healthz, /readyz, /metrics"})";
  }
  return resp;
}

}  // namespace

int RunServe(const config::Settings& s) {
  log::Level level;
  if (log::ParseLevel(s.log.level, &level)) log::SetLevel(level);
  const bool run_api = s.server.role == "all" || s.server.role == "api";
  const bool run_worker = s.server.role == "all" || s.server.role == "worker";
  const bool run_scheduler = s.server.role == "all" || s.server.role == "scheduler";
  auto hp = api::ParseHostPort(s.server.listen);
  if (!hp) {
    std::cerr << "syncwell serve: --listen " << hp.error().message << "\n";
    return 2;
  }

  // Block the signals in every thread; this thread waits for them with sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  SystemClock clock;
  queue::QueueSettings qs;
  qs.visibility_timeout = s.worker.visibility_timeout;
  BackendOptions bo;
  bo.queue = qs;
  bo.listen = run_worker;  // long-polling receivers wake on NOTIFY
  bo.embedded_cache = s.storage.embedded_cache;
  obs::Registry metrics;
  auto backend = OpenBackend(s, clock, bo, &metrics);
  if (!backend) {
    std::cerr << "syncwell serve: " << backend.error().message << "\n";
    return 1;
  }
  store::Store& store = *(*backend)->store;
  queue::JobQueue& queue = *(*backend)->queue;

  // Token verification: the dev issuer in dev mode, else the configured identity provider.
  std::unique_ptr<auth::JwksSource> jwks_source;
  bool jwks_from_url = false;
  auth::VerifierSettings vs;
  vs.algorithms = s.auth.algorithms;
  vs.leeway = std::chrono::duration_cast<std::chrono::seconds>(s.auth.leeway);
  vs.decision_ttl = std::chrono::duration_cast<std::chrono::seconds>(s.auth.decision_ttl);
  if (s.DevModeEnabled()) {
    auto dev = auth::DevIssuer::LoadOrCreate(s.storage.data_dir);
    if (!dev) {
      std::cerr << "syncwell serve: dev issuer: " << dev.error().message << "\n";
      return 1;
    }
    jwks_source = std::make_unique<auth::FileJwksSource>(dev->jwks_path());
    vs.issuer = auth::DevIssuer::kDevIssuer;
    vs.audience = auth::DevIssuer::kDevAudience;
    log::Warn(
        "dev mode: trusting tokens minted by `syncwell token` (set auth.issuer to use an identity "
        "provider)");
  } else {
    const bool url = s.auth.jwks.rfind("http://", 0) == 0 || s.auth.jwks.rfind("https://", 0) == 0;
    jwks_from_url = url;
    if (url)
      jwks_source = std::make_unique<auth::HttpJwksSource>(s.auth.jwks);
    else
      jwks_source = std::make_unique<auth::FileJwksSource>(s.auth.jwks);
    vs.issuer = s.auth.issuer;
    vs.audience = s.auth.audience;
  }
  auth::JwksCache jwks(*jwks_source, clock,
                       std::chrono::duration_cast<std::chrono::seconds>(s.auth.jwks_ttl));
  if (auto st = jwks.Refresh(); !st) {
    log::Warn("signing keys not loaded at start-up; will retry on demand",
              {{"error", st.error().message}});
  }
  std::unique_ptr<auth::TokenVerifier> verifier;
  try {
    verifier = std::make_unique<auth::TokenVerifier>(vs, jwks, clock);
  } catch (const std::exception& e) {
    std::cerr << "syncwell serve: auth configuration: " << e.what() << "\n";
    return 2;
  }
  VerifierAuthenticator authenticator(*verifier);

  metrics.AddCounterFn("syncwell_auth_decision_cache_hits_total",
                       "Token decisions answered from the cache",
                       [&] { return static_cast<double>(verifier->cache_hits()); });
  metrics.AddCounterFn("syncwell_auth_decision_cache_misses_total",
                       "Token decisions that needed a signature check",
                       [&] { return static_cast<double>(verifier->cache_misses()); });
  metrics.AddGauge("syncwell_auth_decision_cache_hit_ratio",
                   "Hit ratio of the token decision cache", [&] {
                     double h = static_cast<double>(verifier->cache_hits()),
                            m = static_cast<double>(verifier->cache_misses());
                     return h + m > 0 ? h / (h + m) : 0.0;
                   });
  QueueStatsCache stats_cache(queue);
  AddQueueMetrics(metrics, stats_cache);
  obs::AddProcessMetrics(metrics);
  if ((*backend)->sqlite) {
    AddSqliteWriterMetrics(metrics, (*backend)->sqlite->db());
    AddSqliteRowCacheMetrics(metrics, *(*backend)->sqlite);
  }

  // The worker pool (roles all and worker).
  auto limiter_settings = LimiterSettings(s);
  if (!limiter_settings) {
    std::cerr << "syncwell serve: " << limiter_settings.error().message << "\n";
    return 2;
  }
  // Provider quotas are shared by the whole fleet: in Redis when scaled out (SPEC S6).
  std::unique_ptr<ratelimit::RateLimiter> limiter_owner;
  std::unique_ptr<sync::Counter> confidence;  // null: the engine keeps one in process
  if ((*backend)->scale_out) {
    ratelimit::RedisLimiterSettings rls;
    rls.providers = limiter_settings->providers;
    rls.reserve = limiter_settings->reserve;
    rls.max_retry_after = limiter_settings->max_retry_after;
    auto redis_limiter =
        std::make_unique<ratelimit::RedisLimiter>(*(*backend)->redis, clock, std::move(rls));
    ratelimit::RedisLimiter* rl = redis_limiter.get();
    metrics.AddCounterFn("syncwell_ratelimit_unavailable_total",
                         "Limiter calls that could not reach Redis (safe mode: jobs deferred)",
                         [rl] { return static_cast<double>(rl->Stats().unavailable); });
    metrics.AddGauge("syncwell_ratelimit_available",
                     "1 when the shared rate limiter (Redis) is reachable",
                     [rl] { return rl->Available() ? 1.0 : 0.0; });
    limiter_owner = std::move(redis_limiter);
    confidence = std::make_unique<cache::RedisCounter>(*(*backend)->redis);
  } else {
    limiter_owner = std::make_unique<ratelimit::InProcessLimiter>(clock, *limiter_settings);
  }
  ratelimit::RateLimiter& limiter = *limiter_owner;
  ratelimit::DelayTracker delay_tracker(clock);
  ratelimit::DefaultRandomSource random;
  // Providers: one connector per configured provider, tokens sealed with the data dir's key.
  auto box = secrets::SecretBox::LoadOrCreate(SecretKeyPath(s));
  if (!box) {
    std::cerr << "syncwell serve: secret key: " << box.error().message << "\n";
    return 1;
  }
  // Provider requests of one job step that do not depend on each other run side by side on
  // these helpers (sync.parallel_requests; the job's worker thread works too).
  const size_t fan_out_threads = s.sync.fan_out_threads > 0
                                     ? static_cast<size_t>(s.sync.fan_out_threads)
                                     : 2 * static_cast<size_t>(s.worker.max_workers);
  FanOut fan_out(s.sync.parallel_requests > 1 ? fan_out_threads : 0);
  // Every worker and helper may hold a request to the same provider host at once (with 50-300 ms
  // of provider latency, thousands do): an idle pool smaller than that closes the surplus
  // connections after each burst and opens new ones (a TLS handshake each, at a real provider)
  // for the next. Keep as many idle connections per host as there are workers and helpers.
  net::HttpClientSettings http_settings;
  http_settings.max_idle_per_host =
      std::max<size_t>(http_settings.max_idle_per_host,
                       static_cast<size_t>(s.worker.max_workers) + fan_out.max_threads());
  auto http_client = net::MakeHttpClient(http_settings);
  providers::ProviderRegistry registry = BuildProviderRegistry(s, *http_client, clock);
  if (registry.Names().empty()) {
    log::Warn(
        "no provider connectors configured: set [providers] <name>.client_id (real providers) "
        "or providers.sim_url (the simulator); syncs and new connections will fail");
  }
  sync::CircuitBreakers breakers(sync::CircuitBreakerSettings{}, clock, metrics);
  std::unique_ptr<sync::SyncEngine> engine;
  std::unique_ptr<worker::JobHandler> handler;
  std::unique_ptr<worker::WorkerPool> pool;
  if (run_worker || run_api) {
    sync::SyncEngineSettings es;
    es.initial_lookback = s.sync.initial_lookback;
    es.max_records_per_job = static_cast<size_t>(s.sync.max_records_per_job);
    es.fan_out = &fan_out;
    es.parallel_requests = static_cast<size_t>(s.sync.parallel_requests);
    engine = std::make_unique<sync::SyncEngine>(store, registry, *box, limiter, breakers, clock,
                                                metrics, es, confidence.get());
  }
  if (run_worker) {
    if (s.worker.handler == "sync") {
      handler = nullptr;  // the engine itself (below)
    } else if (s.worker.handler == "noop") {
      handler = std::make_unique<worker::NoopSyncHandler>();
      log::Warn(
          "worker.handler = noop: jobs are marked SUCCEEDED WITHOUT calling any provider "
          "(benchmarks of the queue only)");
    } else {
      const std::string path = s.worker.handler.substr(std::string("script:").size());
      auto scripted = worker::ScriptedHandler::Load(path, s.storage.data_dir + "/executions.log");
      if (!scripted) {
        std::cerr << "syncwell serve: worker.handler: " << scripted.error().message << "\n";
        return 2;
      }
      handler = std::move(*scripted);
      log::Warn("worker.handler = script: TEST-ONLY scripted handler in use", {{"script", path}});
    }
    worker::WorkerPoolSettings ws;
    ws.min_workers = s.worker.min_workers;
    ws.max_workers = s.worker.max_workers;
    ws.target_backlog_per_worker = s.worker.target_backlog_per_worker;
    ws.receivers = s.worker.receivers;
    ws.visibility_timeout = s.worker.visibility_timeout;
    ws.drain_timeout = s.worker.drain_timeout;
    ws.max_receive_count = qs.max_receive_count;
    ws.retry_backoff = ratelimit::BackoffSettings{s.worker.retry_base, s.worker.retry_cap};
    ws.defer_backoff = ws.retry_backoff;
    // PostgreSQL: acknowledge succeeded jobs in batches (one statement and commit per batch).
    // SQLite group-commits every write already, so acks go one by one there.
    if ((*backend)->scale_out) ws.ack_batch_window = std::chrono::milliseconds{5};
    worker::JobHandler& job_handler = handler ? *handler : *engine;
    pool = std::make_unique<worker::WorkerPool>(ws, queue, store, limiter, job_handler, clock,
                                                metrics, random, &delay_tracker);
  }

  api::ApiServiceSettings as;
  // Intake on the I/O threads needs a store that completes writes without blocking and nothing
  // else on the way that can wait on the network (a JWKS URL refresh would stall an I/O thread).
  as.inline_intake = s.server.inline_intake && store.SupportsAsyncWrites() && !jwks_from_url;
  as.idempotency_retention = s.api.idempotency_retention;
  as.user_rate_per_second = s.api.user_rate_per_second;
  as.user_burst = s.api.user_burst;
  api::ApiService service(as, store, authenticator, clock, metrics, OpenApiDocument());
  SyncProviderGateway gateway(registry, *box, store, engine.get(), clock, metrics);
  service.SetProviderGateway(&gateway);

  api::HttpServerSettings hs;
  hs.host = hp->first;
  hs.port = hp->second;
  hs.io_threads = s.server.io_threads > 0
                      ? s.server.io_threads
                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  hs.handler_threads = s.server.handler_threads;
  hs.max_body_bytes = s.server.max_body_bytes;
  hs.max_upload_bytes = s.server.max_upload_bytes;
  hs.max_header_bytes = s.server.max_header_bytes;
  hs.read_timeout = s.server.read_timeout;
  hs.idle_timeout = s.server.idle_timeout;
  hs.access_log = s.server.access_log;
  hs.max_connections = s.server.max_connections;
  std::atomic<bool> ops_draining{false};
  api::HttpServer server(
      hs,
      [&](const api::HttpRequest& r) {
        return run_api ? service.Handle(r) : OpsOnly(r, metrics, ops_draining, s.server.role);
      },
      metrics);
  if (run_api && as.inline_intake) {
    server.SetInlineHandler(
        [&](const api::HttpRequest& r, api::HttpResponse& now, api::DeferredResponse& later) {
          return service.TryInline(r, now, later);
        });
  }
  if (auto st = server.Start(); !st) {
    std::cerr << "syncwell serve: " << st.error().message << "\n";
    return 1;
  }
  Housekeeper housekeeper(**backend, *verifier, clock, s, run_scheduler, metrics);
  housekeeper.Start();
  // The tiered schedule (SPEC S7): roles all and scheduler.
  std::unique_ptr<schedule::Scheduler> scheduler;
  std::unique_ptr<ScheduleRunner> schedule_runner;
  if (run_scheduler && s.scheduler.enabled) {
    schedule::SchedulerSettings ss;
    ss.pro_interval = s.scheduler.pro_interval;
    ss.free_interval = s.scheduler.free_interval;
    ss.batch_size = static_cast<size_t>(s.scheduler.batch_size);
    ss.concurrency = static_cast<size_t>(s.scheduler.concurrency);
    // Each of those users holds a pooled PostgreSQL connection while it runs a statement; at
    // most half the pool, so the API and the workers of this process still get theirs.
    if ((*backend)->pg_store) {
      ss.concurrency = std::min(ss.concurrency,
                                static_cast<size_t>(std::max(1, s.storage.postgres_pool_size / 2)));
    }
    scheduler = std::make_unique<schedule::Scheduler>(ss, store, metrics);
    schedule_runner =
        std::make_unique<ScheduleRunner>(*scheduler, housekeeper, clock, s.scheduler.tick);
    schedule_runner->Start();
  }
  if (pool) pool->Start();
  log::Info("listening", {{"address", hp->first + ":" + std::to_string(server.port())},
                          {"backend", (*backend)->scale_out ? "postgres+redis" : "embedded"},
                          {"data_dir", s.storage.data_dir},
                          {"role", s.server.role}});
  // A machine-readable line on stdout for scripts and tests that start the server on port 0.
  std::cout << "listening " << hp->first << ":" << server.port() << std::endl;

  int sig = 0;
  sigwait(&signals, &sig);
  log::Info("draining", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  service.SetDraining(true);
  ops_draining = true;
  // The worker drain (bounded by worker.drain_timeout) runs alongside the HTTP drain.
  std::thread worker_drain([&pool] {
    if (pool) pool->Stop();
  });
  server.Drain(s.server.drain_timeout);
  server.Stop();
  worker_drain.join();
  if (schedule_runner) schedule_runner->Stop();
  housekeeper.Stop();
  (*backend)->Stop();
  log::Info("stopped");
  return 0;
}

}  // namespace syncwell::app
