// SqliteDb / SqliteStore specifics beyond the Store contract: durability across reopen, schema
// migrations, group commit and savepoint isolation. The contract itself is in
// tests/conformance/store_suite.hpp.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache_aside.hpp"
#include "cache/caching_store.hpp"
#include "cache/in_process_cache.hpp"
#include "store/sqlite/page_cache.hpp"
#include "store/sqlite/sqlite_job_queue.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace syncwell::store {
namespace {

using namespace std::chrono_literals;

class SqliteStoreTest : public ::testing::Test {
 protected:
  SqliteStoreTest() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "syncwell-sqlite-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
  }
  ~SqliteStoreTest() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  SqliteSettings Settings() const { return SqliteSettings{.data_dir = dir_}; }
  std::string DbPath() const { return dir_ + "/syncwell.db"; }

  // A raw connection, independent of SqliteDb.
  int64_t CountRows(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(DbPath().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    int64_t n = -1;
    if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
  }
  void ExecRaw(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(DbPath().c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  static Job MakeJob(const std::string& user, const std::string& id) {
    Job j;
    j.id = JobId(id);
    j.user = UserId(user);
    j.source = ConnectionId("conn_s");
    j.destination = ConnectionId("conn_d");
    j.data_type = "workout";
    j.mode = "manual";
    j.priority = "medium";
    return j;
  }
  static queue::OutgoingMessage Msg(const std::string& user, const std::string& dedup) {
    queue::OutgoingMessage m;
    m.group_id = user;
    m.dedup_id = dedup;
    m.body = "{}";
    return m;
  }

  std::string dir_;
  ManualClock clock_;
};

TEST_F(SqliteStoreTest, AcknowledgedWritesSurviveReopen) {
  {
    SqliteStore store(Settings(), clock_);
    ASSERT_TRUE(store.Start().ok());
    ASSERT_TRUE(store.EnsureUser(UserId("u1"), Tier::kPro).ok());
    Connection c;
    c.id = ConnectionId("conn_1");
    c.user = UserId("u1");
    c.provider = "strava";
    c.access_token_sealed = "sealed";
    ASSERT_TRUE(store.CreateConnection(c).ok());
    ASSERT_TRUE(store.CreateJob(MakeJob("u1", "job_1"), Msg("u1", "d1"), nullptr).ok());
    ASSERT_TRUE(store.AddControlEvent("jwks_drop", "kid").ok());
    store.Stop();
  }
  SqliteStore store(Settings(), clock_);
  ASSERT_TRUE(store.Start().ok());
  SqliteJobQueue queue(store);
  EXPECT_EQ(store.GetUser(UserId("u1"))->tier, Tier::kPro);
  EXPECT_EQ(store.GetConnection(UserId("u1"), ConnectionId("conn_1"))->provider, "strava");
  EXPECT_TRUE(store.GetJob(UserId("u1"), JobId("job_1")).ok());
  EXPECT_EQ(store.ControlEventsAfter(0)->size(), 1u);
  auto stats = queue.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, 1);
  EXPECT_EQ(stats->enqueued_total, 1);
  // The dedup record survived too.
  EXPECT_TRUE(queue.Send(Msg("u1", "d1"))->deduplicated);
}

// A job the store creates (CreateJob or CreateJobAsync) notifies the registered wake-up (the
// long-poll signal of the SqliteJobQueue built on the store), so idle receivers start it at once
// rather than at their next recheck; a failed write notifies nothing.
TEST_F(SqliteStoreTest, CreatedJobsNotifyTheQueueWakeups) {
  SqliteStore store(Settings(), clock_);
  ASSERT_TRUE(store.Start().ok());
  queue::WakeupSignal wakeups;
  store.SetJobWakeups(&wakeups);
  const uint64_t start = wakeups.Current();
  ASSERT_TRUE(store.CreateJob(MakeJob("u1", "job_1"), Msg("u1", ""), nullptr).ok());
  EXPECT_EQ(wakeups.Current(), start + 1);
  std::promise<Status> done;
  auto fut = done.get_future();
  store.CreateJobAsync(MakeJob("u2", "job_2"), Msg("u2", ""), std::nullopt,
                       [&done](Status st) { done.set_value(std::move(st)); });
  ASSERT_TRUE(fut.get().ok());
  EXPECT_EQ(wakeups.Current(), start + 2);
  EXPECT_FALSE(store.CreateJob(MakeJob("u1", "job_1"), Msg("u1", ""), nullptr).ok());  // same id
  EXPECT_EQ(wakeups.Current(), start + 2);
  store.SetJobWakeups(nullptr);
  ASSERT_TRUE(store.CreateJob(MakeJob("u3", "job_3"), Msg("u3", ""), nullptr).ok());
  EXPECT_EQ(wakeups.Current(), start + 2);
  {
    SqliteJobQueue queue(store);  // registers its own signal ...
  }
  // ... and unregisters it when destroyed: creating jobs afterwards is safe (ASan would see it).
  ASSERT_TRUE(store.CreateJob(MakeJob("u4", "job_4"), Msg("u4", ""), nullptr).ok());
}

TEST_F(SqliteStoreTest, MigrationsAreAppliedOnceAndReopenIsIdempotent) {
  for (int i = 0; i < 3; ++i) {
    SqliteStore store(Settings(), clock_);
    ASSERT_TRUE(store.Start().ok());
    EXPECT_EQ(store.db().SchemaVersion(), SqliteDb::KnownSchemaVersion());
    store.Stop();
  }
  EXPECT_GE(SqliteDb::KnownSchemaVersion(), 1);
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM schema_migrations"), SqliteDb::KnownSchemaVersion());
  EXPECT_EQ(CountRows("SELECT MAX(version) FROM schema_migrations"),
            SqliteDb::KnownSchemaVersion());
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM queue_counters"), 2);  // seed rows not duplicated
}

TEST_F(SqliteStoreTest, RefusesDatabaseWithNewerSchema) {
  {
    SqliteStore store(Settings(), clock_);
    ASSERT_TRUE(store.Start().ok());
  }
  const int64_t future = SqliteDb::KnownSchemaVersion() + 1;
  ExecRaw("INSERT INTO schema_migrations(version, applied_at) VALUES(" + std::to_string(future) +
          ", 0)");
  SqliteStore store(Settings(), clock_);
  Status st = store.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kPermanent);
  EXPECT_NE(st.error().message.find("newer than this binary"), std::string::npos)
      << st.error().message;
  EXPECT_EQ(store.GetUser(UserId("u")).error().code, Errc::kUnavailable);
  EXPECT_EQ(CountRows("SELECT MAX(version) FROM schema_migrations"), future);
}

// Migration 6 re-keys the ledger by user first (as PostgreSQL does). A database written before
// it keeps every entry, pending and done, and reads them through the new key and index.
TEST_F(SqliteStoreTest, LedgerMigrationKeepsEveryEntry) {
  const UserId user("u1");
  const ConnectionId src("conn_s");
  const ConnectionId dst("conn_d");
  auto entry = [&](const std::string& record, LedgerState state) {
    LedgerEntry e;
    e.user = user;
    e.destination = dst;
    e.source = src;
    e.source_record_id = record;
    e.fingerprint = "fp-" + record;
    e.dest_record_id = state == LedgerState::kDone ? "dest-" + record : "";
    e.state = state;
    e.job = JobId("job_1");
    e.source_modified_ms = 42;
    return e;
  };
  {
    SqliteStore store(Settings(), clock_);
    ASSERT_TRUE(store.Start().ok());
    store.Stop();
  }
  // The ledger as migrations 3-5 left it, with rows written by a binary of that schema.
  ExecRaw(R"sql(
DROP TABLE sync_ledger;
CREATE TABLE sync_ledger(
  destination_id TEXT NOT NULL, source_id TEXT NOT NULL, source_record_id TEXT NOT NULL,
  fingerprint TEXT NOT NULL, dest_record_id TEXT NOT NULL, state TEXT NOT NULL,
  job_id TEXT NOT NULL, user_id TEXT NOT NULL, source_modified_ms INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY(destination_id, source_id, source_record_id, fingerprint)) WITHOUT ROWID;
CREATE INDEX sync_ledger_by_dest_record ON sync_ledger(destination_id, dest_record_id);
CREATE INDEX sync_ledger_by_source ON sync_ledger(source_id);
CREATE INDEX sync_ledger_by_user ON sync_ledger(user_id);
INSERT INTO sync_ledger VALUES
  ('conn_d', 'conn_s', 'r1', 'fp-r1', 'dest-r1', 'done', 'job_1', 'u1', 42, 7),
  ('conn_d', 'conn_s', 'r2', 'fp-r2', '', 'pending', 'job_1', 'u1', 42, 7);
DELETE FROM schema_migrations WHERE version >= 6;
)sql");
  SqliteStore store(Settings(), clock_);
  ASSERT_TRUE(store.Start().ok());
  EXPECT_EQ(store.db().SchemaVersion(), SqliteDb::KnownSchemaVersion());
  auto got = store.GetLedgerEntries(user, dst, src, {"r1", "r2", "r3"});
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].source_record_id, "r1");
  EXPECT_EQ((*got)[0].state, LedgerState::kDone);
  EXPECT_EQ((*got)[0].dest_record_id, "dest-r1");
  EXPECT_EQ((*got)[0].source_modified_ms, 42);
  EXPECT_EQ((*got)[1].source_record_id, "r2");
  EXPECT_EQ((*got)[1].state, LedgerState::kPending);
  auto own = store.OwnWrittenRecords(user, dst, {"dest-r1", "dest-r2", ""});
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(*own, std::vector<std::string>{"dest-r1"});
  // The pending intent turns done through the new key: one row, not two.
  SyncCommit c;
  c.done.push_back(entry("r2", LedgerState::kDone));
  ASSERT_TRUE(store.CommitSync(c).ok());
  EXPECT_EQ(*store.OwnWrittenRecords(user, dst, {"dest-r1", "dest-r2"}),
            (std::vector<std::string>{"dest-r1", "dest-r2"}));
  store.Stop();
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM sync_ledger"), 2);
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'sync_ledger' AND "
                      "type = 'index' AND name NOT LIKE 'sqlite_autoindex%'"),
            1);  // sync_ledger_own_writes only
}

