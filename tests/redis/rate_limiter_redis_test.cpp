// RedisLimiter: the RateLimiter contract (conformance/rate_limiter_suite.hpp) on the test Redis
// with the injected clock (use_redis_time = false) and a unique key prefix per limiter, plus what
// only a shared limiter has: two "processes" drawing from the same buckets, Redis's own clock, keys
// that expire, a lost script cache, and safe mode while Redis is unreachable (and back).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "conformance/rate_limiter_suite.hpp"
#include "ratelimit/redis/redis_limiter.hpp"
#include "redis/redis_client.hpp"
#include "redis/redis_test_env.hpp"

extern char** environ;

namespace syncwell::conformance {
namespace {

using ratelimit::RedisLimiter;
using ratelimit::RedisLimiterSettings;
using ratelimit::Scope;
using redis::RedisClient;
using redis::RedisReply;
using redis::RedisSettings;
using test_support::ClosedPort;
using test_support::TestRedisUrl;
using test_support::UniqueRedisName;

RedisSettings ClientSettings(const std::string& url) {
  RedisSettings s;
  s.url = url;
  s.pool_size = 8;
  return s;
}

RedisLimiterSettings LimiterSettings(const LimiterSpec& spec, const std::string& prefix,
                                     bool redis_time = false) {
  RedisLimiterSettings s;
  s.providers = spec.providers;
  s.reserve = spec.reserve;
  s.max_retry_after = spec.max_retry_after;
  s.key_prefix = prefix;
  s.use_redis_time = redis_time;
  return s;
}

// Deletes every key under `prefix` (tests leave nothing behind in the shared Redis).
void DeleteKeys(RedisClient& c, const std::string& prefix) {
  std::string cursor = "0";
  do {
    auto r = c.Command({"SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"});
    if (!r || r->type != RedisReply::Type::kArray || r->elements.size() != 2) return;
    cursor = r->elements[0].str;
    std::vector<std::string> del = {"DEL"};
    for (const auto& k : r->elements[1].elements) del.push_back(k.str);
    if (del.size() > 1) (void)c.Command(del);
  } while (cursor != "0");
}

class RedisHarness {
 public:
  RedisHarness(ManualClock& clock, const LimiterSpec& spec)
      : prefix_(UniqueRedisName("sw:test:rl") + ":"),
        client_(ClientSettings(TestRedisUrl())),
        l_(client_, clock, LimiterSettings(spec, prefix_)) {}
  ~RedisHarness() { DeleteKeys(client_, prefix_); }
  ratelimit::RateLimiter& limiter() { return l_; }

 private:
  std::string prefix_;
  RedisClient client_;
  RedisLimiter l_;
};

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, RateLimiterConformance, RedisHarness);

// ---- Redis-only ----

LimiterSpec OneProvider(std::vector<ratelimit::WindowLimit> windows) {
  LimiterSpec s;
  s.providers = {{"p", std::move(windows)}};
  s.reserve.release_fraction = 0;
  return s;
}

class RedisLimiterTest : public ::testing::Test {
 protected:
  RedisLimiterTest()
      : prefix_(UniqueRedisName("sw:test:rl") + ":"), admin_(ClientSettings(TestRedisUrl())) {}
  ~RedisLimiterTest() override { DeleteKeys(admin_, prefix_); }

