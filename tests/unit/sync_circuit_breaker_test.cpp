// Per-provider circuit breaker (SPEC S4, sync/circuit_breaker.hpp): opening at >= 50% failures
// over >= 20 calls in the rolling window, slow calls as failures, failing fast while open,
// half-open probes, closing and reopening, the per-provider metrics and a thread-safety smoke
// test. Time is a ManualClock: nothing sleeps.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "obs/metrics.hpp"
#include "sync/circuit_breaker.hpp"

namespace syncwell::sync {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr milliseconds kFast{20};

void Succeed(CircuitBreaker& cb, int n = 1) {
  for (int i = 0; i < n; ++i) cb.Record(false, kFast);
}
void Fail(CircuitBreaker& cb, int n = 1) {
  for (int i = 0; i < n; ++i) cb.Record(true, kFast);
}

// Opens a breaker with default settings: 10 successes, then 10 failures.
void TripOpen(CircuitBreaker& cb) {
  Succeed(cb, 10);
  Fail(cb, 10);
  ASSERT_EQ(cb.state(), CircuitState::kOpen);
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(CircuitBreaker, StateNames) {
  EXPECT_EQ(CircuitStateName(CircuitState::kClosed), "closed");
  EXPECT_EQ(CircuitStateName(CircuitState::kOpen), "open");
  EXPECT_EQ(CircuitStateName(CircuitState::kHalfOpen), "half_open");
}

TEST(CircuitBreaker, StaysClosedUnderMinCalls) {
  ManualClock clock;
  CircuitBreaker cb({}, clock);
  Fail(cb, 19);  // 100% failures, but only 19 calls
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_TRUE(cb.Allow());
  Fail(cb);  // the 20th call
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
}

TEST(CircuitBreaker, OpensAtTwentyCallsAndHalfFailures) {
  ManualClock clock;
  CircuitBreaker cb({}, clock);
  Succeed(cb, 10);
  Fail(cb, 9);
  EXPECT_EQ(cb.state(), CircuitState::kClosed);  // 19 calls
  Fail(cb);                                      // 20 calls, 10 failures = 50%
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  EXPECT_FALSE(cb.Allow());
}

TEST(CircuitBreaker, FortyNinePercentStaysClosed) {
  ManualClock clock;
  CircuitBreaker cb({}, clock);
  Succeed(cb, 51);
  Fail(cb, 49);
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_TRUE(cb.Allow());
  Fail(cb, 2);  // 51 of 102
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
}

TEST(CircuitBreaker, SlowCallsCountAsFailures) {
  ManualClock clock;
  CircuitBreaker cb({}, clock);
  Succeed(cb, 10);
  for (int i = 0; i < 10; ++i) cb.Record(false, milliseconds{5'001});
  EXPECT_EQ(cb.state(), CircuitState::kOpen);

  // Exactly slow_call is not slow.
  CircuitBreaker at_limit({}, clock);
  for (int i = 0; i < 40; ++i) at_limit.Record(false, milliseconds{5'000});
  EXPECT_EQ(at_limit.state(), CircuitState::kClosed);
}

TEST(CircuitBreaker, OldOutcomesLeaveTheWindow) {
  ManualClock clock;
  CircuitBreaker cb({}, clock);
  Fail(cb, 19);
  clock.Advance(seconds{30});  // the window is 30 s: those 19 are out now
  Fail(cb, 1);
  Succeed(cb, 18);
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  Fail(cb, 1);  // in window: 2 failures of 20
  EXPECT_EQ(cb.state(), CircuitState::kClosed);

  // Outcomes spread over less than the window still add up.
  CircuitBreaker spread({}, clock);
  for (int i = 0; i < 20; ++i) {
    Fail(spread);
    clock.Advance(seconds{1});
  }
  EXPECT_EQ(spread.state(), CircuitState::kOpen);
}

TEST(CircuitBreaker, FailsFastWhileOpen) {
  ManualClock clock;
  CircuitBreaker cb({}, clock);
  TripOpen(cb);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(cb.Allow());
  clock.Advance(milliseconds{29'999});
  EXPECT_FALSE(cb.Allow());
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  // Late outcomes of calls admitted before it opened change nothing.
  Succeed(cb, 50);
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  EXPECT_FALSE(cb.Allow());
}

TEST(CircuitBreaker, HalfOpenAdmitsASingleProbe) {
  ManualClock clock;
  CircuitBreaker cb({}, clock);
  TripOpen(cb);
  clock.Advance(seconds{30});
  EXPECT_EQ(cb.state(), CircuitState::kHalfOpen);
  EXPECT_TRUE(cb.Allow());
  EXPECT_FALSE(cb.Allow());
  EXPECT_FALSE(cb.Allow());
  EXPECT_EQ(cb.state(), CircuitState::kHalfOpen);
}

TEST(CircuitBreaker, ProbeSuccessClosesWithAClearedWindow) {
  ManualClock clock;
  CircuitBreaker cb({}, clock);
  TripOpen(cb);
  clock.Advance(seconds{30});
  ASSERT_TRUE(cb.Allow());
  Succeed(cb);
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_TRUE(cb.Allow());
  EXPECT_TRUE(cb.Allow());
  // A fresh window: 19 failures are again not enough.
  Fail(cb, 19);
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  Fail(cb);
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
}

TEST(CircuitBreaker, ProbeFailureReopens) {
  ManualClock clock;
  CircuitBreaker cb({}, clock);
  TripOpen(cb);
  clock.Advance(seconds{30});
  ASSERT_TRUE(cb.Allow());
  Fail(cb);
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  EXPECT_FALSE(cb.Allow());
  // open_for starts again from the failed probe.
  clock.Advance(seconds{29});
  EXPECT_FALSE(cb.Allow());
  clock.Advance(seconds{1});
  EXPECT_TRUE(cb.Allow());
  // A slow probe is a failed probe.
  cb.Record(false, milliseconds{6'000});
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
}

TEST(CircuitBreaker, SeveralProbesWhenConfigured) {
  ManualClock clock;
  CircuitBreakerSettings s;
  s.half_open_probes = 3;
  CircuitBreaker cb(s, clock);
  TripOpen(cb);
  clock.Advance(seconds{30});
  EXPECT_TRUE(cb.Allow());
  EXPECT_TRUE(cb.Allow());
  EXPECT_TRUE(cb.Allow());
  EXPECT_FALSE(cb.Allow());
  // A reported probe frees its slot.
  Fail(cb);
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
}

TEST(CircuitBreaker, ALostProbeDoesNotKeepItHalfOpenForever) {
  ManualClock clock;
  CircuitBreaker cb({}, clock);
  TripOpen(cb);
  clock.Advance(seconds{30});
  ASSERT_TRUE(cb.Allow());  // the caller never reports (e.g. it was cancelled)
  clock.Advance(seconds{29});
  EXPECT_FALSE(cb.Allow());
  clock.Advance(seconds{1});
  EXPECT_TRUE(cb.Allow());  // a new probe round
  EXPECT_FALSE(cb.Allow());
  Succeed(cb);
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
}

TEST(CircuitBreaker, CustomRatioAndMinCalls) {
  ManualClock clock;
  CircuitBreakerSettings s;
  s.failure_ratio = 0.3;
  s.min_calls = 10;
  CircuitBreaker cb(s, clock);
  Succeed(cb, 7);
  Fail(cb, 2);
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  Fail(cb);  // 3 of 10 = 30%
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
}

TEST(CircuitBreakers, OnePerProviderWithMetrics) {
  ManualClock clock;
  obs::Registry metrics;
  CircuitBreakers breakers({}, clock, metrics);
  CircuitBreaker& strava = breakers.For("strava");
  EXPECT_EQ(&breakers.For("strava"), &strava);
  CircuitBreaker& garmin = breakers.For("garmin");
  EXPECT_NE(&garmin, &strava);

  TripOpen(strava);
  EXPECT_EQ(garmin.state(), CircuitState::kClosed);
  EXPECT_TRUE(garmin.Allow());
  EXPECT_FALSE(strava.Allow());
  EXPECT_FALSE(strava.Allow());

  const std::string strava_label = R"(provider="strava")";
  EXPECT_EQ(metrics.GetCounter("syncwell_circuit_opened_total", "", strava_label).Value(), 1u);
  EXPECT_EQ(metrics.GetCounter("syncwell_circuit_rejected_total", "", strava_label).Value(), 2u);
  EXPECT_EQ(
      metrics.GetCounter("syncwell_circuit_rejected_total", "", R"(provider="garmin")").Value(),
      0u);
  std::string text = metrics.Render();
  EXPECT_TRUE(Contains(text, R"(syncwell_circuit_state{provider="strava"} 2)")) << text;
  EXPECT_TRUE(Contains(text, R"(syncwell_circuit_state{provider="garmin"} 0)")) << text;

  clock.Advance(seconds{30});
  text = metrics.Render();
  EXPECT_TRUE(Contains(text, R"(syncwell_circuit_state{provider="strava"} 1)")) << text;
  ASSERT_TRUE(strava.Allow());
  Fail(strava);
  EXPECT_EQ(metrics.GetCounter("syncwell_circuit_opened_total", "", strava_label).Value(), 2u);
}

TEST(CircuitBreakers, LabelValuesAreEscaped) {
  ManualClock clock;
  obs::Registry metrics;
  CircuitBreakers breakers({}, clock, metrics);
  breakers.For("we\"ird");
  EXPECT_TRUE(Contains(metrics.Render(), R"(syncwell_circuit_state{provider="we\"ird"} 0)"));
}

TEST(CircuitBreakers, TheRegistryMayOutliveTheBreakers) {
  ManualClock clock;
  obs::Registry metrics;
  {
    CircuitBreakers breakers({}, clock, metrics);
    TripOpen(breakers.For("strava"));
  }
  EXPECT_TRUE(Contains(metrics.Render(), R"(syncwell_circuit_state{provider="strava"} 0)"));
}

// Many threads on shared breakers (run under TSan/ASan in CI): every call is either admitted or
// counted as rejected, and a circuit opens exactly once while the clock stands still.
TEST(CircuitBreakers, ThreadSafetySmoke) {
  ManualClock clock;
  obs::Registry metrics;
  CircuitBreakers breakers({}, clock, metrics);
  constexpr int kThreads = 8;
  constexpr int kCallsPerThread = 2'000;
  std::atomic<int> admitted_failing{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kCallsPerThread; ++i) {
        // "failing" only fails; "healthy" only succeeds; providers are created concurrently.
        CircuitBreaker& failing = breakers.For("failing");
        if (failing.Allow()) {
          admitted_failing.fetch_add(1);
          failing.Record(true, kFast);
        }
        CircuitBreaker& healthy = breakers.For("healthy" + std::to_string((t + i) % 4));
        EXPECT_TRUE(healthy.Allow());
        healthy.Record(false, kFast);
        if (i % 500 == 0) (void)metrics.Render();
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();

  const auto counter = [&](const char* name, const std::string& provider) {
    return metrics.GetCounter(name, "", "provider=\"" + provider + "\"").Value();
  };
  EXPECT_EQ(breakers.For("failing").state(), CircuitState::kOpen);
  EXPECT_EQ(counter("syncwell_circuit_opened_total", "failing"), 1u);
  EXPECT_GE(admitted_failing.load(), 20);
  EXPECT_EQ(counter("syncwell_circuit_rejected_total", "failing") +
                static_cast<uint64_t>(admitted_failing.load()),
            static_cast<uint64_t>(kThreads * kCallsPerThread));
  for (int p = 0; p < 4; ++p) {
    const std::string name = "healthy" + std::to_string(p);
    EXPECT_EQ(breakers.For(name).state(), CircuitState::kClosed);
    EXPECT_EQ(counter("syncwell_circuit_rejected_total", name), 0u);
  }
}

}  // namespace
}  // namespace syncwell::sync
