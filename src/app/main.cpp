// `syncwell`: the whole SyncWell backend in one binary. See README.md for the commands.
#include <malloc.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "app/child_process.hpp"
#include "app/commands.hpp"
#include "config/settings.hpp"
#include "loadgen/loadgen.hpp"
#include "loadgen/plan_runner.hpp"

namespace {

using syncwell::config::Settings;

// Flags shared by commands that touch the configuration: they map onto "section.key" settings.
struct CommonFlags {
  std::string config_file;
  std::map<std::string, std::string> flags;

  void Add(CLI::App* cmd, bool server_flags) {
    cmd->add_option("--config", config_file, "TOML configuration file")->check(CLI::ExistingFile);
    cmd->add_option_function<std::string>(
        "--data-dir", [this](const std::string& v) { flags["storage.data_dir"] = v; },
        "embedded data directory (database, dev keys, secret key)");
    cmd->add_option_function<std::string>(
        "--postgres-url", [this](const std::string& v) { flags["storage.postgres_url"] = v; },
        "PostgreSQL URL (scale-out; with --redis-url)");
    cmd->add_option_function<std::string>(
        "--redis-url", [this](const std::string& v) { flags["storage.redis_url"] = v; },
        "Redis URL (scale-out; with --postgres-url)");
    if (!server_flags) return;
    cmd->add_option_function<std::string>(
        "--listen", [this](const std::string& v) { flags["server.listen"] = v; },
        "HOST:PORT to listen on (default 127.0.0.1:8080; port 0 = any)");
    cmd->add_option_function<std::string>(
        "--role", [this](const std::string& v) { flags["server.role"] = v; },
        "all|api|worker|scheduler");
    cmd->add_option_function<std::string>(
        "--providers-sim-url", [this](const std::string& v) { flags["providers.sim_url"] = v; },
        "point every provider without its own base_url at `syncwell provider-sim`");
    cmd->add_option_function<std::string>(
        "--log-level", [this](const std::string& v) { flags["log.level"] = v; },
        "debug|info|warn|error");
    cmd->add_option("--set", extra_, "override any setting: section.key=value (repeatable)");
  }

  bool Load(Settings* out) {
    for (const auto& kv : extra_) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) {
        std::cerr << "syncwell: --set " << kv << ": expected section.key=value\n";
        return false;
      }
      flags[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    syncwell::config::Sources src{config_file, syncwell::config::ProcessEnvironment(), flags};
    auto s = syncwell::config::Load(src);
    if (!s) {
      std::cerr << "syncwell: configuration error: " << s.error().message << "\n";
      return false;
    }
    *out = *s;
    return true;
  }

  std::vector<std::string> extra_;
};

}  // namespace

