// The SPEC S7 tiered schedule (src/schedule) against the in-memory store fake and a ManualClock:
// placement, due / not due, tier intervals and jitter bounds, one job per (config, slot) across
// repeated ticks and two schedulers, coalescing with a still-queued job, skipped users, bounded
// batches, store errors, metrics. Also the murmur3 reference vectors (shards are stored data).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "core/murmur3.hpp"
#include "fakes/in_memory_store.hpp"
#include "obs/metrics.hpp"
#include "schedule/scheduler.hpp"

namespace syncwell::schedule {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

TEST(Murmur3, ReferenceVectors) {
  EXPECT_EQ(Murmur3_32("", 0), 0u);
  EXPECT_EQ(Murmur3_32("", 1), 0x514E28B7u);
  EXPECT_EQ(Murmur3_32("", 0xffffffffU), 0x81F16F39u);
  EXPECT_EQ(Murmur3_32("hello", 0), 0x248BFA47u);
  EXPECT_EQ(Murmur3_32("test", 0), 0xBA6BD213u);
  EXPECT_EQ(Murmur3_32("The quick brown fox jumps over the lazy dog", 0), 0x2E4FF723u);
}

TEST(ScheduleShard, SpreadsUsersOverEveryShard) {
  std::vector<int> count(store::kScheduleShards, 0);
  for (int i = 0; i < 6400; ++i)
    ++count[static_cast<size_t>(store::ScheduleShardOf(UserId("u" + std::to_string(i))))];
  for (int c : count) {
    EXPECT_GT(c, 50);  // ~100 each
    EXPECT_LT(c, 160);
  }
}

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : store_(clock_) {}

  SchedulerSettings Settings() const {
    SchedulerSettings s;
    s.pro_interval = 15min;
    s.free_interval = 24h;
    s.batch_size = 100;
    return s;
  }

  // A user with two active cloud connections and one enabled config between them.
  store::SyncConfig AddUser(const std::string& name, store::Tier tier,
                            const std::string& data_type = "workout") {
    store::User u;
    u.id = UserId(name);
    u.tier = tier;
    EXPECT_TRUE(store_.UpsertUser(u).ok());
    for (const char* p : {"strava", "fitbit"}) {
      store::Connection c;
      c.id = ConnectionId("conn_" + name + "_" + p);
      c.user = u.id;
      c.provider = p;
      c.access_token_sealed = "sealed";
      if (!store_.GetConnection(u.id, c.id).ok()) {
        EXPECT_TRUE(store_.CreateConnection(c).ok());
      }
    }
    store::SyncConfig cfg;
    cfg.id = SyncConfigId("cfg_" + name + "_" + data_type);
    cfg.user = u.id;
    cfg.source = ConnectionId("conn_" + name + "_strava");
    cfg.destination = ConnectionId("conn_" + name + "_fitbit");
    cfg.data_type = data_type;
    cfg.conflict_strategy = "newest_wins";
    EXPECT_TRUE(store_.CreateSyncConfig(cfg, nullptr).ok());
    return cfg;
  }

  static std::vector<int> AllShards() {
    std::vector<int> all(store::kScheduleShards);
    for (int i = 0; i < store::kScheduleShards; ++i) all[static_cast<size_t>(i)] = i;
    return all;
  }

  store::ScheduledUser Entry(const UserId& u) {
    auto due = store_.ListDueUsers(store::ScheduleShardOf(u), clock_.Now() + 1000h, 10000);
    EXPECT_TRUE(due.ok());
    for (const auto& e : *due) {
      if (e.user == u) return e;
    }
    ADD_FAILURE() << "user " << u.str() << " not in the schedule";
    return {};
  }

  TimePoint Now() const { return FromUnixMillis(ToUnixMillis(clock_.Now())); }

  // Moves the clock to `t` (never backwards).
  void AdvanceTo(TimePoint t) {
    if (t > clock_.Now())
      clock_.Advance(std::chrono::duration_cast<std::chrono::microseconds>(t - clock_.Now()));
  }

  // Places every user (first tick), then moves to the user's slot.
  TimePoint PlaceAndReachSlot(Scheduler& s, const UserId& u) {
    s.Tick(AllShards(), Now());
    const TimePoint slot = Entry(u).next_sync_at;
    AdvanceTo(slot);
    return slot;
  }

  size_t QueuedMessages() const { return store_.Messages().size(); }

  ManualClock clock_;
  fakes::InMemoryStore store_;
  obs::Registry metrics_;
};

