#pragma once
// The RateLimiter contract (SPEC S6; ratelimit/rate_limiter.hpp, ratelimit/limits.hpp), stated
// once and instantiated for every adapter: InProcessLimiter (rate_limiter_conformance_test.cpp)
// and RedisLimiter (redis/rate_limiter_redis_test.cpp). Any later adapter must pass it unchanged.
//
// A harness type H provides:
//   H(ManualClock& clock, const LimiterSpec& spec);  // a fresh limiter with empty state whose
//                                                    // time is `clock`; throws
//                                                    // std::invalid_argument for invalid specs
//   ratelimit::RateLimiter& limiter();
//
// ManualClock's default start (1,800,000,000 s) is on an hour (and 15-min, minute) boundary and
// 8 h into a UTC day; the tests rely on it.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "ratelimit/limits.hpp"
#include "ratelimit/rate_limiter.hpp"

namespace syncwell::conformance {

using namespace std::chrono_literals;

// What every adapter's settings have in common.
struct LimiterSpec {
  std::vector<ratelimit::ProviderLimits> providers = ratelimit::DefaultProviderLimits();
  ratelimit::ReserveSettings reserve;
  Duration max_retry_after = std::chrono::hours{24 * 7};
};

template <class H>
class RateLimiterConformance : public ::testing::Test {
 protected:
  static constexpr Priority kHigh = Priority::kHigh;
  static constexpr Priority kMedium = Priority::kMedium;
  static constexpr Priority kLow = Priority::kLow;
  using Scope = ratelimit::Scope;

  // One provider "p" with these windows; release_fraction 0 unless given.
  static LimiterSpec Spec(std::vector<ratelimit::WindowLimit> windows, double release = 0.0) {
    LimiterSpec s;
    s.providers = {{"p", std::move(windows)}};
    s.reserve.release_fraction = release;
    return s;
  }

  ratelimit::RateLimiter& Make(const LimiterSpec& spec) {
    h_ = std::make_unique<H>(clock_, spec);
    return h_->limiter();
  }

  static bool Granted(ratelimit::RateLimiter& l, std::string_view user, Priority pr = kHigh,
                      int64_t n = 1) {
    auto d = l.TryAcquire("p", user, pr, n);
    EXPECT_TRUE(d.ok()) << (d.ok() ? "" : d.error().message);
    if (d.ok() && d->granted) {
      EXPECT_EQ(d->retry_after, Duration{0});
    }
    return d.ok() && d->granted;
  }

  // Expects a refusal and returns its retry_after (always > 0 when refused).
  static Duration RetryAfter(ratelimit::RateLimiter& l, std::string_view user, Priority pr = kHigh,
                             int64_t n = 1) {
    auto d = l.TryAcquire("p", user, pr, n);
    EXPECT_TRUE(d.ok()) << (d.ok() ? "" : d.error().message);
    if (!d.ok()) return Duration{-1};
    EXPECT_FALSE(d->granted);
    EXPECT_GT(d->retry_after, Duration{0});
    return d->retry_after;
  }

  static int TakeAll(ratelimit::RateLimiter& l, std::string_view user, Priority pr,
                     std::string_view provider = "p") {
    int n = 0;
    for (;;) {
      auto d = l.TryAcquire(provider, user, pr, 1);
      EXPECT_TRUE(d.ok()) << (d.ok() ? "" : d.error().message);
      if (!d.ok() || !d->granted) return n;
      ++n;
    }
  }

  ManualClock clock_;
  std::unique_ptr<H> h_;
};

TYPED_TEST_SUITE_P(RateLimiterConformance);

TYPED_TEST_P(RateLimiterConformance, IsAvailable) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kUser, 1h, 5}}));
  EXPECT_TRUE(l.Available());
}

TYPED_TEST_P(RateLimiterConformance, DefaultTableFitbitPerUserStravaAndGarminPerApp) {
  auto& l = this->Make(LimiterSpec{});
  EXPECT_EQ(this->TakeAll(l, "a", this->kHigh, "fitbit"), 150);
  EXPECT_TRUE(l.TryAcquire("fitbit", "b", this->kHigh)->granted);  // another user: own bucket
  int strava = 0;
  for (int i = 0; i < 700; ++i) {
    auto d = l.TryAcquire("strava", "u" + std::to_string(i), this->kHigh);
    ASSERT_TRUE(d.ok()) << d.error().message;
    strava += d->granted;
  }
  EXPECT_EQ(strava, 600);  // one app bucket for all users
  EXPECT_EQ(this->TakeAll(l, "x", this->kHigh, "garmin"), 100);
  auto d = l.TryAcquire("garmin", "x", this->kHigh);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->retry_after, 1min);
}