  ManualClock clock_;
  std::string prefix_;
  RedisClient admin_;
};

TEST_F(RedisLimiterTest, TwoProcessesShareTheBuckets) {
  const LimiterSpec spec = OneProvider(
      {{Scope::kApp, std::chrono::hours{1}, 50}, {Scope::kUser, std::chrono::hours{1}, 30}});
  RedisClient c1(ClientSettings(TestRedisUrl()));
  RedisClient c2(ClientSettings(TestRedisUrl()));
  RedisLimiter w1(c1, clock_, LimiterSettings(spec, prefix_));
  RedisLimiter w2(c2, clock_, LimiterSettings(spec, prefix_));
  int granted_a = 0;
  for (int i = 0; i < 40; ++i) {
    RedisLimiter& w = i % 2 == 0 ? w1 : w2;
    auto d = w.TryAcquire("p", "a", Priority::kHigh);
    ASSERT_TRUE(d.ok()) << d.error().message;
    granted_a += d->granted;
  }
  EXPECT_EQ(granted_a, 30);  // user a's bucket, shared
  int granted_b = 0;
  for (int i = 0; i < 40; ++i) {
    RedisLimiter& w = i % 2 == 0 ? w2 : w1;
    granted_b += w.TryAcquire("p", "b", Priority::kHigh)->granted;
  }
  EXPECT_EQ(granted_b, 20);  // the app bucket (50) is shared too
  EXPECT_EQ(w1.Stats().granted + w2.Stats().granted, 50);
  EXPECT_EQ(w1.Stats().denied + w2.Stats().denied, 30);

  // A 429 seen by one worker blocks the provider user for the other.
  clock_.Advance(std::chrono::hours{1});
  ASSERT_TRUE(w1.RecordRetryAfter("p", "a", std::chrono::seconds{20}).ok());
  auto d = w2.TryAcquire("p", "a", Priority::kHigh);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->granted);
  EXPECT_EQ(d->retry_after, std::chrono::seconds{20});
  EXPECT_EQ(w2.Stats().denied_retry_after, 1);
  EXPECT_EQ(w1.Stats().retry_after_recorded, 1);
  EXPECT_TRUE(w2.TryAcquire("p", "b", Priority::kHigh)->granted);
}