TEST_F(SqliteStoreTest, RejectsBadSettings) {
  auto s = Settings();
  s.synchronous = "OFF";
  SqliteStore store(s, clock_);
  EXPECT_EQ(store.Start().error().code, Errc::kInvalidArgument);
  SqliteSettings empty;
  SqliteStore store2(empty, clock_);
  EXPECT_EQ(store2.Start().error().code, Errc::kInvalidArgument);
}

TEST_F(SqliteStoreTest, SynchronousNormalWorks) {
  auto s = Settings();
  s.synchronous = "NORMAL";
  SqliteStore store(s, clock_);
  ASSERT_TRUE(store.Start().ok());
  ASSERT_TRUE(store.EnsureUser(UserId("u"), Tier::kFree).ok());
}

TEST_F(SqliteStoreTest, GroupCommitManyConcurrentCreateJobs) {
  constexpr int kThreads = 64;
  constexpr int kPerThread = 200;
  SqliteStore store(Settings(), clock_);
  ASSERT_TRUE(store.Start().ok());
  SqliteJobQueue queue(store);
  const int64_t commits_before = store.db().CommittedTransactions();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string user = "user" + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = "job_" + std::to_string(t) + "_" + std::to_string(i);
        IdempotencyRecord idem;
        idem.user = UserId(user);
        idem.key = "key-" + id;
        idem.status_code = 202;
        if (!store.CreateJob(MakeJob(user, id), Msg(user, "dedup-" + id), &idem).ok()) ++failures;
      }
    });
  }
  // Readers run concurrently on the read pool while the writer commits.
  std::atomic<bool> writers_done{false};
  std::atomic<int> read_failures{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 6; ++r) {
    readers.emplace_back([&, r] {
      while (!writers_done.load()) {
        if (!queue.Stats().ok()) ++read_failures;
        auto j = store.GetJob(UserId("user" + std::to_string(r)),
                              JobId("job_" + std::to_string(r) + "_0"));
        if (!j.ok() && j.error().code != Errc::kNotFound) ++read_failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  writers_done = true;
  for (auto& th : readers) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(read_failures.load(), 0);
  const int64_t writes = int64_t{kThreads} * kPerThread;
  const int64_t commits = store.db().CommittedTransactions() - commits_before;
  std::printf("group commit: %lld writes in %lld commits (%.1f writes/commit)\n",
              static_cast<long long>(writes), static_cast<long long>(commits),
              static_cast<double>(writes) / static_cast<double>(commits));
  EXPECT_GT(commits, 0);
  EXPECT_LT(commits * 4, writes);  // far fewer commits than writes
  auto stats = queue.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, writes);
  EXPECT_EQ(stats->enqueued_total, writes);
  store.Stop();
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM jobs"), writes);
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM idempotency"), writes);
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM queue_messages"), writes);
}

// Holds the writer inside a closure until released, so later submissions share one batch.
struct WriterGate {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> release_f = release.get_future().share();
  SqliteDb::WriteFn Closure() {
    return [this](sqlite3*) -> Status {
      entered.set_value();
      release_f.wait();
      return {};
    };
  }
};

Status Insert(sqlite3* db, const std::string& table, int v) {
  Stmt s(db, "INSERT INTO " + table + "(v) VALUES(?)");
  s.Bind(1, v);
  return s.Exec();
}

TEST_F(SqliteStoreTest, FailingClosureRollsBackOnlyItselfWithinABatch) {
  SqliteStore store(Settings(), clock_);
  ASSERT_TRUE(store.Start().ok());
  SqliteDb& db = store.db();
  ASSERT_TRUE(db.Write([](sqlite3* c) { return ExecSql(c, "CREATE TABLE t(v INTEGER)"); }).ok());

  WriterGate gate;
  auto blocker = db.SubmitWrite(gate.Closure());
  gate.entered.get_future().wait();
  const int64_t commits_before = db.CommittedTransactions();
  auto a = db.SubmitWrite([](sqlite3* c) { return Insert(c, "t", 1); });
  auto b = db.SubmitWrite([](sqlite3* c) -> Status {
    if (Status st = Insert(c, "t", 2); !st.ok()) return st;  // written, then rolled back
    return MakeError(Errc::kConflict, "closure b fails");
  });
  auto bad_sql = db.SubmitWrite([](sqlite3* c) { return Insert(c, "no_such_table", 3); });
  auto d = db.SubmitWrite([](sqlite3* c) { return Insert(c, "t", 4); });
  gate.release.set_value();

  EXPECT_TRUE(blocker.get().ok());
  EXPECT_TRUE(a.get().ok());
  Status bst = b.get();
  ASSERT_FALSE(bst.ok());
  EXPECT_EQ(bst.error().code, Errc::kConflict);
  EXPECT_FALSE(bad_sql.get().ok());
  EXPECT_TRUE(d.get().ok());
  // The blocker's batch, then one batch for a, b, bad_sql and d.
  EXPECT_EQ(db.CommittedTransactions() - commits_before, 2);
  store.Stop();
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM t"), 2);
  EXPECT_EQ(CountRows("SELECT SUM(v) FROM t"), 5);  // 1 + 4
}

TEST_F(SqliteStoreTest, FailedCommitFailsEveryClosureOfTheBatch) {
  SqliteStore store(Settings(), clock_);
  ASSERT_TRUE(store.Start().ok());
  SqliteDb& db = store.db();
  ASSERT_TRUE(db.Write([](sqlite3* c) {
                  return ExecSql(c,
                                 "CREATE TABLE t(v INTEGER);"
                                 "CREATE TABLE parent(id INTEGER PRIMARY KEY);"
                                 "CREATE TABLE child(v INTEGER REFERENCES parent(id) "
                                 "DEFERRABLE INITIALLY DEFERRED)");
                }).ok());
  WriterGate gate;
  auto blocker = db.SubmitWrite(gate.Closure());
  gate.entered.get_future().wait();
  auto a = db.SubmitWrite([](sqlite3* c) { return Insert(c, "t", 1); });
  // A deferred foreign-key violation passes the statement and fails only at COMMIT.
  auto b = db.SubmitWrite([](sqlite3* c) { return Insert(c, "child", 42); });
  gate.release.set_value();
  EXPECT_TRUE(blocker.get().ok());
  Status ast = a.get();
  Status bst = b.get();
  EXPECT_FALSE(ast.ok());
  EXPECT_FALSE(bst.ok());
  EXPECT_NE(ast.error().message.find("group commit failed"), std::string::npos)
      << ast.error().message;
  // The writer recovers: the next write commits normally.
  EXPECT_TRUE(db.Write([](sqlite3* c) { return Insert(c, "t", 7); }).ok());
  store.Stop();
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM t"), 1);
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM child"), 0);
}

TEST_F(SqliteStoreTest, StopDrainsQueuedWritesThenRefusesNewOnes) {
  constexpr int kQueued = 100;
  SqliteStore store(Settings(), clock_);
  ASSERT_TRUE(store.Start().ok());
  SqliteDb& db = store.db();
  ASSERT_TRUE(db.Write([](sqlite3* c) { return ExecSql(c, "CREATE TABLE t(v INTEGER)"); }).ok());
  WriterGate gate;
  auto blocker = db.SubmitWrite(gate.Closure());
  gate.entered.get_future().wait();
  std::vector<std::future<Status>> futures;
  for (int i = 0; i < kQueued; ++i) {
    futures.push_back(db.SubmitWrite([i](sqlite3* c) { return Insert(c, "t", i); }));
  }
  std::thread stopper([&] { store.Stop(); });
  gate.release.set_value();
  stopper.join();
  EXPECT_TRUE(blocker.get().ok());
  for (auto& f : futures) EXPECT_TRUE(f.get().ok());
  EXPECT_EQ(db.Write([](sqlite3* c) { return Insert(c, "t", -1); }).error().code,
            Errc::kUnavailable);
  EXPECT_EQ(store.Ping().error().code, Errc::kUnavailable);
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM t"), kQueued);
}

TEST_F(SqliteStoreTest, ErrorsMapToErrc) {
  EXPECT_EQ(SqliteError(nullptr, SQLITE_BUSY, "x").code, Errc::kRetryable);
  EXPECT_EQ(SqliteError(nullptr, SQLITE_LOCKED, "x").code, Errc::kRetryable);
  EXPECT_EQ(SqliteError(nullptr, SQLITE_IOERR_FSYNC, "x").code, Errc::kUnavailable);
  EXPECT_EQ(SqliteError(nullptr, SQLITE_CONSTRAINT_PRIMARYKEY, "x").code, Errc::kAlreadyExists);
  EXPECT_EQ(SqliteError(nullptr, SQLITE_CONSTRAINT_UNIQUE, "x").code, Errc::kAlreadyExists);
  EXPECT_EQ(SqliteError(nullptr, SQLITE_CONSTRAINT_FOREIGNKEY, "x").code, Errc::kConflict);
  EXPECT_EQ(SqliteError(nullptr, SQLITE_CORRUPT, "x").code, Errc::kInternal);
}

TEST_F(SqliteStoreTest, PurgeIdempotencyWorksInBatchesAcrossManyRecords) {
  SqliteStore store(Settings(), clock_);
  ASSERT_TRUE(store.Start().ok());
  ASSERT_TRUE(store.EnsureUser(UserId("u"), Tier::kFree).ok());
  const int64_t old_ms = ToUnixMillis(clock_.Now() - std::chrono::hours{48});
  ASSERT_TRUE(
      store.db()
          .Write([&](sqlite3* c) -> Status {
            for (int i = 0; i < 2500; ++i) {
              Stmt s(
                  c,
                  "INSERT INTO idempotency(user_id, key, request_hash, status_code, response_body, "
                  "created_at) VALUES('u', ?, '', 200, '', ?)");
              s.Bind(1, "k" + std::to_string(i)).Bind(2, old_ms);
              if (Status st = s.Exec(); !st.ok()) return st;
            }
            return {};
          })
          .ok());
  const int64_t commits_before = store.db().CommittedTransactions();
  auto n = store.PurgeIdempotencyBefore(clock_.Now() - std::chrono::hours{24});
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2500);
  EXPECT_GE(store.db().CommittedTransactions() - commits_before, 3);  // 1000 + 1000 + 500
}

}  // namespace
}  // namespace syncwell::store

