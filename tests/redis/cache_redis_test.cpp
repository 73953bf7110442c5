// The Redis adapters of the cache port against the test Redis: RedisCache through the Cache
// contract (cache_suite.hpp), RedisCounter through the Counter contract (counter_suite.hpp), plus
// what only Redis shows: the key prefix, the TTL that INCR + PEXPIRE leave on a counter, sharing
// between two clients (two processes), and Redis down -> kUnavailable with CacheAside and
// CachingStore falling back to the store. Every test uses its own key prefix.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "cache/cache_aside.hpp"
#include "cache/caching_store.hpp"
#include "cache/redis/redis_cache.hpp"
#include "cache/redis/redis_counter.hpp"
#include "conformance/cache_suite.hpp"
#include "conformance/counter_suite.hpp"
#include "fakes/in_memory_store.hpp"
#include "redis/redis_client.hpp"
#include "support/services.hpp"

namespace syncwell::conformance {
namespace {

using namespace std::chrono_literals;

redis::RedisSettings TestSettings() {
  redis::RedisSettings s;
  s.url = test_support::RedisUrl();
  s.pool_size = 8;
  s.key_prefix = test_support::UniqueName("swtest_cache") + ":";
  return s;
}

// Real time: polls every 10 ms for up to 10 s (a 50 ms ttl normally passes in ~60 ms).
bool PollUntil(const std::function<bool()>& pred) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

class RedisCacheHarness {
 public:
  RedisCacheHarness() : client_(TestSettings()), cache_(client_) {}
  cache::Cache& cache() { return cache_; }
  Duration ShortTtl() const { return 50ms; }
  Duration LongTtl() const { return 10min; }
  bool Eventually(const std::function<bool()>& pred) { return PollUntil(pred); }

 private:
  redis::RedisClient client_;
  cache::RedisCache cache_;
};

class RedisCounterHarness {
 public:
  RedisCounterHarness() : client_(TestSettings()), counter_(client_) {}
  sync::Counter& counter() { return counter_; }
  Duration ShortTtl() const { return 50ms; }
  Duration LongTtl() const { return 10min; }
  bool Eventually(const std::function<bool()>& pred) { return PollUntil(pred); }

 private:
  redis::RedisClient client_;
  cache::RedisCounter counter_;
};

}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, CacheConformance, RedisCacheHarness);
INSTANTIATE_TYPED_TEST_SUITE_P(Redis, CounterConformance, RedisCounterHarness);

