// PostgresStore against a real PostgreSQL (scripts/with-services.sh): the Store contract
// (conformance/store_suite.hpp, unchanged) plus what only a shared database can show -- several
// processes (two pools on one schema) racing on the same rows, the jobs housekeeping, and a server
// that is down.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "conformance/store_suite.hpp"
#include "store/postgres/postgres_job_queue.hpp"
#include "store/postgres/postgres_store.hpp"
#include "support/services.hpp"

namespace syncwell::conformance {
namespace {

using namespace std::chrono_literals;
using test_support::PgTestSchema;

class PgHarness {
 public:
  explicit PgHarness(ManualClock& clock)
      : store_(schema_.pool(), clock), queue_(schema_.pool(), queue::QueueSettings{}, clock) {}
  store::Store& store() { return store_; }
  queue::JobQueue& queue() { return queue_; }

 private:
  PgTestSchema schema_;
  store::PostgresStore store_;
  store::PostgresJobQueue queue_;
};

class HarnessNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return "Postgres";
  }
};

}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(Store, StoreConformance, ::testing::Types<PgHarness>, HarnessNames);

namespace {

// Two PostgresStore objects on two pools of the same schema: two processes sharing one database.
class TwoProcesses : public ::testing::Test {
 protected:
  TwoProcesses()
      : pool_b_(schema_.pool().settings()),
        a_(schema_.pool(), clock_),
        b_(pool_b_, clock_),
        queue_(schema_.pool(), queue::QueueSettings{}, clock_) {}

  store::PostgresStore& Proc(int i) { return i % 2 == 0 ? a_ : b_; }

  // Runs fn(i) on n threads released together; returns once all are done.
  static void Race(int n, const std::function<void(int)>& fn) {
    std::latch start(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        fn(i);
      });
    }
    for (auto& t : threads) t.join();
  }

  static store::Job MakeJob(const std::string& user, const std::string& id) {
    store::Job j;
    j.id = JobId(id);
    j.user = UserId(user);
    j.source = ConnectionId("conn_src");
    j.destination = ConnectionId("conn_dst");
    j.data_type = "steps";
    j.mode = "manual";
    j.priority = "high";
    return j;
  }
  static queue::OutgoingMessage Msg(const std::string& user, const std::string& dedup) {
    queue::OutgoingMessage m;
    m.dedup_id = dedup;
    m.group_id = user;
    m.priority = queue::Priority::kHigh;
    m.body = R"({"jobId":"x"})";
    return m;
  }

  ManualClock clock_;
  PgTestSchema schema_;
  store::pg::PgPool pool_b_;
  store::PostgresStore a_;
  store::PostgresStore b_;
  store::PostgresJobQueue queue_;
};

TEST_F(TwoProcesses, ConnectionTokensCompareAndSetHasExactlyOneWinner) {
  store::Connection c;
  c.id = ConnectionId("conn_a");
  c.user = UserId("alice");
  c.provider = "fitbit";
  c.access_token_sealed = "sealed-0";
  ASSERT_TRUE(a_.CreateConnection(c).ok());
  constexpr int kThreads = 4;
  for (int64_t version = 0; version < 15; ++version) {
    std::atomic<int> won{0}, conflicts{0}, other{0};
    std::atomic<int> winner{-1};
    Race(kThreads, [&](int i) {
      Status st = Proc(i).UpdateConnectionTokens(
          c.user, c.id, "sealed-" + std::to_string(version) + "-" + std::to_string(i),
          "refresh-" + std::to_string(i), FromUnixMillis(1'900'000'000'000 + version), version);
      if (st.ok()) {
        ++won;
        winner = i;
      } else if (st.error().code == Errc::kConflict) {
        ++conflicts;
      } else {
        ++other;
        ADD_FAILURE() << st.error().message;
      }
    });
    ASSERT_EQ(won.load(), 1) << "version " << version;
    EXPECT_EQ(conflicts.load(), kThreads - 1);
    auto got = b_.GetConnection(c.user, c.id);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->token_version, version + 1);
    // The stored tokens are the winner's, whole (never a mix of two writers).
    EXPECT_EQ(got->access_token_sealed,
              "sealed-" + std::to_string(version) + "-" + std::to_string(winner.load()));
    EXPECT_EQ(got->refresh_token_sealed, "refresh-" + std::to_string(winner.load()));
  }
}

