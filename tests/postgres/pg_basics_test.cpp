// The PostgreSQL connection layer (store/postgres/pg.hpp) and shard ownership leases
// (pg_leases.hpp) against a real PostgreSQL (scripts/with-services.sh).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "store/postgres/pg.hpp"
#include "store/postgres/pg_leases.hpp"
#include "support/services.hpp"

namespace syncwell::store::pg {
namespace {

using test_support::PgTestSchema;

TEST(PgPool, ExecWithParamsAndNulls) {
  PgTestSchema db;
  auto r = db.pool().Exec("SELECT $1::bigint + 1, $2::text IS NULL, $3::text",
                          {PgParam(int64_t{41}), PgParam::Null(), PgParam("x'y\"z")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->Int(0, 0), 42);
  EXPECT_TRUE(r->Bool(0, 1));
  EXPECT_EQ(r->Str(0, 2), "x'y\"z");
}

TEST(PgPool, TransactionRollsBackOnError) {
  PgTestSchema db;
  ASSERT_TRUE(db.pool().Exec("CREATE TABLE t (id int PRIMARY KEY)"));
  Status st = db.pool().WithTx([](PgConn& c) -> Status {
    if (auto r = c.Exec("INSERT INTO t VALUES (1)"); !r) return r.error();
    return MakeError(Errc::kConflict, "changed my mind");
  });
  EXPECT_EQ(st.error().code, Errc::kConflict);
  auto n = db.pool().Exec("SELECT count(*) FROM t");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->Int(0, 0), 0);
}

TEST(PgPool, UniqueViolationIsAlreadyExists) {
  PgTestSchema db;
  ASSERT_TRUE(db.pool().Exec("CREATE TABLE t (id int PRIMARY KEY)"));
  ASSERT_TRUE(db.pool().Exec("INSERT INTO t VALUES (1)"));
  auto r = db.pool().Exec("INSERT INTO t VALUES (1)");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kAlreadyExists);
  // The connection is still usable afterwards.
  EXPECT_TRUE(db.pool().Exec("SELECT 1"));
}

// Statements are prepared per connection on first use (PgConn's statement cache). When the
// server loses them (DEALLOCATE ALL, as a pooler's reset does) or a schema change alters a cached
// statement's result type, the next call still succeeds: outside a transaction it is repeated,
// inside one WithTx runs the transaction again.
TEST(PgPool, StatementCacheSurvivesLostAndChangedStatements) {
  PgTestSchema db(1);  // one connection: every call below uses the same cache
  ASSERT_TRUE(db.pool().Exec("CREATE TABLE t (id int PRIMARY KEY, v text)"));
  ASSERT_TRUE(db.pool().Exec("INSERT INTO t VALUES (1, 'a')"));
  const char* select = "SELECT * FROM t WHERE id = $1";
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(db.pool().Exec(select, {PgParam(1)}));
  auto prepared = db.pool().Exec("SELECT count(*) FROM pg_prepared_statements");
  ASSERT_TRUE(prepared);
  EXPECT_GE(prepared->Int(0, 0), 2);  // select and this count itself

  ASSERT_TRUE(db.pool().Exec("DEALLOCATE ALL"));
  auto again = db.pool().Exec(select, {PgParam(1)});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->Str(0, 1), "a");

  ASSERT_TRUE(db.pool().Exec("ALTER TABLE t ADD COLUMN w int NOT NULL DEFAULT 7"));
  auto wider = db.pool().Exec(select, {PgParam(1)});
  ASSERT_TRUE(wider) << wider.error().message;
  EXPECT_EQ(wider->Int(0, 2), 7);

  ASSERT_TRUE(db.pool().Exec("DEALLOCATE ALL"));
  int attempts = 0;
  Status st = db.pool().WithTx([&](PgConn& c) -> Status {
    ++attempts;
    auto r = c.Exec(select, {PgParam(1)});
    if (!r) return r.error();
    if (auto u = c.Exec("UPDATE t SET v = 'b' WHERE id = $1", {PgParam(1)}); !u) return u.error();
    return {};
  });
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(attempts, 2);  // the first attempt found the statement gone
  EXPECT_EQ(db.pool().Exec("SELECT v FROM t")->Str(0, 0), "b");
}

