#pragma once
// WorkerPool: receives sync jobs from the JobQueue and runs them through a JobHandler (SPEC S3,
// S4 error classes, S6 rate limits; ARCHITECTURE §4).
//
// Threads (all plain std::threads; nothing here runs on an I/O thread):
//   - RECEIVERS (dispatchers; `receivers`, default ceil(max_workers / 10) up to 8): each
//     long-polls Receive(max = free slots (<= 10), wait = receive_wait) and hands each message to
//     an idle worker. A receiver reserves the slots it asks for before it calls Receive, so the
//     process never holds a message without a thread to work on it. Several receivers keep
//     several receives in flight: one receive is one queue commit (embedded: one group commit of
//     the single SQLite writer), and one at a time capped a process at 10 jobs per commit.
//   - WORKER threads (spawned lazily up to max_workers): each runs one job at a time, start to
//     finish (Process()).
//   - one SUPERVISOR: every tick_interval runs Tick(): autoscaling (below) and heartbeats
//     (ChangeVisibility(visibility_timeout) for every job that has held its message longer than
//     heartbeat_interval, default visibility_timeout / 3) so long jobs never lose their message.
//
// Autoscaling: desired = clamp(ceil(visible / target_backlog_per_worker), min, max) from the
// queue's Stats() each tick. The pool runs that many slots at once (current = desired, except 0
// while draining); both are exported (syncwell_worker_current / syncwell_worker_desired) as the
// signal an external orchestrator scales the fleet on.
//
// One job (Process):
//   1. body {"jobId","userId"} -> Store::GetJob. Unknown job (user deleted) -> message deleted.
//      A job already SUCCEEDED/FAILED (crash between the status commit and Delete) -> message
//      deleted WITHOUT running the handler again: a committed job is never applied twice.
//   2. Source connection (Store::GetConnection). Missing, needs_reauth or revoked -> FAILED at
//   once.
//   3. Rate limiter: TryAcquire(provider, provider user, job priority, 1) BEFORE the handler runs
//      (one token per execution until the sync engine acquires per provider request). Refused ->
//      Defer(max(full-jitter backoff, retry_after)): not a failed delivery, status stays QUEUED.
//      Limiter unavailable -> safe mode: no handler call, Defer with backoff.
//   4. Status RUNNING (Store::UpdateJobStatusAsync: not waited for; every later status write
//      commits after it), then the handler, then by outcome:
//        ok           -> SUCCEEDED (unless the handler committed it: ctx.status_committed),
//                        OnSucceededCommitted, Delete.
//        kRetryable   -> Fail(backoff): QUEUED again (or FAILED + DLQ at the 5th delivery).
//        kRateLimited -> RecordRetryAfter (source provider; skipped when the handler reports
//                        429s itself, JobHandler::ReportsProviderRateLimits), QUEUED,
//                        Defer(max(backoff, retry_after)).
//        kNotYet      -> QUEUED, Defer(retry_after): nothing failed, something must settle first
//                        (outcome deferred_not_settled; the sync engine's write_settle).
//        kAuthRevoked -> FAILED at once, Delete (no retries).
//        kPermanent   -> FAILED, then DeadLetter: the message goes to the DLQ at once, whatever
//                        its receive count (SPEC S4: mapping error, 404 of a removed API,
//                        capability mismatch); no retries. A wrong "permanent" verdict (e.g. a
//                        provider 404 during its deploy) is recovered by a DLQ redrive.
//      When the delivery being failed is the last allowed one, FAILED is written BEFORE Fail, so a
//      crash in between still ends with the job FAILED and the message in the DLQ. Likewise FAILED
//      is written BEFORE DeadLetter; a crash in between leaves the job FAILED and its message is
//      deleted as already done on its next delivery (the job is never left RUNNING).
//
// Drain (Stop): the dispatcher stops receiving; in-flight jobs get drain_timeout (real time) to
// finish; those that did not are released with Defer(0) — available to the next worker at once,
// and not counted as a failed delivery since the job did not fail — set back to QUEUED, and their
// handlers cancelled (JobContext::Cancelled); their late results are discarded. Stop then joins
// every thread and returns. Heartbeats continue during the drain.
//
// Thread-safety: Start/Stop from one controlling thread; Tick/Process/metrics are thread-safe.
// The queue, store, limiter, handler, clock, registry and random source must outlive the pool.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "obs/metrics.hpp"
#include "queue/job_queue.hpp"
#include "ratelimit/backoff.hpp"
#include "ratelimit/delay_tracker.hpp"
#include "ratelimit/rate_limiter.hpp"
#include "store/store.hpp"
#include "worker/job_handler.hpp"