TYPED_TEST_P(RateLimiterConformance, WindowRefillsAtTheAlignedBoundaryAndRetryAfterIsExact) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kUser, 1h, 5}}));
  this->clock_.Advance(10min);
  EXPECT_EQ(this->TakeAll(l, "u", this->kHigh), 5);
  EXPECT_EQ(this->RetryAfter(l, "u"), 50min);  // the boundary is on the hour, not 1 h from now
  this->clock_.Advance(50min - 1ms);
  EXPECT_EQ(this->RetryAfter(l, "u"), 1ms);
  this->clock_.Advance(1ms);
  EXPECT_EQ(this->TakeAll(l, "u", this->kHigh), 5);  // full again, not 10: no carry-over
}

TYPED_TEST_P(RateLimiterConformance, RetryAfterRoundsUpToWholeMilliseconds) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kApp, 1min, 1}}));
  EXPECT_TRUE(this->Granted(l, ""));
  this->clock_.Advance(1min - 1500us);
  EXPECT_EQ(this->RetryAfter(l, ""), 2ms);
  this->clock_.Advance(1499us);
  EXPECT_EQ(this->RetryAfter(l, ""), 1ms);  // 1 us left: still > 0
  this->clock_.Advance(1us);
  EXPECT_TRUE(this->Granted(l, ""));
}

TYPED_TEST_P(RateLimiterConformance, RetryAfterWaitsForTheLongestBlockingWindow) {
  auto& l = this->Make(
      this->Spec({{ratelimit::Scope::kApp, 15min, 10}, {ratelimit::Scope::kApp, 24h, 15}}));
  EXPECT_EQ(this->TakeAll(l, "u", this->kHigh), 10);
  EXPECT_EQ(this->RetryAfter(l, "u"), 15min);
  this->clock_.Advance(15min);
  EXPECT_EQ(this->TakeAll(l, "u", this->kHigh), 5);  // the day bucket is now the limit
  EXPECT_EQ(this->RetryAfter(l, "u"), 15h + 45min);  // until midnight UTC
  this->clock_.Advance(15h + 45min);
  EXPECT_EQ(this->TakeAll(l, "u", this->kHigh), 10);
}

TYPED_TEST_P(RateLimiterConformance, AlignOffsetMovesTheBoundary) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kUser, 24h, 1, 7h}}));  // resets 07:00
  EXPECT_TRUE(this->Granted(l, "u"));
  EXPECT_EQ(this->RetryAfter(l, "u"), 23h);
  this->clock_.Advance(23h);
  EXPECT_TRUE(this->Granted(l, "u"));
}

TYPED_TEST_P(RateLimiterConformance, AllOrNothingAcrossAppAndUserBuckets) {
  auto& l =
      this->Make(this->Spec({{ratelimit::Scope::kApp, 1h, 8}, {ratelimit::Scope::kUser, 1h, 5}}));
  EXPECT_EQ(this->TakeAll(l, "a", this->kHigh), 5);     // a's bucket is the limit; app has 3 left
  EXPECT_FALSE(this->Granted(l, "a"));                  // refused by a: must not take from the app
  EXPECT_FALSE(this->Granted(l, "b", this->kHigh, 4));  // app has 3: must not take from b
  EXPECT_TRUE(this->Granted(l, "b", this->kHigh, 3));   // so exactly 3 are still there
  EXPECT_FALSE(this->Granted(l, "c"));                  // app empty
  EXPECT_EQ(this->RetryAfter(l, "c"), 1h);
  EXPECT_FALSE(this->Granted(l, ""));  // app-level calls draw on the app bucket only
  this->clock_.Advance(1h);
  EXPECT_TRUE(this->Granted(l, "b", this->kHigh, 5));  // b lost nothing to the refused request
  EXPECT_TRUE(this->Granted(l, "", this->kHigh, 3));   // no user bucket involved
  EXPECT_FALSE(this->Granted(l, "c", this->kHigh, 1));
}

