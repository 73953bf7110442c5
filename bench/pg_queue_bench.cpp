// syncwell_pg_queue_bench: full queue cycle (send + receive in batches of 10 + delete) of
// PostgresJobQueue next to a raw-SQL baseline (INSERT + SKIP LOCKED claim of 10 + DELETE on a
// bare table, prepared statements, autocommit) in the same run, on the same server and with the
// same connection pool.
//
//   syncwell_pg_queue_bench <postgresql-url> [jobs=20000] [threads=8] [groups=jobs]
//                           [send_batch=100]
//
// Every run uses a fresh schema (dropped at the end). Phases, each timed: `threads` senders send
// `jobs` messages over `groups` groups; then `threads` workers receive batches of 10 and
// acknowledge them until the queue is empty. Five runs: raw SQL, JobQueue (one Send and one
// Delete per message: a commit each), JobQueue b-ack (one DeleteBatch per received batch), then
// batched: raw SQL inserting send_batch rows per statement and deleting each claimed batch with
// one statement, and JobQueue with SendBatch of send_batch messages (one pipelined transaction)
// and DeleteBatch. Full cycle jobs/s = jobs / (send time + drain time). When the server runs on
// this host, the CPU time of its processes (postmaster and children: backends, walwriter,
// autovacuum; exited backends through the postmaster's child times) is read from /proc, giving
// jobs per PostgreSQL CPU-second ("per core"), which other load on the host disturbs much less
// than jobs/s. The host is noisy: compare the lines of one run, not runs.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "store/postgres/pg.hpp"
#include "store/postgres/postgres_job_queue.hpp"

namespace {

using namespace syncwell;
using store::pg::PgParam;
using store::pg::PgPool;
using SteadyClock = std::chrono::steady_clock;

// The fields of /proc/<pid>/stat after "(comm) " (state is [0], ppid [1], utime [11], stime [12],
// cutime [13], cstime [14]) and the comm; false if the process is gone.
bool ReadStat(const std::string& pid, std::string* comm, std::vector<std::string>* fields) {
  std::ifstream f("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  const size_t open = line.find('('), close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 > line.size()) {
    return false;
  }
  *comm = line.substr(open + 1, close - open - 1);
  std::istringstream rest(line.substr(close + 2));
  fields->clear();
  for (std::string field; rest >> field;) fields->push_back(field);
  return fields->size() >= 15;
}

// The postmaster of the server behind `pool` (the parent of one of its backends), when that
// server runs on this host; 0 otherwise.
long PostmasterPid(PgPool& pool) {
  auto r = pool.Exec("SELECT pg_backend_pid()");
  if (!r || r->rows() != 1) return 0;
  std::string comm;
  std::vector<std::string> fields;
  if (!ReadStat(std::to_string(r->Int(0, 0)), &comm, &fields) || comm != "postgres") return 0;
  return std::stol(fields[1]);
}

// CPU seconds used so far by that server: the postmaster (whose child times include exited
// backends) and its live children (backends, walwriter, autovacuum ...). Other PostgreSQL
// servers on the host are not counted.
std::optional<double> PostgresCpuSeconds(long postmaster) {
  if (postmaster <= 0) return std::nullopt;
  DIR* d = opendir("/proc");
  if (d == nullptr) return std::nullopt;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  double total = 0;
  bool any = false;
  std::string comm;
  std::vector<std::string> fields;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (!ReadStat(e->d_name, &comm, &fields)) continue;
    const bool is_postmaster = std::stol(e->d_name) == postmaster;
    if (!is_postmaster && std::stol(fields[1]) != postmaster) continue;
    total += (std::stod(fields[11]) + std::stod(fields[12]) + std::stod(fields[13]) +
              std::stod(fields[14])) /
             hz;
    any = true;
  }
  closedir(d);
  if (!any) return std::nullopt;
  return total;
}

struct Figures {
  double send_s = 0;
  double drain_s = 0;
  std::optional<double> pg_cpu_s;
  int64_t jobs = 0;
  int64_t errors = 0;
};

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

