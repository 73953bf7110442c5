// SyncEngine (SPEC S4) end to end against fake providers, on the in-memory store fake AND the
// SQLite adapter (every TEST_P runs on both). ManualClock; no sleeps (the single-flight test
// synchronises two threads on conditions).
#include "sync/sync_engine.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "fakes/fake_provider.hpp"
#include "fakes/in_memory_store.hpp"
#include "store/sqlite/sqlite_job_queue.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "support/temp_dir.hpp"

namespace syncwell::sync {
namespace {

using namespace std::chrono_literals;
using providers::DataType;
using providers::Record;
using providers::RecordMeta;

constexpr int64_t kMin = 60'000;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;

class FakeLimiter final : public ratelimit::RateLimiter {
 public:
  bool Available() const override { return available; }
  Result<ratelimit::Decision> TryAcquire(std::string_view provider, std::string_view, Priority,
                                         int64_t) override {
    std::lock_guard lock(mu);
    if (!available) return MakeError(Errc::kUnavailable, "down");
    ++acquired[std::string(provider)];
    if (grants_left == 0) return ratelimit::Decision{false, 5000ms};
    if (grants_left > 0) --grants_left;
    return ratelimit::Decision{true, 0ms};
  }
  Status RecordRetryAfter(std::string_view provider, std::string_view, Duration d) override {
    std::lock_guard lock(mu);
    retry_after[std::string(provider)] = d;
    return {};
  }
  int Acquired(const std::string& p) {
    std::lock_guard lock(mu);
    return acquired[p];
  }
  std::atomic<bool> available{true};
  int grants_left = -1;  // -1 = unlimited
  std::mutex mu;
  std::map<std::string, int> acquired;
  std::map<std::string, Duration> retry_after;
};

struct SimulatedCrash {};

enum class Backend { kInMemory, kSqlite };

class SyncEngineTest : public ::testing::TestWithParam<Backend> {
 protected:
  SyncEngineTest()
      : box_(*secrets::SecretBox::FromKeys({{"k1", std::string(32, 'k')}})),
        breakers_(CircuitBreakerSettings{}, clock_, metrics_) {
    if (GetParam() == Backend::kInMemory) {
      fake_ = std::make_unique<fakes::InMemoryStore>(clock_);
      store_ = fake_.get();
    } else {
      dir_ = test_support::MakeTempDir("sync-engine");
      store::SqliteSettings s;
      s.data_dir = dir_;
      s.synchronous = "NORMAL";
      sqlite_ = std::make_unique<store::SqliteStore>(s, clock_);
      if (auto st = sqlite_->Start(); !st.ok()) throw std::runtime_error(st.error().message);
      store_ = sqlite_.get();
    }
    auto fitbit = std::make_unique<fakes::FakeProvider>("fitbit", clock_);
    auto garmin = std::make_unique<fakes::FakeProvider>("garmin", clock_);
    fitbit_ = fitbit.get();
    garmin_ = garmin.get();
    registry_.Add(std::move(fitbit));
    registry_.Add(std::move(garmin));
    MakeEngine();
    AddUser("alice");
  }
  ~SyncEngineTest() override {
    engine_.reset();
    if (sqlite_) sqlite_->Stop();
    if (!dir_.empty() && !HasFailure()) std::filesystem::remove_all(dir_);
  }

  void MakeEngine(SyncEngineSettings s = {}) {
    engine_ = std::make_unique<SyncEngine>(*store_, registry_, box_, limiter_, breakers_, clock_,
                                           metrics_, s);
  }

  std::string Seal(const std::string& v) { return *box_.Seal(secrets::Secret(v)); }

  // A user with a Fitbit and a Garmin connection (provider user = "<provider>-<user>").
  void AddUser(const std::string& user) {
    ASSERT_TRUE(store_->EnsureUser(UserId(user), store::Tier::kPro).ok());
    for (const char* p : {"fitbit", "garmin"}) {
      store::Connection c;
      c.id = Conn(p, user);
      c.user = UserId(user);
      c.provider = p;
      c.provider_user_id = std::string(p) + "-" + user;
      c.access_token_sealed = Seal("access-0");
      c.refresh_token_sealed = Seal("refresh-0");
      ASSERT_TRUE(store_->CreateConnection(c).ok());
    }
  }
  static ConnectionId Conn(const std::string& provider, const std::string& user = "alice") {
    return ConnectionId("conn_" + provider + "_" + user);
  }
  static std::string PU(const std::string& provider, const std::string& user = "alice") {
    return provider + "-" + user;
  }

  store::Job MakeJob(const std::string& src, const std::string& dst,
                     const std::string& user = "alice", const std::string& type = "workout") {
    store::Job j;
    j.id = JobId("job_" + std::to_string(++seq_));
    j.user = UserId(user);
    j.source = Conn(src, user);
    j.destination = Conn(dst, user);
    j.data_type = type;
    j.mode = "manual";
    j.priority = "high";
    queue::OutgoingMessage m;
    m.group_id = user;
    m.dedup_id = j.id.str();
    m.body = R"({"jobId":")" + j.id.str() + R"("})";
    EXPECT_TRUE(store_->CreateJob(j, m, nullptr).ok());
    return j;
  }

  Result<SyncOutcome> RunJob(const store::Job& j) {
    worker::JobContext ctx;
    auto r = engine_->Run(j, ctx);
    status_committed_ = ctx.status_committed;
    return r;
  }
  bool status_committed_ = false;  // the last RunJob's JobContext::status_committed
  Result<SyncOutcome> Sync(const std::string& src, const std::string& dst,
                           const std::string& user = "alice") {
    return RunJob(MakeJob(src, dst, user));
  }

  int64_t NowMs() const { return ToUnixMillis(clock_.Now()); }

