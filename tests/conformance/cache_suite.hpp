#pragma once
// The Cache port contract (cache/cache.hpp), stated once and instantiated for every adapter:
// InProcessCache (cache_conformance_test.cpp) and RedisCache (redis/cache_redis_test.cpp).
// A harness type H provides:
//   H();                                   // a fresh, empty cache
//   cache::Cache& cache();
//   Duration ShortTtl();                   // expires during a test
//   Duration LongTtl();                    // never expires during a test
//   bool Eventually(const std::function<bool()>& pred);
//       lets time pass (ManualClock steps, or real sleeps with a generous bound) until pred()
//       holds; false if it never did. Never used to assert how long something took.
// TTL tests compare keys against each other ("the short one expired, the long one did not"), so
// a slow machine can only make them slower, never flaky.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache.hpp"

namespace syncwell::conformance {

template <class H>
class CacheConformance : public ::testing::Test {
 protected:
  cache::Cache& cache() { return h_.cache(); }

  std::optional<std::string> Get(const std::string& key) {
    auto r = cache().Get(key);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : std::nullopt;
  }
  void Set(const std::string& key, const std::string& value, Duration ttl) {
    auto st = cache().Set(key, value, ttl);
    ASSERT_TRUE(st.ok()) << st.error().message;
  }
  bool Gone(const std::string& key) { return !Get(key).has_value(); }

  H h_;
};

TYPED_TEST_SUITE_P(CacheConformance);

TYPED_TEST_P(CacheConformance, MissingKeyIsAMissNotAnError) {
  auto r = this->cache().Get("never-set");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->has_value());
}

TYPED_TEST_P(CacheConformance, SetThenGetReturnsTheValue) {
  this->Set("k", "value-1", this->h_.LongTtl());
  EXPECT_EQ(this->Get("k"), "value-1");
  EXPECT_EQ(this->Get("k"), "value-1");  // a read does not consume it
}

TYPED_TEST_P(CacheConformance, SetReplacesTheValue) {
  this->Set("k", "old", this->h_.LongTtl());
  this->Set("k", "new", this->h_.LongTtl());
  EXPECT_EQ(this->Get("k"), "new");
}

TYPED_TEST_P(CacheConformance, EmptyValueIsAHit) {
  this->Set("empty", "", this->h_.LongTtl());
  auto v = this->Get("empty");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, "");
}

TYPED_TEST_P(CacheConformance, ValuesAreBinarySafe) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  all += std::string("\0\0tail", 6);
  this->Set("bin", all, this->h_.LongTtl());
  EXPECT_EQ(this->Get("bin"), all);
  std::string big(300 * 1024, 'x');
  big[12345] = '\0';
  this->Set("big", big, this->h_.LongTtl());
  EXPECT_EQ(this->Get("big"), big);
}

TYPED_TEST_P(CacheConformance, KeysAreDistinct) {
  this->Set("config:u1", "a", this->h_.LongTtl());
  this->Set("config:u1:x", "b", this->h_.LongTtl());
  this->Set("config:u10", "c", this->h_.LongTtl());
  this->Set("key with spaces/and\xc3\xa9", "d", this->h_.LongTtl());
  EXPECT_EQ(this->Get("config:u1"), "a");
  EXPECT_EQ(this->Get("config:u1:x"), "b");
  EXPECT_EQ(this->Get("config:u10"), "c");
  EXPECT_EQ(this->Get("key with spaces/and\xc3\xa9"), "d");
  EXPECT_TRUE(this->Gone("config:u"));
}

TYPED_TEST_P(CacheConformance, DeleteRemovesOnlyThatKey) {
  this->Set("a", "1", this->h_.LongTtl());
  this->Set("b", "2", this->h_.LongTtl());
  ASSERT_TRUE(this->cache().Delete("a").ok());
  EXPECT_TRUE(this->Gone("a"));
  EXPECT_EQ(this->Get("b"), "2");
  EXPECT_TRUE(this->cache().Delete("a").ok());  // absent: not an error
  EXPECT_TRUE(this->cache().Delete("never-set").ok());
  this->Set("a", "3", this->h_.LongTtl());  // usable again after a delete
  EXPECT_EQ(this->Get("a"), "3");
}