void RunThreads(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> ts;
  ts.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ts.emplace_back(fn, i);
  for (auto& t : ts) t.join();
}

std::unique_ptr<PgPool> MakePool(const std::string& url, const std::string& schema, int size) {
  store::pg::PgPoolSettings s;
  s.url = url;
  s.schema = schema;
  s.size = static_cast<size_t>(size) + 2;
  return std::make_unique<PgPool>(s);
}

void DropSchema(PgPool& pool) {
  if (std::getenv("BENCH_KEEP_SCHEMA") != nullptr) {
    std::printf("kept schema %s\n", pool.settings().schema.c_str());
    return;
  }
  (void)pool.Exec("DROP SCHEMA IF EXISTS " + store::pg::QuoteIdent(pool.settings().schema) +
                  " CASCADE");
}

std::string Body(int64_t i) {
  return R"({"job_id":"job-)" + std::to_string(i) + R"(","user_id":"user-)" +
         std::to_string(i % 1000) + R"(","kind":"sync"})";
}

// batched_acks: each received batch is acknowledged with one DeleteBatch (one commit) instead of
// one Delete per message. send_batch > 1: senders send that many messages per SendBatch (one
// commit) instead of one Send each.
Figures BenchQueue(const std::string& url, int64_t jobs, int threads, int64_t groups,
                   bool batched_acks, int64_t send_batch) {
  Figures f;
  f.jobs = jobs;
  const std::string schema = "bench_q_" + std::to_string(getpid());
  auto pool = MakePool(url, schema, threads);
  if (auto m = store::pg::Migrate(*pool, store::pg::QueueMigrations()); !m) {
    std::fprintf(stderr, "migrate: %s\n", m.error().message.c_str());
    std::exit(1);
  }
  SystemClock clock;
  store::PostgresJobQueue q(*pool, {}, clock);
  if (auto st = q.Start(); !st) std::fprintf(stderr, "listener: %s\n", st.error().message.c_str());
  std::atomic<int64_t> errors{0};
  const long postmaster = PostmasterPid(*pool);
  const auto cpu0 = PostgresCpuSeconds(postmaster);

  std::atomic<int64_t> next{0};
  auto t0 = SteadyClock::now();
  RunThreads(threads, [&](int) {
    for (int64_t first; (first = next.fetch_add(send_batch)) < jobs;) {
      std::vector<queue::OutgoingMessage> batch;
      for (int64_t i = first; i < std::min(jobs, first + send_batch); ++i) {
        queue::OutgoingMessage m;
        m.group_id = "user-" + std::to_string(i % groups);
        m.dedup_id = "job-" + std::to_string(i);
        m.body = Body(i);
        batch.push_back(std::move(m));
      }
      if (batch.size() == 1) {
        if (!q.Send(batch[0])) ++errors;
        continue;
      }
      for (const auto& r : q.SendBatch(batch)) {
        if (!r) ++errors;
      }
    }
  });
  auto t1 = SteadyClock::now();
  std::atomic<int64_t> done{0};
  RunThreads(threads, [&](int) {
    queue::ReceiveOptions o;
    o.max_messages = queue::kMaxReceiveBatch;
    int empty = 0;
    while (done.load() < jobs && empty < 50) {
      auto got = q.Receive(o);
      if (!got) {
        ++errors;
        continue;
      }
      if (got->empty()) {
        ++empty;
        std::this_thread::sleep_for(std::chrono::milliseconds{2});
        continue;
      }
      empty = 0;
      if (batched_acks) {
        std::vector<std::string> receipts;
        for (const auto& m : *got) receipts.push_back(m.receipt);
        for (const auto& st : q.DeleteBatch(receipts)) {
          if (st) {
            ++done;
          } else {
            ++errors;
          }
        }
        continue;
      }
      for (const auto& m : *got) {
        if (q.Delete(m.receipt)) {
          ++done;
        } else {
          ++errors;
        }
      }
    }
  });
  auto t2 = SteadyClock::now();
  const auto cpu1 = PostgresCpuSeconds(postmaster);
  q.Stop();
  f.send_s = Seconds(t1 - t0);
  f.drain_s = Seconds(t2 - t1);
  if (cpu0 && cpu1) f.pg_cpu_s = *cpu1 - *cpu0;
  f.errors = errors.load() + (jobs - done.load());
  DropSchema(*pool);
  return f;
}

