// syncwell_queue_bench: full queue cycle (Send + Receive + Delete) of the embedded SqliteJobQueue
// in jobs/s, next to a raw-SQLite baseline measured in the same run, plus the process RSS while a
// large backlog sits in the queue. A benchmark: it prints figures, it never asserts on speed.
//
//   syncwell_queue_bench [--seconds S] [--groups 1,10,10000] [--sync FULL,NORMAL]
//                        [--producers N] [--consumers M] [--max-backlog B]
//                        [--baseline-seconds S] [--baseline-batch R]
//                        [--backlog N] [--backlog-seconds S] [--backlog-sync MODE]
//                        [--skip-backlog] [--skip-cycle] [--dir PARENT] [--acks batched|single]
//
// Every configuration runs on a fresh data directory under PARENT (default /tmp) with the
// production defaults of SqliteSettings (WAL, 1 KiB pages, group commit, coalesced WAL writes).
//
// Phases, in this order (the backlog first, so its RSS series starts from a clean process):
// 1. Backlog: enqueue up to --backlog messages (10,000 groups) in write closures of 1,000 sends
//    (SqliteQueueSendInTx, the code path of Send) from 4 threads, stopping early after
//    --backlog-seconds; RSS (VmRSS/VmHWM) every quarter; then 200 Receive(max 10) + Delete rounds
//    on one thread with their latencies.
// 2. Cycle: for each sync mode and group count, N producer threads Send (unique dedup id, group =
//    "user-<k>" round-robin) while M consumer threads Receive(max 10, 100 ms long poll) and
//    acknowledge what they got: with --acks batched (default, what the worker pool does) one
//    DeleteBatch per receive, with --acks single one Delete per message; producers pause while more
//    than --max-backlog messages are outstanding so the run measures a steady cycle, not a fill.
//    Reports completed cycles/s (Deletes), sends/s, send latency P50/P99, and writes per group
//    commit.
// 3. Baseline: raw sqlite3 on its own connection and file with the same page size (1024), WAL and
//    synchronous mode: each transaction inserts R rows (group, body of the same size) and deletes
//    the R rows inserted by the previous transaction; rows/s = rows inserted and deleted per
//    second. R = --baseline-batch (100) and also the mean writes per commit the queue achieved.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "queue/job_queue.hpp"
#include "store/sqlite/sqlite_job_queue.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using syncwell::Status;
using syncwell::queue::OutgoingMessage;
using syncwell::queue::ReceiveOptions;
using syncwell::store::SqliteJobQueue;
using syncwell::store::SqliteSettings;
using syncwell::store::SqliteStore;

struct Options {
  double seconds = 10;
  std::vector<int> groups{1, 10, 10000};
  std::vector<std::string> sync{"FULL", "NORMAL"};
  int producers = 8;
  int consumers = 8;
  int64_t max_backlog = 20000;
  double baseline_seconds = 5;
  int baseline_batch = 100;
  int64_t backlog = 1000000;
  double backlog_seconds = 120;
  std::string backlog_sync = "FULL";
  bool skip_backlog = false;
  bool skip_cycle = false;
  bool batched_acks = true;
  std::string parent = "/tmp";
};

double Secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::vector<std::string> SplitCsv(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    auto comma = s.find(',');
    out.emplace_back(s.substr(0, comma));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--skip-backlog") {
      o->skip_backlog = true;
    } else if (a == "--skip-cycle") {
      o->skip_cycle = true;
    } else if ((v = next()) == nullptr) {
      std::fprintf(stderr, "missing value for %s\n", argv[i]);
      return false;
    } else if (a == "--acks") {
      if (std::string_view(v) != "batched" && std::string_view(v) != "single") {
        std::fprintf(stderr, "--acks must be batched or single\n");
        return false;
      }
      o->batched_acks = std::string_view(v) == "batched";
    } else if (a == "--seconds") {
      o->seconds = std::atof(v);
    } else if (a == "--groups") {
      o->groups.clear();
      for (auto& g : SplitCsv(v)) o->groups.push_back(std::atoi(g.c_str()));
    } else if (a == "--sync") {
      o->sync = SplitCsv(v);
    } else if (a == "--producers") {
      o->producers = std::atoi(v);
    } else if (a == "--consumers") {
      o->consumers = std::atoi(v);
    } else if (a == "--max-backlog") {
      o->max_backlog = std::atoll(v);
    } else if (a == "--baseline-seconds") {
      o->baseline_seconds = std::atof(v);
    } else if (a == "--baseline-batch") {
      o->baseline_batch = std::atoi(v);
    } else if (a == "--backlog") {
      o->backlog = std::atoll(v);
    } else if (a == "--backlog-seconds") {
      o->backlog_seconds = std::atof(v);
    } else if (a == "--backlog-sync") {
      o->backlog_sync = v;
    } else if (a == "--dir") {
      o->parent = v;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return false;
    }
  }
  return true;
}

