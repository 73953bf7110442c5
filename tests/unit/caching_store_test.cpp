// CachingStore (cache/caching_store.hpp) over the in-memory store fake, and CacheAside
// (cache/cache_aside.hpp) on its own: hits, invalidation on every write kind, user scoping,
// negative lookups, the stale-set race, single-flight, jitter, and the "cache down" paths.
// Time is a ManualClock; threads only where concurrency is the point (no sleeps as assertions).
#include "cache/caching_store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache_aside.hpp"
#include "cache/in_process_cache.hpp"
#include "core/clock.hpp"
#include "fakes/in_memory_store.hpp"
#include "obs/metrics.hpp"

namespace syncwell::cache {
namespace {

using namespace std::chrono_literals;

// Waits (really) until pred() holds or 10 s passed. Only used to line threads up.
bool WaitFor(const std::function<bool()>& pred) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// A Cache wrapper whose failures are switched on by the test, and which records every Set.
class FlakyCache final : public Cache {
 public:
  explicit FlakyCache(Cache& inner) : inner_(inner) {}
  std::atomic<bool> fail_gets{false};
  std::atomic<bool> fail_sets{false};

  Result<std::optional<std::string>> Get(std::string_view key) override {
    if (fail_gets) return MakeError(Errc::kUnavailable, "cache down (test)");
    return inner_.Get(key);
  }
  Status Set(std::string_view key, std::string_view value, Duration ttl) override {
    {
      std::lock_guard lock(mu_);
      sets_.push_back({std::string(key), ttl});
    }
    if (fail_sets) return MakeError(Errc::kUnavailable, "cache down (test)");
    return inner_.Set(key, value, ttl);
  }
  Status Delete(std::string_view key) override {
    if (fail_sets) return MakeError(Errc::kUnavailable, "cache down (test)");
    return inner_.Delete(key);
  }
  std::vector<std::pair<std::string, Duration>> Sets() const {
    std::lock_guard lock(mu_);
    return sets_;
  }

 private:
  Cache& inner_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, Duration>> sets_;
};

// The fake store plus inner-read counters, injectable read errors, and a gate that holds a read
// AFTER it read the store and before it returns (to line up races).
class CountingStore final : public store::Store {
 public:
  explicit CountingStore(fakes::InMemoryStore& s) : s_(s) {}

  int Reads(const std::string& method) const {
    std::lock_guard lock(mu_);
    auto it = reads_.find(method);
    return it == reads_.end() ? 0 : it->second;
  }
  void FailReads(std::optional<Error> e) {
    std::lock_guard lock(mu_);
    fail_ = std::move(e);
  }
  // The next reads of `method` wait, after reading, until release() holds.
  void Gate(const std::string& method, std::function<bool()> release) {
    std::lock_guard lock(mu_);
    gate_method_ = method;
    gate_ = std::move(release);
  }
  void Ungate() {
    std::lock_guard lock(mu_);
    gate_ = nullptr;
  }

  Result<store::User> EnsureUser(const UserId& u, store::Tier t) override {
    return s_.EnsureUser(u, t);
  }
  Result<store::User> GetUser(const UserId& u) override {
    return Read("GetUser", [&] { return s_.GetUser(u); });
  }
  Status UpsertUser(const store::User& u) override { return s_.UpsertUser(u); }
  Status UpdateUserSettings(const UserId& u, const std::string& j,
                            const store::IdempotencyRecord* i) override {
    return s_.UpdateUserSettings(u, j, i);
  }
  Status CreateConnection(const store::Connection& c) override { return s_.CreateConnection(c); }
  Status CreateConnection(const store::Connection& c, const store::IdempotencyRecord* i) override {
    return s_.CreateConnection(c, i);
  }
  Status ReplaceConnectionGrant(const store::Connection& c,
                                const store::IdempotencyRecord* i) override {
    return s_.ReplaceConnectionGrant(c, i);
  }
  Result<store::Connection> GetConnection(const UserId& u, const ConnectionId& id) override {
    return Read("GetConnection", [&] { return s_.GetConnection(u, id); });
  }
  Result<std::vector<store::Connection>> ListConnections(const UserId& u) override {
    return Read("ListConnections", [&] { return s_.ListConnections(u); });
  }
  Result<std::vector<store::Connection>> FindConnectionsByProviderUser(
      const std::string& p, const std::string& pu) override {
    return Read("FindConnectionsByProviderUser",
                [&] { return s_.FindConnectionsByProviderUser(p, pu); });
  }
  Status DeleteConnection(const UserId& u, const ConnectionId& id,
                          const store::IdempotencyRecord* i) override {
    return s_.DeleteConnection(u, id, i);
  }
  Status UpdateConnectionTokens(const UserId& u, const ConnectionId& id, const std::string& a,
                                const std::string& r, TimePoint x, int64_t v) override {
    return s_.UpdateConnectionTokens(u, id, a, r, x, v);
  }
  Status SetConnectionStatus(const UserId& u, const ConnectionId& id,
                             store::ConnectionStatus st) override {
    return s_.SetConnectionStatus(u, id, st);
  }
  Status CreateSyncConfig(const store::SyncConfig& c, const store::IdempotencyRecord* i) override {
    return s_.CreateSyncConfig(c, i);
  }
  Result<store::SyncConfig> GetSyncConfig(const UserId& u, const SyncConfigId& id) override {
    return Read("GetSyncConfig", [&] { return s_.GetSyncConfig(u, id); });
  }
  Result<std::vector<store::SyncConfig>> ListSyncConfigs(const UserId& u) override {
    return Read("ListSyncConfigs", [&] { return s_.ListSyncConfigs(u); });
  }
  Status UpdateSyncConfig(const store::SyncConfig& c, int64_t v,
                          const store::IdempotencyRecord* i) override {
    return s_.UpdateSyncConfig(c, v, i);
  }
  Status DeleteSyncConfig(const UserId& u, const SyncConfigId& id, std::optional<int64_t> v,
                          const store::IdempotencyRecord* i) override {
    return s_.DeleteSyncConfig(u, id, v, i);
  }
  Status CreateJob(const store::Job& j, const queue::OutgoingMessage& m,
                   const store::IdempotencyRecord* i) override {
    return s_.CreateJob(j, m, i);
  }
  Result<store::Job> GetJob(const UserId& u, const JobId& id) override {
    return Read("GetJob", [&] { return s_.GetJob(u, id); });
  }
  Status UpdateJobStatus(const JobId& id, store::JobStatus st, const std::string& e) override {
    return s_.UpdateJobStatus(id, st, e);
  }
  Result<store::SyncCursor> GetCursor(const store::SyncCursorKey& k) override {
    return Read("GetCursor", [&] { return s_.GetCursor(k); });
  }
  Result<std::vector<store::LedgerEntry>> GetLedgerEntries(
      const UserId& u, const ConnectionId& d, const ConnectionId& s,
      const std::vector<std::string>& ids) override {
    return s_.GetLedgerEntries(u, d, s, ids);
  }
  Result<std::vector<std::string>> OwnWrittenRecords(const UserId& u, const ConnectionId& at,
                                                     const std::vector<std::string>& ids) override {
    return s_.OwnWrittenRecords(u, at, ids);
  }
  Status RecordPendingWrites(const std::vector<store::LedgerEntry>& e) override {
    return s_.RecordPendingWrites(e);
  }
  Status CommitSync(const store::SyncCommit& c) override { return s_.CommitSync(c); }
  Result<std::optional<store::IdempotencyRecord>> GetIdempotency(const UserId& u,
                                                                 const std::string& k) override {
    return s_.GetIdempotency(u, k);
  }
  Result<int64_t> PurgeIdempotencyBefore(TimePoint t) override {
    return s_.PurgeIdempotencyBefore(t);
  }
  Status RequestUserDeletion(const UserId& u, const store::IdempotencyRecord* i) override {
    return s_.RequestUserDeletion(u, i);
  }
  Result<store::UserDeletion> GetUserDeletion(const UserId& u) override {
    return s_.GetUserDeletion(u);
  }
  Result<std::vector<UserId>> PendingDeletions(size_t n) override { return s_.PendingDeletions(n); }
  Status PurgeUser(const UserId& u) override { return s_.PurgeUser(u); }
  Status AddControlEvent(const std::string& k, const std::string& v) override {
    return s_.AddControlEvent(k, v);
  }
  Result<std::vector<ControlEvent>> ControlEventsAfter(int64_t seq) override {
    return s_.ControlEventsAfter(seq);
  }
  Result<std::vector<store::ScheduledUser>> ListDueUsers(int shard, TimePoint now,
                                                         size_t limit) override {
    return s_.ListDueUsers(shard, now, limit);
  }
  Status AdvanceSchedule(const UserId& user, TimePoint expected_next, TimePoint next,
                         const std::vector<TimePoint>& recent_slots) override {
    return s_.AdvanceSchedule(user, expected_next, next, recent_slots);
  }
  Result<int64_t> AssignScheduleShards(size_t limit) override {
    return s_.AssignScheduleShards(limit);
  }
  Status Ping() override { return s_.Ping(); }

