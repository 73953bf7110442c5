// syncwell_schedule_bench — how fast does one scheduler tick turn due users into jobs (SPEC S7),
// one user at a time against N at a time, on the embedded SQLite store or on PostgreSQL?
//
//   syncwell_schedule_bench sqlite:DIR | postgres://URL  USERS  CONFIGS
//   CONCURRENCY[,CONCURRENCY...]
//
// For every concurrency value, in the order given, on a fresh population (a new data directory
// below DIR, or a new PostgreSQL schema dropped at the end): USERS PRO users with a fitbit and a
// strava connection and CONFIGS enabled sync configs each, seeded with 32 threads; a first tick
// places every user (one durable write each); a second tick one interval later finds all of them
// due and creates CONFIGS jobs per user (each a durable job + queue message, then the user's
// schedule advance). Prints the seconds, users/s and jobs/s of that tick and this process's CPU
// time per job (the PostgreSQL server's own CPU is not included). A benchmark: asserts nothing.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "obs/metrics.hpp"
#include "schedule/scheduler.hpp"
#include "store/postgres/pg.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace {

using namespace syncwell;
using Clock = std::chrono::steady_clock;

const char* const kDataTypes[] = {"workout", "steps", "sleep_session", "weight"};

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void Parallel(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> ts;
  ts.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ts.emplace_back(fn, i);
  for (auto& t : ts) t.join();
}

void Die(const std::string& what, const Error& e) {
  std::fprintf(stderr, "schedule_bench: %s: %s\n", what.c_str(), e.message.c_str());
  std::exit(1);
}

void Seed(store::Store& st, int users, int configs, const TimePoint now) {
  std::atomic<int> next{0};
  Parallel(32, [&](int) {
    for (int i = next++; i < users; i = next++) {
      const std::string u = "u" + std::to_string(i);
      const UserId user(u);
      if (auto r = st.EnsureUser(user, store::Tier::kPro); !r) Die("EnsureUser", r.error());
      for (const char* provider : {"fitbit", "strava"}) {
        store::Connection c;
        c.id = ConnectionId("conn_" + std::string(provider) + "_" + u);
        c.user = user;
        c.provider = provider;
        c.provider_user_id = std::string(provider) + "-" + u;
        c.access_token_sealed = "sealed";
        c.created_at = c.updated_at = now;
        if (auto s = st.CreateConnection(c); !s) Die("CreateConnection", s.error());
      }
      for (int k = 0; k < configs; ++k) {
        store::SyncConfig cfg;
        cfg.id = SyncConfigId("cfg_" + std::to_string(k) + "_" + u);
        cfg.user = user;
        cfg.source = ConnectionId("conn_fitbit_" + u);
        cfg.destination = ConnectionId("conn_strava_" + u);
        cfg.data_type = kDataTypes[k % 4];
        cfg.conflict_strategy = "source_wins";
        cfg.enabled = true;
        cfg.created_at = cfg.updated_at = now;
        if (auto s = st.CreateSyncConfig(cfg, nullptr); !s) Die("CreateSyncConfig", s.error());
      }
    }
  });
}

std::vector<int> AllShards() {
  std::vector<int> v(store::kScheduleShards);
  for (int s = 0; s < store::kScheduleShards; ++s) v[static_cast<size_t>(s)] = s;
  return v;
}

void Run(store::Store& st, const std::string& backend, int users, int configs, size_t concurrency) {
  const TimePoint now = std::chrono::system_clock::now();
  Seed(st, users, configs, now);
  obs::Registry metrics;
  schedule::SchedulerSettings ss;
  ss.concurrency = concurrency;
  ss.max_batches_per_shard = 1000;
  schedule::Scheduler sch(ss, st, metrics);
  auto t0 = Clock::now();
  const auto placed = sch.Tick(AllShards(), now);
  const double place_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu0 = CpuSeconds();
  t0 = Clock::now();
  const auto due = sch.Tick(AllShards(), now + 2 * ss.pro_interval);
  const double tick_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  const long long errors = placed.shard_errors;
  std::printf(
      "%-8s concurrency %3zu: placement %6.2f s (%6.0f users/s) | due tick: %lld users, %lld jobs "
      "in %6.2f s = %7.0f users/s, %7.0f jobs/s; bench CPU %.0f us/job; errors %lld\n",
      backend.c_str(), concurrency, place_s, static_cast<double>(placed.placed) / place_s,
      static_cast<long long>(due.due_users), static_cast<long long>(due.jobs_enqueued), tick_s,
      static_cast<double>(due.due_users) / tick_s, static_cast<double>(due.jobs_enqueued) / tick_s,
      due.jobs_enqueued ? cpu / static_cast<double>(due.jobs_enqueued) * 1e6 : 0.0,
      errors + due.shard_errors);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr,
                 "usage: %s sqlite:DIR|postgres://URL USERS CONFIGS CONCURRENCY[,CONCURRENCY...]\n",
                 argv[0]);
    return 2;
  }
  const std::string target = argv[1];
  const int users = std::atoi(argv[2]);
  const int configs = std::atoi(argv[3]);
  std::vector<size_t> levels;
  for (std::string list = argv[4]; !list.empty();) {
    const auto comma = list.find(',');
    levels.push_back(static_cast<size_t>(std::atoi(list.substr(0, comma).c_str())));
    list = comma == std::string::npos ? "" : list.substr(comma + 1);
  }
  if (users <= 0 || configs <= 0 || levels.empty()) return 2;
  SystemClock clock;
  int run = 0;
  for (size_t c : levels) {
    ++run;
    if (target.rfind("sqlite:", 0) == 0) {
      store::SqliteSettings s;
      s.data_dir =
          target.substr(7) + "/run-" + std::to_string(getpid()) + "-" + std::to_string(run);
      store::SqliteStore st(s, clock);
      if (auto r = st.Start(); !r) Die("sqlite start", r.error());
      Run(st, "sqlite", users, configs, c);
      st.Stop();
      std::error_code ec;
      std::filesystem::remove_all(s.data_dir, ec);
    } else {
      store::pg::PgPoolSettings ps;
      ps.url = target;
      ps.schema = "bench_sched_" + std::to_string(getpid()) + "_" + std::to_string(run);
      ps.size = 34;
      store::pg::PgPool pool(ps);
      if (auto m = store::pg::Migrate(pool, store::pg::AllMigrations()); !m)
        Die("migrate", m.error());
      store::PostgresStore st(pool, clock);
      Run(st, "postgres", users, configs, c);
      (void)pool.Exec("DROP SCHEMA IF EXISTS " + store::pg::QuoteIdent(ps.schema) + " CASCADE");
    }
  }
  return 0;
}
