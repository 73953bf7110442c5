// The tiered schedule on PostgreSQL (scripts/with-services.sh) beyond the shared contract
// (conformance/store_suite.hpp): rows from before the schedule migration get their shard in
// bounded batches, and two processes (two pools on one schema) racing on one user's slot or
// ticking the same shards never produce two jobs for one slot.
#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "obs/metrics.hpp"
#include "schedule/scheduler.hpp"
#include "store/postgres/postgres_job_queue.hpp"
#include "store/postgres/postgres_store.hpp"
#include "support/services.hpp"

namespace syncwell::store {
namespace {

using namespace std::chrono_literals;
using test_support::PgTestSchema;

class SchedulePg : public ::testing::Test {
 protected:
  SchedulePg()
      : pool_b_(schema_.pool().settings()),
        a_(schema_.pool(), clock_),
        b_(pool_b_, clock_),
        queue_(schema_.pool(), queue::QueueSettings{}, clock_) {}

  ManualClock clock_;
  PgTestSchema schema_;
  pg::PgPool pool_b_;
  PostgresStore a_;
  PostgresStore b_;
  PostgresJobQueue queue_;
};

TEST_F(SchedulePg, RowsFromBeforeTheMigrationGetTheirShardInBatches) {
  std::vector<UserId> users;
  users.reserve(7);
  for (int i = 0; i < 7; ++i) {
    users.emplace_back("old-" + std::to_string(i));
    ASSERT_TRUE(a_.EnsureUser(users.back(), Tier::kFree).ok());
  }
  // What migration 2 leaves for existing rows.
  ASSERT_TRUE(schema_.pool().Exec("UPDATE users SET shard = -1, next_sync_at = 0").ok());
  const TimePoint now = clock_.Now();
  EXPECT_TRUE(a_.ListDueUsers(ScheduleShardOf(users[0]), now, 100)->empty());
  auto first = a_.AssignScheduleShards(4);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(*first, 4);
  EXPECT_EQ(*b_.AssignScheduleShards(4), 3);
  EXPECT_EQ(*a_.AssignScheduleShards(4), 0);
  for (const auto& u : users) {
    auto due = b_.ListDueUsers(ScheduleShardOf(u), now, 100);
    ASSERT_TRUE(due.ok()) << due.error().message;
    bool found = false;
    for (const auto& e : *due) found = found || e.user == u;
    EXPECT_TRUE(found) << u.str();
  }
}

TEST_F(SchedulePg, AdvanceScheduleRaceHasExactlyOneWinner) {
  const UserId alice("alice");
  ASSERT_TRUE(a_.EnsureUser(alice, Tier::kPro).ok());
  TimePoint slot{};
  for (int round = 0; round < 10; ++round) {
    std::latch start(4);
    std::atomic<int> won{0}, conflicts{0};
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        PostgresStore& s = i % 2 == 0 ? a_ : b_;
        Status st = s.AdvanceSchedule(alice, slot, slot + std::chrono::minutes(round + 1), {slot});
        if (st.ok()) {
          ++won;
        } else if (st.error().code == Errc::kConflict) {
          ++conflicts;
        } else {
          ADD_FAILURE() << st.error().message;
        }
      });
    }
    for (auto& t : threads) t.join();
    ASSERT_EQ(won.load(), 1) << "round " << round;
    EXPECT_EQ(conflicts.load(), 3);
    slot = slot + std::chrono::minutes(round + 1);
  }
}

TEST_F(SchedulePg, TwoSchedulersTickingTheSameShardsCreateOneJobPerSlot) {
  // 12 PRO users with one config each, two schedulers (one per pool) ticking every shard
  // concurrently, as during a lease move.
  for (int i = 0; i < 12; ++i) {
    const UserId u("u" + std::to_string(i));
    ASSERT_TRUE(a_.EnsureUser(u, Tier::kPro).ok());
    for (const char* p : {"strava", "fitbit"}) {
      Connection c;
      c.id = ConnectionId("conn_" + u.str() + "_" + p);
      c.user = u;
      c.provider = p;
      c.access_token_sealed = "sealed";
      ASSERT_TRUE(a_.CreateConnection(c).ok());
    }
    SyncConfig cfg;
    cfg.id = SyncConfigId("cfg_" + u.str());
    cfg.user = u;
    cfg.source = ConnectionId("conn_" + u.str() + "_strava");
    cfg.destination = ConnectionId("conn_" + u.str() + "_fitbit");
    cfg.data_type = "workout";
    cfg.conflict_strategy = "newest_wins";
    ASSERT_TRUE(a_.CreateSyncConfig(cfg, nullptr).ok());
  }
  std::vector<int> shards(kScheduleShards);
  for (int i = 0; i < kScheduleShards; ++i) shards[static_cast<size_t>(i)] = i;
  obs::Registry ma, mb;
  schedule::Scheduler sa(schedule::SchedulerSettings{}, a_, ma);
  schedule::Scheduler sb(schedule::SchedulerSettings{}, b_, mb);
  int64_t created = 0;
  for (int step = 0; step < 25; ++step) {  // 2 h in 5 min steps (placement in the first)
    std::latch start(2);
    std::atomic<int64_t> enqueued{0}, errors{0};
    auto run = [&](schedule::Scheduler& s) {
      start.arrive_and_wait();
      auto st = s.Tick(shards, clock_.Now());
      enqueued += st.jobs_enqueued;
      errors += st.shard_errors;
    };
    std::thread ta(run, std::ref(sa)), tb(run, std::ref(sb));
    ta.join();
    tb.join();
    EXPECT_EQ(errors.load(), 0);
    created += enqueued.load();
    // The jobs ran, so nothing coalesces: every slot needs its own job.
    auto r = schema_.pool().Exec("UPDATE jobs SET status = 'SUCCEEDED'");
    ASSERT_TRUE(r.ok()) << r.error().message;
    clock_.Advance(5min);
  }
  auto jobs = schema_.pool().Exec("SELECT count(*) FROM jobs WHERE mode = 'scheduled'");
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->Int(0, 0), created);
  EXPECT_GE(created, 12 * 4);  // a slot every 15 min +-10%, ticked up to 5 min late
  auto stats = queue_.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->enqueued_total, created);  // one message per job, never a second
  // Every user's remembered slots each have their job.
  for (int i = 0; i < 12; ++i) {
    const UserId u("u" + std::to_string(i));
    auto due = a_.ListDueUsers(ScheduleShardOf(u), clock_.Now() + 24h, 1000);
    ASSERT_TRUE(due.ok());
    for (const auto& e : *due) {
      if (e.user != u) continue;
      for (const TimePoint& slot : e.recent_slots) {
        EXPECT_TRUE(
            a_.GetJob(u, schedule::Scheduler::SlotJobId(SyncConfigId("cfg_" + u.str()), slot))
                .ok());
      }
    }
  }
}

}  // namespace
}  // namespace syncwell::store