 private:
  template <class F>
  auto Read(const std::string& method, F f) -> decltype(f()) {
    std::function<bool()> gate;
    {
      std::lock_guard lock(mu_);
      if (fail_) {
        ++reads_[method];
        return *fail_;
      }
      if (gate_ && gate_method_ == method) gate = gate_;
    }
    auto r = f();
    {
      // Counted once the value was read: a test that waits for the count knows the read is done.
      std::lock_guard lock(mu_);
      ++reads_[method];
    }
    if (gate) {
      EXPECT_TRUE(WaitFor(gate)) << "gate of " << method << " never opened";
    }
    return r;
  }

  fakes::InMemoryStore& s_;
  mutable std::mutex mu_;
  std::map<std::string, int> reads_;
  std::optional<Error> fail_;
  std::string gate_method_;
  std::function<bool()> gate_;
};

const UserId kAlice("alice");
const UserId kBob("bob");

store::Connection Conn(const UserId& user, const std::string& id, const std::string& provider) {
  store::Connection c;
  c.id = ConnectionId(id);
  c.user = user;
  c.provider = provider;
  c.provider_user_id = "pu-" + id;
  // Binary and invalid UTF-8 bytes: stored byte for byte.
  c.access_token_sealed = std::string("sealed\0access\xff\xfe", 15);
  c.refresh_token_sealed = "sealed-refresh";
  c.token_expires_at = TimePoint{std::chrono::milliseconds{1'900'000'000'123}};
  return c;
}

store::SyncConfig Cfg(const UserId& user, const std::string& id, const std::string& src,
                      const std::string& dst) {
  store::SyncConfig c;
  c.id = SyncConfigId(id);
  c.user = user;
  c.source = ConnectionId(src);
  c.destination = ConnectionId(dst);
  c.data_type = "workout";
  c.conflict_strategy = "newest_wins";
  return c;
}

class CachingStoreTest : public ::testing::Test {
 protected:
  CachingStoreTest()
      : fake_(clock_),
        inner_(fake_),
        lru_(clock_),
        flaky_(lru_),
        aside_(flaky_, &metrics_, CacheAsideSettings{.name = "config"}),
        store_(inner_, aside_, clock_, &metrics_) {
    for (const auto& u : {kAlice, kBob}) {
      store::User user;
      user.id = u;
      user.settings_json = R"({"notificationsEnabled":true})";
      EXPECT_TRUE(fake_.UpsertUser(user).ok());
    }
    EXPECT_TRUE(fake_.CreateConnection(Conn(kAlice, "conn_a1", "fitbit")).ok());
    EXPECT_TRUE(fake_.CreateConnection(Conn(kAlice, "conn_a2", "strava")).ok());
    EXPECT_TRUE(fake_.CreateConnection(Conn(kBob, "conn_b1", "garmin")).ok());
    EXPECT_TRUE(fake_.CreateSyncConfig(Cfg(kAlice, "cfg_a", "conn_a1", "conn_a2"), nullptr).ok());
    EXPECT_TRUE(fake_.CreateSyncConfig(Cfg(kBob, "cfg_b", "conn_b1", "conn_b1"), nullptr).ok());
  }

