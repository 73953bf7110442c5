// Deferral helpers (SPEC S6): exponential backoff with full jitter, capped, never below a
// Retry-After; and the "sync delayed more than 15 min" episode detection.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "core/ids.hpp"
#include "ratelimit/backoff.hpp"
#include "ratelimit/delay_tracker.hpp"

namespace syncwell::ratelimit {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// Returns a fixed fraction of the allowed range, and records the ranges asked for.
class ScriptedRandom final : public RandomSource {
 public:
  explicit ScriptedRandom(double fraction) : fraction_(fraction) {}
  uint64_t UniformUpTo(uint64_t upper) override {
    uppers.push_back(upper);
    return static_cast<uint64_t>(static_cast<double>(upper) * fraction_);
  }
  std::vector<uint64_t> uppers;

 private:
  double fraction_;
};

TEST(Backoff, CeilingDoublesFromBaseAndIsCapped) {
  Backoff b;  // base 1 s, cap 15 min
  EXPECT_EQ(b.Ceiling(0), seconds{1});
  EXPECT_EQ(b.Ceiling(1), seconds{1});
  EXPECT_EQ(b.Ceiling(2), seconds{2});
  EXPECT_EQ(b.Ceiling(3), seconds{4});
  EXPECT_EQ(b.Ceiling(10), seconds{512});
  EXPECT_EQ(b.Ceiling(11), minutes{15});  // 1024 s > 900 s
  EXPECT_EQ(b.Ceiling(1'000'000), minutes{15});
  EXPECT_THROW(Backoff(BackoffSettings{seconds{2}, seconds{1}}), std::invalid_argument);
}

TEST(Backoff, FullJitterSpansZeroToTheCeiling) {
  Backoff b;
  ScriptedRandom lo(0.0);
  ScriptedRandom hi(1.0);
  ScriptedRandom mid(0.5);
  EXPECT_EQ(b.Delay(3, lo), milliseconds{0});
  EXPECT_EQ(b.Delay(3, hi), seconds{4});
  EXPECT_EQ(b.Delay(3, mid), seconds{2});
  EXPECT_EQ(b.Delay(40, hi), minutes{15});
  EXPECT_EQ(hi.uppers, (std::vector<uint64_t>{4000, 900'000}));  // [0, ceiling] in ms
}

TEST(Backoff, NeverBelowRetryAfterEvenAboveTheCap) {
  Backoff b;
  ScriptedRandom lo(0.0);
  ScriptedRandom hi(1.0);
  EXPECT_EQ(b.Delay(1, lo, seconds{30}), seconds{30});
  EXPECT_EQ(b.Delay(20, lo, hours{1}), hours{1});
  EXPECT_EQ(b.Delay(5, hi, seconds{3}), seconds{16});  // jitter above retry_after is kept
}

TEST(Backoff, JitterIsUniformOverTheWholeRange) {
  Backoff b;
  DefaultRandomSource random(42);
  constexpr int kSamples = 20'000;
  const int64_t cap = milliseconds{minutes{15}}.count();
  std::array<int, 10> deciles{};
  int64_t sum = 0;
  int64_t lo = cap;
  int64_t hi = 0;
  for (int i = 0; i < kSamples; ++i) {
    const int64_t d = b.Delay(30, random).count();
    ASSERT_GE(d, 0);
    ASSERT_LE(d, cap);
    sum += d;
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    ++deciles[std::min<int64_t>(9, d * 10 / cap)];
  }
  const double mean = static_cast<double>(sum) / kSamples;
  EXPECT_NEAR(mean / static_cast<double>(cap), 0.5, 0.02);
  EXPECT_LT(lo, cap / 100);  // full jitter reaches down to ~0 (not "equal jitter")
  EXPECT_GT(hi, cap * 99 / 100);
  for (int c : deciles) {
    EXPECT_GT(c, kSamples * 8 / 100);
    EXPECT_LT(c, kSamples * 12 / 100);
  }
}

TEST(Backoff, DefaultRandomSourceIsThreadSafe) {
  DefaultRandomSource random;
  Backoff b;
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) EXPECT_LE(b.Delay(5, random), seconds{16});
    });
  }
  for (auto& th : threads) th.join();
}

TEST(DelayTracker, ReportsOncePerEpisodeAfterFifteenMinutes) {
  ManualClock clock;
  DelayTracker tracker(clock);
  const UserId u("u1");
  EXPECT_FALSE(tracker.OnDeferred(u, "fitbit"));
  const TimePoint first = clock.Now();
  clock.Advance(minutes{10});
  EXPECT_FALSE(tracker.OnDeferred(u, "fitbit"));
  clock.Advance(minutes{5});
  EXPECT_FALSE(tracker.OnDeferred(u, "fitbit"));  // exactly 15 min: not "more than"
  clock.Advance(milliseconds{1});
  auto d = tracker.OnDeferred(u, "fitbit");
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, minutes{15} + milliseconds{1});  // total since the FIRST deferral
  EXPECT_EQ(tracker.FirstDeferredAt(u, "fitbit"), first);
  clock.Advance(minutes{30});
  EXPECT_FALSE(tracker.OnDeferred(u, "fitbit"));  // one event per episode

  tracker.OnCompleted(u, "fitbit");  // the sync ran: episode over
  EXPECT_FALSE(tracker.FirstDeferredAt(u, "fitbit"));
  EXPECT_FALSE(tracker.OnDeferred(u, "fitbit"));
  clock.Advance(minutes{16});
  EXPECT_TRUE(tracker.OnDeferred(u, "fitbit"));  // a new episode reports again
}

TEST(DelayTracker, UsersAndProvidersAreSeparateEpisodes) {
  ManualClock clock;
  DelayTracker tracker(clock);
  EXPECT_FALSE(tracker.OnDeferred(UserId("a"), "fitbit"));
  clock.Advance(minutes{10});
  EXPECT_FALSE(tracker.OnDeferred(UserId("a"), "strava"));
  EXPECT_FALSE(tracker.OnDeferred(UserId("b"), "fitbit"));
  clock.Advance(minutes{6});
  EXPECT_TRUE(tracker.OnDeferred(UserId("a"), "fitbit"));
  EXPECT_FALSE(tracker.OnDeferred(UserId("a"), "strava"));
  EXPECT_FALSE(tracker.OnDeferred(UserId("b"), "fitbit"));
}

TEST(DelayTracker, ForgetsAbandonedEpisodesAndStaysBounded) {
  ManualClock clock;
  DelayTracker tracker(clock, DelayTrackerSettings{minutes{15}, hours{1}, 3});
  EXPECT_FALSE(tracker.OnDeferred(UserId("a"), "p"));
  clock.Advance(hours{2});  // no deferral for longer than forget_after: a new episode
  EXPECT_FALSE(tracker.OnDeferred(UserId("a"), "p"));
  for (const char* u : {"b", "c", "d", "e"}) {
    clock.Advance(seconds{1});
    EXPECT_FALSE(tracker.OnDeferred(UserId(u), "p"));
  }
  EXPECT_EQ(tracker.size(), 3u);
  EXPECT_FALSE(tracker.FirstDeferredAt(UserId("a"), "p"));  // least recently deferred went first
  EXPECT_FALSE(tracker.FirstDeferredAt(UserId("b"), "p"));
  EXPECT_TRUE(tracker.FirstDeferredAt(UserId("e"), "p"));
}

}  // namespace
}  // namespace syncwell::ratelimit