TEST_F(TwoProcesses, CommitSyncCursorCompareAndSetHasExactlyOneWinner) {
  const store::SyncCursorKey key{UserId("alice"), ConnectionId("conn_src"),
                                 ConnectionId("conn_dst"), "workout"};
  constexpr int kThreads = 4;
  for (int64_t version = 0; version < 12; ++version) {  // round 0 races on creating the cursor
    const std::string job = "job_" + std::to_string(version);
    ASSERT_TRUE(a_.CreateJob(MakeJob("alice", job), Msg("alice", job), nullptr).ok());
    std::atomic<int> won{0}, conflicts{0};
    std::atomic<int> winner{-1};
    Race(kThreads, [&](int i) {
      store::SyncCommit commit;
      commit.cursor = store::SyncCommit::CursorUpdate{key, version, version * 1000 + i};
      store::LedgerEntry e;
      e.user = key.user;
      e.destination = key.destination;
      e.source = key.source;
      e.source_record_id = "r-" + std::to_string(version) + "-" + std::to_string(i);
      e.fingerprint = "fp";
      e.dest_record_id = "d-" + std::to_string(i);
      e.state = store::LedgerState::kDone;
      e.job = JobId(job);
      commit.done.push_back(e);
      // A row every contender writes: the loser must not touch the winner's version of it.
      e.source_record_id = "shared";
      commit.done.push_back(e);
      commit.job = store::SyncCommit::JobUpdate{JobId(job), store::JobStatus::kSucceeded, "",
                                                "thread " + std::to_string(i)};
      Status st = Proc(i).CommitSync(commit);
      if (st.ok()) {
        ++won;
        winner = i;
      } else if (st.error().code == Errc::kConflict) {
        ++conflicts;
      } else {
        ADD_FAILURE() << st.error().message;
      }
    });
    ASSERT_EQ(won.load(), 1) << "version " << version;
    EXPECT_EQ(conflicts.load(), kThreads - 1);
    const int w = winner.load();
    auto cur = b_.GetCursor(key);
    ASSERT_TRUE(cur.ok());
    EXPECT_EQ(cur->version, version + 1);
    EXPECT_EQ(cur->last_sync_ms, version * 1000 + w);
    // Only the winner's ledger rows and job summary were written.
    std::vector<std::string> ids;
    for (int i = 0; i < kThreads; ++i) {
      ids.push_back("r-" + std::to_string(version) + "-" + std::to_string(i));
    }
    auto rows = a_.GetLedgerEntries(key.user, key.destination, key.source, ids);
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ((*rows)[0].source_record_id, ids[static_cast<size_t>(w)]);
    auto shared = a_.GetLedgerEntries(key.user, key.destination, key.source, {"shared"});
    ASSERT_EQ(shared->size(), 1u);
    EXPECT_EQ((*shared)[0].dest_record_id, "d-" + std::to_string(w));
    EXPECT_EQ((*shared)[0].job.str(), job);
    auto got = a_.GetJob(UserId("alice"), JobId(job));
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->status, store::JobStatus::kSucceeded);
    EXPECT_EQ(got->summary, "thread " + std::to_string(w));
  }
}