  // Reads all five cached kinds of `user` through the CachingStore.
  void ReadAll(const UserId& user, const std::string& conn, const std::string& cfg) {
    (void)store_.GetUser(user);
    (void)store_.GetConnection(user, ConnectionId(conn));
    (void)store_.ListConnections(user);
    (void)store_.GetSyncConfig(user, SyncConfigId(cfg));
    (void)store_.ListSyncConfigs(user);
  }
  int InnerReads() const {
    int n = 0;
    for (const char* m :
         {"GetUser", "GetConnection", "ListConnections", "GetSyncConfig", "ListSyncConfigs"}) {
      n += inner_.Reads(m);
    }
    return n;
  }

  ManualClock clock_;
  fakes::InMemoryStore fake_;
  CountingStore inner_;
  obs::Registry metrics_;
  InProcessCache lru_;
  FlakyCache flaky_;
  CacheAside aside_;
  CachingStore store_;
};

TEST_F(CachingStoreTest, SecondReadIsServedFromTheCacheWithTheSameValue) {
  auto u1 = store_.GetUser(kAlice);
  auto u2 = store_.GetUser(kAlice);
  ASSERT_TRUE(u1.ok() && u2.ok());
  EXPECT_EQ(u2->settings_json, R"({"notificationsEnabled":true})");
  EXPECT_EQ(u2->created_at, fake_.GetUser(kAlice)->created_at);
  EXPECT_EQ(inner_.Reads("GetUser"), 1);

  auto c1 = store_.GetConnection(kAlice, ConnectionId("conn_a1"));
  auto c2 = store_.GetConnection(kAlice, ConnectionId("conn_a1"));
  ASSERT_TRUE(c1.ok() && c2.ok());
  const auto want = fake_.GetConnection(kAlice, ConnectionId("conn_a1")).value();
  EXPECT_EQ(c2->access_token_sealed, want.access_token_sealed);  // binary-safe
  EXPECT_EQ(c2->refresh_token_sealed, want.refresh_token_sealed);
  EXPECT_EQ(c2->token_expires_at, want.token_expires_at);
  EXPECT_EQ(c2->token_version, want.token_version);
  EXPECT_EQ(c2->provider, "fitbit");
  EXPECT_EQ(c2->status, store::ConnectionStatus::kActive);
  EXPECT_EQ(inner_.Reads("GetConnection"), 1);

  auto l1 = store_.ListConnections(kAlice);
  auto l2 = store_.ListConnections(kAlice);
  ASSERT_TRUE(l2.ok());
  ASSERT_EQ(l2->size(), 2u);
  EXPECT_EQ((*l2)[1].id.str(), "conn_a2");
  EXPECT_EQ(inner_.Reads("ListConnections"), 1);

  auto g1 = store_.GetSyncConfig(kAlice, SyncConfigId("cfg_a"));
  auto g2 = store_.GetSyncConfig(kAlice, SyncConfigId("cfg_a"));
  ASSERT_TRUE(g2.ok());
  EXPECT_EQ(g2->source.str(), "conn_a1");
  EXPECT_EQ(g2->conflict_strategy, "newest_wins");
  EXPECT_TRUE(g2->enabled);
  EXPECT_EQ(g2->version, 1);
  EXPECT_EQ(inner_.Reads("GetSyncConfig"), 1);

  auto s1 = store_.ListSyncConfigs(kAlice);
  auto s2 = store_.ListSyncConfigs(kAlice);
  ASSERT_TRUE(s2.ok());
  ASSERT_EQ(s2->size(), 1u);
  EXPECT_EQ(inner_.Reads("ListSyncConfigs"), 1);

  const auto st = aside_.Stats();
  EXPECT_EQ(st.hits, 5u);
  EXPECT_EQ(st.misses, 5u);
  EXPECT_EQ(st.loads, 5u);
  // Hit/miss counters are exported with the cache's name.
  const std::string text = metrics_.Render();
  EXPECT_NE(text.find(R"(syncwell_cache_requests_total{cache="config",outcome="hit"} 5)"),
            std::string::npos)
      << text;
}

TEST_F(CachingStoreTest, NotCachedMethodsPassThrough) {
  (void)store_.FindConnectionsByProviderUser("fitbit", "pu-conn_a1");
  (void)store_.FindConnectionsByProviderUser("fitbit", "pu-conn_a1");
  EXPECT_EQ(inner_.Reads("FindConnectionsByProviderUser"), 2);
  (void)store_.GetJob(kAlice, JobId("job_x"));
  (void)store_.GetJob(kAlice, JobId("job_x"));
  EXPECT_EQ(inner_.Reads("GetJob"), 2);
}

// One row per write method that changes a cached record: after it, every cached read of the
// user goes back to the store, and the read shows the change.
struct WriteCase {
  const char* name;
  std::function<Status(store::Store&, fakes::InMemoryStore&)> write;
  std::function<void(store::Store&)> check;  // reads through the CachingStore
};

std::vector<WriteCase> WriteCases() {
  return {
      {"EnsureUser",
       [](store::Store& s, fakes::InMemoryStore&) {
         auto r = s.EnsureUser(kAlice, store::Tier::kPro);
         return r.ok() ? Status{} : Status(r.error());
       },
       [](store::Store& s) { EXPECT_TRUE(s.GetUser(kAlice).ok()); }},
      {"UpsertUser",
       [](store::Store& s, fakes::InMemoryStore&) {
         store::User u;
         u.id = kAlice;
         u.tier = store::Tier::kPro;
         return s.UpsertUser(u);
       },
       [](store::Store& s) { EXPECT_EQ(s.GetUser(kAlice)->tier, store::Tier::kPro); }},
      {"UpdateUserSettings",
       [](store::Store& s, fakes::InMemoryStore&) {
         return s.UpdateUserSettings(kAlice, R"({"x":1})", nullptr);
       },
       [](store::Store& s) { EXPECT_EQ(s.GetUser(kAlice)->settings_json, R"({"x":1})"); }},
      {"CreateConnection",
       [](store::Store& s, fakes::InMemoryStore&) {
         return s.CreateConnection(Conn(kAlice, "conn_a3", "withings"));
       },
       [](store::Store& s) { EXPECT_EQ(s.ListConnections(kAlice)->size(), 3u); }},
      {"CreateConnectionWithIdempotency",
       [](store::Store& s, fakes::InMemoryStore&) {
         store::IdempotencyRecord idem;
         idem.user = kAlice;
         idem.key = "k1";
         return s.CreateConnection(Conn(kAlice, "conn_a3", "withings"), &idem);
       },
       [](store::Store& s) { EXPECT_EQ(s.ListConnections(kAlice)->size(), 3u); }},
      {"ReplaceConnectionGrant",
       [](store::Store& s, fakes::InMemoryStore&) {
         auto c = Conn(kAlice, "conn_a1", "fitbit");
         c.access_token_sealed = "regranted";
         return s.ReplaceConnectionGrant(c, nullptr);
       },
       [](store::Store& s) {
         EXPECT_EQ(s.GetConnection(kAlice, ConnectionId("conn_a1"))->access_token_sealed,
                   "regranted");
         EXPECT_EQ(s.ListConnections(kAlice)->front().access_token_sealed, "regranted");
       }},
      {"UpdateConnectionTokens",
       [](store::Store& s, fakes::InMemoryStore&) {
         return s.UpdateConnectionTokens(kAlice, ConnectionId("conn_a1"), "new-access",
                                         "new-refresh", TimePoint{}, 0);
       },
       [](store::Store& s) {
         auto c = s.GetConnection(kAlice, ConnectionId("conn_a1"));
         EXPECT_EQ(c->access_token_sealed, "new-access");
         EXPECT_EQ(c->token_version, 1);
       }},
      {"SetConnectionStatus",
       [](store::Store& s, fakes::InMemoryStore&) {
         return s.SetConnectionStatus(kAlice, ConnectionId("conn_a1"),
                                      store::ConnectionStatus::kNeedsReauth);
       },
       [](store::Store& s) {
         EXPECT_EQ(s.GetConnection(kAlice, ConnectionId("conn_a1"))->status,
                   store::ConnectionStatus::kNeedsReauth);
       }},
      {"DeleteConnection",
       [](store::Store& s, fakes::InMemoryStore&) {
         return s.DeleteConnection(kAlice, ConnectionId("conn_a1"), nullptr);
       },
       [](store::Store& s) {
         EXPECT_EQ(s.GetConnection(kAlice, ConnectionId("conn_a1")).error().code, Errc::kNotFound);
         EXPECT_EQ(s.ListConnections(kAlice)->size(), 1u);
         // Its sync configs went with it.
         EXPECT_EQ(s.GetSyncConfig(kAlice, SyncConfigId("cfg_a")).error().code, Errc::kNotFound);
         EXPECT_TRUE(s.ListSyncConfigs(kAlice)->empty());
       }},
      {"CreateSyncConfig",
       [](store::Store& s, fakes::InMemoryStore&) {
         return s.CreateSyncConfig(Cfg(kAlice, "cfg_a2", "conn_a2", "conn_a1"), nullptr);
       },
       [](store::Store& s) { EXPECT_EQ(s.ListSyncConfigs(kAlice)->size(), 2u); }},
      {"UpdateSyncConfig",
       [](store::Store& s, fakes::InMemoryStore&) {
         auto c = Cfg(kAlice, "cfg_a", "conn_a1", "conn_a2");
         c.enabled = false;
         return s.UpdateSyncConfig(c, 1, nullptr);
       },
       [](store::Store& s) {
         auto c = s.GetSyncConfig(kAlice, SyncConfigId("cfg_a"));
         EXPECT_FALSE(c->enabled);
         EXPECT_EQ(c->version, 2);
         EXPECT_FALSE(s.ListSyncConfigs(kAlice)->front().enabled);
       }},
      {"DeleteSyncConfig",
       [](store::Store& s, fakes::InMemoryStore&) {
         return s.DeleteSyncConfig(kAlice, SyncConfigId("cfg_a"), std::nullopt, nullptr);
       },
       [](store::Store& s) {
         EXPECT_EQ(s.GetSyncConfig(kAlice, SyncConfigId("cfg_a")).error().code, Errc::kNotFound);
         EXPECT_TRUE(s.ListSyncConfigs(kAlice)->empty());
       }},
      {"PurgeUser", [](store::Store& s, fakes::InMemoryStore&) { return s.PurgeUser(kAlice); },
       [](store::Store& s) {
         EXPECT_EQ(s.GetUser(kAlice).error().code, Errc::kNotFound);
         EXPECT_TRUE(s.ListConnections(kAlice)->empty());
         EXPECT_TRUE(s.ListSyncConfigs(kAlice)->empty());
       }},
  };
}

TEST_F(CachingStoreTest, EveryWriteKindInvalidatesTheUsersCachedRecords) {
  for (const auto& wc : WriteCases()) {
    SCOPED_TRACE(wc.name);
    // A fresh world per case (the fixture's state is shared by the loop).
    ManualClock clock;
    fakes::InMemoryStore fake(clock);
    CountingStore inner(fake);
    InProcessCache lru(clock);
    CacheAside aside(lru, nullptr);
    CachingStore cs(inner, aside, clock, nullptr);
    for (const auto& u : {kAlice, kBob}) {
      store::User user;
      user.id = u;
      ASSERT_TRUE(fake.UpsertUser(user).ok());
    }
    ASSERT_TRUE(fake.CreateConnection(Conn(kAlice, "conn_a1", "fitbit")).ok());
    ASSERT_TRUE(fake.CreateConnection(Conn(kAlice, "conn_a2", "strava")).ok());
    ASSERT_TRUE(fake.CreateConnection(Conn(kBob, "conn_b1", "garmin")).ok());
    ASSERT_TRUE(fake.CreateSyncConfig(Cfg(kAlice, "cfg_a", "conn_a1", "conn_a2"), nullptr).ok());
    ASSERT_TRUE(fake.CreateSyncConfig(Cfg(kBob, "cfg_b", "conn_b1", "conn_b1"), nullptr).ok());

    auto read_all = [&](const UserId& u, const char* conn, const char* cfg) {
      (void)cs.GetUser(u);
      (void)cs.GetConnection(u, ConnectionId(conn));
      (void)cs.ListConnections(u);
      (void)cs.GetSyncConfig(u, SyncConfigId(cfg));
      (void)cs.ListSyncConfigs(u);
    };
    auto inner_reads = [&] {
      int n = 0;
      for (const char* m :
           {"GetUser", "GetConnection", "ListConnections", "GetSyncConfig", "ListSyncConfigs"}) {
        n += inner.Reads(m);
      }
      return n;
    };
    read_all(kAlice, "conn_a1", "cfg_a");
    read_all(kBob, "conn_b1", "cfg_b");
    read_all(kAlice, "conn_a1", "cfg_a");  // all cached now
    read_all(kBob, "conn_b1", "cfg_b");
    ASSERT_EQ(inner_reads(), 10);

    ASSERT_TRUE(wc.write(cs, fake).ok());
    read_all(kAlice, "conn_a1", "cfg_a");
    EXPECT_EQ(inner_reads(), 15) << "every cached record of the user is read again";
    read_all(kBob, "conn_b1", "cfg_b");
    EXPECT_EQ(inner_reads(), 15) << "another user's cache is untouched";
    wc.check(cs);
  }
}

TEST_F(CachingStoreTest, AFailedWriteAlsoInvalidates) {
  // A stale version (kConflict) means our copy may be old; a failure may even have committed.
  ReadAll(kAlice, "conn_a1", "cfg_a");
  ASSERT_EQ(InnerReads(), 5);
  // Someone else (another process, straight to the store) updates the config.
  auto other = Cfg(kAlice, "cfg_a", "conn_a1", "conn_a2");
  other.conflict_strategy = "source_wins";
  ASSERT_TRUE(fake_.UpdateSyncConfig(other, 1, nullptr).ok());
  // Our update with the version we had cached loses...
  auto mine = Cfg(kAlice, "cfg_a", "conn_a1", "conn_a2");
  EXPECT_EQ(store_.UpdateSyncConfig(mine, 1, nullptr).error().code, Errc::kConflict);
  // ...and the re-read sees the winner, not our cached copy.
  auto c = store_.GetSyncConfig(kAlice, SyncConfigId("cfg_a"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->version, 2);
  EXPECT_EQ(c->conflict_strategy, "source_wins");
}

TEST_F(CachingStoreTest, AnotherUsersRecordIsNeverServed) {
  ASSERT_TRUE(store_.GetSyncConfig(kAlice, SyncConfigId("cfg_a")).ok());
  ASSERT_TRUE(store_.GetConnection(kAlice, ConnectionId("conn_a1")).ok());
  // Bob asks for Alice's ids: not found, cached or not.
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(store_.GetSyncConfig(kBob, SyncConfigId("cfg_a")).error().code, Errc::kNotFound);
    EXPECT_EQ(store_.GetConnection(kBob, ConnectionId("conn_a1")).error().code, Errc::kNotFound);
  }
  // Alice's lists are hers only.
  auto conns = store_.ListConnections(kBob);  // (not a range-for over a temporary's contents)
  auto cfgs = store_.ListSyncConfigs(kBob);
  ASSERT_TRUE(conns.ok() && cfgs.ok());
  for (const auto& c : *conns) EXPECT_EQ(c.user, kBob);
  for (const auto& c : *cfgs) EXPECT_EQ(c.user, kBob);
  EXPECT_TRUE(store_.GetSyncConfig(kAlice, SyncConfigId("cfg_a")).ok());
}

// Values carry their owner: even a value planted under another user's key is refused.
TEST_F(CachingStoreTest, AValueOfAnotherUserUnderThisUsersKeyIsRefused) {
  ASSERT_TRUE(store_.ListSyncConfigs(kAlice).ok());
  ASSERT_TRUE(store_.ListSyncConfigs(kBob).ok());
  auto gen_a = lru_.Get(CachingStore::GenerationKey(kAlice));
  auto gen_b = lru_.Get(CachingStore::GenerationKey(kBob));
  ASSERT_TRUE(gen_a.ok() && gen_a->has_value() && gen_b.ok() && gen_b->has_value());
  const std::string key_a = "config:alice:" + **gen_a + ":v1:cfgs";
  const std::string key_b = "config:bob:" + **gen_b + ":v1:cfgs";
  auto alices = lru_.Get(key_a);
  ASSERT_TRUE(alices.ok() && alices->has_value());
  ASSERT_TRUE(lru_.Set(key_b, **alices, 1h).ok());  // plant Alice's list under Bob's key

  auto bobs = store_.ListSyncConfigs(kBob);
  ASSERT_TRUE(bobs.ok());
  ASSERT_EQ(bobs->size(), 1u);
  EXPECT_EQ(bobs->front().id.str(), "cfg_b");
  EXPECT_EQ(store_.Stats().fallback_decode, 1u);
}

// Hits whose cached bytes are unchanged are not decoded again (the decoded memo); other bytes
// under the same key (e.g. written by another process sharing the cache) and a new generation
// after a write are.
TEST_F(CachingStoreTest, UnchangedCachedBytesAreDecodedOnce) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store_.ListSyncConfigs(kAlice).ok());
  EXPECT_EQ(store_.Stats().decodes, 1u);
  EXPECT_EQ(inner_.Reads("ListSyncConfigs"), 1);