  // A workout starting `start_ago` ms before now, lasting 45 min, modified a minute ago.
  Record Workout(const std::string& id, int64_t start_ago, const std::string& name = "Run",
                 int64_t duration = 45 * kMin) {
    Record r;
    r.meta.id = id;
    r.meta.type = DataType::kWorkout;
    r.meta.start_ms = NowMs() - start_ago;
    r.meta.end_ms = r.meta.start_ms + duration;
    r.meta.modified_ms = NowMs() - kMin;
    r.meta.activity = "run";
    r.data = providers::WorkoutData{name, 5000, 400, 150};
    return r;
  }

  // Source fingerprints found at the destination (origin tags), with multiplicity.
  std::map<std::string, int> OriginsAt(fakes::FakeProvider& p, const std::string& user = "alice") {
    std::map<std::string, int> out;
    for (const auto& r : p.All(PU(std::string(p.name()), user), DataType::kWorkout)) {
      ++out[r.meta.origin];
    }
    return out;
  }

  std::vector<store::LedgerEntry> Ledger(const std::vector<std::string>& ids,
                                         const std::string& src = "fitbit",
                                         const std::string& dst = "garmin") {
    return *store_->GetLedgerEntries(UserId("alice"), Conn(dst), Conn(src), ids);
  }

  // Store mutations (write avoidance): group-committed closures for SQLite.
  int64_t Writes() { return fake_ ? fake_->MutationCount() : sqlite_->db().CompletedWrites(); }

  ManualClock clock_;
  std::string dir_;
  std::unique_ptr<fakes::InMemoryStore> fake_;
  std::unique_ptr<store::SqliteStore> sqlite_;
  store::Store* store_ = nullptr;
  providers::ProviderRegistry registry_;
  fakes::FakeProvider* fitbit_ = nullptr;
  fakes::FakeProvider* garmin_ = nullptr;
  secrets::SecretBox box_;
  FakeLimiter limiter_;
  obs::Registry metrics_;
  CircuitBreakers breakers_;
  std::unique_ptr<SyncEngine> engine_;
  int seq_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Stores, SyncEngineTest,
                         ::testing::Values(Backend::kInMemory, Backend::kSqlite),
                         [](const auto& info) {
                           return info.param == Backend::kInMemory ? "InMemory" : "Sqlite";
                         });

TEST_P(SyncEngineTest, FirstSyncWritesAllThenARerunWritesNothing) {
  std::vector<Record> src = {Workout("f1", 3 * kDay), Workout("f2", 2 * kDay),
                             Workout("f3", 1 * kDay)};
  for (const auto& r : src) fitbit_->Put(PU("fitbit"), r);

  auto job = MakeJob("fitbit", "garmin");
  auto out = RunJob(job);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->written, 3);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 3u);
  // Every written record carries the origin tag of its source content.
  auto origins = OriginsAt(*garmin_);
  for (const auto& r : src) EXPECT_EQ(origins[providers::OriginTag(providers::Fingerprint(r))], 1);
  // Ledger rows done, cursor at the window end, job SUCCEEDED with a summary.
  auto rows = Ledger({"f1", "f2", "f3"});
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& e : rows) {
    EXPECT_EQ(e.state, store::LedgerState::kDone);
    EXPECT_FALSE(e.dest_record_id.empty());
    EXPECT_EQ(e.job, job.id);
  }
  auto cursor = store_->GetCursor({UserId("alice"), Conn("fitbit"), Conn("garmin"), "workout"});
  ASSERT_TRUE(cursor.ok());
  EXPECT_EQ(cursor->last_sync_ms, NowMs());
  EXPECT_EQ(cursor->version, 1);
  auto stored = store_->GetJob(UserId("alice"), job.id);
  EXPECT_EQ(stored->status, store::JobStatus::kSucceeded);
  EXPECT_EQ(stored->summary, "written 3, skipped 0");
  EXPECT_TRUE(status_committed_);  // so the worker does not write SUCCEEDED again

  // The records are still inside the next window (modified a minute ago): the ledger says done.
  clock_.Advance(5min);
  auto again = Sync("fitbit", "garmin");
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->written, 0);
  EXPECT_EQ(again->skipped.at("already_synced"), 3);
  EXPECT_EQ(garmin_->calls("push_data"), 1);
  EXPECT_EQ(fitbit_->calls("fetch_payloads"), 1);  // nothing hydrated the second time
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 3u);
  EXPECT_EQ(
      store_->GetCursor({UserId("alice"), Conn("fitbit"), Conn("garmin"), "workout"})->last_sync_ms,
      NowMs());
}

// A source that lists one measurement twice under two ids (same type, times and values): it is
// written once, and both ids are ledgered with that destination record, so no later job writes
// the twin either. Seen in the demo with two weights appended in the same second.
TEST_P(SyncEngineTest, IdenticalSourceRecordsAreWrittenOnce) {
  fitbit_->Put(PU("fitbit"), Workout("f1", 1 * kDay));
  fitbit_->Put(PU("fitbit"), Workout("f2", 1 * kDay));  // the same content, another id
  fitbit_->Put(PU("fitbit"), Workout("f3", 2 * kDay));
  auto out = Sync("fitbit", "garmin");
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->written, 2);
  EXPECT_EQ(out->skipped.at("identical"), 1);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 2u);
  auto rows = Ledger({"f1", "f2"});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].state, store::LedgerState::kDone);
  EXPECT_EQ(rows[1].state, store::LedgerState::kDone);
  EXPECT_EQ(rows[0].dest_record_id, rows[1].dest_record_id);

  clock_.Advance(5min);
  auto again = Sync("fitbit", "garmin");
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->written, 0);
  EXPECT_EQ(again->skipped.at("already_synced"), 3);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 2u);
}