// ExecTx: one round trip, one implicit transaction; the first failure (here a unique violation
// in the middle) is returned and nothing commits; the connection is usable afterwards.
TEST(PgPool, PipelinedTransactionCommitsAllOrNothing) {
  PgTestSchema db(1);
  ASSERT_TRUE(db.pool().Exec("CREATE TABLE t (id int PRIMARY KEY)"));
  auto ok = db.pool().ExecTx({{"INSERT INTO t VALUES ($1)", {PgParam(1)}},
                              {"INSERT INTO t VALUES ($1) RETURNING id * 10", {PgParam(2)}}});
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[1].Int(0, 0), 20);

  auto dup = db.pool().ExecTx({{"INSERT INTO t VALUES ($1)", {PgParam(3)}},
                               {"INSERT INTO t VALUES ($1)", {PgParam(1)}},
                               {"INSERT INTO t VALUES ($1)", {PgParam(4)}}});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, Errc::kAlreadyExists);
  auto n = db.pool().Exec("SELECT count(*), max(id) FROM t");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->Int(0, 0), 2);  // 3 and 4 rolled back with the failure
  EXPECT_EQ(n->Int(0, 1), 2);
}

TEST(PgPool, SerializationFailuresAreRetried) {
  PgTestSchema db(4);
  ASSERT_TRUE(db.pool().Exec("CREATE TABLE c (id int PRIMARY KEY, v int NOT NULL)"));
  ASSERT_TRUE(db.pool().Exec("INSERT INTO c VALUES (1, 0)"));
  // Read-modify-write under SERIALIZABLE from 4 threads: conflicts abort with 40001 and WithTx
  // re-runs them, so no increment is lost.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        Status st = db.pool().WithTx([](PgConn& c) -> Status {
          if (auto r = c.ExecScript("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"); !r)
            return r.error();
          auto r = c.Exec("SELECT v FROM c WHERE id = 1");
          if (!r) return r.error();
          auto w = c.Exec("UPDATE c SET v = $1 WHERE id = 1", {PgParam(r->Int(0, 0) + 1)});
          if (!w) return w.error();
          return {};
        });
        if (!st) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  auto v = db.pool().Exec("SELECT v FROM c WHERE id = 1");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->Int(0, 0) + failures.load(), 100);
  EXPECT_EQ(failures.load(), 0);
}

TEST(PgPool, UnreachableServerIsUnavailable) {
  PgPoolSettings s;
  s.url = "postgresql://postgres@127.0.0.1:1/postgres";  // nothing listens on port 1
  s.connect_timeout = std::chrono::seconds{1};
  PgPool pool(s);
  auto r = pool.Exec("SELECT 1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  EXPECT_GT(r.error().retry_after.count(), 0);
  EXPECT_EQ(pool.open_connections(), 0u);
}

TEST(PgPool, PoolIsBounded) {
  PgTestSchema db(2);
  std::atomic<size_t> max_open{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        auto r = db.pool().Exec("SELECT pg_sleep(0.001)");
        EXPECT_TRUE(r) << r.error().message;
        size_t open = db.pool().open_connections();
        size_t seen = max_open.load();
        while (open > seen && !max_open.compare_exchange_weak(seen, open)) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(max_open.load(), 2u);
}

TEST(PgMigrate, IdempotentAndRefusesANewerSchema) {
  PgTestSchema db;  // already migrated
  auto again = Migrate(db.pool(), AllMigrations());
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, 0);
  auto pending = PendingMigrations(db.pool(), AllMigrations());
  ASSERT_TRUE(pending);
  EXPECT_EQ(*pending, 0);
  // Without the newest store migration the binary sees one pending.
  auto older = AllMigrations();
  ASSERT_TRUE(
      db.pool().Exec("INSERT INTO schema_migrations (component, version, name) VALUES "
                     "('store', 999, 'from the future')"));
  auto refused = Migrate(db.pool(), older);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::kPermanent);
  auto refused2 = PendingMigrations(db.pool(), older);
  ASSERT_FALSE(refused2);
  EXPECT_EQ(refused2.error().code, Errc::kPermanent);
}