  auto gen = lru_.Get(CachingStore::GenerationKey(kAlice));
  ASSERT_TRUE(gen.ok() && gen->has_value());
  const std::string key = "config:alice:" + **gen + ":v1:cfgs";
  auto bytes = lru_.Get(key);
  ASSERT_TRUE(bytes.ok() && bytes->has_value());
  std::string changed = **bytes;
  const auto at = changed.find("newest_wins");
  ASSERT_NE(at, std::string::npos) << changed;
  changed.replace(at, 11, "source_wins");
  ASSERT_TRUE(lru_.Set(key, changed, 1h).ok());
  auto r = store_.ListSyncConfigs(kAlice);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->front().conflict_strategy, "source_wins");
  EXPECT_EQ(store_.Stats().decodes, 2u);
  EXPECT_EQ(inner_.Reads("ListSyncConfigs"), 1);

  ASSERT_TRUE(store_.UpdateUserSettings(kAlice, R"({"notificationsEnabled":false})", nullptr).ok());
  r = store_.ListSyncConfigs(kAlice);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->front().conflict_strategy, "newest_wins");  // read from the store again
  EXPECT_EQ(store_.Stats().decodes, 3u);
}

TEST_F(CachingStoreTest, UnknownEncodingIsAMissAndIsOverwritten) {
  ASSERT_TRUE(store_.ListSyncConfigs(kAlice).ok());
  auto gen = lru_.Get(CachingStore::GenerationKey(kAlice));
  ASSERT_TRUE(gen.ok() && gen->has_value());
  const std::string key = "config:alice:" + **gen + ":v1:cfgs";
  ASSERT_TRUE(lru_.Set(key, "v0|something older", 1h).ok());
  auto r = store_.ListSyncConfigs(kAlice);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 1u);
  EXPECT_EQ(inner_.Reads("ListSyncConfigs"), 2);
  EXPECT_EQ(aside_.Stats().rejected, 1u);
  ASSERT_TRUE(store_.ListSyncConfigs(kAlice).ok());  // the reload replaced it
  EXPECT_EQ(inner_.Reads("ListSyncConfigs"), 2);
  // A corrupt value with the right prefix: answered by the store, never an error.
  ASSERT_TRUE(lru_.Set(key, "v1|{not json", 1h).ok());
  r = store_.ListSyncConfigs(kAlice);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 1u);
  EXPECT_EQ(store_.Stats().fallback_decode, 1u);
}

