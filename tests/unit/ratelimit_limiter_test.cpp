// InProcessLimiter (SPEC S6): fixed windows refill at their boundaries, a request takes from every
// applicable bucket or none, no overspend under contention, the priority reserve, exact
// retry_after, provider Retry-After feedback, bounded memory and safe mode.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "ratelimit/in_process_limiter.hpp"
#include "ratelimit/limits.hpp"
#include "ratelimit/rate_limiter.hpp"
#include "ratelimit/switchable_limiter.hpp"

namespace syncwell::ratelimit {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// ManualClock's default start (1,800,000,000 s) is on an hour (and 15-min, minute) boundary and
// 8 h into a UTC day.
constexpr Priority kHigh = Priority::kHigh;
constexpr Priority kMedium = Priority::kMedium;
constexpr Priority kLow = Priority::kLow;

InProcessLimiterSettings Settings(std::vector<WindowLimit> windows, double release = 0.0) {
  InProcessLimiterSettings s;
  s.providers = {{"p", std::move(windows)}};
  s.reserve.release_fraction = release;
  return s;
}

bool Granted(RateLimiter& l, std::string_view user, Priority pr = kHigh, int64_t n = 1) {
  auto d = l.TryAcquire("p", user, pr, n);
  EXPECT_TRUE(d.ok()) << (d.ok() ? "" : d.error().message);
  return d.ok() && d->granted;
}

Duration RetryAfter(RateLimiter& l, std::string_view user, Priority pr = kHigh, int64_t n = 1) {
  auto d = l.TryAcquire("p", user, pr, n);
  EXPECT_TRUE(d.ok());
  EXPECT_FALSE(d->granted);
  return d->retry_after;
}

int TakeAll(RateLimiter& l, std::string_view user, Priority pr) {
  int n = 0;
  while (Granted(l, user, pr)) ++n;
  return n;
}

TEST(RateLimitDefaults, TableMatchesSpec) {
  auto d = DefaultProviderLimits();
  ASSERT_EQ(d.size(), 4u);
  auto find = [&](const std::string& name) {
    for (auto& p : d) {
      if (p.provider == name) return p.windows;
    }
    ADD_FAILURE() << name;
    return std::vector<WindowLimit>{};
  };
  auto fitbit = find("fitbit");
  ASSERT_EQ(fitbit.size(), 1u);
  EXPECT_EQ(fitbit[0].scope, Scope::kUser);
  EXPECT_EQ(fitbit[0].window, hours{1});
  EXPECT_EQ(fitbit[0].limit, 150);
  auto strava = find("strava");
  ASSERT_EQ(strava.size(), 2u);
  EXPECT_EQ(strava[0].scope, Scope::kApp);
  EXPECT_EQ(strava[0].window, minutes{15});
  EXPECT_EQ(strava[0].limit, 600);
  EXPECT_EQ(strava[1].scope, Scope::kApp);
  EXPECT_EQ(strava[1].window, hours{24});
  EXPECT_EQ(strava[1].limit, 30'000);
  auto gfit = find("google_fit");
  ASSERT_EQ(gfit.size(), 1u);
  EXPECT_EQ(gfit[0].scope, Scope::kUser);
  EXPECT_EQ(gfit[0].window, hours{24});
  EXPECT_EQ(gfit[0].limit, 10'000);
  auto garmin = find("garmin");
  ASSERT_EQ(garmin.size(), 1u);
  EXPECT_EQ(garmin[0].scope, Scope::kApp);
  EXPECT_EQ(garmin[0].window, minutes{1});
  EXPECT_EQ(garmin[0].limit, 100);
}

TEST(RateLimitDefaults, FitbitIsPerUserPerHourAndStravaPerApp) {
  ManualClock clock;
  InProcessLimiter l(clock, InProcessLimiterSettings{});
  int fitbit_a = 0;
  while (l.TryAcquire("fitbit", "a", kHigh)->granted) ++fitbit_a;
  EXPECT_EQ(fitbit_a, 150);
  EXPECT_TRUE(l.TryAcquire("fitbit", "b", kHigh)->granted);  // another user: own bucket

  int strava = 0;
  for (int i = 0; i < 1000; ++i)
    strava += l.TryAcquire("strava", "u" + std::to_string(i), kHigh)->granted;
  EXPECT_EQ(strava, 600);  // one app bucket for all users

  int garmin = 0;
  while (l.TryAcquire("garmin", "x", kHigh)->granted) ++garmin;
  EXPECT_EQ(garmin, 100);
  auto d = l.TryAcquire("garmin", "x", kHigh);
  EXPECT_EQ(d->retry_after, minutes{1});
}

TEST(RateLimiter, WindowRefillsAtTheBoundaryAndRetryAfterIsExact) {
  ManualClock clock;
  InProcessLimiter l(clock, Settings({{Scope::kUser, hours{1}, 5}}));
  clock.Advance(minutes{10});
  EXPECT_EQ(TakeAll(l, "u", kHigh), 5);
  EXPECT_EQ(RetryAfter(l, "u"), minutes{50});
  clock.Advance(minutes{50} - milliseconds{1});
  EXPECT_EQ(RetryAfter(l, "u"), milliseconds{1});
  clock.Advance(milliseconds{1});
  EXPECT_EQ(TakeAll(l, "u", kHigh), 5);  // full bucket again, not 10: unused tokens do not carry
}

TEST(RateLimiter, RetryAfterWaitsForTheLongestBlockingWindow) {
  ManualClock clock;  // 08:00 UTC
  InProcessLimiter l(clock,
                     Settings({{Scope::kApp, minutes{15}, 10}, {Scope::kApp, hours{24}, 15}}));
  EXPECT_EQ(TakeAll(l, "u", kHigh), 10);
  EXPECT_EQ(RetryAfter(l, "u"), minutes{15});
  clock.Advance(minutes{15});
  EXPECT_EQ(TakeAll(l, "u", kHigh), 5);                    // the day bucket is now the limit
  EXPECT_EQ(RetryAfter(l, "u"), hours{15} + minutes{45});  // until midnight UTC
  clock.Advance(hours{15} + minutes{45});
  EXPECT_EQ(TakeAll(l, "u", kHigh), 10);
}

TEST(RateLimiter, AlignOffsetMovesTheBoundary) {
  ManualClock clock;                                                              // 08:00 UTC
  InProcessLimiter l(clock, Settings({{Scope::kUser, hours{24}, 1, hours{7}}}));  // resets 07:00
  EXPECT_TRUE(Granted(l, "u"));
  EXPECT_EQ(RetryAfter(l, "u"), hours{23});
}

TEST(RateLimiter, HierarchicalAllOrNothing) {
  ManualClock clock;
  InProcessLimiter l(clock, Settings({{Scope::kApp, hours{1}, 8}, {Scope::kUser, hours{1}, 5}}));
  EXPECT_EQ(TakeAll(l, "a", kHigh), 5);     // user a's bucket is the limit; app has 3 left
  EXPECT_FALSE(Granted(l, "a"));            // refused by a's bucket: must not take from the app
  EXPECT_FALSE(Granted(l, "b", kHigh, 4));  // app has 3: must not take from b's bucket either
  EXPECT_TRUE(Granted(l, "b", kHigh, 3));   // so exactly 3 are still there
  EXPECT_FALSE(Granted(l, "c"));            // app empty
  EXPECT_EQ(RetryAfter(l, "c"), hours{1});
  clock.Advance(hours{1});
  EXPECT_TRUE(Granted(l, "b", kHigh, 5));  // b lost nothing to the refused n=4 request
}

TEST(RateLimiter, ZeroOverspendUnderContention) {
  ManualClock clock;
  // App budget 1000 is binding (4 users x 300 = 1200); priorities mixed so floors are exercised.
  InProcessLimiterSettings s =
      Settings({{Scope::kApp, hours{1}, 1000}, {Scope::kUser, hours{1}, 300}});
  s.shards = 4;
  InProcessLimiter l(clock, s);
  constexpr int kThreads = 8;
  constexpr int kAttempts = 2000;
  const std::array<std::string, 4> users = {"u0", "u1", "u2", "u3"};
  std::array<std::atomic<int>, 4> per_user{};
  std::atomic<int> granted{0};
  std::atomic<int> low_granted{0};
  std::atomic<bool> errors{false};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAttempts; ++i) {
        const int u = (t + i) % 4;
        const auto pr = static_cast<Priority>(i % 3);
        auto d = l.TryAcquire("p", users[u], pr);
        if (!d.ok()) errors = true;
        if (d.ok() && d->granted) {
          ++granted;
          ++per_user[u];
          if (pr == kLow) ++low_granted;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(errors.load());
  EXPECT_EQ(granted.load(), 1000);
  for (auto& c : per_user) EXPECT_LE(c.load(), 300);
  EXPECT_LE(low_granted.load(), 700);  // low stops at the 30% floor of the app bucket
  EXPECT_EQ(l.Stats().granted, 1000);

  // Same with a single user whose bucket is the binding one.
  ManualClock clock2;
  InProcessLimiter l2(clock2,
                      Settings({{Scope::kApp, hours{1}, 1000}, {Scope::kUser, hours{1}, 250}}));
  std::atomic<int> granted2{0};
  threads.clear();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) granted2 += l2.TryAcquire("p", "one", kHigh)->granted;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(granted2.load(), 250);
}

TEST(RateLimiter, PriorityReserveKeepsTokensForHigh) {
  ManualClock clock;
  InProcessLimiter l(clock, Settings({{Scope::kUser, hours{1}, 100}}));
  EXPECT_EQ(TakeAll(l, "u", kLow), 70);     // backfill stops first: 30% left
  EXPECT_EQ(TakeAll(l, "u", kMedium), 20);  // medium stops at the 10% reserve
  EXPECT_FALSE(Granted(l, "u", kLow));
  EXPECT_EQ(TakeAll(l, "u", kHigh), 10);  // high still gets the reserve
  EXPECT_EQ(RetryAfter(l, "u", kLow), hours{1});
  EXPECT_EQ(RetryAfter(l, "u", kMedium), hours{1});
  EXPECT_EQ(RetryAfter(l, "u", kHigh), hours{1});
}

TEST(RateLimiter, ReserveFloorsRoundUpAndMultiTokenRequestsRespectThem) {
  ManualClock clock;
  InProcessLimiter l(clock, Settings({{Scope::kUser, hours{1}, 15}}));  // floors: medium 2, low 5
  EXPECT_TRUE(Granted(l, "u", kLow, 10));
  EXPECT_FALSE(Granted(l, "u", kLow, 1));     // would leave 4 < 5
  EXPECT_FALSE(Granted(l, "u", kMedium, 4));  // would leave 1 < 2
  EXPECT_TRUE(Granted(l, "u", kMedium, 3));
  EXPECT_TRUE(Granted(l, "u", kHigh, 2));
}

TEST(RateLimiter, ReserveIsReleasedNearTheEndOfTheWindow) {
  ManualClock clock;
  InProcessLimiter l(clock, Settings({{Scope::kUser, hours{1}, 100}}, /*release=*/0.1));
  EXPECT_EQ(TakeAll(l, "u", kLow), 70);
  EXPECT_EQ(RetryAfter(l, "u", kLow), minutes{54});  // the floor lapses 6 min before the reset
  clock.Advance(minutes{54});
  EXPECT_EQ(TakeAll(l, "u", kLow), 30);  // nothing is left unspent at the boundary
  EXPECT_EQ(RetryAfter(l, "u", kLow), minutes{6});
  EXPECT_EQ(RetryAfter(l, "u", kHigh), minutes{6});
  clock.Advance(minutes{6});
  EXPECT_EQ(TakeAll(l, "u", kLow), 70);  // new window: the reserve is back
}

TEST(RateLimiter, ProviderRetryAfterBlocksTheUser) {
  ManualClock clock;
  InProcessLimiter l(clock, Settings({{Scope::kUser, hours{1}, 100}}));
  ASSERT_TRUE(l.RecordRetryAfter("p", "a", seconds{30}).ok());
  EXPECT_EQ(RetryAfter(l, "a"), seconds{30});
  EXPECT_TRUE(Granted(l, "b"));
  clock.Advance(seconds{29});
  EXPECT_EQ(RetryAfter(l, "a"), seconds{1});
  clock.Advance(seconds{1});
  EXPECT_EQ(TakeAll(l, "a", kHigh), 100);  // no tokens were spent while blocked
  EXPECT_EQ(l.Stats().denied_retry_after, 2);
  // A shorter later Retry-After does not shorten an active block.
  ASSERT_TRUE(l.RecordRetryAfter("p", "b", minutes{2}).ok());
  ASSERT_TRUE(l.RecordRetryAfter("p", "b", seconds{5}).ok());
  EXPECT_EQ(RetryAfter(l, "b"), minutes{2});
}

TEST(RateLimiter, ProviderRetryAfterBlocksTheAppAndWinsOverTokens) {
  ManualClock clock;
  InProcessLimiter l(clock, Settings({{Scope::kApp, minutes{1}, 10}}));
  ASSERT_TRUE(l.RecordRetryAfter("p", "", minutes{3}).ok());
  EXPECT_EQ(RetryAfter(l, "a"), minutes{3});
  EXPECT_EQ(RetryAfter(l, ""), minutes{3});
  clock.Advance(minutes{3});
  EXPECT_TRUE(Granted(l, "a"));
  // A per-user block on a provider with only app limits still applies to that user.
  ASSERT_TRUE(l.RecordRetryAfter("p", "a", seconds{10}).ok());
  EXPECT_EQ(RetryAfter(l, "a"), seconds{10});
  EXPECT_TRUE(Granted(l, "b"));
}

TEST(RateLimiter, RejectsRequestsThatCanNeverBeGranted) {
  ManualClock clock;
  InProcessLimiter l(clock, Settings({{Scope::kUser, hours{1}, 10}}));
  EXPECT_EQ(l.TryAcquire("nope", "u", kHigh).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(l.TryAcquire("p", "u", kHigh, 0).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(l.TryAcquire("p", "u", kHigh, 11).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(l.TryAcquire("p", "u", kLow, 8).error().code, Errc::kInvalidArgument);  // floor 3
  EXPECT_TRUE(l.TryAcquire("p", "u", kLow, 7)->granted);
  EXPECT_EQ(l.RecordRetryAfter("nope", "u", seconds{1}).error().code, Errc::kInvalidArgument);
  EXPECT_THROW(InProcessLimiter(clock, Settings({{Scope::kUser, hours{0}, 10}})),
               std::invalid_argument);
}

TEST(RateLimiter, UnlimitedProviderAlwaysGrants) {
  ManualClock clock;
  InProcessLimiter l(clock, Settings({}));
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(Granted(l, "u", kLow));
}

TEST(RateLimiter, MemoryIsBoundedAndOnlyFullIdleEntriesAreEvicted) {
  ManualClock clock;
  InProcessLimiterSettings s = Settings({{Scope::kUser, hours{1}, 10}});
  s.max_user_entries = 4;
  s.shards = 1;
  InProcessLimiter l(clock, s);
  for (const char* u : {"a", "b", "c", "d"}) ASSERT_TRUE(Granted(l, u));
  clock.Advance(minutes{20});
  // Every entry has spent tokens this hour: forgetting one could overspend it, so refuse.
  EXPECT_EQ(RetryAfter(l, "e"), minutes{40});
  EXPECT_EQ(l.Stats().table_full, 1);
  EXPECT_EQ(l.Stats().user_entries, 4);
  EXPECT_EQ(TakeAll(l, "a", kHigh), 9);  // known users keep working, with their own counts
  clock.Advance(minutes{40});            // new window: all buckets are full again
  EXPECT_TRUE(Granted(l, "e"));
  EXPECT_EQ(l.Stats().evicted, 4);
  EXPECT_EQ(l.Stats().user_entries, 1);
}

TEST(RateLimiter, RetryAfterBlockedEntriesAreNotEvicted) {
  ManualClock clock;
  InProcessLimiterSettings s = Settings({{Scope::kUser, minutes{1}, 10}});
  s.max_user_entries = 1;
  s.shards = 1;
  InProcessLimiter l(clock, s);
  ASSERT_TRUE(l.RecordRetryAfter("p", "a", minutes{5}).ok());
  EXPECT_EQ(RetryAfter(l, "b"), minutes{5});  // a's block must be remembered
  clock.Advance(minutes{5});
  EXPECT_TRUE(Granted(l, "b"));
}

TEST(RateLimiter, SafeModeWhenStateIsUnavailable) {
  ManualClock clock;
  InProcessLimiter inner(clock, Settings({{Scope::kUser, hours{1}, 3}}));
  EXPECT_TRUE(inner.Available());
  SwitchableLimiter l(inner);
  l.SetAvailable(false);
  EXPECT_FALSE(l.Available());
  for (int i = 0; i < 5; ++i) {
    auto d = l.TryAcquire("p", "u", kHigh);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, Errc::kUnavailable);
  }
  EXPECT_EQ(l.RecordRetryAfter("p", "u", seconds{1}).error().code, Errc::kUnavailable);
  l.SetAvailable(true);
  EXPECT_TRUE(l.Available());
  EXPECT_EQ(TakeAll(l, "u", kHigh), 3);  // nothing was spent while unavailable
}

}  // namespace
}  // namespace syncwell::ratelimit
