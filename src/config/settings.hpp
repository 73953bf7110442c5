#pragma once
// Typed settings for every subsystem, loaded from (lowest to highest precedence) built-in
// defaults, a TOML file, SYNCWELL_<SECTION>_<KEY> environment variables and command-line flags.
// Only src/app reads these and hands each component its own plain struct (STYLE §3).
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace syncwell::config {

struct ServerSettings {
  std::string listen = "127.0.0.1:8080";
  int io_threads = 0;        // 0 = one per core
  int handler_threads = 64;  // blocking pool for store access
  size_t max_body_bytes = 1 << 20;
  size_t max_upload_bytes = 10 << 20;
  size_t max_header_bytes = 16 << 10;
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds drain_timeout{15'000};
  bool access_log = true;
  // Job intake on the I/O threads, answered by the group commit's completion (embedded store
  // with local token keys only; elsewhere intake stays on the handler pool).
  bool inline_intake = true;
  int max_connections = 10'000;
  std::string role = "all";
};

struct StorageSettings {
  std::string data_dir = "./syncwell-data";
  std::string synchronous = "FULL";  // FULL survives power loss; NORMAL survives kill -9 only
  // Embedded: users, sync configs and connections read through an in-process cache, cleared when
  // another process commits to the database (app/wiring.hpp BackendOptions::embedded_cache).
  bool embedded_cache = true;
  int embedded_cache_mb = 64;  // its bound (keys + values; at most 100,000 entries too)
  // Scale-out (set both or neither): PostgreSQL holds state and jobs, Redis quotas, caches and
  // counters (ARCHITECTURE §1).
  std::string postgres_url;  // libpq URL or "key=value" string
  std::string redis_url;     // redis://[:password@]host:port[/db]
  std::string postgres_schema = "syncwell";
  int postgres_pool_size = 16;  // connections per process
  // Finished (SUCCEEDED/FAILED) job rows are deleted after this (PostgreSQL housekeeping).
  std::chrono::milliseconds job_retention{7 * 86'400'000LL};
};

struct AuthSettings {
  std::string issuer;  // empty + dev mode -> the dev issuer
  std::string audience;
  std::string jwks;               // file path or http(s) URL
  std::string dev_mode = "auto";  // auto: on when no issuer is configured
  std::vector<std::string> algorithms{"RS256"};
  std::chrono::milliseconds leeway{30'000};
  std::chrono::milliseconds decision_ttl{300'000};
  std::chrono::milliseconds jwks_ttl{3'600'000};
};

struct ApiSettings {
  std::chrono::milliseconds idempotency_retention{24 * 3'600'000};
  std::chrono::milliseconds dedup_window{300'000};
  int user_rate_per_second = 50;  // per-user request budget (token bucket), 0 = off
  int user_burst = 100;
};

// The worker pool (src/worker). handler: "sync" (the sync engine, SPEC S4), "noop" (marks jobs
// succeeded WITHOUT calling providers: queue benchmarks only) or "script:<path>" (test-only).
struct WorkerSettings {
  int min_workers = 1;
  int max_workers = 128;  // jobs mostly wait on provider HTTP (blocking calls)
  int target_backlog_per_worker = 10;
  int receivers = 0;  // concurrent Receive calls; 0 = ceil(max_workers / 10), at most 8
  std::chrono::milliseconds visibility_timeout{90'000};
  std::chrono::milliseconds drain_timeout{10'000};
  std::chrono::milliseconds retry_base{1'000};  // backoff of failed / deferred jobs (full jitter)
  std::chrono::milliseconds retry_cap{900'000};
  std::string handler = "sync";
};

// The tiered schedule (SPEC S7, src/schedule): roles all and scheduler tick every `tick` over the
// shards they own; PRO users sync every pro_interval, FREE users every free_interval (+-10%).
struct SchedulerSettings {
  bool enabled = true;
  std::chrono::milliseconds tick{10'000};
  std::chrono::milliseconds pro_interval{900'000};
  std::chrono::milliseconds free_interval{86'400'000};
  int batch_size = 500;  // due users read per query (a tick reads at most 20 batches per shard)
  int concurrency = 8;   // due users processed at the same time
};

// Provider quotas (SPEC S6). Each entry "provider:scope:window:limit" (scope app|user, window a
// duration such as 15m) replaces ALL default windows of that provider; entries of one provider
// combine. Empty: the SPEC S6 defaults.
struct RateLimitSettings {
  std::vector<std::string> limits;
};

// The sync engine (src/sync, SPEC S4).
struct SyncSettings {
  std::chrono::milliseconds initial_lookback{30LL * 86'400'000};  // first sync of a pair
  int max_records_per_job = 1000;  // incremental jobs continue in a follow-up job beyond this
  // Independent provider requests of one job step (day windows, per-record creates and reads)
  // in flight at once; 1 = one after another.
  int parallel_requests = 8;
  // Helper threads those requests run on, shared by all jobs (a job's own worker thread always
  // works too); 0 = 2 x worker.max_workers.
  int fan_out_threads = 0;
};

// One provider connector ([providers] <name>.<key>; SPEC S4). Empty client_id = not configured:
// connecting that provider answers 503 PROVIDER_NOT_CONFIGURED.
struct ProviderConnectorSettings {
  std::string base_url;   // API root; empty = the real provider (or sim_url + "/<name>")
  std::string token_url;  // OAuth token endpoint; empty = the connector's default
  std::string client_id;
  std::string client_secret;   // printed redacted
  std::string webhook_secret;  // printed redacted
  std::chrono::milliseconds timeout{10'000};
};

// Connectors of the cloud providers. sim_url points every provider without its own base_url at
// `syncwell provider-sim` (with the simulator's default client credentials when none are set).
struct ProvidersSettings {
  std::string sim_url;
  std::map<std::string, ProviderConnectorSettings> connectors;  // strava, withings, garmin, fitbit
};

// The provider names that have connectors (config keys exist for each).
inline const std::vector<std::string>& ConnectorNames() {
  static const std::vector<std::string> kNames = {"strava", "withings", "garmin", "fitbit"};
  return kNames;
}

struct LogSettings {
  std::string level = "info";
};

struct Settings {
  ServerSettings server;
  StorageSettings storage;
  AuthSettings auth;
  ApiSettings api;
  WorkerSettings worker;
  SchedulerSettings scheduler;
  RateLimitSettings ratelimit;
  ProvidersSettings providers;
  SyncSettings sync;
  LogSettings log;

  bool DevModeEnabled() const {
    return auth.dev_mode == "on" || (auth.dev_mode == "auto" && auth.issuer.empty());
  }
};

// Layers, each optional. `flags` holds "section.key" -> value from the command line.
struct Sources {
  std::string config_file;
  std::map<std::string, std::string> env;  // usually the process environment
  std::map<std::string, std::string> flags;
};

// The effective connector settings of one provider: sim_url and defaults applied.
ProviderConnectorSettings EffectiveConnector(const Settings& s, const std::string& provider);

// Loads and validates; every error names the key and the source that set it.
Result<Settings> Load(const Sources& sources);
// Effective settings as TOML (what `syncwell config --print` shows).
std::string ToToml(const Settings& s);
// "250ms", "30s", "5m", "1h", "2d"; bare numbers are seconds.
Result<std::chrono::milliseconds> ParseDuration(std::string_view s);
std::string FormatDuration(std::chrono::milliseconds d);
std::map<std::string, std::string> ProcessEnvironment();

// One parsed ratelimit.limits entry.
struct LimitSpec {
  std::string provider;
  bool user_scope = false;
  std::chrono::milliseconds window{0};
  int64_t limit = 0;
};
Result<LimitSpec> ParseLimitSpec(std::string_view spec);

}  // namespace syncwell::config