TEST_F(CachingStoreTest, NotFoundIsCachedForTheNegativeTtlOnly) {
  auto r = store_.GetConnection(kAlice, ConnectionId("conn_nope"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kNotFound);
  const std::string message = r.error().message;
  r = store_.GetConnection(kAlice, ConnectionId("conn_nope"));
  EXPECT_EQ(r.error().code, Errc::kNotFound);
  EXPECT_EQ(r.error().message, message);  // the store's message, kept
  EXPECT_EQ(inner_.Reads("GetConnection"), 1);
  // 1 min + at most 10% jitter later it is asked again...
  clock_.Advance(67s);
  (void)store_.GetConnection(kAlice, ConnectionId("conn_nope"));
  EXPECT_EQ(inner_.Reads("GetConnection"), 2);
  // ...and a create makes it visible at once.
  ASSERT_TRUE(store_.CreateConnection(Conn(kAlice, "conn_nope", "fitbit")).ok());
  EXPECT_TRUE(store_.GetConnection(kAlice, ConnectionId("conn_nope")).ok());
}

TEST_F(CachingStoreTest, ConfigsExpireAfterFifteenMinutesWithJitter) {
  ASSERT_TRUE(store_.ListSyncConfigs(kAlice).ok());
  clock_.Advance(13min);  // below 15 min - 10%
  ASSERT_TRUE(store_.ListSyncConfigs(kAlice).ok());
  EXPECT_EQ(inner_.Reads("ListSyncConfigs"), 1);
  clock_.Advance(4min);  // 17 min: beyond 15 min + 10%
  ASSERT_TRUE(store_.ListSyncConfigs(kAlice).ok());
  EXPECT_EQ(inner_.Reads("ListSyncConfigs"), 2);
  // The data entries were set with 15 min +-10%.
  bool saw = false;
  for (const auto& [key, ttl] : flaky_.Sets()) {
    if (key.find(":v1:cfgs") == std::string::npos) continue;
    saw = true;
    EXPECT_GE(ttl, 810s);
    EXPECT_LE(ttl, 990s);
  }
  EXPECT_TRUE(saw);
}

TEST_F(CachingStoreTest, InnerErrorsAreReturnedAndNeverCached) {
  inner_.FailReads(MakeError(Errc::kUnavailable, "database down"));
  auto r = store_.GetSyncConfig(kAlice, SyncConfigId("cfg_a"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  EXPECT_EQ(store_.ListSyncConfigs(kAlice).error().code, Errc::kUnavailable);
  inner_.FailReads(std::nullopt);
  EXPECT_TRUE(store_.GetSyncConfig(kAlice, SyncConfigId("cfg_a")).ok());
  EXPECT_TRUE(store_.ListSyncConfigs(kAlice).ok());
  EXPECT_EQ(inner_.Reads("GetSyncConfig"), 2);
  EXPECT_TRUE(store_.GetSyncConfig(kAlice, SyncConfigId("cfg_a")).ok());
  EXPECT_EQ(inner_.Reads("GetSyncConfig"), 2);
  EXPECT_EQ(aside_.Stats().load_errors, 2u);
}

TEST_F(CachingStoreTest, ConcurrentMissesOfOneKeyCauseOneStoreRead) {
  ASSERT_TRUE(store_.GetUser(kAlice).ok());  // the user's generation exists
  constexpr int kThreads = 8;
  // The first store read waits until the 7 others are waiting for it.
  inner_.Gate("GetSyncConfig", [&] { return aside_.Stats().coalesced >= kThreads - 1; });
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      auto r = store_.GetSyncConfig(kAlice, SyncConfigId("cfg_a"));
      if (r.ok() && r->id.str() == "cfg_a") ++ok;
    });
  }
  for (auto& t : threads) t.join();
  inner_.Ungate();
  EXPECT_EQ(ok.load(), kThreads);
  EXPECT_EQ(inner_.Reads("GetSyncConfig"), 1);
  EXPECT_EQ(aside_.Stats().coalesced, static_cast<uint64_t>(kThreads - 1));
}