// VmRSS / VmHWM of this process in MiB, and VmRSS split into anonymous memory and mapped files
// (SQLite's WAL index, the -shm file, is a shared file mapping and counts in VmRSS).
struct Mem {
  double rss = 0, hwm = 0, anon = 0, file = 0, shmem = 0;
};
Mem Rss() {
  std::ifstream f("/proc/self/status");
  std::string line;
  Mem m;
  auto field = [&](const char* name, double* out) {
    size_t n = std::strlen(name);
    if (line.compare(0, n, name) == 0) *out = std::atof(line.c_str() + n) / 1024.0;
  };
  while (std::getline(f, line)) {
    field("VmRSS:", &m.rss);
    field("VmHWM:", &m.hwm);
    field("RssAnon:", &m.anon);
    field("RssFile:", &m.file);
    field("RssShmem:", &m.shmem);
  }
  return m;
}

void PrintMem(const char* label, const Mem& m, double elapsed) {
  std::printf("%-12s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", label, m.rss, m.hwm, m.anon, m.file,
              m.shmem, elapsed);
  std::fflush(stdout);
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return v[k];
}

std::string FreshDir(const Options& o, const std::string& tag) {
  std::string tmpl = o.parent + "/syncwell-qbench-" + tag + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  return tmpl;
}

// A job envelope of ids like the one the intake enqueues (never health data).
std::string Body(int64_t seq, const std::string& group) {
  char buf[160];
  int n = std::snprintf(buf, sizeof buf,
                        R"({"job_id":"job-%012lld","user_id":"%s","connection_id":"conn-1",)"
                        R"("kind":"sync","provider":"fitbit"})",
                        static_cast<long long>(seq), group.c_str());
  return std::string(buf, static_cast<size_t>(n));
}

OutgoingMessage Message(int64_t seq, int groups) {
  OutgoingMessage m;
  m.group_id = "user-" + std::to_string(seq % groups);
  m.dedup_id = "job-" + std::to_string(seq);
  m.body = Body(seq, m.group_id);
  return m;
}

// ---------------------------------------------------------------- full cycle

struct CycleResult {
  double cycles_per_s = 0;
  double sends_per_s = 0;
  double send_p50_ms = 0, send_p99_ms = 0;
  double writes_per_commit = 0;
  int64_t empty_receives = 0, receives = 0, errors = 0;
};