namespace syncwell::store {
namespace {

// The writer's WAL appends are coalesced by wal_buffer_vfs (one write per commit). Large commits
// (several MiB, sizes that are multiples of 128 KiB, which the unix VFS cannot take in one
// write), frames rewritten inside a transaction, concurrent readers and checkpoints must all
// still see exactly what was committed.
TEST_F(SqliteStoreTest, CoalescedWalWritesKeepLargeCommitsIntact) {
  auto settings = Settings();
  settings.wal_checkpoint_frames = 500;  // checkpoint often while writing
  {
    SqliteStore store(settings, clock_);
    ASSERT_TRUE(store.Start().ok());
    SqliteDb& db = store.db();
    ASSERT_TRUE(db.Write([](sqlite3* c) {
                    return ExecSql(c, "CREATE TABLE big(k INTEGER PRIMARY KEY, v BLOB)");
                  }).ok());
    for (int round = 0; round < 6; ++round) {
      ASSERT_TRUE(db.Write([round](sqlite3* c) -> Status {
                      // ~2-6 MiB in one commit; every row rewritten once (frame rewrite).
                      for (int i = 0; i < 2000 * (round % 3 + 1); ++i) {
                        std::string sql = "INSERT OR REPLACE INTO big(k, v) VALUES(" +
                                          std::to_string(i) + ", randomblob(" +
                                          std::to_string(900 + round) + "))";
                        if (Status st = ExecSql(c, sql.c_str()); !st.ok()) return st;
                      }
                      return ExecSql(c, "UPDATE big SET v = zeroblob(1000) WHERE k % 7 = 0");
                    }).ok())
          << round;
      auto n = db.Read([](sqlite3* c) -> Result<int64_t> {
        sqlite3_stmt* s = nullptr;
        sqlite3_prepare_v2(c, "SELECT COUNT(*) FROM big", -1, &s, nullptr);
        sqlite3_step(s);
        int64_t v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        return v;
      });
      ASSERT_TRUE(n.ok());
      EXPECT_GE(*n, 2000);
    }
    store.Stop();
  }
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM big"), 6000);
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM big WHERE length(v) = 1000 AND k % 7 = 0"), 858);
  sqlite3* c = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/syncwell.db").c_str(), &c), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(c, "PRAGMA integrity_check", -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "ok");
  sqlite3_finalize(s);
  sqlite3_close(c);
}

// The page-cache wrapper (page_cache.hpp): random keys split B-tree pages, and the balancer parks
// a page under the lock-byte page's number while it swaps two; through the wrapper that page lives
// at key 0 for the moment. Everything written must come out exactly as written: closures rolled
// back inside a batch (savepoints), checkpoints copying the pages to the main file, a reopen.
TEST_F(SqliteStoreTest, PageCacheWrapperKeepsSplitHeavyWritesIntact) {
  auto settings = Settings();
  settings.wal_checkpoint_frames = 300;  // checkpoint often while splitting
  {
    SqliteStore store(settings, clock_);
    ASSERT_TRUE(store.Start().ok());
    // The first SqliteDb installed it before SQLite initialised.
    ASSERT_TRUE(InstallSqlitePageCache());
    const int64_t moves_before = SqlitePageCacheTemporaryKeyMoves();
    SqliteDb& db = store.db();
    ASSERT_TRUE(db.Write([](sqlite3* c) {
                    return ExecSql(c,
                                   "CREATE TABLE r(k BLOB PRIMARY KEY, v INTEGER) WITHOUT ROWID");
                  }).ok());
    std::vector<std::future<Status>> writes;
    for (int i = 0; i < 800; ++i) {
      writes.push_back(db.SubmitWrite([i](sqlite3* c) -> Status {
        for (int j = 0; j < 25; ++j) {
          Stmt ins(c, "INSERT INTO r(k, v) VALUES(randomblob(16), ?)");
          if (Status st = ins.Bind(1, i).Exec(); !st.ok()) return st;
        }
        if (i % 5 == 4) return MakeError(Errc::kConflict, "rolled back on purpose");
        return {};
      }));
    }
    int failed = 0;
    for (auto& w : writes) failed += w.get().ok() ? 0 : 1;
    EXPECT_EQ(failed, 160);
    EXPECT_GT(SqlitePageCacheTemporaryKeyMoves(), moves_before);  // pages were parked and back
    store.Stop();
  }
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM r"), 640 * 25);
  EXPECT_EQ(CountRows("SELECT COUNT(*) FROM r WHERE v % 5 = 4"), 0);
  EXPECT_EQ(CountRows("SELECT COUNT(DISTINCT v) FROM r"), 640);
  SqliteStore reopened(settings, clock_);
  ASSERT_TRUE(reopened.Start().ok());
  auto check = reopened.db().Read([](sqlite3* c) -> Result<std::string> {
    Stmt q(c, "PRAGMA integrity_check");
    if (auto row = q.Step(); !row.ok() || !*row) return MakeError(Errc::kInternal, "no row");
    return q.Text(0);
  });
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(*check, "ok");
  reopened.Stop();
}

}  // namespace
}  // namespace syncwell::store