TEST_F(RedisLimiterTest, RedisTimeBucketCannotBeOverspent) {
  // Windows follow Redis's clock. 8 threads on two limiters (two processes) race for a bucket.
  // A day window makes crossing a boundary during the test practically impossible; if it happens
  // anyway (the bucket refilled), the run is repeated.
  const LimiterSpec spec = OneProvider(
      {{Scope::kApp, std::chrono::hours{24}, 400}, {Scope::kUser, std::chrono::hours{24}, 150}});
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::string prefix = prefix_ + std::to_string(attempt) + ":";
    RedisClient c1(ClientSettings(TestRedisUrl()));
    RedisClient c2(ClientSettings(TestRedisUrl()));
    SystemClock unused;  // the limiters must not read it: use_redis_time
    RedisLimiter w1(c1, unused, LimiterSettings(spec, prefix, /*redis_time=*/true));
    RedisLimiter w2(c2, unused, LimiterSettings(spec, prefix, /*redis_time=*/true));
    const auto day_before = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
    std::atomic<int> granted{0};
    std::atomic<int> granted_u0{0};
    std::atomic<int> errors{0};
    std::atomic<int> bad_retry_after{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        RedisLimiter& w = t % 2 == 0 ? w1 : w2;
        for (int i = 0; i < 150; ++i) {
          const int u = (t + i) % 4;
          auto d = w.TryAcquire("p", "u" + std::to_string(u), Priority::kHigh);
          if (!d.ok()) {
            ++errors;
            continue;
          }
          if (d->granted) {
            ++granted;
            if (u == 0) ++granted_u0;
          } else if (d->retry_after <= Duration{0} || d->retry_after > std::chrono::hours{24}) {
            ++bad_retry_after;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    const auto day_after = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
    if (day_before != day_after) continue;  // crossed midnight UTC: run again
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(bad_retry_after.load(), 0);
    EXPECT_EQ(granted.load(), 400);
    EXPECT_LE(granted_u0.load(), 150);
    EXPECT_EQ(w1.Stats().granted + w2.Stats().granted, 400);
    DeleteKeys(admin_, prefix);
    return;
  }
  FAIL() << "crossed a day boundary twice";
}

TEST_F(RedisLimiterTest, KeysExpireAtTheirWindowEnd) {
  const LimiterSpec spec = OneProvider(
      {{Scope::kApp, std::chrono::minutes{15}, 10}, {Scope::kUser, std::chrono::hours{1}, 10}});
  RedisLimiterSettings s = LimiterSettings(spec, prefix_);
  s.key_grace = std::chrono::seconds{5};
  RedisLimiter l(admin_, clock_, s);
  clock_.Advance(std::chrono::minutes{10});
  ASSERT_TRUE(l.TryAcquire("p", "u1", Priority::kHigh)->granted);
  ASSERT_TRUE(l.RecordRetryAfter("p", "u2", std::chrono::seconds{30}).ok());
  auto pttl = [&](const std::string& key) {
    auto r = admin_.Command({"PTTL", prefix_ + key});
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->integer : -10;
  };
  // app window ends in 5 min, user window in 50 min, block in 30 s; each + 5 s of grace.
  const int64_t app = pttl("{p}:a:900000");
  EXPECT_GT(app, 300'000);
  EXPECT_LE(app, 305'000);
  const int64_t user = pttl("{p}:u:3600000:u1");
  EXPECT_GT(user, 2'990'000);
  EXPECT_LE(user, 3'005'000);
  const int64_t block = pttl("{p}:b:u2");
  EXPECT_GT(block, 30'000);
  EXPECT_LE(block, 35'000);
  // Nothing else was written (a denied request writes nothing).
  ASSERT_FALSE(l.TryAcquire("p", "u2", Priority::kHigh)->granted);
  auto keys = admin_.Command({"KEYS", prefix_ + "*"});
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->elements.size(), 3u);
}

TEST_F(RedisLimiterTest, SurvivesALostScriptCache) {
  RedisLimiter l(admin_, clock_,
                 LimiterSettings(OneProvider({{Scope::kUser, std::chrono::hours{1}, 3}}), prefix_));
  ASSERT_TRUE(l.TryAcquire("p", "u", Priority::kHigh)->granted);
  ASSERT_TRUE(admin_.Command({"SCRIPT", "FLUSH"}).ok());
  ASSERT_TRUE(l.TryAcquire("p", "u", Priority::kHigh)->granted);
  ASSERT_TRUE(l.RecordRetryAfter("p", "v", std::chrono::seconds{1}).ok());
  ASSERT_TRUE(l.TryAcquire("p", "u", Priority::kHigh)->granted);
  EXPECT_FALSE(l.TryAcquire("p", "u", Priority::kHigh)->granted);
}

TEST_F(RedisLimiterTest, UnreachableRedisMeansSafeMode) {
  RedisSettings cs = ClientSettings("redis://127.0.0.1:" + std::to_string(ClosedPort()));
  cs.reconnect_backoff = std::chrono::seconds{30};
  RedisClient down(cs);
  RedisLimiter l(down, clock_,
                 LimiterSettings(OneProvider({{Scope::kUser, std::chrono::hours{1}, 3}}), prefix_));
  EXPECT_FALSE(l.Available());
  for (int i = 0; i < 50; ++i) {
    auto d = l.TryAcquire("p", "u", Priority::kHigh);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, Errc::kUnavailable);
  }
  EXPECT_EQ(l.RecordRetryAfter("p", "u", std::chrono::seconds{5}).error().code, Errc::kUnavailable);
  EXPECT_EQ(l.Stats().unavailable, 51);
  EXPECT_EQ(l.Stats().granted, 0);
  // Bugs are still reported as such, not as an outage.
  EXPECT_EQ(l.TryAcquire("nope", "u", Priority::kHigh).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(l.TryAcquire("p", "u", Priority::kHigh, 4).error().code, Errc::kInvalidArgument);
  EXPECT_FALSE(l.Available());
}

// A private redis-server on a free port, to stop and start it again.
class OwnRedis {
 public:
  OwnRedis() : port_(ClosedPort()) {}
  ~OwnRedis() { Stop(); }
  int port() const { return port_; }
  void Start() {
    const std::string port = std::to_string(port_);
    std::vector<std::string> args = {"redis-server", "--bind",     "127.0.0.1", "--port",
                                     port,           "--save",     "",          "--appendonly",
                                     "no",           "--loglevel", "warning",   "--logfile",
                                     "/dev/null",    "--dir",      "/tmp"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ASSERT_EQ(posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ), 0)
        << "redis-server not found (scripts/install-deps.sh)";
    RedisClient probe(ClientSettings("redis://127.0.0.1:" + port));
    for (int i = 0; i < 200; ++i) {
      if (probe.Command({"PING"}).ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds{25});
    }
    FAIL() << "own redis-server did not start";
  }
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  int port_;
  pid_t pid_ = -1;
};

TEST_F(RedisLimiterTest, SafeModeWhileRedisIsDownThenBackWithoutRestart) {
  OwnRedis server;
  ASSERT_NO_FATAL_FAILURE(server.Start());
  RedisSettings cs = ClientSettings("redis://127.0.0.1:" + std::to_string(server.port()));
  cs.reconnect_backoff = std::chrono::milliseconds{50};
  RedisClient client(cs);
  RedisLimiter l(client, clock_,
                 LimiterSettings(OneProvider({{Scope::kUser, std::chrono::hours{1}, 3}}), prefix_));
  EXPECT_TRUE(l.Available());
  ASSERT_TRUE(l.TryAcquire("p", "u", Priority::kHigh)->granted);

  server.Stop();  // Redis dies (its state with it)
  bool saw_unavailable = false;
  for (int i = 0; i < 20; ++i) {
    auto d = l.TryAcquire("p", "u", Priority::kHigh);
    ASSERT_FALSE(d.ok() && d->granted) << "granted while Redis is down";
    if (!d.ok()) {
      EXPECT_EQ(d.error().code, Errc::kUnavailable);
      saw_unavailable = true;
    }
  }
  EXPECT_TRUE(saw_unavailable);
  EXPECT_FALSE(l.Available());

  ASSERT_NO_FATAL_FAILURE(server.Start());  // back (empty)
  bool available = false;
  for (int i = 0; i < 200 && !available; ++i) {
    available = l.Available();  // probes by itself once the backoff has passed
    if (!available) std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  EXPECT_TRUE(available);
  auto d = l.TryAcquire("p", "u", Priority::kHigh);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE(d->granted);
}

// Throughput of TryAcquire decisions against the test Redis (not a pass/fail test):
//   tests/rate_limiter_redis_test --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'
TEST_F(RedisLimiterTest, DISABLED_Throughput) {
  LimiterSpec spec;  // the default table; fitbit: one user bucket per user
  spec.providers = {{"p",
                     {{Scope::kApp, std::chrono::hours{24}, 1'000'000'000},
                      {Scope::kUser, std::chrono::hours{1}, 1'000'000}}}};
  RedisClient c(ClientSettings(TestRedisUrl()));
  SystemClock sys;
  RedisLimiter l(c, sys, LimiterSettings(spec, prefix_, /*redis_time=*/true));
  constexpr int kThreads = 8;
  const auto duration = std::chrono::seconds{3};
  std::atomic<int64_t> done{0};
  std::atomic<int64_t> errors{0};
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      int64_t i = 0;
      while (std::chrono::steady_clock::now() - start < duration) {
        auto d =
            l.TryAcquire("p", "user" + std::to_string((t * 7919 + i++) % 10000), Priority::kMedium);
        if (!d.ok()) ++errors;
        ++done;
      }
    });
  }
  for (auto& th : threads) th.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "TryAcquire (app + user bucket, redis time), %d threads: %.0f decisions/s, %lld errors\n",
      kThreads, static_cast<double>(done.load()) / secs, static_cast<long long>(errors.load()));
  EXPECT_EQ(errors.load(), 0);
}

}  // namespace
}  // namespace syncwell::conformance
