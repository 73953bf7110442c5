#include "schedule/scheduler.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "core/log.hpp"
#include "core/murmur3.hpp"
#include "core/priority.hpp"
#include "providers/capabilities.hpp"
#include "store/job_message.hpp"

namespace syncwell::schedule {

namespace {

using std::chrono::milliseconds;

// Uniform in [0, range) from a hash of `key` (range > 0).
int64_t HashUniform(const std::string& key, int64_t range) {
  // Two independent 32-bit hashes: 64 bits, so intervals up to days stay unbiased.
  const uint64_t h =
      (static_cast<uint64_t>(Murmur3_32(key, 0x5eed0001U)) << 32) | Murmur3_32(key, 0x5eed0002U);
  return static_cast<int64_t>(h % static_cast<uint64_t>(range));
}

std::string SlotKey(const UserId& user, TimePoint slot) {
  return user.str() + "/" + std::to_string(ToUnixMillis(slot));
}

// A recent-slots list with `slot` in front (newest first), at most kRecentSlots.
std::vector<TimePoint> PushSlot(TimePoint slot, const std::vector<TimePoint>& recent) {
  std::vector<TimePoint> out{slot};
  for (const TimePoint& t : recent) {
    if (out.size() == store::kRecentSlots) break;
    if (t != slot) out.push_back(t);
  }
  return out;
}

}  // namespace

Scheduler::Scheduler(SchedulerSettings settings, store::Store& store, obs::Registry& metrics)
    : settings_(settings),
      store_(store),
      enqueued_(metrics.GetCounter("syncwell_scheduler_jobs_enqueued_total",
                                   "Scheduled sync jobs created by the tiered schedule (SPEC S7)")),
      merged_(metrics.GetCounter(
          "syncwell_scheduler_jobs_merged_total",
          "Slots whose job existed already (a repeated tick or another scheduler)")),
      coalesced_(metrics.GetCounter(
          "syncwell_scheduler_jobs_coalesced_total",
          "Slots skipped because the config's previous scheduled job is still queued")),
      errors_(metrics.GetCounter("syncwell_scheduler_shard_errors_total",
                                 "Shard ticks stopped by a store error (retried next tick)")),
      tick_seconds_(metrics.GetHistogram("syncwell_scheduler_tick_seconds",
                                         "Duration of one scheduler tick over the owned shards", "",
                                         obs::LatencyBuckets())) {
  metrics.AddGauge("syncwell_scheduler_due_users", "Due users seen by the last scheduler tick",
                   [this] { return static_cast<double>(due_users_.load()); });
  metrics.AddGauge("syncwell_scheduler_lag_seconds",
                   "Age of the oldest due user seen by the last tick (0: none overdue)",
                   [this] { return lag_seconds_.load(); });
}

JobId Scheduler::SlotJobId(const SyncConfigId& config, TimePoint slot) {
  const std::string key = config.str() + "/" + std::to_string(ToUnixMillis(slot));
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), d);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "job_sch_";
  for (int i = 0; i < 12; ++i) {
    out += kHex[d[i] >> 4];
    out += kHex[d[i] & 15];
  }
  return JobId(out);
}

TimePoint Scheduler::NextSlot(const UserId& user, TimePoint slot, milliseconds interval,
                              TimePoint now) {
  const int64_t iv = std::max<int64_t>(1, interval.count());
  const int64_t span = std::max<int64_t>(1, iv / 10);  // +-10%
  const int64_t jitter = HashUniform(SlotKey(user, slot), 2 * span + 1) - span;
  const TimePoint next = slot + milliseconds(iv + jitter);
  if (next > now) return next;
  return now + milliseconds(iv / 2 + HashUniform(SlotKey(user, slot) + "/late", iv));
}

TimePoint Scheduler::FirstSlot(const UserId& user, milliseconds interval, TimePoint now) {
  const int64_t iv = std::max<int64_t>(1, interval.count());
  return now + milliseconds(HashUniform(user.str() + "/first", iv));
}

milliseconds Scheduler::IntervalOf(store::Tier tier) const {
  return tier == store::Tier::kPro ? settings_.pro_interval : settings_.free_interval;
}

TickStats Scheduler::Tick(const std::vector<int>& shards, TimePoint now) {
  const auto started = std::chrono::steady_clock::now();
  TickStats stats;
  // Rows from before the schedule existed get their shard first; one process does it (the
  // owner of shard 0), bounded per tick.
  if (std::find(shards.begin(), shards.end(), 0) != shards.end()) {
    auto n = store_.AssignScheduleShards(settings_.batch_size);
    if (!n) {
      log::Warn("scheduler: assigning shards failed; will retry", {{"error", n.error().message}});
    } else if (*n > 0) {
      log::Info("scheduler: shards assigned to existing users", {{"count", std::to_string(*n)}});
    }
  }
  for (int shard : shards) {
    if (auto st = TickShard(shard, now, &stats); !st) {
      ++stats.shard_errors;
      errors_.Inc();
      log::Warn("scheduler: shard tick stopped by a store error; retried next tick",
                {{"shard", std::to_string(shard)},
                 {"code", ErrcName(st.error().code)},
                 {"error", st.error().message}});
    }
  }
  due_users_ = stats.due_users;
  lag_seconds_ = stats.lag_seconds;
  tick_seconds_.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return stats;
}

Status Scheduler::TickShard(int shard, TimePoint now, TickStats* stats) {
  for (size_t batch = 0; batch < settings_.max_batches_per_shard; ++batch) {
    auto due = store_.ListDueUsers(shard, now, settings_.batch_size);
    if (!due) return due.error();
    for (const auto& u : *due) {
      ++stats->due_users;
      if (u.next_sync_at != TimePoint{}) {
        stats->lag_seconds = std::max(stats->lag_seconds,
                                      std::chrono::duration<double>(now - u.next_sync_at).count());
      }
    }
    if (auto st = ProcessUsers(*due, now, stats); !st) return st;
    if (due->size() < settings_.batch_size) break;
  }
  return {};
}