TEST_F(SchedulerTest, FirstTickPlacesUsersWithinTheirIntervalWithoutAJob) {
  AddUser("pro", store::Tier::kPro);
  AddUser("free", store::Tier::kFree);
  Scheduler s(Settings(), store_, metrics_);
  const TimePoint now = Now();
  auto st = s.Tick(AllShards(), now);
  EXPECT_EQ(st.placed, 2);
  EXPECT_EQ(st.jobs_enqueued, 0);
  EXPECT_EQ(QueuedMessages(), 0u);
  const TimePoint pro = Entry(UserId("pro")).next_sync_at;
  const TimePoint free = Entry(UserId("free")).next_sync_at;
  EXPECT_GE(pro, now);
  EXPECT_LT(pro, now + 15min);
  EXPECT_GE(free, now);
  EXPECT_LT(free, now + 24h);
}

TEST_F(SchedulerTest, DueUserGetsOneScheduledJobPerConfigAndAdvancesByItsTier) {
  const auto cfg = AddUser("pro", store::Tier::kPro);
  const auto cfg2 = AddUser("pro", store::Tier::kPro, "sleep_session");
  Scheduler s(Settings(), store_, metrics_);
  const TimePoint slot = PlaceAndReachSlot(s, UserId("pro"));

  // One millisecond early: not due.
  auto early = s.Tick(AllShards(), slot - 1ms);
  EXPECT_EQ(early.due_users, 0);
  EXPECT_EQ(QueuedMessages(), 0u);

  auto st = s.Tick(AllShards(), slot);
  EXPECT_EQ(st.due_users, 1);
  EXPECT_EQ(st.jobs_enqueued, 2);
  ASSERT_EQ(QueuedMessages(), 2u);
  for (const auto& c : {cfg, cfg2}) {
    auto job = store_.GetJob(c.user, Scheduler::SlotJobId(c.id, slot));
    ASSERT_TRUE(job.ok()) << job.error().message;
    EXPECT_EQ(job->mode, "scheduled");
    EXPECT_EQ(job->priority, "medium");
    EXPECT_EQ(job->status, store::JobStatus::kQueued);
    EXPECT_EQ(job->source, c.source);
    EXPECT_EQ(job->destination, c.destination);
    EXPECT_EQ(job->data_type, c.data_type);
  }
  for (const auto& m : store_.Messages()) {
    EXPECT_EQ(m.group_id, "pro");
    EXPECT_EQ(m.priority, queue::Priority::kMedium);  // behind manual "high", ahead of backfills
    EXPECT_EQ(m.dedup_id.rfind("job_sch_", 0), 0u);
  }
  const auto e = Entry(UserId("pro"));
  EXPECT_GE(e.next_sync_at, slot + 15min - 90s);
  EXPECT_LE(e.next_sync_at, slot + 15min + 90s);
  ASSERT_FALSE(e.recent_slots.empty());
  EXPECT_EQ(e.recent_slots.front(), slot);
  EXPECT_NE(metrics_.Render().find("syncwell_scheduler_jobs_enqueued_total 2"), std::string::npos)
      << metrics_.Render();
}

TEST_F(SchedulerTest, FreeUsersAdvanceByADay) {
  const auto cfg = AddUser("free", store::Tier::kFree);
  Scheduler s(Settings(), store_, metrics_);
  const TimePoint slot = PlaceAndReachSlot(s, UserId("free"));
  auto st = s.Tick(AllShards(), slot);
  EXPECT_EQ(st.jobs_enqueued, 1);
  // The job ran (a still-queued one would coalesce the next slot).
  ASSERT_TRUE(
      store_.UpdateJobStatus(Scheduler::SlotJobId(cfg.id, slot), store::JobStatus::kSucceeded, "")
          .ok());
  const TimePoint next = Entry(UserId("free")).next_sync_at;
  EXPECT_GE(next, slot + 24h - 144min);  // -10%
  EXPECT_LE(next, slot + 24h + 144min);  // +10%
  // Nothing more until then.
  AdvanceTo(next - 1s);
  EXPECT_EQ(s.Tick(AllShards(), Now()).jobs_enqueued, 0);
  AdvanceTo(next);
  EXPECT_EQ(s.Tick(AllShards(), Now()).jobs_enqueued, 1);
}