int main(int argc, char** argv) {
  // glibc returns freed memory of thread arenas with madvise(), whose TLB shootdowns cost more than
  // the memory is worth on a server that reuses it at once (measured: ~7% of the writer thread).
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  // Every worker and fan-out helper may hold a connection to a provider while the API holds its
  // clients' (a demo with 1,024 workers opens ~3,000): take the hard open-file limit, as most
  // servers do, instead of a login shell's soft 1,024.
  if (rlimit nofile{}; getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    const rlim_t want = nofile.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : nofile.rlim_max;
    if (nofile.rlim_cur < want) {
      nofile.rlim_cur = want;
      (void)setrlimit(RLIMIT_NOFILE, &nofile);  // refused: keep the limit we have
    }
  }
  // Started by `syncwell demo`: end with it, also when it is killed without stopping us.
  if (!syncwell::app::ExitWithParent()) return 1;
  CLI::App app{"SyncWell Engine: keeps health and fitness data in sync across providers"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "syncwell 0.1.0");

  CommonFlags serve_flags;
  auto* serve = app.add_subcommand("serve", "run the server (API; embedded storage by default)");
  serve_flags.Add(serve, true);

  CommonFlags cfg_flags;
  bool print = false;
  auto* config = app.add_subcommand("config", "show the effective configuration");
  cfg_flags.Add(config, true);
  config->add_flag("--print", print, "print the effective settings as TOML")->required();

  CommonFlags token_flags;
  syncwell::app::TokenOptions token_opts;
  std::string ttl_text = "1h";
  auto* token =
      app.add_subcommand("token", "mint a development JWT (trusted by servers in dev mode)");
  token_flags.Add(token, false);
  token->add_option("--user", token_opts.user, "user id (the token's sub)")->required();
  token->add_option("--tier", token_opts.tier, "FREE or PRO")
      ->check(CLI::IsMember({"FREE", "PRO"}));
  token->add_option("--ttl", ttl_text, "lifetime, e.g. 15m, 1h, 7d");

  auto* admin = app.add_subcommand("admin", "operator commands");
  admin->require_subcommand(1);
  auto* user_cmd = admin->add_subcommand("user", "users")->require_subcommand(1);
  CommonFlags uc_flags;
  syncwell::app::UserCreateOptions uc_opts;
  auto* user_create = user_cmd->add_subcommand("create", "create a user or change its tier");
  uc_flags.Add(user_create, false);
  user_create->add_option("--user", uc_opts.user, "user id")->required();
  user_create->add_option("--tier", uc_opts.tier, "FREE or PRO")
      ->check(CLI::IsMember({"FREE", "PRO"}));

  auto* conn_cmd =
      admin->add_subcommand("connection", "provider connections")->require_subcommand(1);
  CommonFlags cc_flags;
  syncwell::app::ConnectionCreateOptions cc_opts;
  auto* conn_create =
      conn_cmd->add_subcommand("create", "store a connection with (encrypted) provider tokens");
  cc_flags.Add(conn_create, false);
  conn_create->add_option("--user", cc_opts.user, "owner user id")->required();
  conn_create
      ->add_option("--provider", cc_opts.provider, "provider name (fitbit, garmin, strava, ...)")
      ->required();
  conn_create->add_option("--connection-id", cc_opts.connection_id,
                          "id to use (default conn_<random>)");
  conn_create->add_option("--access-token", cc_opts.access_token, "provider access token")
      ->required();
  conn_create->add_option("--refresh-token", cc_opts.refresh_token, "provider refresh token");
  conn_create->add_option("--provider-user-id", cc_opts.provider_user_id,
                          "the user's id at the provider");
  conn_create->add_option("--status", cc_opts.status, "active|needs_reauth|revoked")
      ->check(CLI::IsMember({"active", "needs_reauth", "revoked"}));

  auto* pop_cmd =
      admin->add_subcommand("population", "load-test populations")->require_subcommand(1);
  CommonFlags pc_flags;
  syncwell::app::PopulationOptions pc_opts;
  std::string pc_ttl = "24h";
  auto* pop_create = pop_cmd->add_subcommand(
      "create",
      "users PREFIX1..PREFIXN (every 5th PRO) with a source and a destination connection and a "
      "dev token each; writes 'TOKEN SRC DST' lines for `loadgen --tokens` (idempotent)");
  pc_flags.Add(pop_create, false);
  pop_create->add_option("--users", pc_opts.users, "how many users")
      ->required()
      ->check(CLI::Range(size_t{1}, size_t{10'000'000}));
  pop_create->add_option("--tokens-out", pc_opts.tokens_out, "file to write")->required();
  pop_create->add_option("--prefix", pc_opts.prefix, "user id prefix (default lt)");
  pop_create->add_option("--pro-every", pc_opts.pro_every,
                         "every N-th user is PRO (default 5 = 20%; 0 = none)");
  pop_create->add_option("--source", pc_opts.source, "source provider (default fitbit)");
  pop_create->add_option("--destination", pc_opts.destination,
                         "destination provider (default strava)");
  pop_create->add_option("--ttl", pc_ttl, "token lifetime (default 24h)");

  auto* jwks_cmd = admin->add_subcommand("jwks", "token signing keys")->require_subcommand(1);
  CommonFlags jd_flags;
  std::string kid;
  auto* jwks_drop = jwks_cmd->add_subcommand(
      "drop", "forget a cached signing key (running servers pick it up within 1 s)");
  jd_flags.Add(jwks_drop, false);
  jwks_drop
      ->add_option("kid", kid,
                   "key id; one that starts with '-' goes after '--' (jwks drop -- -Ab3...)")
      ->required();

  auto* queue_cmd = admin->add_subcommand("queue", "job queue")->require_subcommand(1);
  CommonFlags qs_flags;
  auto* queue_stats = queue_cmd->add_subcommand("stats", "queue depth and counters");
  qs_flags.Add(queue_stats, false);

  CommonFlags mg_flags;
  auto* migrate_cmd = admin->add_subcommand(
      "migrate", "apply pending PostgreSQL schema migrations (embedded SQLite migrates on open)");
  mg_flags.Add(migrate_cmd, false);

  auto* dlq_cmd = admin->add_subcommand("dlq", "dead-letter queue")->require_subcommand(1);
  CommonFlags dl_flags, ds_flags, dr_flags, dp_flags;
  size_t dlq_limit = 100;
  std::string dlq_id;
  bool dlq_all = false, dlq_yes = false;
  auto* dlq_list = dlq_cmd->add_subcommand("list", "dead-lettered messages (no bodies)");
  dl_flags.Add(dlq_list, false);
  dlq_list->add_option("--limit", dlq_limit, "at most this many rows (default 100)");
  auto* dlq_show =
      dlq_cmd->add_subcommand("show", "one dead-lettered message with its error history");
  ds_flags.Add(dlq_show, false);
  dlq_show->add_option("id", dlq_id, "message id")->required();
  auto* dlq_redrive = dlq_cmd->add_subcommand(
      "redrive", "move a message (ID) or every message (--all) back to the queue; jobs -> QUEUED");
  dr_flags.Add(dlq_redrive, false);
  dlq_redrive->add_option("id", dlq_id, "message id");
  dlq_redrive->add_flag("--all", dlq_all, "redrive every dead-lettered message");
  auto* dlq_purge = dlq_cmd->add_subcommand("purge", "delete every dead-lettered message");
  dp_flags.Add(dlq_purge, false);
  dlq_purge->add_flag("--yes", dlq_yes, "confirm")->required();

  syncwell::loadgen::LoadgenOptions lg;
  std::string lg_duration = "10s", lg_timeout = "10s";
  bool no_idem = false;
  auto* loadgen =
      app.add_subcommand("loadgen", "open-loop HTTP load generator (no coordinated omission)");
  loadgen->add_option("--target", lg.target, "http://host:port[/path]");
  loadgen->add_option("--rate", lg.rate, "requests/s (0 = saturation, closed loop)");
  loadgen->add_option("--duration", lg_duration, "e.g. 30s");
  loadgen->add_option("--connections", lg.connections, "keep-alive connections");
  loadgen->add_option("--max-connections", lg.max_connections,
                      "pool may grow to this when all are busy");
  loadgen->add_option("--threads", lg.threads, "worker threads (1-2)");
  loadgen->add_option("--timeout", lg_timeout, "per-request timeout from its scheduled time");
  loadgen->add_option("--method", lg.method, "HTTP method");
  loadgen->add_option("--path", lg.path, "request path");
  loadgen->add_option("--header", lg.headers, "\"Name: value\" (repeatable)");
  loadgen->add_option("--body", lg.body, "body template ({{conn_src}}, {{conn_dst}})");
  loadgen->add_option("--body-file", lg.body_file, "body template file");
  loadgen->add_option("--tokens", lg.tokens_file, "lines: TOKEN [SRC_CONN DST_CONN]");
  loadgen->add_flag("--random-tokens", lg.random_tokens, "pick token lines at random");
  loadgen->add_flag("--no-idempotency-key", no_idem, "do not send a fresh Idempotency-Key");
  // S14 plan mode (src/loadgen/plan_runner.hpp): --plan replaces --target/--rate/--duration.
  syncwell::loadgen::PlanOptions lp;
  std::string lp_follow_timeout = "60s";
  loadgen->add_option("--plan", lp.plan, "S14 load-test plan: brief or smoke");
  loadgen->add_option("--scale", lp.scale, "plan: multiply every phase duration by this");
  loadgen->add_option("--targets", lp.targets, "plan: URL[,URL...], round-robin per request")
      ->delimiter(',');
  loadgen->add_option("--report-json", lp.report_json, "plan: write the JSON report here");
  loadgen->add_option("--chart", lp.chart_html,
                      "plan: write a chart of throughput, latency, backlog and CPU over time "
                      "(self-contained HTML with SVG)");
  loadgen->add_option("--metrics-url", lp.metrics_urls, "plan: Prometheus URL[,URL...]")
      ->delimiter(',');
  loadgen->add_option("--retry-share", lp.retry_share, "plan: share of client retries (same key)");
  loadgen->add_option("--follow-jobs", lp.follow_jobs, "plan: accepted jobs followed per phase");
  loadgen->add_option("--follow-timeout", lp_follow_timeout, "plan: give up following after D");
  loadgen->add_option("--jobs-out", lp.jobs_out, "plan: write every accepted job id here");
  loadgen->add_option("--seed", lp.seed, "plan: RNG seed (0 = random)");

  syncwell::app::ProviderSimOptions sim_opts;
  auto* sim = app.add_subcommand(
      "provider-sim", "serve simulated Strava, Garmin, Fitbit and Withings APIs (tests, demo)");
  sim->add_option("--listen", sim_opts.listen, "HOST:PORT (port 0 = any free port)");
  sim->add_option("--config", sim_opts.config_file, "JSON simulator settings")
      ->check(CLI::ExistingFile);
  sim->add_option("--seed", sim_opts.seed, "seed of the synthetic data");
  sim->add_option("--days", sim_opts.days, "days of synthetic history");
  sim->add_option("--webhook-target", sim_opts.webhook_target,
                  "SyncWell server to send webhooks to, e.g. http://127.0.0.1:8080");
  sim->add_option("--latency", sim_opts.latency, "uniform latency of every provider: MIN-MAX");
  sim->add_flag("--no-rate-limits", sim_opts.no_rate_limits,
                "answer no 429s (default: each provider's published limits)");
  sim->add_option("--handler-threads", sim_opts.handler_threads,
                  "threads for /_sim requests (provider latency holds no thread)");
  sim->add_flag("--access-log", sim_opts.access_log, "log every request");

  syncwell::app::DemoOptions demo_opts;
  int demo_timeout_s = 900;
  auto* demo = app.add_subcommand(
      "demo", "start the simulator and the server, sync a few hundred users, prove the invariants");
  demo->add_option("--users", demo_opts.users, "simulated users (default 200)")
      ->check(CLI::Range(1, 100000));
  demo->add_option("--data-dir", demo_opts.data_dir, "recreated on every run");
  demo->add_option("--latency", demo_opts.latency, "simulated provider latency MIN-MAX");
  demo->add_option("--workers", demo_opts.workers, "worker threads of the server")
      ->check(CLI::Range(1, 1024));
  demo->add_option("--timeout", demo_timeout_s, "give up after this many seconds");
  demo->add_flag("--follow", demo_opts.follow, "keep the servers running after the summary");
  demo->add_flag("--bench", demo_opts.bench,
                 "seed first, then time a burst of jobs end to end (CPU per job, RSS), then the "
                 "same jobs again (incremental syncs)");
  demo->add_option("--target-backlog", demo_opts.target_backlog,
                   "the server's worker.target_backlog_per_worker (default: its own, 10)")
      ->check(CLI::Range(1, 100000));
  demo->add_option("--incremental-latency", demo_opts.incremental_latency,
                   "--bench: the simulated latency MIN-MAX of the second (incremental) round");
  demo->add_option("--incremental-rounds", demo_opts.incremental_rounds,
                   "--bench: post every job this many times in the incremental round (one burst)")
      ->check(CLI::Range(1, 50));
  demo->add_option("--incremental-new-data", demo_opts.incremental_new_data,
                   "--bench: percent of users given a new source record per config before each "
                   "incremental round (those jobs move a record; default 0)")
      ->check(CLI::Range(0, 100));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  Settings s;
  if (*serve) return serve_flags.Load(&s) ? syncwell::app::RunServe(s) : 2;
  if (*config) {
    if (!cfg_flags.Load(&s)) return 2;
    std::cout << syncwell::config::ToToml(s);
    return 0;
  }
  if (*token) {
    auto ttl = syncwell::config::ParseDuration(ttl_text);
    if (!ttl || ttl->count() <= 0) {
      std::cerr << "syncwell token: --ttl '" << ttl_text << "' is not a positive duration\n";
      return 2;
    }
    token_opts.ttl = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
    return token_flags.Load(&s) ? syncwell::app::RunToken(s, token_opts) : 2;
  }
  if (*user_create) return uc_flags.Load(&s) ? syncwell::app::RunAdminUserCreate(s, uc_opts) : 2;
  if (*conn_create)
    return cc_flags.Load(&s) ? syncwell::app::RunAdminConnectionCreate(s, cc_opts) : 2;
  if (*pop_create) {
    auto ttl = syncwell::config::ParseDuration(pc_ttl);
    if (!ttl || ttl->count() <= 0) {
      std::cerr << "syncwell admin population create: --ttl '" << pc_ttl
                << "' is not a positive duration\n";
      return 2;
    }
    pc_opts.ttl = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
    return pc_flags.Load(&s) ? syncwell::app::RunAdminPopulationCreate(s, pc_opts) : 2;
  }
  if (*jwks_drop) return jd_flags.Load(&s) ? syncwell::app::RunAdminJwksDrop(s, kid) : 2;
  if (*queue_stats) return qs_flags.Load(&s) ? syncwell::app::RunAdminQueueStats(s) : 2;
  if (*migrate_cmd) return mg_flags.Load(&s) ? syncwell::app::RunAdminMigrate(s) : 2;
  if (*dlq_list) return dl_flags.Load(&s) ? syncwell::app::RunAdminDlqList(s, dlq_limit) : 2;
  if (*dlq_show) return ds_flags.Load(&s) ? syncwell::app::RunAdminDlqShow(s, dlq_id) : 2;
  if (*dlq_redrive)
    return dr_flags.Load(&s) ? syncwell::app::RunAdminDlqRedrive(s, dlq_id, dlq_all) : 2;
  if (*dlq_purge) return dp_flags.Load(&s) ? syncwell::app::RunAdminDlqPurge(s) : 2;
  if (*sim) return syncwell::app::RunProviderSim(sim_opts);
  if (*demo) {
    demo_opts.timeout = std::chrono::seconds(demo_timeout_s);
    return syncwell::app::RunDemo(demo_opts);
  }
  if (*loadgen && !lp.plan.empty()) {
    auto ft = syncwell::loadgen::ParseDuration(lp_follow_timeout);
    auto t = syncwell::loadgen::ParseDuration(lg_timeout);
    if (!ft || !t) {
      std::cerr << "syncwell loadgen: bad --follow-timeout or --timeout\n";
      return 2;
    }
    lp.follow_timeout = *ft;
    lp.timeout = *t;
    lp.tokens_file = lg.tokens_file;
    lp.threads = lg.threads;
    if (loadgen->count("--connections") > 0) lp.connections = lg.connections;
    if (loadgen->count("--max-connections") > 0) lp.max_connections = lg.max_connections;
    return syncwell::loadgen::RunPlan(lp, std::cout);
  }
  if (*loadgen) {
    if (lg.target.empty()) {
      std::cerr << "syncwell loadgen: --target (or --plan) is required\n";
      return 2;
    }
    auto d = syncwell::loadgen::ParseDuration(lg_duration);
    auto t = syncwell::loadgen::ParseDuration(lg_timeout);
    if (!d || !t) {
      std::cerr << "syncwell loadgen: bad --duration or --timeout\n";
      return 2;
    }
    lg.duration = *d;
    lg.timeout = *t;
    lg.idempotency_key = !no_idem;
    return syncwell::loadgen::RunLoadgen(lg, std::cout);
  }
  return 2;
}