TYPED_TEST_P(CacheConformance, DeleteManyRemovesEveryGivenKey) {
  for (const char* k : {"m1", "m2", "m3", "keep"}) this->Set(k, k, this->h_.LongTtl());
  ASSERT_TRUE(this->cache().DeleteMany({"m1", "m2", "m3", "absent"}).ok());
  EXPECT_TRUE(this->Gone("m1"));
  EXPECT_TRUE(this->Gone("m2"));
  EXPECT_TRUE(this->Gone("m3"));
  EXPECT_EQ(this->Get("keep"), "keep");
  EXPECT_TRUE(this->cache().DeleteMany({}).ok());
}

TYPED_TEST_P(CacheConformance, NonPositiveTtlIsRejected) {
  EXPECT_EQ(this->cache().Set("k", "v", Duration{0}).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(this->cache().Set("k", "v", Duration{-5}).error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(this->Gone("k"));
}

TYPED_TEST_P(CacheConformance, EntryExpiresAfterItsTtl) {
  this->Set("short", "v", this->h_.ShortTtl());
  EXPECT_TRUE(this->h_.Eventually([&] { return this->Gone("short"); }));
}

TYPED_TEST_P(CacheConformance, LongTtlOutlivesShortTtl) {
  this->Set("long", "L", this->h_.LongTtl());
  this->Set("short", "S", this->h_.ShortTtl());
  ASSERT_TRUE(this->h_.Eventually([&] { return this->Gone("short"); }));
  EXPECT_EQ(this->Get("long"), "L");
}

TYPED_TEST_P(CacheConformance, SetReplacesTheTtl) {
  // Short then long: the second Set's ttl wins, so it outlives a witness set after the first.
  this->Set("k", "v1", this->h_.ShortTtl());
  this->Set("k", "v2", this->h_.LongTtl());
  this->Set("witness", "w", this->h_.ShortTtl());
  ASSERT_TRUE(this->h_.Eventually([&] { return this->Gone("witness"); }));
  EXPECT_EQ(this->Get("k"), "v2");
  // Long then short: it now expires.
  this->Set("j", "v1", this->h_.LongTtl());
  this->Set("j", "v2", this->h_.ShortTtl());
  EXPECT_TRUE(this->h_.Eventually([&] { return this->Gone("j"); }));
}

TYPED_TEST_P(CacheConformance, ExpiredKeyCanBeSetAgain) {
  this->Set("k", "v1", this->h_.ShortTtl());
  ASSERT_TRUE(this->h_.Eventually([&] { return this->Gone("k"); }));
  this->Set("k", "v2", this->h_.LongTtl());
  EXPECT_EQ(this->Get("k"), "v2");
}

TYPED_TEST_P(CacheConformance, ConcurrentUseFromManyThreads) {
  constexpr int kThreads = 8, kKeys = 50;
  std::vector<std::thread> threads;
  std::vector<int> mismatches(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kKeys; ++i) {
        const std::string key = "t" + std::to_string(t) + ":" + std::to_string(i);
        const std::string value = key + "-value";
        if (!this->cache().Set(key, value, this->h_.LongTtl()).ok()) ++mismatches[t];
        auto got = this->cache().Get(key);
        if (!got.ok() || *got != value) ++mismatches[t];
        if (!this->cache().Set("shared", value, this->h_.LongTtl()).ok()) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
  auto shared = this->Get("shared");
  ASSERT_TRUE(shared.has_value());  // one of the writers' values, intact
  EXPECT_EQ(shared->substr(shared->size() - 6), "-value");
}

REGISTER_TYPED_TEST_SUITE_P(CacheConformance, MissingKeyIsAMissNotAnError,
                            SetThenGetReturnsTheValue, SetReplacesTheValue, EmptyValueIsAHit,
                            ValuesAreBinarySafe, KeysAreDistinct, DeleteRemovesOnlyThatKey,
                            DeleteManyRemovesEveryGivenKey, NonPositiveTtlIsRejected,
                            EntryExpiresAfterItsTtl, LongTtlOutlivesShortTtl, SetReplacesTheTtl,
                            ExpiredKeyCanBeSetAgain, ConcurrentUseFromManyThreads);

}  // namespace syncwell::conformance