// The worker pool reads a job's connections once and hands them over in JobContext::connections;
// the engine opens its sessions from those instead of reading them again. Shown by a handed-over
// copy that differs from the store (marked needs_reauth): the job then fails as revoked, which a
// re-read (active) would not. A copy of another user's connection is never used.
TEST_P(SyncEngineTest, UsesTheConnectionsTheWorkerLoaded) {
  fitbit_->Put(PU("fitbit"), Workout("f1", 1 * kDay));
  auto source = store_->GetConnection(UserId("alice"), Conn("fitbit"));
  ASSERT_TRUE(source.ok());

  store::Connection other_user = *source;
  other_user.user = UserId("mallory");
  other_user.status = store::ConnectionStatus::kNeedsReauth;
  worker::JobContext ignored;
  ignored.connections = {other_user};
  auto ok = engine_->Run(MakeJob("fitbit", "garmin"), ignored);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->written, 1);

  store::Connection stale = *source;
  stale.status = store::ConnectionStatus::kNeedsReauth;
  worker::JobContext used;
  used.connections = {stale};
  auto revoked = engine_->Run(MakeJob("fitbit", "garmin"), used);
  ASSERT_FALSE(revoked.ok());
  EXPECT_EQ(revoked.error().code, Errc::kAuthRevoked) << revoked.error().message;
}

TEST_P(SyncEngineTest, ReverseSyncWritesNothingBack) {
  for (auto r : {Workout("f1", 3 * kDay), Workout("f2", 2 * kDay)}) fitbit_->Put(PU("fitbit"), r);
  ASSERT_TRUE(Sync("fitbit", "garmin").ok());
  // The user deleted the originals at Fitbit: without loop suppression the reverse sync would
  // copy our own writes back as "new" records.
  fitbit_->Remove(PU("fitbit"), DataType::kWorkout, "f1");
  fitbit_->Remove(PU("fitbit"), DataType::kWorkout, "f2");
  auto back = Sync("garmin", "fitbit");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->written, 0);
  EXPECT_EQ(back->skipped.at("own_origin"), 2);
  EXPECT_EQ(fitbit_->Count(PU("fitbit"), DataType::kWorkout), 0u);
  EXPECT_EQ(fitbit_->calls("push_data"), 0);
}

TEST_P(SyncEngineTest, ReverseSyncUsesTheLedgerWhenTheDestinationDropsOurOrigin) {
  garmin_->set_keep_origin(false);
  for (auto r : {Workout("f1", 3 * kDay), Workout("f2", 2 * kDay)}) fitbit_->Put(PU("fitbit"), r);
  ASSERT_TRUE(Sync("fitbit", "garmin").ok());
  fitbit_->Remove(PU("fitbit"), DataType::kWorkout, "f1");
  fitbit_->Remove(PU("fitbit"), DataType::kWorkout, "f2");
  auto back = Sync("garmin", "fitbit");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->written, 0);
  EXPECT_EQ(back->skipped.at("own_ledger"), 2);
  EXPECT_EQ(fitbit_->Count(PU("fitbit"), DataType::kWorkout), 0u);
}

TEST_P(SyncEngineTest, ConflictStrategiesEndToEnd) {
  // Per user: a source workout and a destination workout that overlap by 40 of 45 minutes.
  struct Case {
    std::string user;
    std::string how;  // "config:<strategy>" or "default:<strategy>"
    bool dest_newer;
    int64_t expect_written;
    std::string expect_skip;
  };
  const std::vector<Case> cases = {
      {"u_sw", "config:source_wins", true, 1, ""},
      {"u_dw", "config:dest_wins", false, 0, "dest_wins"},
      {"u_nw_src", "config:newest_wins", false, 1, ""},
      {"u_nw_dst", "config:newest_wins", true, 0, "newest_wins"},
      {"u_default_dw", "default:dest_wins", false, 0, "dest_wins"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.user);
    AddUser(c.user);
    const std::string strategy = c.how.substr(c.how.find(':') + 1);
    if (c.how.rfind("config:", 0) == 0) {
      store::SyncConfig cfg;
      cfg.id = SyncConfigId("cfg_" + c.user);
      cfg.user = UserId(c.user);
      cfg.source = Conn("fitbit", c.user);
      cfg.destination = Conn("garmin", c.user);
      cfg.data_type = "workout";
      cfg.conflict_strategy = strategy;
      ASSERT_TRUE(store_->CreateSyncConfig(cfg, nullptr).ok());
    } else {
      ASSERT_TRUE(store_
                      ->UpdateUserSettings(UserId(c.user),
                                           R"({"conflictResolutionStrategy":")" + strategy + "\"}",
                                           nullptr)
                      .ok());
    }
    Record s = Workout("f1", 2 * kDay);
    Record d = Workout("g-own", 2 * kDay - 5 * kMin, "Garmin run");
    (c.dest_newer ? d : s).meta.modified_ms = NowMs() - 30'000;
    (c.dest_newer ? s : d).meta.modified_ms = NowMs() - kHour;
    fitbit_->Put(PU("fitbit", c.user), s);
    garmin_->Put(PU("garmin", c.user), d);

    auto out = Sync("fitbit", "garmin", c.user);
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(out->written, c.expect_written);
    EXPECT_EQ(garmin_->Count(PU("garmin", c.user), DataType::kWorkout),
              static_cast<size_t>(1 + c.expect_written));
    if (!c.expect_skip.empty()) {
      EXPECT_EQ(out->skipped.at(c.expect_skip), 1);
      ASSERT_EQ(out->reasons.size(), 1u);
      EXPECT_EQ(out->reasons[0].source_id, "f1");
      EXPECT_NE(out->reasons[0].reason.find("g-own"), std::string::npos) << out->reasons[0].reason;
    }
  }
}

