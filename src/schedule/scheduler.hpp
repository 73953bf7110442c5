#pragma once
// Scheduler: the SPEC S7 tiered schedule. PRO users sync every `pro_interval` (15 min), FREE users
// every `free_interval` (24 h). Users live on kScheduleShards shards (murmur3(userId) % 64); each
// user row carries its next slot (next_sync_at), so a tick reads only the due users of the shards
// it is given (Store::ListDueUsers, index (shard, next_sync_at)).
//
// One Tick(shards, now), per shard, in bounded batches:
//  * an unplaced user (new, tier changed, migrated) gets a slot spread uniformly over its interval,
//    without a job, so a migration or a mass import never makes everyone due at once;
//  * a due user with enabled sync configs gets one job per config (mode "scheduled", priority
//    medium: a live sync like webhooks and the API default, ahead of backfills (low), behind
//    manual "high" requests; SPEC S3/S9), job row + queue message in one transaction
//    (Store::CreateJob). Configs whose connections are not active, or whose source is a device,
//    get no job;
//  * then the slot moves forward by the tier interval +-10% (AdvanceSchedule, compare-and-set on
//    the slot). Users with a pending deletion or without configs are skipped and still advance.
//
// Exactly one job per (config, slot), whatever crashes or lease moves happen: the job id and the
// queue dedup id derive from (config id, slot time), so a repeated tick (crash before the slot
// advanced) or a second process ticking the same shard computes the same id and finds the job
// (kAlreadyExists = merged, as SyncProviderGateway does for webhooks). Coalescing: if the config's
// job of a recent slot (the user row keeps the last kRecentSlots) is still QUEUED, no new job is
// added. A store error stops that shard's tick (the next tick retries); nothing throws.
//
// Jitter is a hash of (user, slot), not a random draw: two processes racing on one user compute
// the same next slot, and tests are deterministic.
//
// Thread-safety: Tick() may be called from one thread at a time; metrics are thread-safe.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "obs/metrics.hpp"
#include "store/store.hpp"

namespace syncwell::schedule {

struct SchedulerSettings {
  std::chrono::milliseconds pro_interval{std::chrono::minutes{15}};
  std::chrono::milliseconds free_interval{std::chrono::hours{24}};
  size_t batch_size = 500;            // due users per ListDueUsers call
  size_t max_batches_per_shard = 20;  // bounds one tick; the rest waits for the next tick
  // Due users of a batch processed at the same time (each user's own steps stay in order). Every
  // user costs a few durable writes; one at a time, a tick runs at one commit latency per write
  // (bench/schedule_bench.sh), while concurrent writes share group commits (SQLite) or use the
  // connection pool (PostgreSQL). 1 = one user after another.
  size_t concurrency = 8;
};

struct TickStats {
  int64_t due_users = 0;       // due users seen (placed ones included)
  int64_t placed = 0;          // unplaced users given a first slot
  int64_t jobs_enqueued = 0;   // new scheduled jobs
  int64_t jobs_merged = 0;     // the slot's job existed already (repeated tick, other process)
  int64_t jobs_coalesced = 0;  // a recent scheduled job of the config is still queued
  int64_t skipped_users = 0;   // deletion pending or no enabled config
  int64_t shard_errors = 0;    // shards whose tick stopped on a store error
  double lag_seconds = 0;      // age of the oldest placed due user seen (0 when none)
};

class Scheduler {
 public:
  Scheduler(SchedulerSettings settings, store::Store& store, obs::Registry& metrics);

  TickStats Tick(const std::vector<int>& shards, TimePoint now);

  // The job id of (config, slot): "job_sch_" + 24 hex of SHA-256. Also the queue dedup id.
  static JobId SlotJobId(const SyncConfigId& config, TimePoint slot);
  // The slot after `slot` for a user of interval `interval` (jitter +-10%, a hash of user and
  // slot); if that is not after `now` (the scheduler was down for a whole interval), a fresh slot
  // in [now + interval/2, now + 3*interval/2) instead, so a backlog does not recur as a burst.
  static TimePoint NextSlot(const UserId& user, TimePoint slot, std::chrono::milliseconds interval,
                            TimePoint now);
  // A first slot for an unplaced user: uniform (by hash) in [now, now + interval).
  static TimePoint FirstSlot(const UserId& user, std::chrono::milliseconds interval, TimePoint now);

 private:
  enum class Enqueue { kCreated, kMerged, kCoalesced };
  Status TickShard(int shard, TimePoint now, TickStats* stats);
  Status ProcessUsers(const std::vector<store::ScheduledUser>& users, TimePoint now,
                      TickStats* stats);
  Status ProcessUser(const store::ScheduledUser& u, TimePoint now, TickStats* stats);
  Result<Enqueue> EnqueueSlot(const store::SyncConfig& cfg, const store::ScheduledUser& u,
                              TimePoint now);
  std::chrono::milliseconds IntervalOf(store::Tier tier) const;

  const SchedulerSettings settings_;
  store::Store& store_;
  obs::Counter& enqueued_;
  obs::Counter& merged_;
  obs::Counter& coalesced_;
  obs::Counter& errors_;
  obs::Histogram& tick_seconds_;
  std::atomic<int64_t> due_users_{0};
  std::atomic<double> lag_seconds_{0};
};

}  // namespace syncwell::schedule