TYPED_TEST_P(RateLimiterConformance, NeverGrantsMoreThanABucketHolds) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kUser, 1h, 10}}));
  int64_t taken = 0;
  for (int64_t n : {3, 4, 2, 3, 1, 1, 2}) {
    if (this->Granted(l, "u", this->kHigh, n)) taken += n;
  }
  EXPECT_EQ(taken, 10);
  EXPECT_FALSE(this->Granted(l, "u"));
}

TYPED_TEST_P(RateLimiterConformance, ConcurrentAcquirersNeverOverspend) {
  // App budget 1000 is binding (4 users x 300 = 1200); priorities mixed so floors are exercised.
  auto& l = this->Make(
      this->Spec({{ratelimit::Scope::kApp, 1h, 1000}, {ratelimit::Scope::kUser, 1h, 300}}));
  constexpr int kThreads = 8;
  constexpr int kAttempts = 2000;
  const std::array<std::string, 4> users = {"u0", "u1", "u2", "u3"};
  std::array<std::atomic<int>, 4> per_user{};
  std::atomic<int> granted{0};
  std::atomic<int> low_granted{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAttempts; ++i) {
        const int u = (t + i) % 4;
        const auto pr = static_cast<Priority>(i % 3);
        auto d = l.TryAcquire("p", users[u], pr);
        if (!d.ok()) ++errors;
        if (d.ok() && d->granted) {
          ++granted;
          ++per_user[u];
          if (pr == Priority::kLow) ++low_granted;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(granted.load(), 1000);
  for (auto& c : per_user) EXPECT_LE(c.load(), 300);
  EXPECT_LE(low_granted.load(), 700);  // low stops at the 30% floor of the app bucket

  // A single user whose bucket is the binding one.
  auto& l2 = this->Make(
      this->Spec({{ratelimit::Scope::kApp, 1h, 1000}, {ratelimit::Scope::kUser, 1h, 250}}));
  std::atomic<int> granted2{0};
  threads.clear();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        auto d = l2.TryAcquire("p", "one", Priority::kHigh);
        if (!d.ok()) ++errors;
        granted2 += d.ok() && d->granted;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(granted2.load(), 250);
}

TYPED_TEST_P(RateLimiterConformance, PriorityFloorsKeepTheReserveForHigh) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kUser, 1h, 100}}));
  EXPECT_EQ(this->TakeAll(l, "u", this->kLow), 70);     // backfill stops first: 30% left
  EXPECT_EQ(this->TakeAll(l, "u", this->kMedium), 20);  // medium stops at the 10% reserve
  EXPECT_FALSE(this->Granted(l, "u", this->kLow));
  EXPECT_EQ(this->TakeAll(l, "u", this->kHigh), 10);  // high still gets the reserve
  EXPECT_EQ(this->RetryAfter(l, "u", this->kLow), 1h);
  EXPECT_EQ(this->RetryAfter(l, "u", this->kMedium), 1h);
  EXPECT_EQ(this->RetryAfter(l, "u", this->kHigh), 1h);
}

TYPED_TEST_P(RateLimiterConformance, FloorsRoundUpAndMultiTokenRequestsRespectThem) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kUser, 1h, 15}}));  // medium 2, low 5
  EXPECT_TRUE(this->Granted(l, "u", this->kLow, 10));
  EXPECT_FALSE(this->Granted(l, "u", this->kLow, 1));     // would leave 4 < 5
  EXPECT_FALSE(this->Granted(l, "u", this->kMedium, 4));  // would leave 1 < 2
  EXPECT_TRUE(this->Granted(l, "u", this->kMedium, 3));
  EXPECT_TRUE(this->Granted(l, "u", this->kHigh, 2));
  EXPECT_EQ(this->RetryAfter(l, "u", this->kHigh), 1h);
}

TYPED_TEST_P(RateLimiterConformance, FloorsApplyToTheAppBucketToo) {
  auto& l =
      this->Make(this->Spec({{ratelimit::Scope::kApp, 1h, 10}, {ratelimit::Scope::kUser, 1h, 10}}));
  EXPECT_EQ(this->TakeAll(l, "a", this->kLow), 7);  // app and a: 3 left each
  EXPECT_FALSE(this->Granted(l, "b", this->kLow));  // b's bucket is full, the app's floor stops it
  EXPECT_EQ(this->TakeAll(l, "b", this->kMedium), 2);
  EXPECT_EQ(this->TakeAll(l, "b", this->kHigh), 1);
}

