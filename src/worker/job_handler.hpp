#pragma once
// The JobHandler port: what the worker pool runs for one sync job, and the context it gets.
//
// A handler returns ok (the job's work is done and may be committed) or an Error whose Errc says
// what the pool does next (SPEC S4 error classes; the policy lives in worker_pool.hpp):
//   kRetryable   -> retried with exponential backoff (full jitter); dead-lettered after the
//                   queue's maxReceiveCount (5) deliveries, then the job is FAILED.
//   kRateLimited -> deferred by max(backoff, Error::retry_after); not a failed delivery.
//   kNotYet      -> deferred by Error::retry_after (something must settle first, e.g. a push
//                   that timed out and may still land); not a failed delivery, no backoff.
//   kAuthRevoked -> the job is FAILED at once and its message deleted (no retries).
//   kPermanent   -> dead-lettered (see worker_pool.hpp for how) and the job is FAILED.
//   anything else is treated as kRetryable.
//
// Handlers run on the pool's worker threads, one job per thread at a time; several jobs run
// concurrently, so a handler must be thread-safe. A handler must honour ctx.Cancelled() (or use
// ctx.SleepFor) and give every outbound call a deadline: the pool cancels jobs it could not
// finish within the drain timeout and then waits for their handlers to return.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "store/model.hpp"

namespace syncwell::worker {

// A cancellation flag that sleepers can wait on. Thread-safe.
class CancelToken {
 public:
  void Cancel() {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
    }
    cv_.notify_all();
  }
  bool Cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }
  // Sleeps up to d of real time; false when cancelled (at once or while sleeping).
  bool SleepFor(std::chrono::milliseconds d) const {
    std::unique_lock lock(mu_);
    return !cv_.wait_for(lock, d, [this] { return cancelled_; });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool cancelled_ = false;
};

struct JobContext {
  int attempt = 1;  // the queue receive count of this delivery (deferrals not counted)
  std::string message_id;
  std::string provider;       // the source connection's provider ("fitbit")
  std::string provider_user;  // the source connection's provider user id (may be empty)
  TimePoint granted_at{};     // when the rate limiter granted this execution its token
  const CancelToken* cancel = nullptr;
  // Set by a handler whose own final transaction already recorded the job as SUCCEEDED (the
  // sync engine's CommitSync: ledger, cursor and job status together); the pool then does not
  // write the status a second time (one durable commit less per job).
  bool status_committed = false;
  // The delivery's receipt, and whether the handler's final transaction also deleted its message
  // (Store::AcksInCommit, SyncCommit::ack_receipt); the pool then does not delete it again.
  std::string receipt;
  bool acked = false;
  // The job's source and destination connections as the pool read them (one store read for
  // both) just before the handler ran; a handler may use them instead of reading them again.
  // Either may be missing (deleted meanwhile): the handler then reads and reports as usual.
  std::vector<store::Connection> connections;

  // The connection `id` of `connections`, or nullptr.
  const store::Connection* Loaded(const ConnectionId& id) const {
    for (const auto& c : connections) {
      if (c.id == id) return &c;
    }
    return nullptr;
  }

  bool Cancelled() const { return cancel && cancel->Cancelled(); }
  // Sleeps up to d (real time); false when the job was cancelled.
  bool SleepFor(std::chrono::milliseconds d) const {
    if (!cancel) {
      CancelToken never;
      return never.SleepFor(d);
    }
    return cancel->SleepFor(d);
  }
};

class JobHandler {
 public:
  virtual ~JobHandler() = default;
  virtual Result<void> Handle(const store::Job& job, JobContext& ctx) = 0;
  // True when the handler itself tells the rate limiter about providers' 429s (the sync engine
  // calls several providers and knows which one refused). Otherwise the pool records a
  // kRateLimited result's retry_after against the job's source provider.
  virtual bool ReportsProviderRateLimits() const { return false; }
  // Called after the pool durably recorded SUCCEEDED for the job (before the message is deleted).
  // For observers such as the scripted test handler; most handlers do nothing.
  virtual void OnSucceededCommitted(const store::Job& job, const JobContext& ctx) {
    (void)job;
    (void)ctx;
  }
};

// !!! NOT A SYNC ENGINE !!!
// The production default until the sync algorithm (SPEC S4) and the provider connectors arrive
// with the next issue: it marks every job SUCCEEDED WITHOUT calling any provider and without moving
// any data. It exists so that the queue, the worker pool, status transitions, rate limits and
// draining run end to end today. The pool logs a warning at start-up while it is in use.
class NoopSyncHandler final : public JobHandler {
 public:
  Result<void> Handle(const store::Job& job, JobContext& ctx) override {
    (void)job;
    (void)ctx;
    return {};
  }
};

}  // namespace syncwell::worker
