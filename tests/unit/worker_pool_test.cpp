// WorkerPool against the in-memory Store + JobQueue fake and a ManualClock. Most tests call
// Receive + Process on the test thread (no pool threads, no sleeps); heartbeat and drain tests
// run a handler on a second thread and synchronise on latches, never on wall-clock timing.
#include "worker/worker_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "fakes/in_memory_store.hpp"
#include "obs/metrics.hpp"

namespace syncwell::worker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class FixedRandom final : public ratelimit::RandomSource {
 public:
  // The jitter's upper end: backoff = max(ceiling(attempt), retry_after), deterministic.
  uint64_t UniformUpTo(uint64_t upper) override { return upper; }
};

class FakeLimiter final : public ratelimit::RateLimiter {
 public:
  bool Available() const override { return available; }
  Result<ratelimit::Decision> TryAcquire(std::string_view provider, std::string_view,
                                         ratelimit::Priority, int64_t) override {
    last_provider = std::string(provider);
    if (!available) return MakeError(Errc::kUnavailable, "down");
    ++calls;
    if (!grant) return ratelimit::Decision{false, milliseconds{5000}};
    return ratelimit::Decision{true, milliseconds{0}};
  }
  Status RecordRetryAfter(std::string_view, std::string_view, Duration d) override {
    recorded_retry_after = d;
    return {};
  }
  std::atomic<bool> available{true};
  std::atomic<bool> grant{true};
  std::atomic<int> calls{0};
  std::string last_provider;
  Duration recorded_retry_after{0};
};

// A handler driven by a function; counts calls.
class FnHandler final : public JobHandler {
 public:
  std::function<Result<void>(const store::Job&, JobContext&)> fn =
      [](const store::Job&, JobContext&) -> Result<void> { return {}; };
  Result<void> Handle(const store::Job& job, JobContext& ctx) override {
    ++calls;
    return fn(job, ctx);
  }
  bool ReportsProviderRateLimits() const override { return reports_rate_limits; }
  std::atomic<int> calls{0};
  bool reports_rate_limits = false;
};

class WorkerPoolTest : public ::testing::Test {
 protected:
  WorkerPoolTest() : store_(clock_) {}

  JobId AddJob(const std::string& user, const std::string& priority = "medium",
               store::ConnectionStatus conn_status = store::ConnectionStatus::kActive) {
    (void)store_.EnsureUser(UserId(user), store::Tier::kPro);
    store::Connection c;
    c.id = ConnectionId("conn_" + user);
    c.user = UserId(user);
    c.provider = "garmin";
    c.provider_user_id = "g-" + user;
    c.status = conn_status;
    (void)store_.CreateConnection(c);
    store::Job j;
    j.id = JobId("job_" + user + "_" + std::to_string(++seq_));
    j.user = UserId(user);
    j.source = c.id;
    j.destination = ConnectionId("conn_dst");
    j.data_type = "workout";
    j.mode = "manual";
    j.priority = priority;
    queue::OutgoingMessage m;
    m.group_id = user;
    m.dedup_id = j.id.str();
    queue::ParsePriority(priority, &m.priority);
    m.body = R"({"jobId":")" + j.id.str() + R"(","userId":")" + user + R"("})";
    EXPECT_TRUE(store_.CreateJob(j, m, nullptr));
    return j.id;
  }

  store::JobStatus StatusOf(const JobId& id, const std::string& user) {
    return store_.GetJob(UserId(user), id)->status;
  }

