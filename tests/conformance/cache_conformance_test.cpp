// The Cache contract (cache_suite.hpp) and the Counter contract (counter_suite.hpp) against the
// in-process adapters, plus what only InProcessCache promises: LRU eviction within its bounds.
// Time is a ManualClock: nothing here sleeps.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

#include "cache/in_process_cache.hpp"
#include "conformance/cache_suite.hpp"
#include "conformance/counter_suite.hpp"
#include "core/clock.hpp"
#include "sync/confidence.hpp"

namespace syncwell::conformance {
namespace {

using namespace std::chrono_literals;

// Advances the ManualClock in quarter-ShortTtl steps: 100 steps are 25 x ShortTtl, far below
// LongTtl, so "long" entries can never expire inside Eventually.
bool AdvanceUntil(ManualClock& clock, Duration step, const std::function<bool()>& pred) {
  for (int i = 0; i < 100; ++i) {
    if (pred()) return true;
    clock.Advance(step);
  }
  return pred();
}

class InProcessCacheHarness {
 public:
  InProcessCacheHarness() : cache_(clock_) {}
  cache::Cache& cache() { return cache_; }
  Duration ShortTtl() const { return 1s; }
  Duration LongTtl() const { return 1h; }
  bool Eventually(const std::function<bool()>& pred) { return AdvanceUntil(clock_, 250ms, pred); }

 private:
  ManualClock clock_;
  cache::InProcessCache cache_;
};

class InProcessCounterHarness {
 public:
  InProcessCounterHarness() : counter_(clock_) {}
  sync::Counter& counter() { return counter_; }
  Duration ShortTtl() const { return 1s; }
  Duration LongTtl() const { return 1h; }
  bool Eventually(const std::function<bool()>& pred) { return AdvanceUntil(clock_, 250ms, pred); }

 private:
  ManualClock clock_;
  sync::InProcessCounter counter_;
};

}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(InProcess, CacheConformance, InProcessCacheHarness);
INSTANTIATE_TYPED_TEST_SUITE_P(InProcess, CounterConformance, InProcessCounterHarness);

// ---- InProcessCache only ----

namespace {

std::optional<std::string> Get(cache::Cache& c, const std::string& k) {
  auto r = c.Get(k);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : std::nullopt;
}

TEST(InProcessCache, EvictsTheLeastRecentlyUsedEntryWhenFull) {
  ManualClock clock;
  cache::InProcessCache c(clock, {.capacity = 3, .max_bytes = 1 << 20, .shards = 1});
  ASSERT_TRUE(c.Set("a", "1", 1h).ok());
  ASSERT_TRUE(c.Set("b", "2", 1h).ok());
  ASSERT_TRUE(c.Set("c", "3", 1h).ok());
  EXPECT_EQ(Get(c, "a"), "1");  // a is now the most recently used; b the least
  ASSERT_TRUE(c.Set("d", "4", 1h).ok());
  EXPECT_EQ(Get(c, "b"), std::nullopt);
  EXPECT_EQ(Get(c, "a"), "1");
  EXPECT_EQ(Get(c, "c"), "3");
  EXPECT_EQ(Get(c, "d"), "4");
  EXPECT_EQ(c.Stats().size, 3);
  EXPECT_EQ(c.Stats().evictions, 1);
  // Replacing an existing key does not evict anything.
  ASSERT_TRUE(c.Set("a", "1b", 1h).ok());
  EXPECT_EQ(c.Stats().evictions, 1);
  EXPECT_EQ(c.Stats().size, 3);
}

TEST(InProcessCache, StaysWithinItsByteBudget) {
  ManualClock clock;
  cache::InProcessCache c(clock, {.capacity = 1000, .max_bytes = 4096, .shards = 1});
  const std::string value(1000, 'v');
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(c.Set("k" + std::to_string(i), value, 1h).ok());
  auto st = c.Stats();
  EXPECT_LE(st.bytes, 4096);
  EXPECT_GE(st.size, 2);
  EXPECT_LE(st.size, 4);
  EXPECT_EQ(st.evictions, 20 - st.size);
  EXPECT_EQ(Get(c, "k19"), value);  // the newest survives
  EXPECT_EQ(Get(c, "k0"), std::nullopt);
  // A value bigger than the whole budget is not stored (and evicts nothing).
  ASSERT_TRUE(c.Set("huge", std::string(10'000, 'h'), 1h).ok());
  EXPECT_EQ(Get(c, "huge"), std::nullopt);
  EXPECT_EQ(Get(c, "k19"), value);
}

TEST(InProcessCache, ExpiredEntriesAreDroppedOnLookup) {
  ManualClock clock;
  cache::InProcessCache c(clock);
  ASSERT_TRUE(c.Set("k", "v", 10s).ok());
  clock.Advance(9s);
  EXPECT_EQ(Get(c, "k"), "v");
  clock.Advance(1s);  // exactly at the ttl: expired
  EXPECT_EQ(Get(c, "k"), std::nullopt);
  EXPECT_EQ(c.Stats().expirations, 1);
  EXPECT_EQ(c.Stats().size, 0);
}

TEST(InProcessCache, ShardsShareTheCapacity) {
  ManualClock clock;
  cache::InProcessCache c(clock, {.capacity = 160, .max_bytes = 1 << 20, .shards = 16});
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(c.Set("key" + std::to_string(i), "v", 1h).ok());
  auto st = c.Stats();
  EXPECT_LE(st.size, 160);
  EXPECT_GT(st.size, 100);  // every shard is used, none is starved
  EXPECT_EQ(st.evictions, 1000 - st.size);
}

}  // namespace
}  // namespace syncwell::conformance
