// FanOut (core/fan_out.hpp): every index exactly once, bounded side-by-side calls, and progress
// when the pool is busy or empty (the caller works too).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/fan_out.hpp"

namespace syncwell {
namespace {

using namespace std::chrono_literals;

// Counts calls in progress and remembers the most seen at once.
struct InFlight {
  std::mutex mu;
  std::condition_variable cv;
  int now = 0;
  int most = 0;
  void Enter() {
    std::lock_guard lock(mu);
    most = std::max(most, ++now);
    cv.notify_all();
  }
  void Leave() {
    std::lock_guard lock(mu);
    --now;
  }
  // Waits (bounded, generous) until `k` calls are in progress together.
  bool Meet(int k) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 30s, [&] { return now >= k; });
  }
};

TEST(FanOutTest, CallsEveryIndexExactlyOnce) {
  FanOut pool(8);
  for (size_t parallel : {size_t{0}, size_t{1}, size_t{3}, size_t{8}, size_t{100}}) {
    std::vector<std::atomic<int>> calls(257);
    pool.Run(calls.size(), parallel, [&](size_t i) { calls[i].fetch_add(1); });
    for (size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i].load(), 1) << i << " " << parallel;
  }
  pool.Run(0, 4, [](size_t) { ADD_FAILURE() << "called for an empty range"; });
}

TEST(FanOutTest, RunsSideBySideButNeverMoreThanParallel) {
  FanOut pool(16);
  InFlight f;
  std::atomic<bool> met{false};
  pool.Run(24, 4, [&](size_t i) {
    f.Enter();
    // The first two calls wait for each other: they can only meet if they run side by side.
    if (i < 2 && f.Meet(2)) met = true;
    std::this_thread::sleep_for(2ms);
    f.Leave();
  });
  EXPECT_TRUE(met.load());
  EXPECT_LE(f.most, 4);
  EXPECT_LE(pool.threads_started(), 3u);  // the caller is the fourth
}

TEST(FanOutTest, WithoutHelpersOrParallelismTheCallerRunsInOrder) {
  for (auto [threads, parallel] : {std::pair<size_t, size_t>{0, 8}, {8, 1}}) {
    FanOut pool(threads);
    std::vector<size_t> order;
    const auto caller = std::this_thread::get_id();
    pool.Run(10, parallel, [&](size_t i) {
      EXPECT_EQ(std::this_thread::get_id(), caller);
      order.push_back(i);
    });
    EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    EXPECT_EQ(pool.threads_started(), 0u);
  }
}

TEST(FanOutTest, AnExceptionReachesTheCallerAfterEveryCall) {
  FanOut pool(4);
  std::vector<std::atomic<int>> calls(40);
  try {
    pool.Run(calls.size(), 4, [&](size_t i) {
      calls[i].fetch_add(1);
      if (i % 7 == 3) throw std::runtime_error("call " + std::to_string(i));
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("call ", 0), 0u) << e.what();
  }
  for (size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i].load(), 1) << i;
  // The helpers survived: the pool still works.
  std::atomic<int> after{0};
  pool.Run(8, 4, [&](size_t) { after.fetch_add(1); });
  EXPECT_EQ(after.load(), 8);
}

TEST(FanOutTest, ABusyPoolNeverStopsACaller) {
  // One helper for everyone: while it is held by the first caller's call, every other caller
  // (and a nested Run) must finish on its own thread.
  FanOut pool(1);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> done{0};
  std::thread holder([&] {
    pool.Run(2, 2, [&](size_t) {
      std::unique_lock lock(mu);
      cv.wait_for(lock, 30s, [&] { return release; });
    });
  });
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      std::atomic<int> inner{0};
      pool.Run(5, 4, [&](size_t) { pool.Run(3, 3, [&](size_t) { inner.fetch_add(1); }); });
      EXPECT_EQ(inner.load(), 15);
      done.fetch_add(1);
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(done.load(), 4);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  holder.join();
  EXPECT_EQ(pool.threads_started(), 1u);
}

}  // namespace
}  // namespace syncwell