TEST(SchedulerSlots, JitterStaysWithinTenPercentAndSpreads) {
  const TimePoint slot = FromUnixMillis(1'800'000'000'000);
  const milliseconds iv = 15min;
  milliseconds lo = 1000h, hi = 0ms;
  for (int i = 0; i < 2000; ++i) {
    const UserId u("user" + std::to_string(i));
    const auto d =
        std::chrono::duration_cast<milliseconds>(Scheduler::NextSlot(u, slot, iv, slot) - slot);
    EXPECT_GE(d, iv - iv / 10);
    EXPECT_LE(d, iv + iv / 10);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    const auto first =
        std::chrono::duration_cast<milliseconds>(Scheduler::FirstSlot(u, iv, slot) - slot);
    EXPECT_GE(first, 0ms);
    EXPECT_LT(first, iv);
  }
  EXPECT_LT(lo, iv - iv / 20);  // really jittered, not a constant
  EXPECT_GT(hi, iv + iv / 20);
  // Deterministic: two processes compute the same next slot.
  EXPECT_EQ(Scheduler::NextSlot(UserId("a"), slot, iv, slot),
            Scheduler::NextSlot(UserId("a"), slot, iv, slot));
  // Down for longer than an interval: re-spread from now, not a burst of past slots.
  const TimePoint now = slot + 5h;
  const TimePoint late = Scheduler::NextSlot(UserId("a"), slot, iv, now);
  EXPECT_GE(late, now + iv / 2);
  EXPECT_LT(late, now + iv * 3 / 2);
}

TEST_F(SchedulerTest, RepeatedTickOfTheSameSlotCreatesNoSecondJob) {
  const auto cfg = AddUser("pro", store::Tier::kPro);
  Scheduler s(Settings(), store_, metrics_);
  const TimePoint slot = PlaceAndReachSlot(s, UserId("pro"));
  ASSERT_EQ(s.Tick(AllShards(), slot).jobs_enqueued, 1);
  // A crash after the job committed but before the slot advanced: the slot is still `slot`.
  const auto e = Entry(UserId("pro"));
  ASSERT_TRUE(store_.AdvanceSchedule(UserId("pro"), e.next_sync_at, slot, {}).ok());
  // A restarted process, or another one that got the shard's lease, ticks the same slot.
  obs::Registry other_metrics;
  Scheduler other(Settings(), store_, other_metrics);
  auto st = other.Tick(AllShards(), slot + 30s);
  EXPECT_EQ(st.jobs_enqueued, 0);
  EXPECT_EQ(st.jobs_merged, 1);
  EXPECT_EQ(QueuedMessages(), 1u);
  EXPECT_TRUE(store_.GetJob(cfg.user, Scheduler::SlotJobId(cfg.id, slot)).ok());
  EXPECT_GT(Entry(UserId("pro")).next_sync_at, slot);
}

TEST_F(SchedulerTest, TwoSchedulersOnOneShardCreateOneJobPerSlot) {
  for (int i = 0; i < 20; ++i) AddUser("u" + std::to_string(i), store::Tier::kPro);
  Scheduler a(Settings(), store_, metrics_);
  obs::Registry other_metrics;
  Scheduler b(Settings(), store_, other_metrics);
  a.Tick(AllShards(), Now());
  int64_t created = 0;
  for (int step = 0; step < 12 * 6; ++step) {  // 6 h in 5 min steps, both ticking every step
    AdvanceTo(Now() + 5min);
    created += a.Tick(AllShards(), Now()).jobs_enqueued;
    created += b.Tick(AllShards(), Now()).jobs_enqueued;
    // Jobs finish, so nothing coalesces: every slot needs its job.
    for (int i = 0; i < 20; ++i) {
      const auto e = Entry(UserId("u" + std::to_string(i)));
      for (const TimePoint& t : e.recent_slots) {
        const JobId id =
            Scheduler::SlotJobId(SyncConfigId("cfg_u" + std::to_string(i) + "_workout"), t);
        (void)store_.UpdateJobStatus(id, store::JobStatus::kSucceeded, "");
      }
    }
  }
  EXPECT_EQ(static_cast<size_t>(created), QueuedMessages());
  // ~24 slots per user in 6 h at 15 min +-10%.
  EXPECT_GE(created, 20 * 20);
  EXPECT_LE(created, 20 * 28);
}

