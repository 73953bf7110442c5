#include "store/postgres/pg_leases.hpp"

#include <algorithm>
#include <utility>

namespace syncwell::store::pg {

std::vector<Migration> FleetMigrations() {
  return {Migration{"fleet", 1, "members and shard leases", R"sql(
CREATE TABLE fleet_members (
  owner text PRIMARY KEY,
  heartbeat_ms bigint NOT NULL
);
CREATE TABLE shard_leases (
  shard int PRIMARY KEY,
  owner text,
  expires_ms bigint NOT NULL DEFAULT 0
);
)sql"}};
}

ShardLeases::ShardLeases(PgPool& pool, std::string owner, ShardLeaseSettings settings,
                         const Clock& clock)
    : pool_(pool), owner_(std::move(owner)), settings_(settings), clock_(clock) {}

Result<std::vector<int>> ShardLeases::Renew() {
  const int64_t now = ToUnixMillis(clock_.Now());
  const int64_t ttl = settings_.ttl.count();
  return pool_.WithTxValue<std::vector<int>>([&](PgConn& c) -> Result<std::vector<int>> {
    // The shard rows exist once (idempotent; a larger shard count adds rows).
    if (auto r =
            c.Exec("INSERT INTO shard_leases (shard) SELECT g FROM generate_series(0, $1 - 1) g "
                   "ON CONFLICT DO NOTHING",
                   {PgParam(settings_.shards)});
        !r) {
      return r.error();
    }
    if (auto r = c.Exec("INSERT INTO fleet_members (owner, heartbeat_ms) VALUES ($1, $2) "
                        "ON CONFLICT (owner) DO UPDATE SET heartbeat_ms = EXCLUDED.heartbeat_ms",
                        {PgParam(owner_), PgParam(now)});
        !r) {
      return r.error();
    }
    if (auto r =
            c.Exec("DELETE FROM fleet_members WHERE heartbeat_ms < $1", {PgParam(now - 4 * ttl)});
        !r) {
      return r.error();
    }
    auto live =
        c.Exec("SELECT count(*) FROM fleet_members WHERE heartbeat_ms >= $1", {PgParam(now - ttl)});
    if (!live) return live.error();
    const int64_t members = std::max<int64_t>(1, live->Int(0, 0));
    const int64_t share = (settings_.shards + members - 1) / members;
    // Renew what we hold (only shards that are still ours).
    auto mine = c.Exec(
        "UPDATE shard_leases SET expires_ms = $2 WHERE owner = $1 AND shard < $3 RETURNING shard",
        {PgParam(owner_), PgParam(now + ttl), PgParam(settings_.shards)});
    if (!mine) return mine.error();
    std::vector<int> held;
    for (int i = 0; i < mine->rows(); ++i) held.push_back(static_cast<int>(mine->Int(i, 0)));
    std::sort(held.begin(), held.end());
    if (static_cast<int64_t>(held.size()) > share) {
      const std::vector<int64_t> extra(held.begin() + share, held.end());
      held.resize(static_cast<size_t>(share));
      if (auto r = c.Exec("UPDATE shard_leases SET owner = NULL, expires_ms = 0 "
                          "WHERE owner = $1 AND shard = ANY($2::int[])",
                          {PgParam(owner_), PgParam(IntArray(extra))});
          !r) {
        return r.error();
      }
    } else if (static_cast<int64_t>(held.size()) < share) {
      auto got = c.Exec(
          "UPDATE shard_leases SET owner = $1, expires_ms = $2 WHERE shard IN ("
          "SELECT shard FROM shard_leases WHERE shard < $4 AND (owner IS NULL OR expires_ms < $3) "
          "ORDER BY shard LIMIT $5 FOR UPDATE SKIP LOCKED) RETURNING shard",
          {PgParam(owner_), PgParam(now + ttl), PgParam(now), PgParam(settings_.shards),
           PgParam(share - static_cast<int64_t>(held.size()))});
      if (!got) return got.error();
      for (int i = 0; i < got->rows(); ++i) held.push_back(static_cast<int>(got->Int(i, 0)));
      std::sort(held.begin(), held.end());
    }
    return held;
  });
}

Status ShardLeases::ReleaseAll() {
  return pool_.WithTx([&](PgConn& c) -> Status {
    if (auto r = c.Exec("UPDATE shard_leases SET owner = NULL, expires_ms = 0 WHERE owner = $1",
                        {PgParam(owner_)});
        !r) {
      return r.error();
    }
    if (auto r = c.Exec("DELETE FROM fleet_members WHERE owner = $1", {PgParam(owner_)}); !r) {
      return r.error();
    }
    return {};
  });
}

}  // namespace syncwell::store::pg