TEST_P(SyncEngineTest, PushFailingInTheMiddleThenRetryWritesEveryRecordExactlyOnce) {
  std::vector<Record> src;
  for (int i = 0; i < 4; ++i) src.push_back(Workout("f" + std::to_string(i), (4 - i) * kDay));
  for (const auto& r : src) fitbit_->Put(PU("fitbit"), r);
  garmin_->FailPushFrom(2, MakeError(Errc::kRetryable, "503 from garmin"));

  auto first = Sync("fitbit", "garmin");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code, Errc::kRetryable);
  EXPECT_FALSE(status_committed_);  // the successes were committed, the job's status was not
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 2u);
  // The two successes are done; the two failures are pending; the cursor did not move.
  int done = 0, pending = 0;
  for (const auto& e : Ledger({"f0", "f1", "f2", "f3"})) {
    (e.state == store::LedgerState::kDone ? done : pending)++;
  }
  EXPECT_EQ(done, 2);
  EXPECT_EQ(pending, 2);
  EXPECT_EQ(
      store_->GetCursor({UserId("alice"), Conn("fitbit"), Conn("garmin"), "workout"}).error().code,
      Errc::kNotFound);

  // At once, the failed pushes may still land (a timed-out request can be applied late): the
  // job is deferred, not failed, and writes nothing.
  auto early = Sync("fitbit", "garmin");
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code, Errc::kNotYet);
  EXPECT_GT(early.error().retry_after.count(), 0);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 2u);
  EXPECT_EQ(metrics_.GetCounter("syncwell_sync_writes_unsettled_total", "").Value(), 2u);

  clock_.Advance(SyncEngineSettings{}.write_settle);
  auto retry = Sync("fitbit", "garmin");
  ASSERT_TRUE(retry.ok()) << retry.error().message;
  EXPECT_EQ(retry->written, 2);
  EXPECT_EQ(retry->skipped.at("already_synced"), 2);
  auto origins = OriginsAt(*garmin_);
  EXPECT_EQ(origins.size(), 4u);
  for (const auto& r : src) EXPECT_EQ(origins[providers::OriginTag(providers::Fingerprint(r))], 1);
  EXPECT_GE(metrics_.GetCounter("syncwell_sync_records_failed_total", "").Value(), 2u);
}

TEST_P(SyncEngineTest, CrashBetweenPushAndCommitThenRetryWritesNothingTwice) {
  std::vector<Record> src = {Workout("f1", 3 * kDay), Workout("f2", 2 * kDay),
                             Workout("f3", 1 * kDay)};
  for (const auto& r : src) fitbit_->Put(PU("fitbit"), r);
  garmin_->after_push = [] { throw SimulatedCrash{}; };
  EXPECT_THROW((void)Sync("fitbit", "garmin"), SimulatedCrash);
  garmin_->after_push = nullptr;
  // The records are at the destination, the ledger only has intents, no cursor.
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 3u);
  for (const auto& e : Ledger({"f1", "f2", "f3"})) EXPECT_EQ(e.state, store::LedgerState::kPending);

  // The retry runs under source_wins (the destination read would normally be skipped): pending
  // rows force it, and the records found by their origin tag are completed without a push.
  auto retry = Sync("fitbit", "garmin");
  ASSERT_TRUE(retry.ok()) << retry.error().message;
  EXPECT_EQ(retry->written, 0);
  EXPECT_EQ(retry->recovered, 3);
  EXPECT_TRUE(retry->destination_read);
  EXPECT_EQ(garmin_->calls("push_data"), 1);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 3u);
  for (const auto& e : Ledger({"f1", "f2", "f3"})) {
    EXPECT_EQ(e.state, store::LedgerState::kDone);
    EXPECT_FALSE(e.dest_record_id.empty());
  }
  // And the reverse sync still recognises them (the recovered rows carry the destination ids).
  auto back = Sync("garmin", "fitbit");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->written, 0);
}

TEST_P(SyncEngineTest, CrashRecoveryWithoutOriginTagsUsesIdenticalRecords) {
  garmin_->set_keep_origin(false);
  for (auto r : {Workout("f1", 3 * kDay), Workout("f2", 2 * kDay)}) fitbit_->Put(PU("fitbit"), r);
  garmin_->after_push = [] { throw SimulatedCrash{}; };
  EXPECT_THROW((void)Sync("fitbit", "garmin"), SimulatedCrash);
  garmin_->after_push = nullptr;
  auto retry = Sync("fitbit", "garmin");
  ASSERT_TRUE(retry.ok()) << retry.error().message;
  EXPECT_EQ(retry->written, 0);
  EXPECT_EQ(retry->recovered, 2);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 2u);
}

TEST_P(SyncEngineTest, UnauthorizedRefreshesOnceAndRetries) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  fitbit_->SetTokens("access-rotated-elsewhere", "refresh-0");  // stored access token is stale
  auto out = Sync("fitbit", "garmin");
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->written, 1);
  EXPECT_EQ(fitbit_->refresh_calls(), 1);
  auto conn = store_->GetConnection(UserId("alice"), Conn("fitbit"));
  EXPECT_EQ(conn->token_version, 1);
  EXPECT_EQ(conn->status, store::ConnectionStatus::kActive);
  EXPECT_EQ(box_.Open(conn->access_token_sealed)->reveal(), fitbit_->access_token());
  EXPECT_EQ(box_.Open(conn->refresh_token_sealed)->reveal(), "fitbit-refresh-1");
  EXPECT_GT(conn->token_expires_at, clock_.Now());
  // The stored tokens never appear in clear in the store.
  EXPECT_EQ(conn->access_token_sealed.find(fitbit_->access_token()), std::string::npos);
  EXPECT_EQ(metrics_
                .GetCounter("syncwell_sync_token_refresh_total", "",
                            R"(provider="fitbit",outcome="refreshed")")
                .Value(),
            1u);
}

TEST_P(SyncEngineTest, ExpiringTokenIsRefreshedBeforeUse) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  auto conn = *store_->GetConnection(UserId("alice"), Conn("fitbit"));
  ASSERT_TRUE(store_
                  ->UpdateConnectionTokens(UserId("alice"), Conn("fitbit"),
                                           conn.access_token_sealed, conn.refresh_token_sealed,
                                           clock_.Now() + 1min, 0)
                  .ok());
  auto out = Sync("fitbit", "garmin");
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(fitbit_->refresh_calls(), 1);
  EXPECT_EQ(store_->GetConnection(UserId("alice"), Conn("fitbit"))->token_version, 2);
}