// The classic cache-aside race: a reader reads the store, a write commits and invalidates, then
// the reader stores what it read. The generation scheme makes that value unreachable.
TEST_F(CachingStoreTest, AValueReadBeforeAWriteIsNeverServedAfterIt) {
  ASSERT_TRUE(store_.GetUser(kAlice).ok());  // the user's generation exists
  std::atomic<bool> written{false};
  inner_.Gate("GetSyncConfig", [&] { return written.load(); });
  std::thread reader([&] {
    auto r = store_.GetSyncConfig(kAlice, SyncConfigId("cfg_a"));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->enabled);  // it read before the write: that is fine for this call
  });
  ASSERT_TRUE(WaitFor([&] { return inner_.Reads("GetSyncConfig") == 1; }));
  auto c = Cfg(kAlice, "cfg_a", "conn_a1", "conn_a2");
  c.enabled = false;
  ASSERT_TRUE(store_.UpdateSyncConfig(c, 1, nullptr).ok());
  written = true;
  reader.join();
  inner_.Ungate();
  auto after = store_.GetSyncConfig(kAlice, SyncConfigId("cfg_a"));
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->enabled);
  EXPECT_EQ(after->version, 2);
}

TEST_F(CachingStoreTest, CacheDownReadsAndWritesStillWork) {
  flaky_.fail_gets = true;
  flaky_.fail_sets = true;
  for (int i = 0; i < 2; ++i) {
    auto r = store_.ListSyncConfigs(kAlice);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->size(), 1u);
  }
  EXPECT_EQ(inner_.Reads("ListSyncConfigs"), 2);
  EXPECT_EQ(store_.Stats().fallback_cache_error, 2u);
  ASSERT_TRUE(store_.UpdateUserSettings(kAlice, R"({"a":1})", nullptr).ok());
  EXPECT_EQ(store_.Stats().invalidation_errors, 1u);
  EXPECT_EQ(store_.GetUser(kAlice)->settings_json, R"({"a":1})");
  const std::string text = metrics_.Render();
  EXPECT_NE(
      text.find(R"(syncwell_cache_store_fallbacks_total{cache="config",reason="cache_error"})"),
      std::string::npos);
}