namespace syncwell::store {
namespace {

// Regression: checkpoints once ran on a connection that had never read the database, which
// SQLite treats as "not in WAL mode" (a no-op), so the WAL grew without bound. Under a steady
// stream of commits the WAL must stay bounded and the main file must receive the pages.
// Both checkpoint modes: the writer alone, and a background pass finished by the writer.
// Waits (bounded) until `pred` holds.
template <class Pred>
bool Eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// The writer reports commits by another connection (another process: `syncwell admin`), never
// its own: what lets the server's in-process cache drop what someone else changed.
TEST_F(SqliteStoreTest, CommitsByAnotherConnectionAreReported) {
  SqliteSettings s = Settings();
  s.external_write_check = 10ms;
  SqliteStore server(s, clock_);
  ASSERT_TRUE(server.Start().ok());
  std::atomic<int> reported{0};
  server.db().SetExternalWriteListener([&] { ++reported; });
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(server.EnsureUser(UserId("own-" + std::to_string(i)), Tier::kFree).ok());
  }
  std::this_thread::sleep_for(100ms);  // ten checks or so
  EXPECT_EQ(reported.load(), 0);
  EXPECT_EQ(server.db().ExternalWritesSeen(), 0);

  ExecRaw("UPDATE users SET tier = 'PRO' WHERE id = 'own-1'");
  EXPECT_TRUE(Eventually([&] { return reported.load() >= 1; }));
  EXPECT_EQ(server.db().ExternalWritesSeen(), reported.load());
  server.Stop();
}

// The embedded wiring (app/wiring.cpp, storage.embedded_cache): a CachingStore over the SQLite
// store, whose in-process cache is cleared when another process commits. A change made by
// another connection becomes visible through the cache; without the listener it would be served
// stale for the cache's TTL (15 minutes).
TEST_F(SqliteStoreTest, InProcessCacheIsClearedByAnotherProcessesCommit) {
  SqliteSettings s = Settings();
  s.external_write_check = 10ms;
  SqliteStore server(s, clock_);
  ASSERT_TRUE(server.Start().ok());
  cache::InProcessCache local(clock_);
  cache::CacheAside aside(local, nullptr, cache::CacheAsideSettings{.name = "config"});
  cache::CachingStore cached(server, aside, clock_, nullptr);
  server.db().SetExternalWriteListener([&] { local.Clear(); });

  const UserId user("alice");
  ASSERT_TRUE(cached.EnsureUser(user, Tier::kFree).ok());
  ASSERT_EQ(cached.GetUser(user)->tier, Tier::kFree);  // now cached
  ASSERT_EQ(cached.GetUser(user)->tier, Tier::kFree);
  ASSERT_GT(local.Stats().size, 0);

  ExecRaw("UPDATE users SET tier = 'PRO' WHERE id = 'alice'");  // "syncwell admin user --tier"
  EXPECT_TRUE(Eventually([&] {
    auto u = cached.GetUser(user);
    return u.ok() && u->tier == Tier::kPro;
  }));
  EXPECT_GE(local.Stats().clears, 1);
  server.Stop();
}

TEST_F(SqliteStoreTest, WalStaysBoundedUnderSteadyWrites) {
  for (const bool background : {false, true}) {
    SCOPED_TRACE(background ? "background checkpoints" : "writer checkpoints");
    std::filesystem::remove_all(dir_);
    auto settings = Settings();
    settings.wal_checkpoint_frames = 200;
    settings.background_checkpoints = background;
    SqliteStore store(settings, clock_);
    ASSERT_TRUE(store.Start().ok());
    SqliteDb& db = store.db();
    ASSERT_TRUE(db.Write([](sqlite3* c) {
                    return ExecSql(c, "CREATE TABLE w(k INTEGER PRIMARY KEY, v BLOB)");
                  }).ok());
    for (int i = 0; i < 800; ++i) {
      ASSERT_TRUE(db.Write([i](sqlite3* c) {
                      std::string sql =
                          "INSERT INTO w(k, v) VALUES(" + std::to_string(i) + ", randomblob(3000))";
                      return ExecSql(c, sql.c_str());
                    }).ok());
    }
    EXPECT_GT(db.Checkpoints(), 0);
    if (background) {
      EXPECT_GT(db.BackgroundCheckpoints(), 0);
      EXPECT_GT(db.BackgroundCheckpointNs(), 0);
    } else {
      EXPECT_EQ(db.BackgroundCheckpoints(), 0);
    }
    // The writer's time is accounted by phase (syncwell_sqlite_writer_*_seconds_total).
    const SqliteDb::WriterTime busy = db.WriterBusy();
    EXPECT_GT(busy.closures_ns, 0);
    EXPECT_GT(busy.commit_ns, 0);
    EXPECT_GT(busy.checkpoint_ns, 0);
    const auto wal = std::filesystem::file_size(dir_ + "/syncwell.db-wal");
    const auto main_file = std::filesystem::file_size(dir_ + "/syncwell.db");
    // 800 x 3 KB rows = ~2.4 MB of data; without checkpoints the WAL holds all of it and more.
    // (The writer takes over past 2x the threshold, so this holds however the threads run.)
    EXPECT_LT(wal, 1200u * 1024u) << "WAL " << wal << " bytes";
    EXPECT_GT(main_file, 1600u * 1024u) << "main file " << main_file << " bytes";
    store.Stop();
  }
}

}  // namespace
}  // namespace syncwell::store