namespace syncwell::worker {

struct WorkerPoolSettings {
  int min_workers = 1;
  int max_workers = 16;
  int target_backlog_per_worker = 10;
  std::chrono::milliseconds visibility_timeout{std::chrono::seconds{90}};
  std::chrono::milliseconds heartbeat_interval{0};  // 0 = visibility_timeout / 3
  std::chrono::milliseconds drain_timeout{std::chrono::seconds{10}};
  std::chrono::milliseconds receive_wait{std::chrono::seconds{1}};  // long poll
  std::chrono::milliseconds tick_interval{std::chrono::seconds{1}};
  // Must equal the queue's QueueSettings::max_receive_count (decides when FAILED is written).
  int max_receive_count = 5;
  ratelimit::BackoffSettings retry_backoff;  // Fail delays (retryable)
  ratelimit::BackoffSettings defer_backoff;  // rate-limit / safe-mode deferrals
  // Batched acks: > 0 groups the acknowledgements of succeeded jobs (whose SUCCEEDED status is
  // already committed) into one JobQueue::DeleteBatch of up to 10, waiting at most this long
  // for a batch to fill. A crash loses nothing: an unacknowledged message comes back after its
  // visibility timeout and is dropped as "already_done". 0 = one Delete per job (embedded).
  std::chrono::milliseconds ack_batch_window{0};
  // Concurrent Receive calls (see RECEIVERS above); 0 = ReceiverCount's default.
  int receivers = 0;
};

// settings.receivers, or clamp(ceil(max_workers / 10), 1, 8) when it is 0.
int ReceiverCount(const WorkerPoolSettings& s);

// clamp(ceil(visible / target), min, max).
int DesiredWorkers(int64_t visible, const WorkerPoolSettings& s);

class WorkerPool {
 public:
  WorkerPool(WorkerPoolSettings settings, queue::JobQueue& queue, store::Store& store,
             ratelimit::RateLimiter& limiter, JobHandler& handler, const Clock& clock,
             obs::Registry& metrics, ratelimit::RandomSource& random,
             ratelimit::DelayTracker* delay_tracker = nullptr);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Start();
  // Drains as described above; idempotent.
  void Stop();

  // One supervisor step (autoscale + heartbeats). Public so tests can drive it with a ManualClock.
  void Tick();
  // Runs one received message to completion on the calling thread (the worker threads' body).
  // Public for tests.
  void Process(const queue::ReceivedMessage& m);

  int current_workers() const { return current_.load(); }
  int desired_workers() const { return desired_.load(); }
  int busy_workers() const { return busy_.load(); }

 private:
  struct InFlight {
    std::string receipt;
    std::string job_id;
    TimePoint last_extended{};
    std::shared_ptr<CancelToken> cancel;
    bool completing = false;  // the handler returned; Stop must not release it
    bool released = false;    // released by Stop (or the lease was lost): discard the outcome
  };

  void DispatchLoop();
  void WorkerLoop();
  void SupervisorLoop();
  void SpawnWorkersUpTo(int n);  // threads_mu_ held by caller
  void Heartbeat();
  // Acknowledges a succeeded job's message now (ack_batch_window 0) or in the next batch.
  void Ack(const std::string& receipt, const std::string& job_id);
  void AckLoop();
  void FlushAcks(std::vector<std::pair<std::string, std::string>> batch);  // (receipt, job id)

  // Outcome helpers (return nothing: every failure is logged and counted).
  void Defer(const queue::ReceivedMessage& m, std::chrono::milliseconds delay,
             const std::string& reason, const char* outcome);
  void FailDelivery(const queue::ReceivedMessage& m, const store::Job* job,
                    const std::string& error);
  void FailJobNow(const queue::ReceivedMessage& m, const JobId& job, const std::string& error,
                  const char* outcome);
  void DeadLetterNow(const queue::ReceivedMessage& m, const store::Job& job,
                     const std::string& error);
  void SetStatus(const JobId& job, store::JobStatus status, const std::string& error);
  int NextDeferralAttempt(const queue::ReceivedMessage& m) const;
  obs::Counter& Outcome(const char* outcome);

  const WorkerPoolSettings settings_;
  queue::JobQueue& queue_;
  store::Store& store_;
  ratelimit::RateLimiter& limiter_;
  JobHandler& handler_;
  const Clock& clock_;
  obs::Registry& metrics_;
  ratelimit::RandomSource& random_;
  ratelimit::DelayTracker* delay_tracker_;
  const ratelimit::Backoff retry_backoff_;
  const ratelimit::Backoff defer_backoff_;

  // Metrics (registered in the constructor; the map is read-only afterwards).
  std::map<std::string, obs::Counter*, std::less<>> outcomes_;
  obs::Counter* heartbeats_ = nullptr;
  obs::Counter* delayed_events_ = nullptr;

  std::atomic<int> current_{0};
  std::atomic<int> desired_{0};
  std::atomic<int> busy_{0};

  // Batched acks (ack_batch_window > 0).
  std::mutex ack_mu_;
  std::condition_variable ack_cv_;
  std::vector<std::pair<std::string, std::string>> acks_;  // guarded by ack_mu_
  bool ack_stop_ = false;                                  // guarded by ack_mu_
  std::thread acker_;
  obs::Counter* ack_batches_ = nullptr;

  // Dispatch state.
  std::mutex mu_;
  std::condition_variable work_cv_;      // workers wait for pending_ / exit_
  std::condition_variable dispatch_cv_;  // receivers wait for a free slot / stopping_
  std::condition_variable idle_cv_;      // Stop waits for busy_ == 0
  std::deque<queue::ReceivedMessage> pending_;
  int reserved_ = 0;  // slots asked for by Receive calls in flight
  bool stopping_ = false;
  bool exit_ = false;

  std::mutex inflight_mu_;
  std::map<std::string, InFlight> inflight_;  // by message id

  std::mutex threads_mu_;
  std::vector<std::thread> workers_;
  std::vector<std::thread> dispatchers_;
  std::thread supervisor_;
  std::mutex sup_mu_;
  std::condition_variable sup_cv_;
  bool sup_stop_ = false;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace syncwell::worker