TEST_F(TwoProcesses, CreateJobWithOneIdempotencyKeyFromTwoThreadsCreatesOneJob) {
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    std::atomic<int> created{0}, duplicate{0};
    const std::string key = "k-" + std::to_string(round);
    Race(2, [&](int i) {
      const std::string id = "job_" + std::to_string(round) + "_" + std::to_string(i);
      store::IdempotencyRecord idem;
      idem.user = UserId("alice");
      idem.key = key;
      idem.request_hash = "h";
      idem.status_code = 202;
      idem.response_body = R"({"jobId":")" + id + R"("})";
      Status st = Proc(i).CreateJob(MakeJob("alice", id), Msg("alice", id), &idem);
      if (st.ok()) {
        ++created;
      } else if (st.error().code == Errc::kAlreadyExists) {
        ++duplicate;
      } else {
        ADD_FAILURE() << st.error().message;
      }
    });
    ASSERT_EQ(created.load(), 1) << "round " << round;
    EXPECT_EQ(duplicate.load(), 1);
    int jobs = 0;
    for (int i = 0; i < 2; ++i) {
      const std::string id = "job_" + std::to_string(round) + "_" + std::to_string(i);
      if (a_.GetJob(UserId("alice"), JobId(id)).ok()) ++jobs;
    }
    EXPECT_EQ(jobs, 1);
    auto rec = b_.GetIdempotency(UserId("alice"), key);
    ASSERT_TRUE(rec.ok() && rec->has_value());
  }
  // One message per created job: the loser's message rolled back with its job row.
  auto stats = queue_.Stats();
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats->enqueued_total, kRounds);
  EXPECT_EQ(stats->visible + stats->delayed + stats->in_flight, kRounds);
}

// The API's path: a job created by another process's store (CreateJob's pipelined transaction,
// whose queue_send NOTIFYs while a receiver waits) wakes a receiver that long-polls here. The
// receiver's recheck interval is longer than its wait, so only that notification can deliver the
// job before the wait ends.
TEST_F(TwoProcesses, AJobCreatedByAnotherProcessWakesALongPollingReceiver) {
  queue::QueueSettings slow_recheck;
  slow_recheck.long_poll_interval = std::chrono::minutes{10};
  store::PostgresJobQueue receiver(schema_.pool(), slow_recheck, clock_);
  ASSERT_TRUE(receiver.Start().ok());
  for (int round = 0; round < 3; ++round) {
    const std::string job = "job_wake_" + std::to_string(round);
    std::thread creator([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
      ASSERT_TRUE(b_.CreateJob(MakeJob("alice", job), Msg("alice", job), nullptr).ok());
    });
    queue::ReceiveOptions wait;
    wait.wait = std::chrono::seconds{20};
    const auto t0 = std::chrono::steady_clock::now();
    auto got = receiver.Receive(wait);
    const bool woken = std::chrono::steady_clock::now() - t0 < wait.wait;
    creator.join();
    ASSERT_TRUE(got.ok()) << got.error().message;
    ASSERT_EQ(got->size(), 1u) << "round " << round;
    EXPECT_TRUE(woken) << "round " << round << ": the receive waited for its whole bound";
    ASSERT_TRUE(receiver.Delete((*got)[0].receipt).ok());
  }
  receiver.Stop();
}

TEST_F(TwoProcesses, PurgeFinishedJobsBeforeDeletesOnlyOldFinishedJobsInBatches) {
  const TimePoint t0 = clock_.Now();
  auto make = [&](const std::string& id, store::JobStatus status) {
    ASSERT_TRUE(a_.CreateJob(MakeJob("alice", id), Msg("alice", id), nullptr).ok());
    if (status != store::JobStatus::kQueued) {
      ASSERT_TRUE(a_.UpdateJobStatus(JobId(id), status, "").ok());
    }
  };
  for (int i = 0; i < 4; ++i) make("job_ok_" + std::to_string(i), store::JobStatus::kSucceeded);
  for (int i = 0; i < 2; ++i) make("job_failed_" + std::to_string(i), store::JobStatus::kFailed);
  make("job_running", store::JobStatus::kRunning);
  make("job_queued", store::JobStatus::kQueued);
  clock_.Advance(2h);
  make("job_recent", store::JobStatus::kSucceeded);  // finished after the cutoff

  const TimePoint cutoff = t0 + 1h;
  auto first = a_.PurgeFinishedJobsBefore(cutoff, 4);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(*first, 4);  // bounded by the limit
  EXPECT_EQ(*b_.PurgeFinishedJobsBefore(cutoff, 4), 2);
  EXPECT_EQ(*b_.PurgeFinishedJobsBefore(cutoff, 4), 0);
  EXPECT_EQ(*a_.PurgeFinishedJobsBefore(cutoff, 0), 0);

  const UserId alice("alice");
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(a_.GetJob(alice, JobId("job_ok_" + std::to_string(i))).error().code, Errc::kNotFound);
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(a_.GetJob(alice, JobId("job_failed_" + std::to_string(i))).error().code,
              Errc::kNotFound);
  }
  EXPECT_TRUE(a_.GetJob(alice, JobId("job_running")).ok());
  EXPECT_TRUE(a_.GetJob(alice, JobId("job_queued")).ok());
  EXPECT_TRUE(a_.GetJob(alice, JobId("job_recent")).ok());
}