// ---- the row cache (SqliteStore::EnableRowCache) ----
namespace syncwell::store {
namespace {

bool SameJob(const Job& a, const Job& b) {
  return a.id == b.id && a.user == b.user && a.source == b.source &&
         a.destination == b.destination && a.data_type == b.data_type && a.mode == b.mode &&
         a.priority == b.priority && a.start_date == b.start_date && a.end_date == b.end_date &&
         a.status == b.status && a.error == b.error && a.summary == b.summary &&
         a.created_at == b.created_at && a.updated_at == b.updated_at;
}

// What a store without the cache reads from the same file (a second SqliteStore: it only reads).
Job ReadBack(const SqliteSettings& s, const Clock& clock, const UserId& user, const JobId& id) {
  SqliteStore plain(s, clock);
  EXPECT_TRUE(plain.Start().ok());
  auto j = plain.GetJob(user, id);
  EXPECT_TRUE(j.ok());
  plain.Stop();
  return j.ok() ? *j : Job{};
}

// Every write of a cached row changes the cached copy exactly as the database: what the cache
// answers equals what a plain read of the file answers, after each step of a job's life.
TEST_F(SqliteStoreTest, RowCacheAnswersWhatTheDatabaseHoldsAfterEveryWrite) {
  SqliteStore store(Settings(), clock_);
  store.EnableRowCache(1024);
  ASSERT_TRUE(store.Start().ok());
  const UserId user("u1");
  Job job = MakeJob("u1", "job_1");
  clock_.Advance(std::chrono::microseconds(1234));  // not a whole millisecond
  ASSERT_TRUE(store.CreateJob(job, Msg("u1", "d1"), nullptr).ok());

  auto hit = store.GetJob(user, job.id);
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(store.GetRowCacheStats().jobs.hits, 1u);
  EXPECT_EQ(store.GetRowCacheStats().jobs.misses, 0u);
  EXPECT_TRUE(SameJob(*hit, ReadBack(Settings(), clock_, user, job.id)));
  EXPECT_EQ(store.GetJob(UserId("mallory"), job.id).error().code, Errc::kNotFound);

  clock_.Advance(5ms);
  ASSERT_TRUE(store.UpdateJobStatus(job.id, JobStatus::kRunning, "").ok());
  hit = store.GetJob(user, job.id);
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(hit->status, JobStatus::kRunning);
  EXPECT_TRUE(SameJob(*hit, ReadBack(Settings(), clock_, user, job.id)));

  // The cursor: created, then moved; each commit is what the next GetCursor answers.
  const SyncCursorKey key{user, job.source, job.destination, "workout"};
  SyncCommit first;
  first.cursor = SyncCommit::CursorUpdate{key, 0, 1000};
  ASSERT_TRUE(store.CommitSync(first).ok());
  auto cur = store.GetCursor(key);
  ASSERT_TRUE(cur.ok());
  EXPECT_EQ(cur->version, 1);
  EXPECT_EQ(cur->last_sync_ms, 1000);
  EXPECT_EQ(store.GetRowCacheStats().cursors.hits, 1u);

  // A stale compare-and-set fails and changes nothing, in the file or in memory.
  SyncCommit stale;
  stale.cursor = SyncCommit::CursorUpdate{key, 7, 5000};
  EXPECT_EQ(store.CommitSync(stale).error().code, Errc::kConflict);
  EXPECT_EQ(store.GetCursor(key)->last_sync_ms, 1000);

  // The job finishes with the cursor's move: the finished job leaves the cache, so the next
  // read (the worker's "already done" check) comes from the database.
  clock_.Advance(5ms);
  SyncCommit done;
  done.cursor = SyncCommit::CursorUpdate{key, 1, 2000};
  done.job = SyncCommit::JobUpdate{job.id, JobStatus::kSucceeded, "", "read 3"};
  ASSERT_TRUE(store.CommitSync(done).ok());
  cur = store.GetCursor(key);
  EXPECT_EQ(cur->version, 2);
  EXPECT_EQ(cur->last_sync_ms, 2000);
  const uint64_t misses = store.GetRowCacheStats().jobs.misses;
  hit = store.GetJob(user, job.id);
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(hit->status, JobStatus::kSucceeded);
  EXPECT_EQ(hit->summary, "read 3");
  EXPECT_EQ(store.GetRowCacheStats().jobs.misses, misses + 1);
  EXPECT_EQ(store.GetRowCacheStats().jobs.entries, 0u);

  // Purging the user drops its rows from memory too.
  ASSERT_TRUE(store.CreateJob(MakeJob("u1", "job_2"), Msg("u1", "d2"), nullptr).ok());
  ASSERT_TRUE(store.GetJob(user, JobId("job_2")).ok());
  ASSERT_TRUE(store.PurgeUser(user).ok());
  EXPECT_EQ(store.GetJob(user, JobId("job_2")).error().code, Errc::kNotFound);
  EXPECT_EQ(store.GetCursor(key).error().code, Errc::kNotFound);
  store.Stop();
}

// A closure that fails inside a group commit rolls back to its savepoint: what it reported for
// the cache is dropped with it, while its neighbours' changes land.
TEST_F(SqliteStoreTest, RowCacheDropsWhatARolledBackClosureReported) {
  SqliteStore store(Settings(), clock_);
  store.EnableRowCache(1024);
  ASSERT_TRUE(store.Start().ok());
  ASSERT_TRUE(store.CreateJob(MakeJob("u1", "job_1"), Msg("u1", "d1"), nullptr).ok());
  std::atomic<bool> hook_ran{false};
  auto failing = store.db().SubmitWrite([&](sqlite3*) -> Status {
    store.db().OnCommit([&] { hook_ran = true; });
    return MakeError(Errc::kConflict, "fails after reporting");
  });
  auto ok = store.db().SubmitWrite([&](sqlite3*) -> Status { return {}; });
  EXPECT_FALSE(failing.get().ok());
  EXPECT_TRUE(ok.get().ok());
  EXPECT_FALSE(hook_ran.load());
  // The same id again: the insert fails (primary key), the cached job is untouched.
  Job twin = MakeJob("u1", "job_1");
  twin.data_type = "steps";
  EXPECT_FALSE(store.CreateJob(twin, Msg("u1", "d9"), nullptr).ok());
  EXPECT_EQ(store.GetJob(UserId("u1"), JobId("job_1"))->data_type, "workout");
  store.Stop();
}

// A read that started before a commit must not put its older row back after the commit
// reported its change (RowCache::FillEpoch).
TEST(RowCacheTest, AReadOlderThanACommitIsNotKept) {
  RowCache<std::string, int> cache(64);
  const uint64_t epoch = cache.FillEpoch("k");  // a reader misses and starts its read
  cache.Put("k", 2);                            // a commit lands meanwhile
  cache.Fill("k", 1, epoch);                    // the reader's older row
  EXPECT_EQ(cache.Get("k"), 2);
  cache.Erase("k");
  const uint64_t later = cache.FillEpoch("k");
  cache.Fill("k", 3, later);  // nothing changed since: kept
  EXPECT_EQ(cache.Get("k"), 3);
  cache.Update("k", [](int& v) { v += 10; });
  EXPECT_EQ(cache.Get("k"), 13);
  cache.Update("absent", [](int& v) { v = 99; });  // not cached: stays absent
  EXPECT_EQ(cache.Get("absent"), std::nullopt);
}

TEST(RowCacheTest, StaysWithinItsBound) {
  RowCache<std::string, int> cache(32);  // 2 per shard
  for (int i = 0; i < 1000; ++i) cache.Put("k" + std::to_string(i), i);
  EXPECT_LE(cache.GetStats().entries, 32u);
  EXPECT_GT(cache.GetStats().entries, 0u);
  RowCache<std::string, int> off(0);
  off.Put("k", 1);
  EXPECT_EQ(off.Get("k"), std::nullopt);
}

// `syncwell admin dlq redrive` in another process sets a FAILED job back to QUEUED, then makes
// its message visible. The server's worker must see QUEUED at once, not a cached FAILED (it would
// drop the redriven message as already done): finished jobs are never cached, whatever the
// external-write check's delay. Other rows another process changed are dropped by ClearRowCache
// from the external-write listener.
TEST_F(SqliteStoreTest, RowCacheNeverHidesAnotherProcessesRedrive) {
  SqliteSettings s = Settings();
  s.external_write_check = std::chrono::hours(1);  // the listener will not help here
  SqliteStore store(s, clock_);
  store.EnableRowCache(1024);
  ASSERT_TRUE(store.Start().ok());
  const UserId user("u1");
  ASSERT_TRUE(store.CreateJob(MakeJob("u1", "job_1"), Msg("u1", "d1"), nullptr).ok());
  ASSERT_TRUE(store.UpdateJobStatus(JobId("job_1"), JobStatus::kFailed, "boom").ok());
  EXPECT_EQ(store.GetJob(user, JobId("job_1"))->status, JobStatus::kFailed);
  ExecRaw("UPDATE jobs SET status = 'QUEUED', error = '' WHERE id = 'job_1'");
  EXPECT_EQ(store.GetJob(user, JobId("job_1"))->status, JobStatus::kQueued);

  // An unfinished job another process changed: served from memory until the owner clears it.
  ExecRaw("UPDATE jobs SET priority = 'high' WHERE id = 'job_1'");
  EXPECT_EQ(store.GetJob(user, JobId("job_1"))->priority, "medium");
  store.ClearRowCache();
  EXPECT_EQ(store.GetJob(user, JobId("job_1"))->priority, "high");
  store.Stop();
}

}  // namespace
}  // namespace syncwell::store