TEST_F(CachingStoreTest, AFailedInvalidationBypassesTheCacheUntilARetrySucceeds) {
  ASSERT_TRUE(store_.GetUser(kAlice).ok());
  ASSERT_TRUE(store_.GetUser(kBob).ok());
  ASSERT_EQ(inner_.Reads("GetUser"), 2);
  // The cache can be read but not written: the invalidation after this write fails.
  flaky_.fail_sets = true;
  ASSERT_TRUE(store_.UpdateUserSettings(kAlice, R"({"v":2})", nullptr).ok());
  EXPECT_EQ(store_.Stats().pending_invalidations, 1u);
  // The stale cached user must not be served: Alice is read from the store...
  EXPECT_EQ(store_.GetUser(kAlice)->settings_json, R"({"v":2})");
  EXPECT_EQ(inner_.Reads("GetUser"), 3);
  EXPECT_EQ(store_.Stats().fallback_pending, 1u);
  // ...while Bob is still served from the cache.
  ASSERT_TRUE(store_.GetUser(kBob).ok());
  EXPECT_EQ(inner_.Reads("GetUser"), 3);
  // The cache recovers; after the retry interval the invalidation is retried and done.
  flaky_.fail_sets = false;
  clock_.Advance(1s);
  EXPECT_EQ(store_.GetUser(kAlice)->settings_json, R"({"v":2})");
  EXPECT_EQ(store_.Stats().pending_invalidations, 0u);
  EXPECT_EQ(store_.GetUser(kAlice)->settings_json, R"({"v":2})");
  EXPECT_EQ(inner_.Reads("GetUser"), 4);  // cached again after the retry
}

TEST_F(CachingStoreTest, PendingInvalidationsAreForgottenWhenEveryStaleValueHasExpired) {
  ASSERT_TRUE(store_.GetUser(kAlice).ok());
  flaky_.fail_sets = true;
  ASSERT_TRUE(store_.UpdateUserSettings(kAlice, R"({"v":2})", nullptr).ok());
  clock_.Advance(31min);  // 2 x ttl
  (void)store_.GetUser(kAlice);
  EXPECT_EQ(store_.Stats().pending_invalidations, 0u);
}

TEST_F(CachingStoreTest, ConnectionsCanBeExcludedFromCaching) {
  ManualClock clock;
  InProcessCache lru(clock);
  CacheAside aside(lru, nullptr);
  CachingStore cs(inner_, aside, clock, nullptr, CachingStoreSettings{.cache_connections = false});
  (void)cs.GetConnection(kAlice, ConnectionId("conn_a1"));
  (void)cs.GetConnection(kAlice, ConnectionId("conn_a1"));
  (void)cs.ListConnections(kAlice);
  (void)cs.ListConnections(kAlice);
  EXPECT_EQ(inner_.Reads("GetConnection"), 2);
  EXPECT_EQ(inner_.Reads("ListConnections"), 2);
  (void)cs.ListSyncConfigs(kAlice);
  (void)cs.ListSyncConfigs(kAlice);
  EXPECT_EQ(inner_.Reads("ListSyncConfigs"), 1);
}

// ---- CacheAside on its own ----

class CacheAsideTest : public ::testing::Test {
 protected:
  CacheAsideTest() : lru_(clock_), flaky_(lru_) {}
  static CacheAside::Loader Value(std::string v, std::atomic<int>* calls) {
    return [v, calls]() -> Result<Loaded> {
      ++*calls;
      return Loaded{v, std::nullopt};
    };
  }

  ManualClock clock_;
  InProcessCache lru_;
  FlakyCache flaky_;
  obs::Registry metrics_;
};

TEST_F(CacheAsideTest, MissLoadsAndCachesThenHits) {
  CacheAside a(flaky_, &metrics_, {.name = "t"});
  std::atomic<int> calls{0};
  EXPECT_EQ(*a.GetOrLoad("k", 1min, Value("v", &calls)), "v");
  EXPECT_EQ(*a.GetOrLoad("k", 1min, Value("other", &calls)), "v");
  EXPECT_EQ(calls.load(), 1);
  auto st = a.Stats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.loads, 1u);
  EXPECT_NE(metrics_.Render().find(R"(syncwell_cache_loads_total{cache="t",outcome="ok"} 1)"),
            std::string::npos);
}