TEST(PgMigrate, FreshSchemaReportsPendingMigrations) {
  PgPoolSettings s;
  s.url = test_support::PostgresUrl();
  s.schema = test_support::UniqueName("fresh");
  PgPool pool(s);
  auto pending = PendingMigrations(pool, AllMigrations());
  ASSERT_TRUE(pending) << pending.error().message;
  EXPECT_EQ(*pending, static_cast<int>(AllMigrations().size()));
}

TEST(PgMigrate, ConcurrentMigratorsApplyEachMigrationOnce) {
  PgPoolSettings s;
  s.url = test_support::PostgresUrl();
  s.schema = test_support::UniqueName("race");
  PgPool a(s), b(s);
  std::optional<Result<int>> ra, rb;
  std::thread ta([&] { ra.emplace(Migrate(a, AllMigrations())); });
  std::thread tb([&] { rb.emplace(Migrate(b, AllMigrations())); });
  ta.join();
  tb.join();
  ASSERT_TRUE(*ra) << ra->error().message;
  ASSERT_TRUE(*rb) << rb->error().message;
  EXPECT_EQ(**ra + **rb, static_cast<int>(AllMigrations().size()));
  (void)a.Exec("DROP SCHEMA " + QuoteIdent(s.schema) + " CASCADE");
}

TEST(ShardLeases, MembersSplitShardsFairlyAndTakeOverFromADeadOne) {
  PgTestSchema db;
  ManualClock clock;
  ShardLeaseSettings ls{.shards = 16, .ttl = std::chrono::seconds{15}};
  ShardLeases a(db.pool(), "a", ls, clock), b(db.pool(), "b", ls, clock);

  auto ha = a.Renew();
  ASSERT_TRUE(ha) << ha.error().message;
  EXPECT_EQ(ha->size(), 16u);  // alone: everything
  auto hb = b.Renew();         // b joins: share is 8, but a still holds all of them
  ASSERT_TRUE(hb);
  EXPECT_TRUE(hb->empty());
  ha = a.Renew();  // a sees two members and releases half
  ASSERT_TRUE(ha);
  EXPECT_EQ(ha->size(), 8u);
  hb = b.Renew();
  ASSERT_TRUE(hb);
  EXPECT_EQ(hb->size(), 8u);
  std::set<int> all(ha->begin(), ha->end());
  all.insert(hb->begin(), hb->end());
  EXPECT_EQ(all.size(), 16u);  // disjoint and complete

  // b dies (stops renewing). After the ttl, a is the only live member and takes everything.
  clock.Advance(std::chrono::seconds{16});
  ha = a.Renew();
  ASSERT_TRUE(ha);
  EXPECT_EQ(ha->size(), 16u);

  // A graceful stop hands everything over at once.
  ASSERT_TRUE(a.ReleaseAll());
  hb = b.Renew();
  ASSERT_TRUE(hb);
  EXPECT_EQ(hb->size(), 16u);
}

TEST(ShardLeases, NoShardHasTwoOwnersUnderConcurrentRenewals) {
  PgTestSchema db(8);
  ManualClock clock;
  ShardLeaseSettings ls{.shards = 32, .ttl = std::chrono::seconds{15}};
  std::vector<std::unique_ptr<ShardLeases>> members;
  for (int i = 0; i < 4; ++i)
    members.push_back(std::make_unique<ShardLeases>(db.pool(), "m" + std::to_string(i), ls, clock));
  for (int round = 0; round < 4; ++round) {
    std::vector<std::vector<int>> held(members.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < members.size(); ++i) {
      threads.emplace_back([&, i] {
        auto h = members[i]->Renew();
        ASSERT_TRUE(h) << h.error().message;
        held[i] = *h;
      });
    }
    for (auto& t : threads) t.join();
    std::multiset<int> owned;
    for (auto& h : held) owned.insert(h.begin(), h.end());
    for (int s : owned) EXPECT_EQ(owned.count(s), 1u) << "shard " << s << " round " << round;
  }
  // After a few rounds every member holds its fair share (32 / 4).
  for (auto& m : members) {
    auto h = m->Renew();
    ASSERT_TRUE(h);
    EXPECT_LE(h->size(), 8u);
  }
}

}  // namespace
}  // namespace syncwell::store::pg