  std::unique_ptr<WorkerPool> MakePool(WorkerPoolSettings s = {}) {
    s.retry_backoff = {milliseconds{1000}, milliseconds{60'000}};
    s.defer_backoff = s.retry_backoff;
    return std::make_unique<WorkerPool>(s, store_, store_, limiter_, handler_, clock_, metrics_,
                                        random_);
  }

  // Receives one message (or none) and processes it on this thread.
  bool ReceiveAndProcess(WorkerPool& pool) {
    auto got = store_.Receive(queue::ReceiveOptions{1, std::nullopt, milliseconds{0}});
    EXPECT_TRUE(got);
    if (!got || got->empty()) return false;
    pool.Process(got->front());
    return true;
  }

  double Outcome(const std::string& o) {
    return static_cast<double>(metrics_
                                   .GetCounter("syncwell_worker_jobs_total",
                                               "Job deliveries by outcome", "outcome=\"" + o + "\"")
                                   .Value());
  }

  ManualClock clock_;
  fakes::InMemoryStore store_;
  FakeLimiter limiter_;
  FnHandler handler_;
  FixedRandom random_;
  obs::Registry metrics_;
  int seq_ = 0;
};

TEST(DesiredWorkersTest, CeilOfBacklogOverTargetClampedToMinMax) {
  WorkerPoolSettings s;
  s.min_workers = 2;
  s.max_workers = 8;
  s.target_backlog_per_worker = 10;
  EXPECT_EQ(DesiredWorkers(0, s), 2);
  EXPECT_EQ(DesiredWorkers(25, s), 3);
  EXPECT_EQ(DesiredWorkers(30, s), 3);
  EXPECT_EQ(DesiredWorkers(31, s), 4);
  EXPECT_EQ(DesiredWorkers(1'000'000, s), 8);
  s.min_workers = 0;
  EXPECT_EQ(DesiredWorkers(0, s), 0);
  EXPECT_EQ(DesiredWorkers(1, s), 1);
}

TEST_F(WorkerPoolTest, SuccessPathGoesQueuedRunningSucceededAndDeletesTheMessage) {
  auto id = AddJob("alice");
  EXPECT_EQ(StatusOf(id, "alice"), store::JobStatus::kQueued);
  store::JobStatus seen = store::JobStatus::kQueued;
  std::string provider;
  handler_.fn = [&](const store::Job& j, JobContext& ctx) -> Result<void> {
    seen = StatusOf(j.id, "alice");
    provider = ctx.provider;
    EXPECT_EQ(ctx.attempt, 1);
    return {};
  };
  auto pool = MakePool();
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(seen, store::JobStatus::kRunning);
  EXPECT_EQ(provider, "garmin");
  EXPECT_EQ(limiter_.last_provider, "garmin");
  EXPECT_EQ(StatusOf(id, "alice"), store::JobStatus::kSucceeded);
  EXPECT_TRUE(store_.Messages().empty());
  EXPECT_EQ(Outcome("succeeded"), 1);
}

// A handler whose own transaction recorded SUCCEEDED (the sync engine's CommitSync) says so; the
// pool then writes no second status (here the handler writes it with a summary, and the pool's
// UpdateJobStatus would have cleared nothing but cost a durable commit).
TEST_F(WorkerPoolTest, StatusCommittedByTheHandlerIsNotWrittenAgain) {
  auto id = AddJob("alice");
  handler_.fn = [&](const store::Job& j, JobContext& ctx) -> Result<void> {
    store::SyncCommit c;
    c.job = store::SyncCommit::JobUpdate{j.id, store::JobStatus::kSucceeded, "", "moved 3"};
    if (auto st = store_.CommitSync(c); !st) return st.error();
    ctx.status_committed = true;
    clock_.Advance(std::chrono::seconds{5});  // a later write would carry a later updated_at
    return {};
  };
  auto pool = MakePool();
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  auto job = store_.GetJob(UserId("alice"), id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->status, store::JobStatus::kSucceeded);
  EXPECT_EQ(job->summary, "moved 3");
  EXPECT_EQ(job->updated_at, clock_.Now() - std::chrono::seconds{5});  // no second write
  EXPECT_TRUE(store_.Messages().empty());
  EXPECT_EQ(Outcome("succeeded"), 1);
}

TEST_F(WorkerPoolTest, RetryableFailureIsRetriedWithBackoffThenSucceeds) {
  auto id = AddJob("bob");
  handler_.fn = [&](const store::Job&, JobContext& ctx) -> Result<void> {
    if (ctx.attempt == 1) return MakeError(Errc::kRetryable, "503 from provider");
    return {};
  };
  auto pool = MakePool();
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(StatusOf(id, "bob"), store::JobStatus::kQueued);
  ASSERT_EQ(store_.Messages().size(), 1u);
  EXPECT_EQ(store_.Messages()[0].receive_count, 1);
  EXPECT_FALSE(ReceiveAndProcess(*pool)) << "the retry waits for its backoff (1 s ceiling)";
  clock_.Advance(seconds{2});
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(StatusOf(id, "bob"), store::JobStatus::kSucceeded);
  EXPECT_EQ(handler_.calls, 2);
  EXPECT_EQ(Outcome("retried"), 1);
}

TEST_F(WorkerPoolTest, FiveFailuresDeadLetterTheMessageAndFailTheJob) {
  auto id = AddJob("carol");
  handler_.fn = [](const store::Job&, JobContext&) -> Result<void> {
    return MakeError(Errc::kRetryable, "timeout");
  };
  auto pool = MakePool();
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(seconds{120});  // past any backoff (cap 60 s)
    ASSERT_TRUE(ReceiveAndProcess(*pool)) << "delivery " << i + 1;
    if (i < 4) {
      EXPECT_EQ(StatusOf(id, "carol"), store::JobStatus::kQueued);
    }
  }
  EXPECT_EQ(StatusOf(id, "carol"), store::JobStatus::kFailed);
  EXPECT_NE(store_.GetJob(UserId("carol"), id)->error.find("timeout"), std::string::npos);
  auto dlq = store_.DlqList({});
  ASSERT_TRUE(dlq);
  ASSERT_EQ(dlq->size(), 1u);
  EXPECT_EQ((*dlq)[0].receive_count, 5);
  clock_.Advance(seconds{120});
  EXPECT_FALSE(ReceiveAndProcess(*pool));
  EXPECT_EQ(handler_.calls, 5);
  EXPECT_EQ(Outcome("dead_lettered"), 1);
}

TEST_F(WorkerPoolTest, PermanentErrorDeadLettersAtOnceAndFails) {
  auto id = AddJob("pete");
  handler_.fn = [](const store::Job&, JobContext&) -> Result<void> {
    return MakeError(Errc::kPermanent, "mapping error");
  };
  auto pool = MakePool();
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(StatusOf(id, "pete"), store::JobStatus::kFailed);
  EXPECT_NE(store_.GetJob(UserId("pete"), id)->error.find("mapping error"), std::string::npos);
  auto dlq = store_.DlqList({});
  ASSERT_TRUE(dlq);
  ASSERT_EQ(dlq->size(), 1u);
  EXPECT_EQ((*dlq)[0].receive_count, 1);
  ASSERT_EQ((*dlq)[0].history.size(), 1u);
  EXPECT_EQ((*dlq)[0].history[0].kind, queue::HistoryKind::kFailed);
  EXPECT_NE((*dlq)[0].history[0].text.find("mapping error"), std::string::npos);
  clock_.Advance(seconds{3600});
  EXPECT_FALSE(ReceiveAndProcess(*pool)) << "no retries";
  EXPECT_EQ(handler_.calls, 1);
  EXPECT_EQ(Outcome("dead_lettered"), 1);
  EXPECT_EQ(Outcome("retried"), 0);
}

TEST_F(WorkerPoolTest, AuthRevokedFailsAtOnceWithoutRetries) {
  auto id = AddJob("dave");
  handler_.fn = [](const store::Job&, JobContext&) -> Result<void> {
    return MakeError(Errc::kAuthRevoked, "invalid_grant");
  };
  auto pool = MakePool();
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(StatusOf(id, "dave"), store::JobStatus::kFailed);
  EXPECT_TRUE(store_.Messages().empty()) << "deleted, not dead-lettered or retried";
  clock_.Advance(seconds{3600});
  EXPECT_FALSE(ReceiveAndProcess(*pool));
  EXPECT_EQ(handler_.calls, 1);
}

TEST_F(WorkerPoolTest, ConnectionNeedingReauthFailsWithoutRunningTheHandler) {
  auto id = AddJob("erin", "medium", store::ConnectionStatus::kNeedsReauth);
  auto pool = MakePool();
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(StatusOf(id, "erin"), store::JobStatus::kFailed);
  EXPECT_EQ(handler_.calls, 0);
  EXPECT_EQ(limiter_.calls, 0);
}

TEST_F(WorkerPoolTest, RefusedTokenDefersWithoutCountingTheReceive) {
  auto id = AddJob("fay");
  limiter_.grant = false;
  auto pool = MakePool();
  for (int i = 0; i < 7; ++i) {  // more than maxReceiveCount: deferrals never dead-letter
    ASSERT_TRUE(ReceiveAndProcess(*pool));
    ASSERT_EQ(store_.Messages().size(), 1u);
    EXPECT_EQ(store_.Messages()[0].receive_count, 0);
    EXPECT_FALSE(ReceiveAndProcess(*pool)) << "deferred by at least the limiter's retry_after";
    clock_.Advance(seconds{61});  // past the backoff cap
  }
  EXPECT_EQ(handler_.calls, 0);
  EXPECT_EQ(StatusOf(id, "fay"), store::JobStatus::kQueued);
  EXPECT_TRUE(store_.DlqList({})->empty());
  limiter_.grant = true;
  clock_.Advance(seconds{3600});
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(StatusOf(id, "fay"), store::JobStatus::kSucceeded);
  EXPECT_EQ(Outcome("deferred_rate_limited"), 7);
}

TEST_F(WorkerPoolTest, HandlerThatReportsRateLimitsItselfIsNotBlamedOnTheSource) {
  // The sync engine records a destination's 429 against the destination; the pool must not
  // also block the job's source provider.
  auto id = AddJob("hal");
  handler_.reports_rate_limits = true;
  handler_.fn = [&](const store::Job&, JobContext&) -> Result<void> {
    Error e = MakeError(Errc::kRateLimited, "destination 429");
    e.retry_after = milliseconds{30'000};
    return e;
  };
  auto pool = MakePool();
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(limiter_.recorded_retry_after, milliseconds{0});
  EXPECT_EQ(StatusOf(id, "hal"), store::JobStatus::kQueued);
  EXPECT_EQ(Outcome("deferred_provider_rate_limited"), 1);
}

TEST_F(WorkerPoolTest, ProviderRateLimitDefersHonouringRetryAfter) {
  auto id = AddJob("gus");
  handler_.fn = [&](const store::Job&, JobContext&) -> Result<void> {
    if (handler_.calls == 1) {
      Error e = MakeError(Errc::kRateLimited, "429");
      e.retry_after = milliseconds{30'000};
      return e;
    }
    return {};
  };
  auto pool = MakePool();
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(limiter_.recorded_retry_after, milliseconds{30'000});
  EXPECT_EQ(store_.Messages()[0].receive_count, 0) << "a deferral is not a failed delivery";
  EXPECT_EQ(StatusOf(id, "gus"), store::JobStatus::kQueued);
  clock_.Advance(seconds{29});
  EXPECT_FALSE(ReceiveAndProcess(*pool));
  clock_.Advance(seconds{2});
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(StatusOf(id, "gus"), store::JobStatus::kSucceeded);
}

TEST_F(WorkerPoolTest, NotYetDefersByItsRetryAfterWithoutCountingAnAttempt) {
  // The sync engine's write_settle wait: not a rate limit (nothing recorded at the limiter),
  // not a failure (the receive count stays), and its own outcome label.
  auto id = AddJob("ivy");
  handler_.fn = [&](const store::Job&, JobContext&) -> Result<void> {
    if (handler_.calls == 1) {
      Error e = MakeError(Errc::kNotYet, "a push may still land");
      e.retry_after = milliseconds{40'000};
      return e;
    }
    return {};
  };
  auto pool = MakePool();
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(limiter_.recorded_retry_after, milliseconds{0});
  EXPECT_EQ(store_.Messages()[0].receive_count, 0) << "a deferral is not a failed delivery";
  EXPECT_EQ(StatusOf(id, "ivy"), store::JobStatus::kQueued);
  EXPECT_EQ(Outcome("deferred_not_settled"), 1);
  EXPECT_EQ(Outcome("deferred_provider_rate_limited"), 0);
  clock_.Advance(seconds{39});
  EXPECT_FALSE(ReceiveAndProcess(*pool));
  clock_.Advance(seconds{2});
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(StatusOf(id, "ivy"), store::JobStatus::kSucceeded);
}

TEST_F(WorkerPoolTest, SafeModeDefersWhenTheLimiterIsUnavailable) {
  auto id = AddJob("hal");
  limiter_.available = false;
  auto pool = MakePool();
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(handler_.calls, 0);
  EXPECT_EQ(store_.Messages()[0].receive_count, 0);
  EXPECT_EQ(StatusOf(id, "hal"), store::JobStatus::kQueued);
  EXPECT_EQ(Outcome("deferred_safe_mode"), 1);
}

TEST_F(WorkerPoolTest, CommittedJobIsNeverRunAgain) {
  auto id = AddJob("ivy");
  // A crash after the SUCCEEDED commit but before Delete: the message comes back.
  ASSERT_TRUE(store_.UpdateJobStatus(id, store::JobStatus::kSucceeded, ""));
  auto pool = MakePool();
  ASSERT_TRUE(ReceiveAndProcess(*pool));
  EXPECT_EQ(handler_.calls, 0);
  EXPECT_TRUE(store_.Messages().empty());
  EXPECT_EQ(Outcome("already_done"), 1);
}

// Blocks the handler until released; signals when it started.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool started = false, release = false, saw_cancel = false;
  void WaitStarted() {
    std::unique_lock l(mu);
    cv.wait(l, [&] { return started; });
  }
  void Release() {
    {
      std::lock_guard l(mu);
      release = true;
    }
    cv.notify_all();
  }
};

TEST_F(WorkerPoolTest, HeartbeatExtendsVisibilityOfALongJob) {
  auto id = AddJob("jan");
  Gate gate;
  handler_.fn = [&](const store::Job&, JobContext&) -> Result<void> {
    std::unique_lock l(gate.mu);
    gate.started = true;
    gate.cv.notify_all();
    gate.cv.wait(l, [&] { return gate.release; });
    return {};
  };
  WorkerPoolSettings s;
  s.visibility_timeout = seconds{30};  // heartbeat every 10 s
  auto pool = MakePool(s);
  auto got = store_.Receive(queue::ReceiveOptions{1, seconds{30}, milliseconds{0}});
  ASSERT_TRUE(got && got->size() == 1);
  auto m = got->front();
  const int64_t first_visible = store_.Messages()[0].visible_at;
  std::thread t([&] { pool->Process(m); });
  gate.WaitStarted();
  clock_.Advance(seconds{5});
  pool->Tick();
  EXPECT_EQ(store_.Messages()[0].visible_at, first_visible) << "no heartbeat before 10 s";
  for (int i = 0; i < 10; ++i) {  // 100 s in all: far beyond the 30 s timeout
    clock_.Advance(seconds{10});
    pool->Tick();
    EXPECT_EQ(store_.Messages()[0].visible_at, ToUnixMillis(clock_.Now()) + 30'000);
  }
  EXPECT_EQ(store_.Messages()[0].state, "inflight");
  gate.Release();
  t.join();
  EXPECT_EQ(StatusOf(id, "jan"), store::JobStatus::kSucceeded);
  EXPECT_TRUE(store_.Messages().empty());
}

TEST_F(WorkerPoolTest, TickComputesDesiredWorkersFromTheBacklog) {
  for (int i = 0; i < 35; ++i) AddJob("u" + std::to_string(i));
  WorkerPoolSettings s;
  s.min_workers = 1;
  s.max_workers = 3;
  s.target_backlog_per_worker = 10;
  auto pool = MakePool(s);
  pool->Tick();
  EXPECT_EQ(pool->desired_workers(), 3);  // ceil(35 / 10) = 4, capped at 3
  s.max_workers = 16;
  auto pool2 = MakePool(s);
  pool2->Tick();
  EXPECT_EQ(pool2->desired_workers(), 4);
  EXPECT_EQ(pool2->current_workers(), 4);
}

TEST_F(WorkerPoolTest, StopReleasesJobsThatOutliveTheDrainTimeout) {
  auto id = AddJob("kim");
  Gate gate;
  handler_.fn = [&](const store::Job&, JobContext& ctx) -> Result<void> {
    {
      std::lock_guard l(gate.mu);
      gate.started = true;
    }
    gate.cv.notify_all();
    const bool finished = ctx.SleepFor(seconds{60});
    gate.saw_cancel = !finished;
    return finished ? Result<void>{} : MakeError(Errc::kRetryable, "cancelled");
  };
  WorkerPoolSettings s;
  s.receive_wait = milliseconds{20};
  s.drain_timeout = milliseconds{50};
  s.tick_interval = seconds{3600};  // heartbeats are not under test here
  auto pool = MakePool(s);
  pool->Start();
  gate.WaitStarted();
  EXPECT_EQ(StatusOf(id, "kim"), store::JobStatus::kRunning);
  pool->Stop();
  EXPECT_TRUE(gate.saw_cancel);
  ASSERT_EQ(store_.Messages().size(), 1u);
  const auto msg = store_.Messages()[0];
  EXPECT_EQ(msg.state, "ready");
  EXPECT_EQ(msg.receive_count, 0) << "released, not counted as a failed delivery";
  EXPECT_LE(msg.visible_at, ToUnixMillis(clock_.Now()));
  EXPECT_EQ(StatusOf(id, "kim"), store::JobStatus::kQueued);
  EXPECT_EQ(Outcome("released"), 1);
  EXPECT_EQ(pool->current_workers(), 0);
}

// The handler's final commit may delete the message itself (Store::AcksInCommit) just before
// Stop gives up on it. Releasing then finds no message: the job finished, so its status must
// stay SUCCEEDED (not QUEUED, which no message would ever run again).
TEST_F(WorkerPoolTest, StopDoesNotRequeueAJobWhoseCommitAlreadyAckedIt) {
  auto id = AddJob("kit");
  Gate gate;
  handler_.fn = [&](const store::Job& j, JobContext& ctx) -> Result<void> {
    EXPECT_TRUE(store_.UpdateJobStatus(j.id, store::JobStatus::kSucceeded, "").ok());
    EXPECT_TRUE(store_.Delete(ctx.receipt).ok());  // as an acking CommitSync would
    {
      std::lock_guard l(gate.mu);
      gate.started = true;
    }
    gate.cv.notify_all();
    ctx.SleepFor(seconds{60});  // then slow to return: the drain times out
    return MakeError(Errc::kRetryable, "cancelled");
  };
  WorkerPoolSettings s;
  s.receive_wait = milliseconds{20};
  s.drain_timeout = milliseconds{50};
  s.tick_interval = seconds{3600};
  auto pool = MakePool(s);
  pool->Start();
  gate.WaitStarted();
  pool->Stop();
  EXPECT_TRUE(store_.Messages().empty());
  EXPECT_EQ(StatusOf(id, "kit"), store::JobStatus::kSucceeded);
  EXPECT_EQ(Outcome("released"), 0);
}

TEST_F(WorkerPoolTest, StopLetsShortJobsFinish) {
  auto id = AddJob("lou");
  Gate gate;
  handler_.fn = [&](const store::Job&, JobContext&) -> Result<void> {
    std::unique_lock l(gate.mu);
    gate.started = true;
    gate.cv.notify_all();
    gate.cv.wait(l, [&] { return gate.release; });
    return {};
  };
  WorkerPoolSettings s;
  s.receive_wait = milliseconds{20};
  s.drain_timeout = seconds{60};
  auto pool = MakePool(s);
  pool->Start();
  gate.WaitStarted();
  auto stopped = std::async(std::launch::async, [&] { pool->Stop(); });
  gate.Release();
  stopped.get();
  EXPECT_EQ(StatusOf(id, "lou"), store::JobStatus::kSucceeded);
  EXPECT_TRUE(store_.Messages().empty());
}

TEST_F(WorkerPoolTest, BatchedAcksGoOutTenAtATimeAfterTheStatusCommit) {
  std::vector<std::pair<JobId, std::string>> jobs;
  for (int i = 0; i < 10; ++i) {
    const std::string user = "u" + std::to_string(i);
    jobs.emplace_back(AddJob(user), user);
  }
  handler_.fn = [](const store::Job&, JobContext&) -> Result<void> { return {}; };
  WorkerPoolSettings s;
  s.ack_batch_window = std::chrono::minutes{10};  // only a full batch flushes (not started)
  auto pool = MakePool(s);
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(ReceiveAndProcess(*pool));
  // Nine jobs committed SUCCEEDED; their messages wait for the batch (still held, not lost).
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(StatusOf(jobs[i].first, jobs[i].second), store::JobStatus::kSucceeded);
  }
  EXPECT_EQ(store_.Messages().size(), 10u);
  ASSERT_TRUE(ReceiveAndProcess(*pool));  // the tenth fills the batch: one DeleteBatch
  EXPECT_TRUE(store_.Messages().empty());
  EXPECT_EQ(metrics_.GetCounter("syncwell_worker_ack_batches_total", "").Value(), 1u);
  EXPECT_EQ(Outcome("succeeded"), 10);
}

TEST_F(WorkerPoolTest, StopSendsTheAcksStillWaitingForABatch) {
  auto a = AddJob("ann");
  auto b = AddJob("bob");
  handler_.fn = [](const store::Job&, JobContext&) -> Result<void> { return {}; };
  WorkerPoolSettings s;
  s.receive_wait = milliseconds{20};
  s.ack_batch_window = std::chrono::minutes{10};
  auto pool = MakePool(s);
  pool->Start();
  const auto deadline = std::chrono::steady_clock::now() + seconds{30};
  while ((StatusOf(a, "ann") != store::JobStatus::kSucceeded ||
          StatusOf(b, "bob") != store::JobStatus::kSucceeded) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds{5});
  }
  ASSERT_EQ(StatusOf(b, "bob"), store::JobStatus::kSucceeded);
  pool->Stop();
  EXPECT_TRUE(store_.Messages().empty());
}

TEST(ReceiverCountTest, OnePerTenSlotsUpToEightUnlessSet) {
  WorkerPoolSettings s;
  s.max_workers = 1;
  EXPECT_EQ(ReceiverCount(s), 1);
  s.max_workers = 16;
  EXPECT_EQ(ReceiverCount(s), 2);
  s.max_workers = 128;
  EXPECT_EQ(ReceiverCount(s), 8);
  s.receivers = 3;
  EXPECT_EQ(ReceiverCount(s), 3);
}

// Forwards to the fake queue; counts Receive calls in flight and the messages the pool holds
// (received, not yet deleted). The first two Receives wait for each other (bounded), so a pool
// that receives one call at a time shows max_in_flight == 1.
class CountingQueue final : public queue::JobQueue {
 public:
  explicit CountingQueue(queue::JobQueue& q) : q_(q) {}
  Result<queue::SendOutcome> Send(const queue::OutgoingMessage& m) override { return q_.Send(m); }
  Result<queue::QueueStats> Stats() override { return q_.Stats(); }
  Result<std::vector<queue::ReceivedMessage>> Receive(const queue::ReceiveOptions& o) override {
    {
      std::unique_lock l(mu_);
      ++in_flight_;
      max_in_flight = std::max(max_in_flight, in_flight_);
      cv_.notify_all();
      if (calls_++ < 2) cv_.wait_for(l, seconds{5}, [&] { return in_flight_ >= 2; });
    }
    auto got = q_.Receive(o);
    std::lock_guard l(mu_);
    --in_flight_;
    if (got) held_ += static_cast<int>(got->size());
    max_held = std::max(max_held, held_);
    return got;
  }
  Status Delete(std::string_view r) override {
    Released(1);
    return q_.Delete(r);
  }
  Status ChangeVisibility(std::string_view r, milliseconds t) override {
    return q_.ChangeVisibility(r, t);
  }
  Status Defer(std::string_view r, milliseconds d, std::string_view e) override {
    Released(1);
    return q_.Defer(r, d, e);
  }
  Result<queue::FailOutcome> Fail(std::string_view r, std::string_view e, milliseconds d) override {
    Released(1);
    return q_.Fail(r, e, d);
  }
  Status DeadLetter(std::string_view r, std::string_view e) override {
    Released(1);
    return q_.DeadLetter(r, e);
  }
  Result<std::vector<queue::DlqEntry>> DlqList(const queue::DlqListOptions& o) override {
    return q_.DlqList(o);
  }
  Result<queue::DlqEntry> DlqGet(std::string_view id) override { return q_.DlqGet(id); }
  Status DlqRedrive(std::string_view id) override { return q_.DlqRedrive(id); }
  Result<int64_t> DlqRedriveAll() override { return q_.DlqRedriveAll(); }
  Result<int64_t> DlqPurge() override { return q_.DlqPurge(); }

  int max_in_flight = 0;  // guarded by mu_ (read after the pool stopped)
  int max_held = 0;

 private:
  void Released(int n) {
    std::lock_guard l(mu_);
    held_ -= n;
  }
  queue::JobQueue& q_;
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  int calls_ = 0;
  int held_ = 0;
};

TEST_F(WorkerPoolTest, SeveralReceiversNeverHoldMoreMessagesThanSlots) {
  std::vector<std::pair<JobId, std::string>> jobs;
  for (int i = 0; i < 60; ++i) {
    const std::string user = "r" + std::to_string(i);
    jobs.emplace_back(AddJob(user), user);
  }
  CountingQueue counting(store_);
  WorkerPoolSettings s;
  s.min_workers = s.max_workers = 12;
  s.receivers = 4;
  s.receive_wait = milliseconds{20};
  s.retry_backoff = {milliseconds{1000}, milliseconds{60'000}};
  s.defer_backoff = s.retry_backoff;
  WorkerPool pool(s, counting, store_, limiter_, handler_, clock_, metrics_, random_);
  pool.Start();
  const auto deadline = std::chrono::steady_clock::now() + seconds{60};
  auto all_done = [&] {
    for (const auto& [id, user] : jobs)
      if (StatusOf(id, user) != store::JobStatus::kSucceeded) return false;
    return true;
  };
  while (!all_done() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds{5});
  pool.Stop();
  EXPECT_TRUE(all_done());
  EXPECT_TRUE(store_.Messages().empty());
  EXPECT_GE(counting.max_in_flight, 2);  // receives overlapped
  EXPECT_LE(counting.max_held, 12);      // never more messages than slots
  EXPECT_GT(counting.max_held, 0);
}

}  // namespace
}  // namespace syncwell::worker
