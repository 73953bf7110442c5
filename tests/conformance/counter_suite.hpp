#pragma once
// The sync::Counter port contract (sync/confidence.hpp), stated once and instantiated for
// sync::InProcessCounter (cache_conformance_test.cpp) and cache::RedisCounter
// (redis/cache_redis_test.cpp). A harness type H provides:
//   H();                                   // fresh counters (no key set)
//   sync::Counter& counter();
//   Duration ShortTtl();  Duration LongTtl();
//   bool Eventually(const std::function<bool()>& pred);   // as in cache_suite.hpp
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "sync/confidence.hpp"

namespace syncwell::conformance {

template <class H>
class CounterConformance : public ::testing::Test {
 protected:
  sync::Counter& counter() { return h_.counter(); }
  int64_t Get(const std::string& key) {
    auto r = counter().Get(key);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : -1;
  }
  int64_t Inc(const std::string& key, Duration ttl) {
    auto r = counter().Increment(key, ttl);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : -1;
  }

  H h_;
};

TYPED_TEST_SUITE_P(CounterConformance);

TYPED_TEST_P(CounterConformance, AbsentCounterIsZero) { EXPECT_EQ(this->Get("nothing"), 0); }

TYPED_TEST_P(CounterConformance, IncrementReturnsTheNewValue) {
  const auto ttl = this->h_.LongTtl();
  EXPECT_EQ(this->Inc("c", ttl), 1);
  EXPECT_EQ(this->Inc("c", ttl), 2);
  EXPECT_EQ(this->Inc("c", ttl), 3);
  EXPECT_EQ(this->Get("c"), 3);
  EXPECT_EQ(this->Get("c"), 3);  // reading does not count
}

TYPED_TEST_P(CounterConformance, KeysAreIndependent) {
  const auto ttl = this->h_.LongTtl();
  const std::string a = sync::ConfidenceKey(UserId("u1"), "strava");
  const std::string b = sync::ConfidenceKey(UserId("u1"), "garmin");
  const std::string c = sync::ConfidenceKey(UserId("u2"), "strava");
  this->Inc(a, ttl);
  this->Inc(a, ttl);
  this->Inc(b, ttl);
  EXPECT_EQ(this->Get(a), 2);
  EXPECT_EQ(this->Get(b), 1);
  EXPECT_EQ(this->Get(c), 0);
}

TYPED_TEST_P(CounterConformance, ResetStartsAgainFromZero) {
  const auto ttl = this->h_.LongTtl();
  this->Inc("r", ttl);
  this->Inc("r", ttl);
  this->Inc("other", ttl);
  ASSERT_TRUE(this->counter().Reset("r").ok());
  EXPECT_EQ(this->Get("r"), 0);
  EXPECT_EQ(this->Get("other"), 1);
  EXPECT_EQ(this->Inc("r", ttl), 1);
  EXPECT_TRUE(this->counter().Reset("never-set").ok());  // absent: not an error
}

TYPED_TEST_P(CounterConformance, CounterExpiresAfterItsTtl) {
  this->Inc("e", this->h_.ShortTtl());
  this->Inc("e", this->h_.ShortTtl());
  ASSERT_TRUE(this->h_.Eventually([&] { return this->Get("e") == 0; }));
  EXPECT_EQ(this->Inc("e", this->h_.LongTtl()), 1);  // an expired counter restarts at 1
}

TYPED_TEST_P(CounterConformance, IncrementRefreshesTheTtl) {
  this->Inc("k", this->h_.ShortTtl());
  EXPECT_EQ(this->Inc("k", this->h_.LongTtl()), 2);
  this->Inc("witness", this->h_.ShortTtl());  // set after k's first (short) ttl started
  ASSERT_TRUE(this->h_.Eventually([&] { return this->Get("witness") == 0; }));
  EXPECT_EQ(this->Get("k"), 2);
}

TYPED_TEST_P(CounterConformance, ConcurrentIncrementsAreNotLost) {
  constexpr int kThreads = 8, kEach = 100;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (!this->counter().Increment("hot", this->h_.LongTtl()).ok()) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0);
  EXPECT_EQ(this->Get("hot"), kThreads * kEach);
}

REGISTER_TYPED_TEST_SUITE_P(CounterConformance, AbsentCounterIsZero, IncrementReturnsTheNewValue,
                            KeysAreIndependent, ResetStartsAgainFromZero, CounterExpiresAfterItsTtl,
                            IncrementRefreshesTheTtl, ConcurrentIncrementsAreNotLost);

}  // namespace syncwell::conformance