TEST_P(SyncEngineTest, RefreshInvalidGrantMarksNeedsReauthAndFailsAtOnce) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  fitbit_->SetTokens("access-new", "refresh-new");  // our refresh token was revoked
  auto out = Sync("fitbit", "garmin");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kAuthRevoked);
  EXPECT_EQ(out.error().message.find("refresh-0"), std::string::npos);  // no token in errors
  EXPECT_EQ(store_->GetConnection(UserId("alice"), Conn("fitbit"))->status,
            store::ConnectionStatus::kNeedsReauth);
  EXPECT_EQ(garmin_->calls("push_data"), 0);
}

TEST_P(SyncEngineTest, UnauthorizedAfterASuccessfulRefreshIsRevoked) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  fitbit_->RejectAllTokens(true);
  auto out = Sync("fitbit", "garmin");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kAuthRevoked);
  EXPECT_EQ(fitbit_->refresh_calls(), 1);
  EXPECT_EQ(store_->GetConnection(UserId("alice"), Conn("fitbit"))->status,
            store::ConnectionStatus::kNeedsReauth);
}

TEST_P(SyncEngineTest, ConcurrentJobsOfOneConnectionShareOneRefresh) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  fitbit_->SetTokens("access-rotated-elsewhere", "refresh-0");
  // Both jobs reach the provider with the stale token before either refreshes...
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  fitbit_->before_call = [&](std::string_view op) {
    if (op != "fetch_metadata") return;
    std::unique_lock lock(mu);
    if (++arrived <= 2) {
      cv.notify_all();
      cv.wait_for(lock, 10s, [&] { return arrived >= 2; });
    }
  };
  // ... and the refresh in flight waits until the second job is waiting for it.
  fitbit_->on_refresh = [&] {
    for (int i = 0; i < 100'000 && engine_->sessions().refresh_waiters() < 2; ++i) {
      std::this_thread::yield();
    }
  };
  auto workout = MakeJob("fitbit", "garmin", "alice", "workout");
  auto sleep = MakeJob("fitbit", "garmin", "alice", "sleep_session");
  Result<SyncOutcome> a = MakeError(Errc::kInternal, "not run");
  Result<SyncOutcome> b = MakeError(Errc::kInternal, "not run");
  std::thread t1([&] { a = RunJob(workout); });
  std::thread t2([&] { b = RunJob(sleep); });
  t1.join();
  t2.join();
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(fitbit_->refresh_calls(), 1);
  EXPECT_EQ(store_->GetConnection(UserId("alice"), Conn("fitbit"))->token_version, 1);
  EXPECT_EQ(metrics_
                .GetCounter("syncwell_sync_token_refresh_total", "",
                            R"(provider="fitbit",outcome="adopted")")
                .Value(),
            1u);
  EXPECT_EQ(a->written, 1);
}

TEST_P(SyncEngineTest, OpenCircuitFailsFastWithoutCallingTheProvider) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  auto& breaker = breakers_.For("fitbit");
  for (int i = 0; i < 20; ++i) breaker.Record(true, 10ms);
  ASSERT_EQ(breaker.state(), CircuitState::kOpen);
  auto out = Sync("fitbit", "garmin");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kRetryable);
  EXPECT_NE(out.error().message.find("circuit open"), std::string::npos);
  EXPECT_EQ(fitbit_->calls("fetch_metadata"), 0);
}

TEST_P(SyncEngineTest, ProviderFailuresFeedTheCircuitBreaker) {
  fitbit_->FailNext("fetch_metadata", MakeError(Errc::kRetryable, "503"), 20);
  for (int i = 0; i < 20; ++i) {
    auto out = Sync("fitbit", "garmin");
    ASSERT_FALSE(out.ok());
  }
  EXPECT_EQ(breakers_.For("fitbit").state(), CircuitState::kOpen);
  EXPECT_EQ(breakers_.For("garmin").state(), CircuitState::kClosed);
}

TEST_P(SyncEngineTest, RateLimiterRefusalDefersTheJob) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  limiter_.grants_left = 0;
  auto out = Sync("fitbit", "garmin");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kRateLimited);
  EXPECT_EQ(out.error().retry_after, 5000ms);
  // The first source call used the pool's token; the hydrate call asked and was refused.
  EXPECT_EQ(fitbit_->calls("fetch_metadata"), 1);
  EXPECT_EQ(fitbit_->calls("fetch_payloads"), 0);
  EXPECT_EQ(limiter_.Acquired("fitbit"), 1);
  EXPECT_EQ(garmin_->calls("push_data"), 0);
  EXPECT_TRUE(Ledger({"f1"}).empty());

  limiter_.grants_left = -1;
  limiter_.available = false;  // safe mode
  out = Sync("fitbit", "garmin");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kRateLimited);
  EXPECT_NE(out.error().message.find("safe mode"), std::string::npos);
  EXPECT_EQ(fitbit_->calls("fetch_payloads"), 0);
}

TEST_P(SyncEngineTest, ProviderRateLimitIsReportedToTheLimiter) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  Error e = MakeError(Errc::kRateLimited, "429");
  e.retry_after = 42s;
  garmin_->FailNext("push_data", e);
  auto out = Sync("fitbit", "garmin");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kRateLimited);
  EXPECT_EQ(out.error().retry_after, 42s);
  EXPECT_EQ(limiter_.retry_after["garmin"], 42s);
  // The intent stays pending; the retry, once it has settled, pushes it once.
  clock_.Advance(SyncEngineSettings{}.write_settle);
  auto retry = Sync("fitbit", "garmin");
  ASSERT_TRUE(retry.ok()) << retry.error().message;
  EXPECT_EQ(retry->written, 1);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 1u);
}