TEST_F(CacheAsideTest, TtlIsJitteredWithinTenPercent) {
  CacheAside a(flaky_, nullptr);
  std::atomic<int> calls{0};
  for (int i = 0; i < 200; ++i)
    (void)a.GetOrLoad("k" + std::to_string(i), 100s, Value("v", &calls));
  std::set<int64_t> seen;
  for (const auto& [key, ttl] : flaky_.Sets()) {
    EXPECT_GE(ttl, 90s);
    EXPECT_LE(ttl, 110s);
    seen.insert(ttl.count());
  }
  EXPECT_EQ(flaky_.Sets().size(), 200u);
  EXPECT_GT(seen.size(), 50u) << "keys set together must not all expire together";
}

TEST_F(CacheAsideTest, NoJitterWhenDisabled) {
  CacheAside a(flaky_, nullptr, {.name = "t", .jitter = 0.0});
  std::atomic<int> calls{0};
  (void)a.GetOrLoad("k", 100s, Value("v", &calls));
  ASSERT_EQ(flaky_.Sets().size(), 1u);
  EXPECT_EQ(flaky_.Sets()[0].second, 100s);
}

TEST_F(CacheAsideTest, LoaderChoosesItsTtlOrNoCaching) {
  CacheAside a(flaky_, nullptr, {.name = "t", .jitter = 0.0});
  int calls = 0;
  auto uncached = [&]() -> Result<Loaded> {
    ++calls;
    return Loaded{"x", Duration{0}};
  };
  EXPECT_EQ(*a.GetOrLoad("u", 1min, uncached), "x");
  EXPECT_EQ(*a.GetOrLoad("u", 1min, uncached), "x");
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(flaky_.Sets().empty());
  auto short_lived = []() -> Result<Loaded> { return Loaded{"y", Duration{5000}}; };
  (void)a.GetOrLoad("s", 1min, short_lived);
  ASSERT_EQ(flaky_.Sets().size(), 1u);
  EXPECT_EQ(flaky_.Sets()[0].second, 5s);
}

TEST_F(CacheAsideTest, ACacheFailureIsNeverARequestFailure) {
  CacheAside a(flaky_, nullptr);
  std::atomic<int> calls{0};
  flaky_.fail_gets = true;
  flaky_.fail_sets = true;
  auto r = a.GetOrLoad("k", 1min, Value("from-store", &calls));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "from-store");
  auto st = a.Stats();
  EXPECT_EQ(st.errors, 1u);
  EXPECT_EQ(st.set_errors, 1u);
  EXPECT_EQ(st.loads, 1u);
  // Get works again but the earlier Set had failed: a plain miss.
  flaky_.fail_gets = false;
  flaky_.fail_sets = false;
  EXPECT_EQ(*a.GetOrLoad("k", 1min, Value("from-store-2", &calls)), "from-store-2");
  EXPECT_EQ(*a.GetOrLoad("k", 1min, Value("from-store-3", &calls)), "from-store-2");
}

TEST_F(CacheAsideTest, LoaderErrorsAreReturnedNotCached) {
  CacheAside a(flaky_, nullptr);
  int calls = 0;
  auto failing = [&]() -> Result<Loaded> {
    ++calls;
    return MakeError(Errc::kUnavailable, "store down");
  };
  EXPECT_EQ(a.GetOrLoad("k", 1min, failing).error().code, Errc::kUnavailable);
  EXPECT_EQ(a.GetOrLoad("k", 1min, failing).error().code, Errc::kUnavailable);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(flaky_.Sets().empty());
  EXPECT_EQ(a.Stats().load_errors, 2u);
}

TEST_F(CacheAsideTest, RejectedCachedValueIsReloadedAndOverwritten) {
  CacheAside a(flaky_, nullptr);
  ASSERT_TRUE(lru_.Set("k", "old-format", 1h).ok());
  std::atomic<int> calls{0};
  auto accept = [](std::string_view v) { return v.rfind("new", 0) == 0; };
  EXPECT_EQ(*a.GetOrLoad("k", 1min, Value("new-1", &calls), accept), "new-1");
  EXPECT_EQ(*a.GetOrLoad("k", 1min, Value("new-2", &calls), accept), "new-1");
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(a.Stats().rejected, 1u);
}

TEST_F(CacheAsideTest, ConcurrentMissesShareOneLoadAndItsError) {
  CacheAside a(flaky_, nullptr);
  constexpr int kThreads = 8;
  std::atomic<int> calls{0};
  auto slow_failing = [&]() -> Result<Loaded> {
    ++calls;
    EXPECT_TRUE(WaitFor([&] { return a.Stats().coalesced >= kThreads - 1; }));
    return MakeError(Errc::kUnavailable, "store down");
  };
  std::atomic<int> unavailable{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      if (a.GetOrLoad("k", 1min, slow_failing).error().code == Errc::kUnavailable) ++unavailable;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(unavailable.load(), kThreads);
}

TEST_F(CacheAsideTest, ASlowLoadDoesNotBlockOtherKeys) {
  CacheAside a(flaky_, nullptr);
  std::atomic<bool> other_done{false};
  std::thread slow([&] {
    auto r = a.GetOrLoad("slow", 1min, [&]() -> Result<Loaded> {
      EXPECT_TRUE(WaitFor([&] { return other_done.load(); }));
      return Loaded{"s", std::nullopt};
    });
    EXPECT_TRUE(r.ok());
  });
  std::atomic<int> calls{0};
  EXPECT_EQ(*a.GetOrLoad("fast", 1min, Value("f", &calls)), "f");
  other_done = true;
  slow.join();
}

TEST_F(CacheAsideTest, AThrowingLoaderReleasesItsWaiters) {
  CacheAside a(flaky_, nullptr);
  EXPECT_THROW(
      (void)a.GetOrLoad("k", 1min, []() -> Result<Loaded> { throw std::runtime_error("bug"); }),
      std::runtime_error);
  std::atomic<int> calls{0};
  EXPECT_EQ(*a.GetOrLoad("k", 1min, Value("v", &calls)), "v");  // the flight was retired
}

}  // namespace
}  // namespace syncwell::cache