// The practical ceiling: the same three steps on a bare table, no groups, dedup, counters or
// notifications; statements prepared (PgConn's statement cache), autocommit. batched: inserts of
// send_batch rows per statement and one DELETE per claimed batch, as the batched queue run does.
Figures BenchRaw(const std::string& url, int64_t jobs, int threads, int64_t groups, bool batched,
                 int64_t send_batch) {
  Figures f;
  f.jobs = jobs;
  const std::string schema = "bench_raw_" + std::to_string(getpid());
  auto pool = MakePool(url, schema, threads);
  if (auto st = pool->Exec("CREATE SCHEMA IF NOT EXISTS " + store::pg::QuoteIdent(schema)); !st) {
    std::fprintf(stderr, "schema: %s\n", st.error().message.c_str());
    std::exit(1);
  }
  if (auto st = pool->Exec(
          "CREATE TABLE jobs (id bigserial PRIMARY KEY, group_id text NOT NULL, body bytea NOT "
          "NULL, visible_at_ms bigint NOT NULL)");
      !st) {
    std::fprintf(stderr, "table: %s\n", st.error().message.c_str());
    std::exit(1);
  }
  (void)pool->Exec("CREATE INDEX jobs_visible ON jobs (visible_at_ms, id)");
  std::atomic<int64_t> errors{0};
  const long postmaster = PostmasterPid(*pool);
  const auto cpu0 = PostgresCpuSeconds(postmaster);
  std::atomic<int64_t> next{0};
  auto t0 = SteadyClock::now();
  const int64_t per = batched ? send_batch : 1;
  RunThreads(threads, [&](int) {
    for (int64_t first; (first = next.fetch_add(per)) < jobs;) {
      const int64_t now = ToUnixMillis(std::chrono::system_clock::now());
      if (!batched) {
        if (!pool->Exec(
                "INSERT INTO jobs (group_id, body, visible_at_ms) VALUES ($1, $2::bytea, $3)",
                {PgParam("user-" + std::to_string(first % groups)), PgParam(Body(first)),
                 PgParam(now)})) {
          ++errors;
        }
        continue;
      }
      std::vector<std::string> group_ids, bodies;
      for (int64_t i = first; i < std::min(jobs, first + per); ++i) {
        group_ids.push_back("user-" + std::to_string(i % groups));
        bodies.push_back(Body(i));
      }
      if (!pool->Exec("INSERT INTO jobs (group_id, body, visible_at_ms) SELECT g, convert_to(b, "
                      "'UTF8'), $3 FROM unnest($1::text[], $2::text[]) AS u(g, b)",
                      {PgParam(store::pg::TextArray(group_ids)),
                       PgParam(store::pg::TextArray(bodies)), PgParam(now)})) {
        ++errors;
      }
    }
  });
  auto t1 = SteadyClock::now();
  std::atomic<int64_t> done{0};
  RunThreads(threads, [&](int) {
    int empty = 0;
    while (done.load() < jobs && empty < 50) {
      const int64_t now = ToUnixMillis(std::chrono::system_clock::now());
      auto got = pool->Exec(
          "WITH c AS (SELECT id FROM jobs WHERE visible_at_ms <= $1 ORDER BY visible_at_ms, id "
          "LIMIT 10 FOR UPDATE SKIP LOCKED) UPDATE jobs j SET visible_at_ms = $2 FROM c "
          "WHERE j.id = c.id RETURNING j.id, j.group_id, j.body",
          {PgParam(now), PgParam(now + 90000)});
      if (!got) {
        ++errors;
        continue;
      }
      if (got->rows() == 0) {
        ++empty;
        std::this_thread::sleep_for(std::chrono::milliseconds{2});
        continue;
      }
      empty = 0;
      if (batched) {
        std::vector<int64_t> ids;
        for (int i = 0; i < got->rows(); ++i) ids.push_back(got->Int(i, 0));
        if (pool->Exec("DELETE FROM jobs WHERE id = ANY($1::bigint[])",
                       {PgParam(store::pg::IntArray(ids))})) {
          done += got->rows();
        } else {
          ++errors;
        }
        continue;
      }
      for (int i = 0; i < got->rows(); ++i) {
        if (pool->Exec("DELETE FROM jobs WHERE id = $1", {PgParam(got->Int(i, 0))})) {
          ++done;
        } else {
          ++errors;
        }
      }
    }
  });
  auto t2 = SteadyClock::now();
  const auto cpu1 = PostgresCpuSeconds(postmaster);
  f.send_s = Seconds(t1 - t0);
  f.drain_s = Seconds(t2 - t1);
  if (cpu0 && cpu1) f.pg_cpu_s = *cpu1 - *cpu0;
  f.errors = errors.load() + (jobs - done.load());
  DropSchema(*pool);
  return f;
}

