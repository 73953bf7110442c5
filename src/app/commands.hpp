#pragma once
// Subcommands of the `syncwell` binary. main.cpp parses the command line (CLI11) and calls one
// of these; each returns the process exit code. This folder is the composition root: the only
// place that reads configuration and constructs adapters (STYLE §3).
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "config/settings.hpp"

namespace syncwell::app {

// Exit codes: 0 ok, 1 runtime failure, 2 usage/configuration error.
int RunServe(const config::Settings& settings);

struct TokenOptions {
  std::string user;
  std::string tier = "FREE";
  std::chrono::seconds ttl{3600};
};
int RunToken(const config::Settings& settings, const TokenOptions& o);

struct UserCreateOptions {
  std::string user;
  std::string tier = "FREE";
};
int RunAdminUserCreate(const config::Settings& settings, const UserCreateOptions& o);

struct ConnectionCreateOptions {
  std::string user;
  std::string provider;
  std::string connection_id;
  std::string access_token;
  std::string refresh_token;
  std::string provider_user_id;
  std::string status = "active";
};
int RunAdminConnectionCreate(const config::Settings& settings, const ConnectionCreateOptions& o);

// `syncwell admin population create`: a load-test population in one process — users (every
// `pro_every`-th PRO), a source and a destination connection each, and a dev token each, one
// line "TOKEN SOURCE_CONN DEST_CONN" per user in `tokens_out` (what `loadgen --tokens` reads).
// Idempotent: ids are derived from `prefix` and the index, so a rerun reuses them.
struct PopulationOptions {
  size_t users = 0;
  std::string prefix = "lt";
  size_t pro_every = 5;  // 0 = nobody is PRO
  std::string source = "fitbit";
  std::string destination = "strava";
  std::chrono::seconds ttl{86'400};
  std::string tokens_out;
};
int RunAdminPopulationCreate(const config::Settings& settings, const PopulationOptions& o);
int RunAdminJwksDrop(const config::Settings& settings, const std::string& kid);
int RunAdminQueueStats(const config::Settings& settings);
// Applies pending PostgreSQL migrations (storage.postgres_url); embedded: opens (and so
// migrates) the SQLite database.
int RunAdminMigrate(const config::Settings& settings);

// Dead-letter queue (SPEC S3). Output never contains message bodies' health data (there is none:
// bodies are job envelopes of ids) and shows users only as hashed ids.
int RunAdminDlqList(const config::Settings& settings, size_t limit);
int RunAdminDlqShow(const config::Settings& settings, const std::string& message_id);
// Redrives one message (id) or every one (all); the jobs go back to QUEUED.
int RunAdminDlqRedrive(const config::Settings& settings, const std::string& message_id, bool all);
int RunAdminDlqPurge(const config::Settings& settings);

std::string SecretKeyPath(const config::Settings& settings);

// `syncwell provider-sim` (src/providers/sim/README.md).
struct ProviderSimOptions {
  std::string listen = "127.0.0.1:9100";
  std::string config_file;  // JSON simulator settings
  std::optional<uint64_t> seed;
  std::optional<int> days;
  std::string webhook_target;  // SyncWell server base URL for webhooks
  std::string latency;         // "50ms-300ms"
  bool no_rate_limits = false;
  int handler_threads = 32;
  bool access_log = false;
};
int RunProviderSim(const ProviderSimOptions& o);

// `syncwell demo` (demo.cpp): simulator + embedded server + seeded users + proof of invariants.
struct DemoOptions {
  int users = 200;
  std::string data_dir = "./syncwell-demo";  // recreated on every run
  std::string latency = "10ms-50ms";         // the simulated providers' latency
  int days = 14;                             // synthetic history (inside the first-sync window)
  int workers = 64;
  std::chrono::seconds timeout{900};
  bool follow = false;
  bool bench = false;  // seed first, then time a burst of jobs (bench/e2e_bench.sh)
  // --bench: the simulator's latency for the second (incremental) round; empty = unchanged.
  std::string incremental_latency;
  // --bench: how often the incremental round posts every job (one burst, timed as one): more
  // rounds, a longer steady state against the ramp at the start and end of a burst.
  int incremental_rounds = 1;
  // --bench: before each incremental round, this percentage of the users gets one new record at
  // the source of each of their sync configs (no webhook), so that share of the jobs moves a
  // record.
  int incremental_new_data = 0;
  // worker.target_backlog_per_worker of the server (0 = its default, 10). With slow providers a
  // small burst drains faster with 1: the pool then sizes itself to the whole backlog.
  int target_backlog = 0;
};
int RunDemo(const DemoOptions& o);

// "50ms-300ms" or "100ms" (MIN-MAX, durations as config accepts them); nullopt when malformed or
// MAX < MIN. Shared by `provider-sim --latency` and `demo --latency/--incremental-latency`.
std::optional<std::pair<std::chrono::milliseconds, std::chrono::milliseconds>> ParseLatencyRange(
    const std::string& text);

}  // namespace syncwell::app