TYPED_TEST_P(RateLimiterConformance, ReserveIsReleasedNearTheEndOfTheWindow) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kUser, 1h, 100}}, /*release=*/0.1));
  EXPECT_EQ(this->TakeAll(l, "u", this->kLow), 70);
  EXPECT_EQ(this->RetryAfter(l, "u", this->kLow), 54min);  // the floor lapses 6 min before reset
  EXPECT_EQ(this->TakeAll(l, "u", this->kMedium), 20);
  EXPECT_EQ(this->RetryAfter(l, "u", this->kMedium), 54min);
  this->clock_.Advance(54min - 1ms);
  EXPECT_EQ(this->RetryAfter(l, "u", this->kLow), 1ms);
  this->clock_.Advance(1ms);
  EXPECT_EQ(this->TakeAll(l, "u", this->kLow), 10);  // nothing is left unspent at the boundary
  EXPECT_EQ(this->RetryAfter(l, "u", this->kLow), 6min);
  EXPECT_EQ(this->RetryAfter(l, "u", this->kHigh), 6min);
  this->clock_.Advance(6min);
  EXPECT_EQ(this->TakeAll(l, "u", this->kLow), 70);  // new window: the reserve is back
}

TYPED_TEST_P(RateLimiterConformance, ReleaseFractionAllowsTheWholeCapacityInOneRequest) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kUser, 1h, 10}}, /*release=*/0.1));
  // n = capacity is grantable at any priority (in the release period), so it is not invalid.
  EXPECT_EQ(this->RetryAfter(l, "u", this->kLow, 10), 54min);
  this->clock_.Advance(54min);
  EXPECT_TRUE(this->Granted(l, "u", this->kLow, 10));
}

TYPED_TEST_P(RateLimiterConformance, RetryAfterBlocksOneUser) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kUser, 1h, 100}}));
  ASSERT_TRUE(l.RecordRetryAfter("p", "a", 30s).ok());
  EXPECT_EQ(this->RetryAfter(l, "a"), 30s);
  EXPECT_TRUE(this->Granted(l, "b"));  // other users are not blocked
  this->clock_.Advance(29s);
  EXPECT_EQ(this->RetryAfter(l, "a"), 1s);
  this->clock_.Advance(1s);
  EXPECT_EQ(this->TakeAll(l, "a", this->kHigh), 100);  // no tokens were spent while blocked
  // A shorter later Retry-After does not shorten an active block.
  ASSERT_TRUE(l.RecordRetryAfter("p", "b", 2min).ok());
  ASSERT_TRUE(l.RecordRetryAfter("p", "b", 5s).ok());
  EXPECT_EQ(this->RetryAfter(l, "b"), 2min);
  // A longer one extends it.
  ASSERT_TRUE(l.RecordRetryAfter("p", "b", 3min).ok());
  EXPECT_EQ(this->RetryAfter(l, "b"), 3min);
  // Zero or negative: nothing happens.
  ASSERT_TRUE(l.RecordRetryAfter("p", "c", 0s).ok());
  ASSERT_TRUE(l.RecordRetryAfter("p", "c", -5s).ok());
  EXPECT_TRUE(this->Granted(l, "c"));
}

TYPED_TEST_P(RateLimiterConformance, RetryAfterBlocksTheAppAndWinsOverTokens) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kApp, 1min, 10}}));
  ASSERT_TRUE(l.RecordRetryAfter("p", "", 3min).ok());
  EXPECT_EQ(this->RetryAfter(l, "a"), 3min);
  EXPECT_EQ(this->RetryAfter(l, ""), 3min);
  this->clock_.Advance(3min);
  EXPECT_TRUE(this->Granted(l, "a"));
  // A per-user block on a provider with only app limits still applies to that user.
  ASSERT_TRUE(l.RecordRetryAfter("p", "a", 10s).ok());
  EXPECT_EQ(this->RetryAfter(l, "a"), 10s);
  EXPECT_TRUE(this->Granted(l, "b"));
  EXPECT_TRUE(this->Granted(l, ""));
}