TEST_P(SyncEngineTest, MaxRecordsPerJobContinuesInTheNextJob) {
  SyncEngineSettings settings;
  settings.max_records_per_job = 2;
  MakeEngine(settings);
  for (auto r : {Workout("f1", 3 * kDay), Workout("f2", 2 * kDay), Workout("f3", kDay)}) {
    fitbit_->Put(PU("fitbit"), r);
  }
  auto job = MakeJob("fitbit", "garmin");
  auto first = RunJob(job);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->written, 2);
  EXPECT_TRUE(first->more);
  // The rest does not wait for the next trigger: a follow-up job of the same pair is queued.
  auto next = store_->GetJob(UserId("alice"), JobId(job.id.str() + ".next"));
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(next->status, store::JobStatus::kQueued);
  EXPECT_EQ(next->source, job.source);
  EXPECT_EQ(next->destination, job.destination);
  const store::SyncCursorKey key{UserId("alice"), Conn("fitbit"), Conn("garmin"), "workout"};
  EXPECT_EQ(store_->GetCursor(key)->last_sync_ms, NowMs() - kMin);  // the last one processed
  clock_.Advance(1min);
  auto second = Sync("fitbit", "garmin");
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->written, 1);
  EXPECT_FALSE(second->more);
  EXPECT_EQ(OriginsAt(*garmin_).size(), 3u);
  EXPECT_EQ(store_->GetCursor(key)->last_sync_ms, NowMs());
}

TEST_P(SyncEngineTest, CursorMovedConcurrentlyKeepsTheLedgerAndRetries) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  const store::SyncCursorKey key{UserId("alice"), Conn("fitbit"), Conn("garmin"), "workout"};
  // Another execution commits a cursor while this one is pushing.
  garmin_->after_push = [&] {
    store::SyncCommit other;
    other.cursor = store::SyncCommit::CursorUpdate{key, 0, NowMs() - kHour};
    ASSERT_TRUE(store_->CommitSync(other).ok());
  };
  auto job = MakeJob("fitbit", "garmin");
  auto out = RunJob(job);
  garmin_->after_push = nullptr;
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kRetryable);
  // What was pushed is committed as done (a retry never writes it again); the job is not
  // marked SUCCEEDED by this execution.
  auto rows = Ledger({"f1"});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, store::LedgerState::kDone);
  EXPECT_NE(store_->GetJob(UserId("alice"), job.id)->status, store::JobStatus::kSucceeded);
  auto retry = RunJob(job);
  ASSERT_TRUE(retry.ok()) << retry.error().message;
  EXPECT_EQ(retry->written, 0);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 1u);
  EXPECT_EQ(store_->GetCursor(key)->version, 2);
}

TEST_P(SyncEngineTest, ChangedSourceRecordIsResolvedAgainstOurEarlierCopy) {
  Record r = Workout("f1", kDay);
  fitbit_->Put(PU("fitbit"), r);
  ASSERT_TRUE(Sync("fitbit", "garmin").ok());
  clock_.Advance(5min);
  // Edited at the source (values only): our copy at the destination has the same times.
  r.data = providers::WorkoutData{"Run (edited)", 5200, 420, 151};
  r.meta.modified_ms = NowMs() - kMin;
  fitbit_->Put(PU("fitbit"), r);
  auto out = Sync("fitbit", "garmin");
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_TRUE(out->destination_read);  // forced even under source_wins
  EXPECT_EQ(out->written, 0);
  EXPECT_EQ(out->skipped.at("identical"), 1);
  // The user deleted our copy at the destination; a later touch of the source record (same
  // content) does not re-create it: the ledger knows that content was delivered.
  for (const auto& g : garmin_->All(PU("garmin"), DataType::kWorkout)) {
    garmin_->Remove(PU("garmin"), DataType::kWorkout, g.meta.id);
  }
  clock_.Advance(5min);
  Record first = Workout("f1", kDay + 10 * kMin);  // the original content and times
  first.meta.modified_ms = NowMs() - kMin;
  fitbit_->Put(PU("fitbit"), first);
  out = Sync("fitbit", "garmin");
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->written, 0);
  EXPECT_EQ(out->skipped.at("unchanged"), 1);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 0u);
}

TEST_P(SyncEngineTest, HydrationFailureWritesNothing) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  fitbit_->FailNext("fetch_payloads", MakeError(Errc::kRetryable, "timeout"));
  auto out = Sync("fitbit", "garmin");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kRetryable);
  EXPECT_EQ(garmin_->calls("push_data"), 0);
  EXPECT_TRUE(Ledger({"f1"}).empty());
}

TEST_P(SyncEngineTest, RecordGoneBeforeHydrationIsSkippedAndTheOthersWritten) {
  // Deleted at the source between the metadata call and the payload call: the job must not
  // fail (which would hold back its other records), and nothing is written for it.
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  fitbit_->Put(PU("fitbit"), Workout("f2", 2 * kDay));
  fitbit_->before_call = [&](std::string_view op) {
    if (op == "fetch_payloads") fitbit_->Remove(PU("fitbit"), DataType::kWorkout, "f1");
  };
  auto out = Sync("fitbit", "garmin");
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->written, 1);
  EXPECT_EQ(out->skipped.at("gone_at_source"), 1);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 1u);
  EXPECT_TRUE(Ledger({"f1"}).empty());
  EXPECT_EQ(Ledger({"f2"}).size(), 1u);
}

TEST_P(SyncEngineTest, EmptySourceOnlyMovesTheCursor) {
  const int64_t before = Writes();
  auto out = Sync("fitbit", "garmin");
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->fetched, 0);
  EXPECT_EQ(Writes() - before, 2);  // CreateJob + the one CommitSync
  const store::SyncCursorKey key{UserId("alice"), Conn("fitbit"), Conn("garmin"), "workout"};
  EXPECT_EQ(store_->GetCursor(key)->last_sync_ms, NowMs());
  EXPECT_EQ(garmin_->calls("fetch_metadata"), 0);
  EXPECT_EQ(fitbit_->calls("fetch_payloads"), 0);

  clock_.Advance(15min);
  auto job = MakeJob("fitbit", "garmin");
  const int64_t mid = Writes();
  ASSERT_TRUE(RunJob(job).ok());
  EXPECT_EQ(Writes() - mid, 1);
  auto cur = store_->GetCursor(key);
  EXPECT_EQ(cur->last_sync_ms, NowMs());
  EXPECT_EQ(cur->version, 2);
  EXPECT_EQ(store_->GetJob(UserId("alice"), job.id)->summary, "written 0, skipped 0");
}