namespace {

using redis::RedisReply;

// A TCP port on 127.0.0.1 with nothing listening (bound, then closed).
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

redis::RedisSettings DownSettings() {
  redis::RedisSettings s;
  s.url = "redis://127.0.0.1:" + std::to_string(ClosedPort());
  s.connect_timeout = 200ms;
  s.command_timeout = 200ms;
  s.key_prefix = "down:";
  return s;
}

TEST(RedisCache, KeysLiveUnderTheClientsPrefix) {
  auto s = TestSettings();
  redis::RedisClient client(s);
  cache::RedisCache c(client);
  ASSERT_TRUE(c.Set("config:u1", "v", 1min).ok());
  auto raw = client.Command({"GET", s.key_prefix + "config:u1"});
  ASSERT_TRUE(raw.ok()) << raw.error().message;
  EXPECT_EQ(raw->type, RedisReply::Type::kString);
  EXPECT_EQ(raw->str, "v");
  auto pttl = client.Command({"PTTL", s.key_prefix + "config:u1"});
  ASSERT_TRUE(pttl.ok());
  EXPECT_GT(pttl->integer, 0);
  EXPECT_LE(pttl->integer, 60'000);
  // Another prefix is another namespace.
  auto other_settings = TestSettings();
  redis::RedisClient other(other_settings);
  cache::RedisCache oc(other);
  EXPECT_FALSE(oc.Get("config:u1")->has_value());
}

TEST(RedisCache, TwoClientsShareOneCache) {
  // Two processes of the fleet: what one sets or deletes, the other sees.
  auto s = TestSettings();
  redis::RedisClient a(s), b(s);
  cache::RedisCache ca(a), cb(b);
  ASSERT_TRUE(ca.Set("k", "from-a", 1min).ok());
  EXPECT_EQ(cb.Get("k")->value_or(""), "from-a");
  ASSERT_TRUE(cb.Delete("k").ok());
  EXPECT_FALSE(ca.Get("k")->has_value());
}

TEST(RedisCache, AWrongTypeIsAnErrorNotAValue) {
  auto s = TestSettings();
  redis::RedisClient client(s);
  cache::RedisCache c(client);
  ASSERT_TRUE(client.Command({"LPUSH", s.key_prefix + "list", "x"}).ok());
  auto r = c.Get("list");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kInternal);
}

TEST(RedisCounter, IncrementLeavesTheTtlOnTheKey) {
  auto s = TestSettings();
  redis::RedisClient client(s);
  cache::RedisCounter counter(client);
  const std::string key = sync::ConfidenceKey(UserId("u1"), "strava");
  ASSERT_EQ(*counter.Increment(key, std::chrono::hours{24 * 7}), 1);
  auto pttl = client.Command({"PTTL", s.key_prefix + key});
  ASSERT_TRUE(pttl.ok());
  EXPECT_GT(pttl->integer, 6LL * 24 * 3600 * 1000);  // 7 days, refreshed by every increment
  EXPECT_LE(pttl->integer, 7LL * 24 * 3600 * 1000);
  // A value that is not a counter is an error, not a number.
  ASSERT_TRUE(client.Command({"SET", s.key_prefix + "text", "abc"}).ok());
  EXPECT_EQ(counter.Get("text").error().code, Errc::kInternal);
}

TEST(RedisCounter, TwoClientsCountIntoOneKey) {
  auto s = TestSettings();
  redis::RedisClient a(s), b(s);
  cache::RedisCounter ca(a), cb(b);
  ASSERT_TRUE(ca.Increment("k", 1min).ok());
  ASSERT_TRUE(cb.Increment("k", 1min).ok());
  EXPECT_EQ(*ca.Get("k"), 2);
  ASSERT_TRUE(cb.Reset("k").ok());
  EXPECT_EQ(*ca.Get("k"), 0);
}

TEST(RedisDown, CacheAndCounterReportUnavailable) {
  redis::RedisClient client(DownSettings());
  cache::RedisCache c(client);
  cache::RedisCounter counter(client);
  EXPECT_EQ(c.Get("k").error().code, Errc::kUnavailable);
  EXPECT_EQ(c.Set("k", "v", 1min).error().code, Errc::kUnavailable);
  EXPECT_EQ(c.Delete("k").error().code, Errc::kUnavailable);
  EXPECT_EQ(c.DeleteMany({"a", "b"}).error().code, Errc::kUnavailable);
  EXPECT_EQ(counter.Get("k").error().code, Errc::kUnavailable);
  EXPECT_EQ(counter.Increment("k", 1min).error().code, Errc::kUnavailable);
  EXPECT_EQ(counter.Reset("k").error().code, Errc::kUnavailable);
}

TEST(RedisDown, CacheAsideFallsBackToTheLoader) {
  redis::RedisClient client(DownSettings());
  cache::RedisCache c(client);
  cache::CacheAside aside(c, nullptr);
  int calls = 0;
  for (int i = 0; i < 3; ++i) {
    auto r = aside.GetOrLoad("k", 1min, [&]() -> Result<cache::Loaded> {
      ++calls;
      return cache::Loaded{"from-store", std::nullopt};
    });
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(*r, "from-store");
  }
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(aside.Stats().errors, 3u);
  EXPECT_EQ(aside.Stats().set_errors, 3u);
}

TEST(RedisDown, CachingStoreServesFromTheStore) {
  ManualClock clock;
  fakes::InMemoryStore fake(clock);
  store::User u;
  u.id = UserId("u1");
  ASSERT_TRUE(fake.UpsertUser(u).ok());
  redis::RedisClient client(DownSettings());
  cache::RedisCache c(client);
  cache::CacheAside aside(c, nullptr, {.name = "config"});
  cache::CachingStore cs(fake, aside, clock, nullptr);
  ASSERT_TRUE(cs.GetUser(UserId("u1")).ok());
  ASSERT_TRUE(cs.UpdateUserSettings(UserId("u1"), R"({"a":1})", nullptr).ok());
  auto again = cs.GetUser(UserId("u1"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->settings_json, R"({"a":1})");
  EXPECT_EQ(cs.Stats().invalidation_errors, 1u);
}

// The whole path on a live Redis: two CachingStores (two processes) over one store and one
// Redis; a write through one is seen at once through the other.
TEST(RedisCachingStore, AWriteInOneProcessInvalidatesForAll) {
  ManualClock clock;
  fakes::InMemoryStore fake(clock);
  store::SyncConfig cfg;
  cfg.id = SyncConfigId("cfg_1");
  cfg.user = UserId("u1");
  cfg.source = ConnectionId("conn_a");
  cfg.destination = ConnectionId("conn_b");
  cfg.data_type = "steps";
  cfg.conflict_strategy = "source_wins";
  ASSERT_TRUE(fake.CreateSyncConfig(cfg, nullptr).ok());
  auto s = TestSettings();
  redis::RedisClient ca(s), cb(s);
  cache::RedisCache rca(ca), rcb(cb);
  cache::CacheAside aa(rca, nullptr), ab(rcb, nullptr);
  cache::CachingStore pa(fake, aa, clock, nullptr), pb(fake, ab, clock, nullptr);

  ASSERT_TRUE(pa.ListSyncConfigs(UserId("u1")).ok());
  ASSERT_TRUE(pb.ListSyncConfigs(UserId("u1")).ok());
  EXPECT_EQ(ab.Stats().hits, 1u);  // b found what a cached
  cfg.enabled = false;
  ASSERT_TRUE(pa.UpdateSyncConfig(cfg, 1, nullptr).ok());
  auto seen = pb.ListSyncConfigs(UserId("u1"));
  ASSERT_TRUE(seen.ok());
  ASSERT_EQ(seen->size(), 1u);
  EXPECT_FALSE(seen->front().enabled);
  EXPECT_EQ(seen->front().version, 2);
}

}  // namespace
}  // namespace syncwell::conformance