TYPED_TEST_P(RateLimiterConformance, RetryAfterBlockAndEmptyBucketTakeTheLaterOfBoth) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kUser, 1min, 1}}));
  EXPECT_TRUE(this->Granted(l, "u"));
  ASSERT_TRUE(l.RecordRetryAfter("p", "u", 10s).ok());
  EXPECT_EQ(this->RetryAfter(l, "u"), 1min);  // the bucket refills later than the block ends
  ASSERT_TRUE(l.RecordRetryAfter("p", "u", 5min).ok());
  EXPECT_EQ(this->RetryAfter(l, "u"), 5min);  // now the block is the later one
}

TYPED_TEST_P(RateLimiterConformance, RetryAfterIsClampedToTheMaximum) {
  LimiterSpec spec = this->Spec({{ratelimit::Scope::kUser, 1h, 10}});
  spec.max_retry_after = 10min;
  auto& l = this->Make(spec);
  ASSERT_TRUE(l.RecordRetryAfter("p", "u", 24h * 365).ok());  // external input is not trusted
  EXPECT_EQ(this->RetryAfter(l, "u"), 10min);
  this->clock_.Advance(10min);
  EXPECT_TRUE(this->Granted(l, "u"));
}

TYPED_TEST_P(RateLimiterConformance, RejectsRequestsThatCanNeverBeGranted) {
  auto& l = this->Make(this->Spec({{ratelimit::Scope::kUser, 1h, 10}}));
  EXPECT_EQ(l.TryAcquire("nope", "u", this->kHigh).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(l.TryAcquire("p", "u", this->kHigh, 0).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(l.TryAcquire("p", "u", this->kHigh, -1).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(l.TryAcquire("p", "u", this->kHigh, 11).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(l.TryAcquire("p", "u", this->kLow, 8).error().code, Errc::kInvalidArgument);  // floor 3
  EXPECT_EQ(l.TryAcquire("p", "u", this->kMedium, 10).error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(l.TryAcquire("p", "u", this->kLow, 7)->granted);
  EXPECT_EQ(l.RecordRetryAfter("nope", "u", 1s).error().code, Errc::kInvalidArgument);
  // Nothing was taken by the rejected requests.
  EXPECT_EQ(this->TakeAll(l, "u", this->kHigh), 3);

  ManualClock clock;
  EXPECT_THROW(TypeParam(clock, this->Spec({{ratelimit::Scope::kUser, 0h, 10}})),
               std::invalid_argument);
  EXPECT_THROW(TypeParam(clock, this->Spec({{ratelimit::Scope::kUser, 1h, 0}})),
               std::invalid_argument);
}

TYPED_TEST_P(RateLimiterConformance, UnlimitedProviderAlwaysGrants) {
  auto& l = this->Make(this->Spec({}));
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(this->Granted(l, "u", this->kLow, 1000));
  ASSERT_TRUE(l.RecordRetryAfter("p", "u", 1s).ok());  // a 429 still blocks
  EXPECT_EQ(this->RetryAfter(l, "u"), 1s);
}

REGISTER_TYPED_TEST_SUITE_P(
    RateLimiterConformance, IsAvailable, DefaultTableFitbitPerUserStravaAndGarminPerApp,
    WindowRefillsAtTheAlignedBoundaryAndRetryAfterIsExact, RetryAfterRoundsUpToWholeMilliseconds,
    RetryAfterWaitsForTheLongestBlockingWindow, AlignOffsetMovesTheBoundary,
    AllOrNothingAcrossAppAndUserBuckets, NeverGrantsMoreThanABucketHolds,
    ConcurrentAcquirersNeverOverspend, PriorityFloorsKeepTheReserveForHigh,
    FloorsRoundUpAndMultiTokenRequestsRespectThem, FloorsApplyToTheAppBucketToo,
    ReserveIsReleasedNearTheEndOfTheWindow, ReleaseFractionAllowsTheWholeCapacityInOneRequest,
    RetryAfterBlocksOneUser, RetryAfterBlocksTheAppAndWinsOverTokens,
    RetryAfterBlockAndEmptyBucketTakeTheLaterOfBoth, RetryAfterIsClampedToTheMaximum,
    RejectsRequestsThatCanNeverBeGranted, UnlimitedProviderAlwaysGrants);

}  // namespace syncwell::conformance