// SPEC S4: ledger rows, cursor, job status and the queue delete in ONE transaction where the
// store keeps the queue in the same database (SQLite: Store::AcksInCommit). The worker then does
// not delete the message itself (JobContext::acked). Elsewhere the receipt is left alone.
TEST_P(SyncEngineTest, FinalCommitAlsoDeletesTheJobsQueueMessageWhereTheStoreCan) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  auto job = MakeJob("fitbit", "garmin");
  auto next = MakeJob("fitbit", "garmin");  // the same user's next job: same queue group
  worker::JobContext ctx;
  std::optional<store::SqliteJobQueue> queue;
  queue::WakeupSignal woken;  // stands in for the queue's: counts the store's wake-ups
  if (sqlite_) {
    queue.emplace(*sqlite_);
    sqlite_->SetJobWakeups(&woken);
    auto got = queue->Receive({.max_messages = 10});
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->size(), 1u);  // one at a time per user
    ctx.receipt = (*got)[0].receipt;
  } else {
    ctx.receipt = "receipt-of-another-queue";
  }
  const int64_t before = Writes();
  const uint64_t wakeups = woken.Current();
  ASSERT_TRUE(engine_->Run(job, ctx).ok());
  EXPECT_TRUE(ctx.status_committed);
  EXPECT_EQ(ctx.acked, store_->AcksInCommit());
  EXPECT_EQ(store_->GetJob(UserId("alice"), job.id)->status, store::JobStatus::kSucceeded);
  if (!sqlite_) return;
  EXPECT_TRUE(ctx.acked);
  EXPECT_EQ(Writes() - before, 2);      // the pending intents + the final commit; no Delete
  EXPECT_GT(woken.Current(), wakeups);  // idle receivers were told the next job is ready
  sqlite_->SetJobWakeups(nullptr);
  // The message is gone and the user's next job is receivable at once.
  auto after = queue->Receive({.max_messages = 10});
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 1u);
  EXPECT_NE((*after)[0].body.find(next.id.str()), std::string::npos);
  EXPECT_EQ(queue->Stats()->enqueued_total, 2);
  EXPECT_EQ(queue->Stats()->in_flight, 1);  // only `next`
}

TEST_P(SyncEngineTest, HistoricalJobSyncsItsRangeAndNeverMovesTheCursorBack) {
  // 2025-01-10, 2025-02-10 and 2025-03-10 at 07:00 UTC.
  auto at = [&](const std::string& id, const std::string& day) {
    int64_t ms = 0;
    EXPECT_TRUE(ParseJobDate(day + "T07:00:00Z", false, &ms));
    Record r = Workout(id, 0);
    r.meta.start_ms = ms;
    r.meta.end_ms = ms + 45 * kMin;
    r.meta.modified_ms = ms + kHour;
    return r;
  };
  for (auto r : {at("jan", "2025-01-10"), at("feb", "2025-02-10"), at("mar", "2025-03-10")}) {
    fitbit_->Put(PU("fitbit"), r);
  }
  ASSERT_TRUE(Sync("fitbit", "garmin").ok());  // incremental: 30 days back, nothing
  const store::SyncCursorKey key{UserId("alice"), Conn("fitbit"), Conn("garmin"), "workout"};
  const auto cursor = *store_->GetCursor(key);

  auto job = MakeJob("fitbit", "garmin");
  job.mode = "historical";
  job.start_date = "2025-02-01";
  job.end_date = "2025-02-28";
  auto out = RunJob(job);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->written, 1);
  auto at_garmin = garmin_->All(PU("garmin"), DataType::kWorkout);
  ASSERT_EQ(at_garmin.size(), 1u);
  EXPECT_EQ(at_garmin[0].meta.start_ms, at("x", "2025-02-10").meta.start_ms);
  auto after = *store_->GetCursor(key);
  EXPECT_EQ(after.last_sync_ms, cursor.last_sync_ms);
  EXPECT_EQ(after.version, cursor.version);

  // A bad range is permanent.
  auto bad = MakeJob("fitbit", "garmin");
  bad.mode = "historical";
  bad.start_date = "2025-02-30";
  bad.end_date = "2025-03-01";
  EXPECT_EQ(RunJob(bad).error().code, Errc::kPermanent);
}

TEST_P(SyncEngineTest, ConfidenceSkipsTheDestinationReadAfterTenEmptyReads) {
  ASSERT_TRUE(store_
                  ->UpdateUserSettings(UserId("alice"),
                                       R"({"conflictResolutionStrategy":"dest_wins"})", nullptr)
                  .ok());
  for (int i = 0; i < 12; ++i) {
    fitbit_->Put(PU("fitbit"), Workout("f" + std::to_string(i), kHour));
    auto out = Sync("fitbit", "garmin");
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(out->written, 1);
    EXPECT_EQ(out->destination_read, i < 11) << i;
    clock_.Advance(std::chrono::hours{48});
  }
  EXPECT_EQ(garmin_->calls("fetch_metadata"), 11);
  EXPECT_EQ(metrics_.GetCounter("syncwell_sync_destination_reads_skipped_total", "").Value(), 1u);
}

TEST_P(SyncEngineTest, SourceWinsSkipsTheDestinationRead) {
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay));
  auto out = Sync("fitbit", "garmin");
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(out->destination_read);
  EXPECT_EQ(garmin_->calls("fetch_metadata"), 0);
}

