#pragma once
// Shard ownership leases (ARCHITECTURE §2): the scheduler's work is split into `shards` shards
// (users by hash); every scheduler process holds leases on a fair share of them in PostgreSQL and
// renews them. A process that dies stops renewing; after `ttl` its shards are claimed by the
// others. A shard has at most one unexpired owner at any time.
//
// Fair share = ceil(shards / live members), where a member is live when it renewed within `ttl`.
// A member above its share releases the extra shards; one below claims free or expired ones
// (FOR UPDATE SKIP LOCKED, so members renewing together never wait on each other).
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "store/postgres/pg.hpp"

namespace syncwell::store::pg {

struct ShardLeaseSettings {
  int shards = 64;
  std::chrono::milliseconds ttl{std::chrono::seconds{15}};
};

class ShardLeases {
 public:
  ShardLeases(PgPool& pool, std::string owner, ShardLeaseSettings settings, const Clock& clock);

  // Heartbeat + rebalance; returns the shards this owner holds now (sorted). Call every ttl/3.
  Result<std::vector<int>> Renew();
  // Gives up every lease of this owner (graceful shutdown) so others take over at once.
  Status ReleaseAll();

  const std::string& owner() const { return owner_; }

 private:
  PgPool& pool_;
  const std::string owner_;
  const ShardLeaseSettings settings_;
  const Clock& clock_;
};

}  // namespace syncwell::store::pg
