// CredentialCache (SPEC S8): per-process LRU of decrypted provider tokens — LRU order, 5-min TTL
// from the injected clock, invalidation without stale re-inserts, counters, thread-safety.
#include "secrets/credential_cache.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "core/ids.hpp"
#include "secrets/secret.hpp"

namespace syncwell::secrets {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;

ConnectionId Id(const std::string& s) { return ConnectionId(s); }

std::string Value(CredentialCache& c, const std::string& id) {
  auto v = c.Get(Id(id));
  return v ? v->reveal() : "<miss>";
}

TEST(CredentialCache, DefaultsAreThousandEntriesForFiveMinutes) {
  CredentialCacheSettings s;
  EXPECT_EQ(s.capacity, 1000u);
  EXPECT_EQ(s.ttl, minutes{5});
}

TEST(CredentialCache, EvictsLeastRecentlyUsed) {
  ManualClock clock;
  CredentialCache c(clock, {3, minutes{5}});
  c.Put(Id("a"), Secret("ta"));
  c.Put(Id("b"), Secret("tb"));
  c.Put(Id("c"), Secret("tc"));
  EXPECT_EQ(Value(c, "a"), "ta");  // a is now most recently used; b is the LRU
  c.Put(Id("d"), Secret("td"));
  EXPECT_EQ(Value(c, "b"), "<miss>");
  EXPECT_EQ(Value(c, "a"), "ta");
  EXPECT_EQ(Value(c, "c"), "tc");
  EXPECT_EQ(Value(c, "d"), "td");
  c.Put(Id("a"), Secret("ta2"));  // update refreshes recency too; LRU is now c
  c.Put(Id("e"), Secret("te"));
  EXPECT_EQ(Value(c, "c"), "<miss>");
  EXPECT_EQ(Value(c, "a"), "ta2");
  auto s = c.Stats();
  EXPECT_EQ(s.evictions, 2);
  EXPECT_EQ(s.size, 3);
}

TEST(CredentialCache, EntriesExpireAfterTtlFromPutNotFromLastGet) {
  ManualClock clock;
  CredentialCache c(clock);
  c.Put(Id("a"), Secret("ta"));
  clock.Advance(minutes{4});
  EXPECT_EQ(Value(c, "a"), "ta");  // a hit does not extend the TTL
  clock.Advance(minutes{1} - milliseconds{1});
  EXPECT_EQ(Value(c, "a"), "ta");
  clock.Advance(milliseconds{1});
  EXPECT_EQ(Value(c, "a"), "<miss>");
  auto s = c.Stats();
  EXPECT_EQ(s.expirations, 1);
  EXPECT_EQ(s.size, 0);
  c.Put(Id("a"), Secret("ta2"));  // a fresh Put starts a new TTL
  clock.Advance(minutes{4});
  EXPECT_EQ(Value(c, "a"), "ta2");
}

TEST(CredentialCache, InvalidateAndClear) {
  ManualClock clock;
  CredentialCache c(clock);
  c.Put(Id("a"), Secret("ta"));
  c.Put(Id("b"), Secret("tb"));
  c.Invalidate(Id("a"));
  EXPECT_EQ(Value(c, "a"), "<miss>");
  EXPECT_EQ(Value(c, "b"), "tb");
  c.Invalidate(Id("never-cached"));  // harmless
  c.Clear();
  EXPECT_EQ(Value(c, "b"), "<miss>");
  EXPECT_EQ(c.Stats().size, 0);
}

TEST(CredentialCache, LoadStartedBeforeAnInvalidationIsNotCached) {
  ManualClock clock;
  CredentialCache c(clock);
  auto ticket = c.BeginLoad();  // worker A starts reading the old token from the store
  c.Invalidate(Id("a"));        // worker B refreshed the token and invalidated
  EXPECT_FALSE(c.PutLoaded(Id("a"), Secret("old"), ticket));
  EXPECT_EQ(Value(c, "a"), "<miss>");

  ticket = c.BeginLoad();
  c.Put(Id("a"), Secret("new"));  // the refresher stores the new token itself
  EXPECT_FALSE(c.PutLoaded(Id("a"), Secret("old"), ticket));
  EXPECT_EQ(Value(c, "a"), "new");

  ticket = c.BeginLoad();
  EXPECT_TRUE(c.PutLoaded(Id("b"), Secret("tb"), ticket));  // nothing happened in between
  EXPECT_EQ(Value(c, "b"), "tb");
  EXPECT_EQ(c.Stats().stale_puts, 2);
}

TEST(CredentialCache, CountsHitsAndMisses) {
  ManualClock clock;
  CredentialCache c(clock);
  EXPECT_EQ(Value(c, "a"), "<miss>");
  c.Put(Id("a"), Secret("ta"));
  EXPECT_EQ(Value(c, "a"), "ta");
  EXPECT_EQ(Value(c, "a"), "ta");
  EXPECT_EQ(Value(c, "b"), "<miss>");
  c.Invalidate(Id("a"));
  EXPECT_EQ(Value(c, "a"), "<miss>");
  auto s = c.Stats();
  EXPECT_EQ(s.hits, 2);
  EXPECT_EQ(s.misses, 3);
  EXPECT_EQ(s.invalidations, 1);
}

TEST(CredentialCache, ConcurrentUseStaysBounded) {
  ManualClock clock;
  CredentialCache c(clock, {64, minutes{5}});
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const auto id = Id("c" + std::to_string((i * 7 + t) % 100));
        if (auto v = c.Get(id)) {
          EXPECT_EQ(v->reveal(), "tok-" + id.str());
        } else {
          auto ticket = c.BeginLoad();
          (void)c.PutLoaded(id, Secret("tok-" + id.str()), ticket);
        }
        if (i % 97 == 0) c.Invalidate(id);
      }
    });
  }
  for (auto& th : threads) th.join();
  auto s = c.Stats();
  EXPECT_LE(s.size, 64);
  EXPECT_EQ(s.hits + s.misses, 4 * 2000);
}

}  // namespace
}  // namespace syncwell::secrets