TEST_F(SchedulerTest, StillQueuedScheduledJobCoalescesLaterSlots) {
  const auto cfg = AddUser("pro", store::Tier::kPro);
  Scheduler s(Settings(), store_, metrics_);
  const TimePoint slot1 = PlaceAndReachSlot(s, UserId("pro"));
  ASSERT_EQ(s.Tick(AllShards(), slot1).jobs_enqueued, 1);
  // The job is still queued (workers are behind) at the next two slots: no new job.
  for (int i = 0; i < 2; ++i) {
    const TimePoint slot = Entry(UserId("pro")).next_sync_at;
    AdvanceTo(slot);
    auto st = s.Tick(AllShards(), slot);
    EXPECT_EQ(st.jobs_enqueued, 0) << i;
    EXPECT_EQ(st.jobs_coalesced, 1) << i;
  }
  EXPECT_EQ(QueuedMessages(), 1u);
  // Once it started, the next slot gets its own job (the running one may miss newer data).
  ASSERT_TRUE(
      store_.UpdateJobStatus(Scheduler::SlotJobId(cfg.id, slot1), store::JobStatus::kRunning, "")
          .ok());
  const TimePoint slot4 = Entry(UserId("pro")).next_sync_at;
  AdvanceTo(slot4);
  auto st = s.Tick(AllShards(), slot4);
  EXPECT_EQ(st.jobs_enqueued, 1);
  EXPECT_EQ(QueuedMessages(), 2u);
  EXPECT_NE(metrics_.Render().find("syncwell_scheduler_jobs_coalesced_total 2"), std::string::npos);
}

TEST_F(SchedulerTest, DeletingUsersAndUsersWithoutUsableConfigsAreSkippedButAdvance) {
  AddUser("deleting", store::Tier::kPro);
  ASSERT_TRUE(store_.RequestUserDeletion(UserId("deleting"), nullptr).ok());
  ASSERT_TRUE(store_.EnsureUser(UserId("noconfig"), store::Tier::kPro).ok());
  auto disabled = AddUser("disabled", store::Tier::kPro);
  disabled.enabled = false;
  ASSERT_TRUE(store_.UpdateSyncConfig(disabled, disabled.version, nullptr).ok());
  AddUser("reauth", store::Tier::kPro);
  ASSERT_TRUE(store_
                  .SetConnectionStatus(UserId("reauth"), ConnectionId("conn_reauth_fitbit"),
                                       store::ConnectionStatus::kNeedsReauth)
                  .ok());
  Scheduler s(Settings(), store_, metrics_);
  s.Tick(AllShards(), Now());
  AdvanceTo(Now() + 15min);
  std::map<std::string, TimePoint> before;
  for (const char* u : {"deleting", "noconfig", "disabled", "reauth"})
    before[u] = Entry(UserId(u)).next_sync_at;
  auto st = s.Tick(AllShards(), Now());
  EXPECT_EQ(st.due_users, 4);
  EXPECT_EQ(st.skipped_users, 4);
  EXPECT_EQ(st.jobs_enqueued, 0);
  EXPECT_EQ(QueuedMessages(), 0u);
  for (const auto& [u, t] : before) EXPECT_GT(Entry(UserId(u)).next_sync_at, t) << u;
  // A purged user is simply gone from the schedule.
  ASSERT_TRUE(store_.PurgeUser(UserId("deleting")).ok());
  AdvanceTo(Now() + 20min);
  EXPECT_EQ(s.Tick(AllShards(), Now()).due_users, 3);
}

TEST_F(SchedulerTest, OnlyTheGivenShardsAreTicked) {
  AddUser("pro", store::Tier::kPro);
  Scheduler s(Settings(), store_, metrics_);
  const int shard = store::ScheduleShardOf(UserId("pro"));
  std::vector<int> others;
  for (int i = 0; i < store::kScheduleShards; ++i) {
    if (i != shard) others.push_back(i);
  }
  EXPECT_EQ(s.Tick(others, Now()).due_users, 0);
  EXPECT_EQ(Entry(UserId("pro")).next_sync_at, TimePoint{});
  EXPECT_EQ(s.Tick({shard}, Now()).placed, 1);
}

TEST_F(SchedulerTest, BatchesAreBoundedPerTick) {
  // Users on one shard, all due.
  std::vector<UserId> users;
  for (int i = 0; users.size() < 5; ++i) {
    UserId u("b" + std::to_string(i));
    if (store::ScheduleShardOf(u) == 7) users.push_back(u);
  }
  for (const auto& u : users) ASSERT_TRUE(store_.EnsureUser(u, store::Tier::kPro).ok());
  SchedulerSettings ss = Settings();
  ss.batch_size = 2;
  ss.max_batches_per_shard = 2;
  Scheduler s(ss, store_, metrics_);
  EXPECT_EQ(s.Tick({7}, Now()).placed, 4);
  EXPECT_EQ(s.Tick({7}, Now()).placed, 1);
  EXPECT_EQ(s.Tick({7}, Now()).placed, 0);
}