double Rate(const Figures& f) { return static_cast<double>(f.jobs) / (f.send_s + f.drain_s); }

void Print(const char* name, const Figures& f) {
  std::printf("%-14s send %8.0f/s  receive+delete %8.0f/s  full cycle %8.0f jobs/s", name,
              static_cast<double>(f.jobs) / f.send_s, static_cast<double>(f.jobs) / f.drain_s,
              Rate(f));
  if (f.pg_cpu_s && *f.pg_cpu_s > 0) {
    std::printf("  postgres cpu %6.2f s = %8.0f jobs per cpu-second", *f.pg_cpu_s,
                static_cast<double>(f.jobs) / *f.pg_cpu_s);
  }
  std::printf("  errors %lld\n", static_cast<long long>(f.errors));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: %s <postgresql-url> [jobs=20000] [threads=8] [groups=jobs] "
                 "[send_batch=100]\n",
                 argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const int64_t jobs = argc > 2 ? std::max<int64_t>(10, std::atoll(argv[2])) : 20000;
  const int threads = argc > 3 ? std::max(1, std::atoi(argv[3])) : 8;
  const int64_t groups = argc > 4 ? std::max<int64_t>(1, std::atoll(argv[4])) : jobs;
  const int64_t batch = argc > 5 ? std::max<int64_t>(2, std::atoll(argv[5])) : 100;
  std::printf("jobs %lld, threads %d, groups %lld, send batch %lld\n", static_cast<long long>(jobs),
              threads, static_cast<long long>(groups), static_cast<long long>(batch));
  // One message per send (one commit each, as the API sends a job), then batches.
  const Figures raw = BenchRaw(url, jobs, threads, groups, /*batched=*/false, 1);
  Print("raw SQL", raw);
  const Figures q = BenchQueue(url, jobs, threads, groups, /*batched_acks=*/false, 1);
  Print("JobQueue", q);
  const Figures qb = BenchQueue(url, jobs, threads, groups, /*batched_acks=*/true, 1);
  Print("JobQueue b-ack", qb);
  const Figures rawb = BenchRaw(url, jobs, threads, groups, /*batched=*/true, batch);
  Print("raw SQL batch", rawb);
  const Figures qbb = BenchQueue(url, jobs, threads, groups, /*batched_acks=*/true, batch);
  Print("JobQueue batch", qbb);
  const auto ratio = [](const char* name, const Figures& f, const Figures& base) {
    std::printf("ratio %s: full cycle %.2f", name, Rate(f) / Rate(base));
    if (f.pg_cpu_s && base.pg_cpu_s && *f.pg_cpu_s > 0) {
      std::printf(", postgres cpu per job %.2fx", *f.pg_cpu_s / *base.pg_cpu_s);
    }
    std::printf("\n");
  };
  ratio("JobQueue / raw", q, raw);
  ratio("JobQueue b-ack / raw", qb, raw);
  ratio("JobQueue batch / raw batch", qbb, rawb);
  bool ok = true;
  for (const auto* f : {&raw, &q, &qb, &rawb, &qbb}) ok = ok && f->errors == 0;
  return ok ? 0 : 1;
}