TEST_P(SyncEngineTest, DeviceBatchIsWrittenOnceAndNeverStored) {
  const ConnectionId device("conn_apple_alice");
  std::vector<Record> batch = {Workout("hk-1", 2 * kDay, "Secret Morning Run"),
                               Workout("hk-2", kDay, "Secret Evening Ride")};
  auto out =
      engine_->SyncDeviceBatch(UserId("alice"), device, Conn("garmin"), DataType::kWorkout, batch);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->written, 2);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 2u);
  // The same upload again: the ledger knows both (by fingerprint).
  auto again =
      engine_->SyncDeviceBatch(UserId("alice"), device, Conn("garmin"), DataType::kWorkout, batch);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->written, 0);
  EXPECT_EQ(again->skipped.at("already_synced"), 2);
  // An edit of the values only (same times): resolved against our own copy -> identical.
  batch[0].data = providers::WorkoutData{"Secret Morning Run", 5100, 410, 151};
  auto edited = engine_->SyncDeviceBatch(UserId("alice"), device, Conn("garmin"),
                                         DataType::kWorkout, {batch[0]});
  ASSERT_TRUE(edited.ok());
  EXPECT_EQ(edited->written, 0);
  EXPECT_EQ(edited->skipped.at("identical"), 1);
  EXPECT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 2u);
  // Bad input.
  EXPECT_EQ(
      engine_
          ->SyncDeviceBatch(UserId("alice"), device, Conn("garmin"), DataType::kSteps, {batch[0]})
          .error()
          .code,
      Errc::kInvalidArgument);
  EXPECT_EQ(engine_
                ->SyncDeviceBatch(UserId("alice"), device, Conn("garmin"), DataType::kWorkout,
                                  {batch[0], batch[0]})
                .error()
                .code,
            Errc::kInvalidArgument);
  // Another user's destination is not found (scoped), which fails the batch.
  AddUser("bob");
  EXPECT_EQ(engine_
                ->SyncDeviceBatch(UserId("bob"), device, Conn("garmin"), DataType::kWorkout,
                                  {Workout("hk-9", kDay)})
                .error()
                .code,
            Errc::kAuthRevoked);
}

TEST_P(SyncEngineTest, NoHealthValuesReachTheStore) {
  if (GetParam() != Backend::kSqlite) GTEST_SKIP() << "scans the SQLite files";
  fitbit_->Put(PU("fitbit"), Workout("f1", kDay, "Secret Morning Run"));
  ASSERT_TRUE(Sync("fitbit", "garmin").ok());
  ASSERT_TRUE(engine_
                  ->SyncDeviceBatch(UserId("alice"), ConnectionId("conn_apple_alice"),
                                    Conn("garmin"), DataType::kWorkout,
                                    {Workout("hk-1", 2 * kDay, "Secret Evening Ride")})
                  .ok());
  ASSERT_EQ(garmin_->Count(PU("garmin"), DataType::kWorkout), 2u);
  sqlite_->Stop();  // flush and close
  std::string bytes;
  for (const auto& f : std::filesystem::directory_iterator(dir_)) {
    std::ifstream in(f.path(), std::ios::binary);
    bytes.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find("Secret"), std::string::npos);
  EXPECT_EQ(bytes.find("access-0"), std::string::npos);
  EXPECT_EQ(bytes.find("refresh-0"), std::string::npos);
  EXPECT_NE(bytes.find("sync_ledger"), std::string::npos);  // the scan does see the schema
}

// ---- pure helpers ----

TEST(ParseJobDateTest, DatesAndRfc3339) {
  int64_t ms = 0;
  ASSERT_TRUE(ParseJobDate("1970-01-02", false, &ms));
  EXPECT_EQ(ms, kDay);
  ASSERT_TRUE(ParseJobDate("1970-01-02", true, &ms));
  EXPECT_EQ(ms, 2 * kDay);
  ASSERT_TRUE(ParseJobDate("2024-02-29", false, &ms));
  ASSERT_TRUE(ParseJobDate("2025-01-31T10:00:00Z", false, &ms));
  int64_t plus2 = 0;
  ASSERT_TRUE(ParseJobDate("2025-01-31T12:00:00.250+02:00", false, &plus2));
  EXPECT_EQ(plus2, ms + 250);
  for (const char* bad : {"2025-02-29", "2025-13-01", "2025-1-01", "2025-01-01T25:00:00Z",
                          "2025-01-01T10:00:00", "2025-01-01x", ""}) {
    EXPECT_FALSE(ParseJobDate(bad, false, &ms)) << bad;
  }
}

TEST(InProcessCounterTest, IncrementResetAndTtl) {
  ManualClock clock;
  InProcessCounter c(clock, 2);
  EXPECT_EQ(*c.Get("a"), 0);
  EXPECT_EQ(*c.Increment("a", 10s), 1);
  EXPECT_EQ(*c.Increment("a", 10s), 2);
  clock.Advance(9s);
  EXPECT_EQ(*c.Get("a"), 2);
  clock.Advance(2s);
  EXPECT_EQ(*c.Get("a"), 0);  // expired
  EXPECT_EQ(*c.Increment("a", 10s), 1);
  ASSERT_TRUE(c.Reset("a").ok());
  EXPECT_EQ(*c.Get("a"), 0);
  // Bounded: the entry closest to expiry goes first.
  (void)c.Increment("x", 5s);
  (void)c.Increment("y", 50s);
  (void)c.Increment("z", 50s);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(*c.Get("x"), 0);
  EXPECT_EQ(*c.Get("y"), 1);
  EXPECT_EQ(ConfidenceKey(UserId("u1"), "garmin"), "sync:confidence:u1:garmin");
}

TEST(SyncOutcomeTest, SummaryHasCountsOnly) {
  SyncOutcome o;
  o.written = 3;
  o.skipped["identical"] = 1;
  o.skipped["own_origin"] = 2;
  o.more = true;
  EXPECT_EQ(o.Summary(), "written 3, skipped 3 (identical 1, own_origin 2), more to sync");
}

}  // namespace
}  // namespace syncwell::sync