CycleResult RunCycle(const Options& o, const std::string& sync, int groups) {
  syncwell::SystemClock clock;
  std::string dir = FreshDir(o, "cycle");
  SqliteSettings s;
  s.data_dir = dir;
  s.synchronous = sync;
  SqliteStore store(s, clock);
  if (auto st = store.Start(); !st.ok()) {
    std::fprintf(stderr, "start failed: %s\n", st.error().message.c_str());
    std::exit(1);
  }
  SqliteJobQueue queue(store);

  std::atomic<bool> stop{false};
  std::atomic<int64_t> seq{0}, sent{0}, done{0}, empty{0}, receives{0}, errors{0};
  std::vector<std::vector<double>> lat(static_cast<size_t>(o.producers));
  std::vector<std::thread> threads;
  const int64_t commits0 = store.db().CommittedTransactions();
  const int64_t writes0 = store.db().CompletedWrites();
  const auto t0 = Clock::now();
  for (int p = 0; p < o.producers; ++p) {
    threads.emplace_back([&, p] {
      auto& my = lat[static_cast<size_t>(p)];
      while (!stop.load(std::memory_order_relaxed)) {
        if (sent.load() - done.load() >= o.max_backlog) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
        OutgoingMessage m = Message(seq.fetch_add(1), groups);
        auto t = Clock::now();
        auto r = queue.Send(m);
        my.push_back(Secs(Clock::now() - t) * 1e3);
        if (r.ok()) {
          sent.fetch_add(1);
        } else {
          errors.fetch_add(1);
        }
      }
    });
  }
  for (int c = 0; c < o.consumers; ++c) {
    threads.emplace_back([&] {
      ReceiveOptions ro;
      ro.max_messages = 10;
      ro.wait = std::chrono::milliseconds(100);
      while (!stop.load(std::memory_order_relaxed)) {
        auto r = queue.Receive(ro);
        receives.fetch_add(1);
        if (!r.ok()) {
          errors.fetch_add(1);
          continue;
        }
        if (r->empty()) empty.fetch_add(1);
        std::vector<Status> acked;
        if (o.batched_acks) {
          std::vector<std::string> receipts;
          for (auto& m : *r) receipts.push_back(m.receipt);
          if (!receipts.empty()) acked = queue.DeleteBatch(receipts);
        } else {
          for (auto& m : *r) acked.push_back(queue.Delete(m.receipt));
        }
        for (const auto& st : acked) {
          if (st.ok()) {
            done.fetch_add(1);
          } else {
            errors.fetch_add(1);
          }
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  const int64_t done_at_end = done.load(), sent_at_end = sent.load();
  const auto elapsed = Secs(Clock::now() - t0);
  const int64_t commits = store.db().CommittedTransactions() - commits0;
  const int64_t writes = store.db().CompletedWrites() - writes0;
  stop = true;
  for (auto& t : threads) t.join();
  store.Stop();
  std::error_code ec;
  fs::remove_all(dir, ec);

  CycleResult res;
  res.cycles_per_s = static_cast<double>(done_at_end) / elapsed;
  res.sends_per_s = static_cast<double>(sent_at_end) / elapsed;
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  res.send_p50_ms = Percentile(all, 0.50);
  res.send_p99_ms = Percentile(all, 0.99);
  res.writes_per_commit = commits > 0 ? static_cast<double>(writes) / commits : 0;
  res.empty_receives = empty.load();
  res.receives = receives.load();
  res.errors = errors.load();
  return res;
}

// ---------------------------------------------------------------- raw SQLite baseline

void Check(sqlite3* db, int rc, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    std::fprintf(stderr, "sqlite %s: %s\n", what, sqlite3_errmsg(db));
    std::exit(1);
  }
}

double RunBaseline(const Options& o, const std::string& sync, int batch) {
  std::string dir = FreshDir(o, "baseline");
  sqlite3* db = nullptr;
  Check(db, sqlite3_open((dir + "/baseline.db").c_str(), &db), "open");
  std::string pragmas =
      "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA synchronous=" + sync +
      "; CREATE TABLE t(id INTEGER PRIMARY KEY, grp TEXT NOT NULL, "
      "body BLOB NOT NULL);";
  Check(db, sqlite3_exec(db, pragmas.c_str(), nullptr, nullptr, nullptr), "pragmas");
  sqlite3_stmt* ins = nullptr;
  sqlite3_stmt* del = nullptr;
  Check(db,
        sqlite3_prepare_v2(db, "INSERT INTO t(id, grp, body) VALUES(?, ?, ?)", -1, &ins, nullptr),
        "prepare");
  Check(db, sqlite3_prepare_v2(db, "DELETE FROM t WHERE id = ?", -1, &del, nullptr), "prepare");
  int64_t next = 0, deleted = 0;
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(o.baseline_seconds));
  while (Clock::now() < end) {
    Check(db, sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), "begin");
    const int64_t first = next;
    for (int i = 0; i < batch; ++i, ++next) {
      std::string grp = "user-" + std::to_string(next % 10000);
      std::string body = Body(next, grp);
      sqlite3_bind_int64(ins, 1, next);
      sqlite3_bind_text(ins, 2, grp.data(), static_cast<int>(grp.size()), SQLITE_TRANSIENT);
      sqlite3_bind_blob(ins, 3, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
      Check(db, sqlite3_step(ins), "insert");
      sqlite3_reset(ins);
    }
    for (int64_t id = first - batch; id < first; ++id) {
      if (id < 0) continue;
      sqlite3_bind_int64(del, 1, id);
      Check(db, sqlite3_step(del), "delete");
      sqlite3_reset(del);
      ++deleted;
    }
    Check(db, sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), "commit");
  }
  const double elapsed = Secs(Clock::now() - t0);
  sqlite3_finalize(ins);
  sqlite3_finalize(del);
  sqlite3_close(db);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return static_cast<double>(deleted) / elapsed;
}

// ---------------------------------------------------------------- backlog memory

void RunBacklog(const Options& o) {
  const Mem m0 = Rss();
  std::printf("\n== backlog: up to %lld messages, 10,000 groups, synchronous=%s, budget %.0f s\n",
              static_cast<long long>(o.backlog), o.backlog_sync.c_str(), o.backlog_seconds);
  syncwell::SystemClock clock;
  std::string dir = FreshDir(o, "backlog");
  SqliteSettings s;
  s.data_dir = dir;
  s.synchronous = o.backlog_sync;
  SqliteStore store(s, clock);
  if (auto st = store.Start(); !st.ok()) {
    std::fprintf(stderr, "start failed: %s\n", st.error().message.c_str());
    std::exit(1);
  }
  SqliteJobQueue queue(store);
  const Mem m1 = Rss();
  std::printf("%-12s %9s %9s %9s %9s %9s %9s\n", "messages", "VmRSS", "VmHWM", "RssAnon", "RssFile",
              "RssShmem", "elapsed s");
  PrintMem("0 (no db)", m0, 0);
  PrintMem("0", m1, 0);

  constexpr int kChunk = 1000;
  constexpr int kThreads = 4;
  const int64_t quarter = std::max<int64_t>(o.backlog / 4, kChunk);
  std::atomic<int64_t> next{0}, enqueued{0}, next_mark{quarter};
  std::atomic<bool> out_of_time{false};
  std::mutex print_mu;
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(o.backlog_seconds));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        if (Clock::now() >= deadline) {
          out_of_time = true;
          return;
        }
        const int64_t first = next.fetch_add(kChunk);
        if (first >= o.backlog) return;
        const int64_t last = std::min<int64_t>(first + kChunk, o.backlog);
        const auto now = clock.Now();
        Status st = store.db().Write([&](sqlite3* db) -> Status {
          for (int64_t i = first; i < last; ++i) {
            auto r = syncwell::store::SqliteQueueSendInTx(db, Message(i, 10000), now,
                                                          std::chrono::seconds(300));
            if (!r.ok()) return r.error();
          }
          return {};
        });
        if (!st.ok()) {
          std::fprintf(stderr, "backlog write failed: %s\n", st.error().message.c_str());
          std::exit(1);
        }
        const int64_t total = enqueued.fetch_add(last - first) + (last - first);
        std::lock_guard lock(print_mu);
        while (total >= next_mark.load()) {
          PrintMem(std::to_string(next_mark.load()).c_str(), Rss(), Secs(Clock::now() - t0));
          next_mark += quarter;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double fill_s = Secs(Clock::now() - t0);
  PrintMem(std::to_string(enqueued.load()).c_str(), Rss(), fill_s);
  if (out_of_time) std::printf("(fill STOPPED BY THE TIME BUDGET)\n");
  std::printf("fill rate: %.0f messages/s (closures of %d sends, %d threads)\n",
              static_cast<double>(enqueued.load()) / fill_s, kChunk, kThreads);

  // Receive + Delete with the backlog in place.
  std::vector<double> recv_ms, del_ms;
  ReceiveOptions ro;
  ro.max_messages = 10;
  int64_t got = 0;
  for (int round = 0; round < 200; ++round) {
    auto t = Clock::now();
    auto r = queue.Receive(ro);
    recv_ms.push_back(Secs(Clock::now() - t) * 1e3);
    if (!r.ok()) {
      std::fprintf(stderr, "receive failed: %s\n", r.error().message.c_str());
      break;
    }
    for (auto& m : *r) {
      auto td = Clock::now();
      if (queue.Delete(m.receipt).ok()) ++got;
      del_ms.push_back(Secs(Clock::now() - td) * 1e3);
    }
  }
  auto stats = queue.Stats();
  std::printf(
      "receive(max 10)+delete with the backlog: %lld messages in 200 receives; receive P50 %.2f ms "
      "P99 %.2f ms; delete P50 %.2f ms P99 %.2f ms\n",
      static_cast<long long>(got), Percentile(recv_ms, 0.5), Percentile(recv_ms, 0.99),
      Percentile(del_ms, 0.5), Percentile(del_ms, 0.99));
  std::error_code ec;
  auto db_bytes = fs::file_size(store.db().path(), ec);
  if (ec) db_bytes = 0;
  auto wal_bytes = fs::file_size(store.db().path() + "-wal", ec);
  if (ec) wal_bytes = 0;
  std::printf("after the sample (MiB, columns as above):\n");
  PrintMem("sample", Rss(), Secs(Clock::now() - t0));
  std::printf(
      "visible %lld; db file %.0f MiB, wal file %.0f MiB; checkpoints: %lld by the writer, %lld "
      "background passes\n",
      stats.ok() ? static_cast<long long>(stats->visible) : -1LL,
      static_cast<double>(db_bytes) / (1024.0 * 1024.0),
      static_cast<double>(wal_bytes) / (1024.0 * 1024.0),
      static_cast<long long>(store.db().Checkpoints()),
      static_cast<long long>(store.db().BackgroundCheckpoints()));
  std::fflush(stdout);
  store.Stop();
  fs::remove_all(dir, ec);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) return 2;
  std::printf(
      "syncwell_queue_bench: %d producers, %d consumers, %.0f s per row, max backlog %lld, "
      "%s acks\n",
      o.producers, o.consumers, o.seconds, static_cast<long long>(o.max_backlog),
      o.batched_acks ? "batched" : "single");
  if (!o.skip_backlog) RunBacklog(o);
  if (o.skip_cycle) return 0;

  struct Row {
    std::string sync;
    int groups;
    CycleResult r;
  };
  std::vector<Row> rows;
  std::map<std::string, double> observed_batch;
  std::printf("\n== full cycle (Send; Receive max 10 + %s)\n",
              o.batched_acks ? "DeleteBatch of what it got" : "one Delete per message");
  std::printf("%-7s %7s %11s %10s %10s %10s %9s %12s %7s\n", "sync", "groups", "cycles/s",
              "sends/s", "send P50", "send P99", "wr/commit", "empty recv", "errors");
  for (const auto& sync : o.sync) {
    for (int g : o.groups) {
      CycleResult r = RunCycle(o, sync, g);
      rows.push_back({sync, g, r});
      observed_batch[sync] = std::max(observed_batch[sync], r.writes_per_commit);
      std::printf("%-7s %7d %11.0f %10.0f %7.2f ms %7.2f ms %9.1f %5lld/%-6lld %7lld\n",
                  sync.c_str(), g, r.cycles_per_s, r.sends_per_s, r.send_p50_ms, r.send_p99_ms,
                  r.writes_per_commit, static_cast<long long>(r.empty_receives),
                  static_cast<long long>(r.receives), static_cast<long long>(r.errors));
      std::fflush(stdout);
    }
  }

  std::printf("\n== baseline: raw SQLite insert + delete per row (WAL, page_size 1024)\n");
  std::map<std::string, double> base;
  for (const auto& sync : o.sync) {
    double b = RunBaseline(o, sync, o.baseline_batch);
    base[sync] = b;
    int obs = std::max(1, static_cast<int>(observed_batch[sync] + 0.5));
    double b2 = RunBaseline(o, sync, obs);
    std::printf(
        "%-7s %4d rows/txn: %10.0f rows/s   %4d rows/txn (queue's mean batch): %10.0f rows/s\n",
        sync.c_str(), o.baseline_batch, b, obs, b2);
    std::fflush(stdout);
  }

  std::printf("\n== summary (goal: >= 20,000 full cycles/s embedded)\n");
  for (const auto& row : rows) {
    double b = base[row.sync];
    std::printf("%-7s %6d groups: %8.0f cycles/s = %5.1f%% of baseline (%0.0f rows/s); goal %s\n",
                row.sync.c_str(), row.groups, row.r.cycles_per_s,
                b > 0 ? 100.0 * row.r.cycles_per_s / b : 0.0, b,
                row.r.cycles_per_s >= 20000 ? "met" : "NOT met");
  }
  if (std::find(o.groups.begin(), o.groups.end(), 1) != o.groups.end()) {
    std::printf(
        "note: with 1 group at most one message is in flight (SQS-FIFO rule), so that row is "
        "bounded by one Receive + Delete round trip at a time.\n");
  }
  return 0;
}