Status Scheduler::ProcessUsers(const std::vector<store::ScheduledUser>& users, TimePoint now,
                               TickStats* stats) {
  const size_t threads = std::min(std::max<size_t>(settings_.concurrency, 1), users.size());
  if (threads <= 1) {
    for (const auto& u : users) {
      if (auto st = ProcessUser(u, now, stats); !st) return st;
    }
    return {};
  }
  // Workers take the next user until none is left or one failed; the first error is returned
  // once the users already started have finished (nothing is left half done: each user's steps
  // are idempotent, and the next tick retries the rest).
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;
  auto work = [&] {
    TickStats mine;
    while (!failed.load(std::memory_order_relaxed)) {
      const size_t i = next.fetch_add(1);
      if (i >= users.size()) break;
      if (auto st = ProcessUser(users[i], now, &mine); !st) {
        std::lock_guard lock(mu);
        if (!failed.exchange(true)) first_error = st;
        break;
      }
    }
    std::lock_guard lock(mu);
    stats->placed += mine.placed;
    stats->jobs_enqueued += mine.jobs_enqueued;
    stats->jobs_merged += mine.jobs_merged;
    stats->jobs_coalesced += mine.jobs_coalesced;
    stats->skipped_users += mine.skipped_users;
  };
  std::vector<std::thread> helpers;
  helpers.reserve(threads - 1);
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(work);
  work();
  for (auto& h : helpers) h.join();
  return first_error;
}

Status Scheduler::ProcessUser(const store::ScheduledUser& u, TimePoint now, TickStats* stats) {
  const milliseconds interval = IntervalOf(u.tier);
  if (u.next_sync_at == TimePoint{}) {
    ++stats->placed;
    auto st = store_.AdvanceSchedule(u.user, u.next_sync_at, FirstSlot(u.user, interval, now),
                                     u.recent_slots);
    if (!st && st.error().code != Errc::kConflict && st.error().code != Errc::kNotFound) return st;
    return {};
  }
  bool any = false;
  if (!u.deletion_pending) {
    auto configs = store_.ListSyncConfigs(u.user);
    if (!configs) return configs.error();
    // Connections that can take part: active ones; a source must also be a cloud provider (a
    // device source -- Apple Health, Health Connect -- has nothing to fetch: it uploads).
    std::map<ConnectionId, bool> source_ok, destination_ok;
    if (!configs->empty()) {
      auto conns = store_.ListConnections(u.user);
      if (!conns) return conns.error();
      for (const auto& c : *conns) {
        const auto* info = providers::FindProvider(c.provider);
        const bool active = c.status == store::ConnectionStatus::kActive && info != nullptr;
        destination_ok[c.id] = active;
        source_ok[c.id] = active && info->cloud;
      }
    }
    for (const auto& cfg : *configs) {
      if (!cfg.enabled || !source_ok[cfg.source] || !destination_ok[cfg.destination]) continue;
      any = true;
      auto r = EnqueueSlot(cfg, u, now);
      if (!r) return r.error();
      switch (*r) {
        case Enqueue::kCreated:
          ++stats->jobs_enqueued;
          enqueued_.Inc();
          break;
        case Enqueue::kMerged:
          ++stats->jobs_merged;
          merged_.Inc();
          break;
        case Enqueue::kCoalesced:
          ++stats->jobs_coalesced;
          coalesced_.Inc();
          break;
      }
    }
  }
  if (!any) ++stats->skipped_users;
  auto st = store_.AdvanceSchedule(u.user, u.next_sync_at,
                                   NextSlot(u.user, u.next_sync_at, interval, now),
                                   PushSlot(u.next_sync_at, u.recent_slots));
  // kConflict: another scheduler (or a tier change) moved the slot first; kNotFound: the user
  // was purged meanwhile. Either way there is nothing left to do for this user.
  if (!st && st.error().code != Errc::kConflict && st.error().code != Errc::kNotFound) return st;
  return {};
}

Result<Scheduler::Enqueue> Scheduler::EnqueueSlot(const store::SyncConfig& cfg,
                                                  const store::ScheduledUser& u, TimePoint now) {
  const JobId id = SlotJobId(cfg.id, u.next_sync_at);
  if (auto existing = store_.GetJob(cfg.user, id); existing) {
    return Enqueue::kMerged;
  } else if (existing.error().code != Errc::kNotFound) {
    return existing.error();
  }
  // Coalescing: the newest recent slot that has a job for this config decides.
  for (const TimePoint& prev : u.recent_slots) {
    auto job = store_.GetJob(cfg.user, SlotJobId(cfg.id, prev));
    if (!job) {
      if (job.error().code != Errc::kNotFound) return job.error();
      continue;  // no job at that slot (coalesced, or the config is newer): look further back
    }
    if (job->status == store::JobStatus::kQueued) return Enqueue::kCoalesced;
    break;  // started or finished: this slot needs its own job
  }
  const store::Job job =
      store::QueuedJobFor(cfg, id, "scheduled", PriorityName(Priority::kMedium), now);
  const queue::OutgoingMessage msg = store::JobMessage(job, id.str());
  if (auto st = store_.CreateJob(job, msg, nullptr); !st) {
    if (st.error().code == Errc::kAlreadyExists || st.error().code == Errc::kConflict)
      return Enqueue::kMerged;  // another process created it first
    return st.error();
  }
  return Enqueue::kCreated;
}

}  // namespace syncwell::schedule