TEST_F(SchedulerTest, StoreErrorStopsThatShardsTickAndTheNextTickRetries) {
  const auto cfg = AddUser("pro", store::Tier::kPro);
  Scheduler s(Settings(), store_, metrics_);
  const TimePoint slot = PlaceAndReachSlot(s, UserId("pro"));
  const std::vector<int> shard = {store::ScheduleShardOf(UserId("pro"))};
  store_.FailNextListDueUsers(MakeError(Errc::kUnavailable, "database down"));
  auto st = s.Tick(shard, slot);
  EXPECT_EQ(st.shard_errors, 1);
  EXPECT_EQ(st.jobs_enqueued, 0);
  EXPECT_NE(metrics_.Render().find("syncwell_scheduler_shard_errors_total 1"), std::string::npos);
  // The job insert fails: the slot is not advanced, so the next tick makes up for it.
  store_.FailNextWrite(MakeError(Errc::kUnavailable, "database down"));
  st = s.Tick(shard, slot);
  EXPECT_EQ(st.shard_errors, 1);
  EXPECT_EQ(Entry(UserId("pro")).next_sync_at, slot);
  EXPECT_EQ(QueuedMessages(), 0u);
  st = s.Tick(shard, slot + 10s);
  EXPECT_EQ(st.shard_errors, 0);
  EXPECT_EQ(st.jobs_enqueued, 1);
  EXPECT_TRUE(store_.GetJob(cfg.user, Scheduler::SlotJobId(cfg.id, slot)).ok());
  EXPECT_GT(Entry(UserId("pro")).next_sync_at, slot);
}

// Many due users processed at the same time (scheduler.concurrency): every user gets exactly its
// slot's job and advances once; a write failing midway stops the tick, and the next tick makes
// up for exactly the users that were not done -- no user gets a second job.
TEST_F(SchedulerTest, ConcurrentUsersEachGetExactlyOneJobEvenAfterAFailure) {
  std::vector<store::SyncConfig> cfgs;
  for (int i = 0; i < 120; ++i) cfgs.push_back(AddUser("c" + std::to_string(i), store::Tier::kPro));
  SchedulerSettings ss = Settings();
  ss.concurrency = 8;
  Scheduler s(ss, store_, metrics_);
  EXPECT_EQ(s.Tick(AllShards(), Now()).placed, 120);
  std::vector<TimePoint> slots;
  for (const auto& c : cfgs) slots.push_back(Entry(c.user).next_sync_at);
  AdvanceTo(Now() + 16min);  // every slot is due

  store_.FailNextWrite(MakeError(Errc::kUnavailable, "database down"));
  auto first = s.Tick(AllShards(), Now());
  EXPECT_GE(first.shard_errors, 1);
  auto second = s.Tick(AllShards(), Now());
  EXPECT_EQ(second.shard_errors, 0);
  EXPECT_EQ(first.jobs_enqueued + second.jobs_enqueued, 120);
  EXPECT_EQ(first.jobs_merged + second.jobs_merged, 0);
  EXPECT_EQ(QueuedMessages(), 120u);
  for (size_t i = 0; i < cfgs.size(); ++i) {
    EXPECT_TRUE(store_.GetJob(cfgs[i].user, Scheduler::SlotJobId(cfgs[i].id, slots[i])).ok());
    EXPECT_GT(Entry(cfgs[i].user).next_sync_at, Now()) << cfgs[i].user.str();
  }
  EXPECT_EQ(s.Tick(AllShards(), Now()).due_users, 0);
}

TEST_F(SchedulerTest, LagAndDueUsersGauges) {
  AddUser("pro", store::Tier::kPro);
  Scheduler s(Settings(), store_, metrics_);
  const TimePoint slot = PlaceAndReachSlot(s, UserId("pro"));
  auto st = s.Tick(AllShards(), slot + 42s);
  EXPECT_EQ(st.due_users, 1);
  EXPECT_DOUBLE_EQ(st.lag_seconds, 42.0);
  const std::string m = metrics_.Render();
  EXPECT_NE(m.find("syncwell_scheduler_due_users 1"), std::string::npos) << m;
  EXPECT_NE(m.find("syncwell_scheduler_lag_seconds 42"), std::string::npos) << m;
  EXPECT_NE(m.find("syncwell_scheduler_tick_seconds_count"), std::string::npos) << m;
}

}  // namespace
}  // namespace syncwell::schedule