TEST_F(TwoProcesses, ControlEventsFromBothProcessesInOneOrder) {
  Race(4, [&](int i) {
    for (int n = 0; n < 10; ++n) {
      ASSERT_TRUE(Proc(i).AddControlEvent("k", std::to_string(i) + "-" + std::to_string(n)).ok());
    }
  });
  auto all = a_.ControlEventsAfter(0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 40u);
  for (size_t i = 1; i < all->size(); ++i) EXPECT_LT((*all)[i - 1].seq, (*all)[i].seq);
  EXPECT_EQ(b_.ControlEventsAfter((*all)[39].seq)->size(), 0u);
}

// A port nobody listens on (bound, then closed).
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return 1;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(PostgresStoreDown, ServerDownIsUnavailableForReadsAndWrites) {
  store::pg::PgPoolSettings s;
  s.url = "postgresql://postgres@127.0.0.1:" + std::to_string(ClosedPort()) + "/postgres";
  s.schema = "down";
  s.size = 2;
  s.acquire_timeout = 500ms;
  s.connect_timeout = 1s;
  store::pg::PgPool pool(s);
  ManualClock clock;
  store::PostgresStore store(pool, clock);

  auto read = store.GetUser(UserId("alice"));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code, Errc::kUnavailable) << read.error().message;
  store::Connection c;
  c.id = ConnectionId("conn_a");
  c.user = UserId("alice");
  c.provider = "fitbit";
  Status write = store.CreateConnection(c);
  ASSERT_FALSE(write.ok());
  EXPECT_EQ(write.error().code, Errc::kUnavailable) << write.error().message;
  store::IdempotencyRecord idem;
  idem.user = c.user;
  idem.key = "k";
  EXPECT_EQ(store.UpdateUserSettings(c.user, "{}", &idem).error().code, Errc::kUnavailable);
  EXPECT_EQ(store.Ping().error().code, Errc::kUnavailable);
}

TEST(PostgresStoreDown, DroppedConnectionIsUnavailableThenReconnects) {
  PgTestSchema schema(1);  // one connection, so the store reuses the one we kill
  ManualClock clock;
  store::PostgresStore store(schema.pool(), clock);
  ASSERT_TRUE(store.EnsureUser(UserId("alice"), store::Tier::kFree).ok());
  auto pid = schema.pool().Exec("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid.ok());
  store::pg::PgPool killer(schema.pool().settings());
  auto killed =
      killer.Exec("SELECT pg_terminate_backend($1::int)", {store::pg::PgParam(pid->Int(0, 0))});
  ASSERT_TRUE(killed.ok()) << killed.error().message;
  ASSERT_TRUE(killed->Bool(0, 0));

  auto read = store.GetUser(UserId("alice"));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code, Errc::kUnavailable) << read.error().message;
  // The broken connection was discarded: the next call opens a new one.
  auto again = store.GetUser(UserId("alice"));
  ASSERT_TRUE(again.ok()) << again.error().message;
}

}  // namespace
}  // namespace syncwell::conformance
