#include "worker/worker_pool.hpp"

#include <algorithm>
#include <boost/json.hpp>

#include "core/log.hpp"

namespace syncwell::worker {
namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

bool ParseBody(const std::string& body, JobId* job, UserId* user) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return false;
  const auto& o = v.as_object();
  auto* j = o.if_contains("jobId");
  auto* u = o.if_contains("userId");
  if (!j || !u || !j->is_string() || !u->is_string()) return false;
  *job = JobId(std::string(j->as_string()));
  *user = UserId(std::string(u->as_string()));
  return !job->empty() && !user->empty();
}

// Every outcome label, registered up front so /metrics shows zeros too.
constexpr const char* kOutcomes[] = {"succeeded",
                                     "retried",
                                     "dead_lettered",
                                     "auth_failed",
                                     "deferred_rate_limited",
                                     "deferred_safe_mode",
                                     "deferred_limiter_error",
                                     "deferred_provider_rate_limited",
                                     "deferred_not_settled",
                                     "released",
                                     "already_done",
                                     "dropped",
                                     "connection_gone",
                                     "error"};

}  // namespace

int ReceiverCount(const WorkerPoolSettings& s) {
  if (s.receivers > 0) return s.receivers;
  const int by_slots =
      (std::max(1, s.max_workers) + queue::kMaxReceiveBatch - 1) / queue::kMaxReceiveBatch;
  return std::clamp(by_slots, 1, 8);
}

int DesiredWorkers(int64_t visible, const WorkerPoolSettings& s) {
  const int64_t target = std::max(1, s.target_backlog_per_worker);
  const int64_t want = visible <= 0 ? 0 : (visible + target - 1) / target;
  return static_cast<int>(
      std::clamp<int64_t>(want, std::max(0, s.min_workers), std::max(1, s.max_workers)));
}

WorkerPool::WorkerPool(WorkerPoolSettings settings, queue::JobQueue& queue, store::Store& store,
                       ratelimit::RateLimiter& limiter, JobHandler& handler, const Clock& clock,
                       obs::Registry& metrics, ratelimit::RandomSource& random,
                       ratelimit::DelayTracker* delay_tracker)
    : settings_(settings),
      queue_(queue),
      store_(store),
      limiter_(limiter),
      handler_(handler),
      clock_(clock),
      metrics_(metrics),
      random_(random),
      delay_tracker_(delay_tracker),
      retry_backoff_(settings.retry_backoff),
      defer_backoff_(settings.defer_backoff) {
  metrics_.AddGauge("syncwell_worker_current", "Worker slots running now",
                    [this] { return static_cast<double>(current_.load()); });
  metrics_.AddGauge("syncwell_worker_desired",
                    "Worker slots wanted for the backlog: clamp(ceil(visible / "
                    "target_backlog_per_worker), min, max); the autoscaling signal",
                    [this] { return static_cast<double>(desired_.load()); });
  metrics_.AddGauge("syncwell_worker_busy", "Worker slots running a job",
                    [this] { return static_cast<double>(busy_.load()); });
  for (const char* o : kOutcomes) {
    outcomes_[o] = &metrics_.GetCounter("syncwell_worker_jobs_total", "Job deliveries by outcome",
                                        std::string("outcome=\"") + o + "\"");
  }
  ack_batches_ =
      &metrics_.GetCounter("syncwell_worker_ack_batches_total",
                           "Batched acknowledgements sent (JobQueue::DeleteBatch calls)");
  heartbeats_ = &metrics_.GetCounter("syncwell_worker_heartbeats_total",
                                     "Visibility extensions of running jobs");
  delayed_events_ = &metrics_.GetCounter(
      "syncwell_worker_sync_delayed_events_total",
      "Syncs delayed by rate limits for more than 15 minutes (one per episode)");
}

WorkerPool::~WorkerPool() { Stop(); }

obs::Counter& WorkerPool::Outcome(const char* outcome) {
  auto it = outcomes_.find(std::string_view(outcome));
  return it != outcomes_.end() ? *it->second : *outcomes_.at("error");
}

void WorkerPool::Start() {
  std::lock_guard tl(threads_mu_);
  if (started_) return;
  started_ = true;
  const int initial = std::max(1, std::clamp(settings_.min_workers, 0, settings_.max_workers));
  desired_ = initial;
  current_ = initial;
  // The acker first: workers may finish a job (and Ack) as soon as the dispatcher runs.
  if (settings_.ack_batch_window.count() > 0) acker_ = std::thread([this] { AckLoop(); });
  SpawnWorkersUpTo(initial);
  for (int i = 0; i < ReceiverCount(settings_); ++i)
    dispatchers_.emplace_back([this] { DispatchLoop(); });
  supervisor_ = std::thread([this] { SupervisorLoop(); });
}

void WorkerPool::Ack(const std::string& receipt, const std::string& job_id) {
  if (settings_.ack_batch_window.count() <= 0) {
    if (auto st = queue_.Delete(receipt); !st)
      log::Warn("worker: delete failed", {{"job", job_id}, {"error", st.error().message}});
    return;
  }
  std::vector<std::pair<std::string, std::string>> full;
  {
    std::lock_guard lock(ack_mu_);
    acks_.emplace_back(receipt, job_id);
    if (acks_.size() >= static_cast<size_t>(queue::kMaxReceiveBatch)) full.swap(acks_);
  }
  if (!full.empty()) {
    FlushAcks(std::move(full));  // a full batch goes at once, on this worker's thread
  } else {
    ack_cv_.notify_one();
  }
}

void WorkerPool::AckLoop() {
  std::unique_lock lock(ack_mu_);
  for (;;) {
    ack_cv_.wait(lock, [this] { return ack_stop_ || !acks_.empty(); });
    if (acks_.empty() && ack_stop_) return;
    // Let the batch fill for up to the window (or until it is full or we stop).
    ack_cv_.wait_for(lock, settings_.ack_batch_window, [this] {
      return ack_stop_ || acks_.size() >= static_cast<size_t>(queue::kMaxReceiveBatch);
    });
    std::vector<std::pair<std::string, std::string>> batch;
    batch.swap(acks_);
    lock.unlock();
    FlushAcks(std::move(batch));
    lock.lock();
  }
}

void WorkerPool::FlushAcks(std::vector<std::pair<std::string, std::string>> batch) {
  for (size_t begin = 0; begin < batch.size(); begin += queue::kMaxReceiveBatch) {
    const size_t end = std::min(batch.size(), begin + queue::kMaxReceiveBatch);
    std::vector<std::string> receipts;
    for (size_t i = begin; i < end; ++i) receipts.push_back(batch[i].first);
    const std::vector<Status> out = queue_.DeleteBatch(receipts);
    ack_batches_->Inc();
    for (size_t i = 0; i < out.size(); ++i) {
      if (!out[i]) {
        log::Warn("worker: delete failed",
                  {{"job", batch[begin + i].second}, {"error", out[i].error().message}});
      }
    }
  }
}

void WorkerPool::SpawnWorkersUpTo(int n) {
  while (static_cast<int>(workers_.size()) < n) workers_.emplace_back([this] { WorkerLoop(); });
}

void WorkerPool::Stop() {
  {
    std::lock_guard tl(threads_mu_);
    if (!started_ || stopped_) return;
    stopped_ = true;
  }
  // 1. No new receives.
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  dispatch_cv_.notify_all();
  for (auto& d : dispatchers_)
    if (d.joinable()) d.join();
  current_ = 0;
  // 2. Messages received but not started: release at once.
  std::deque<queue::ReceivedMessage> unstarted;
  {
    std::lock_guard lock(mu_);
    unstarted.swap(pending_);
  }
  for (const auto& m : unstarted)
    Defer(m, milliseconds{0}, "released: worker draining", "released");
  // 3. Let in-flight jobs finish within drain_timeout (real time).
  {
    std::unique_lock lock(mu_);
    idle_cv_.wait_for(lock, settings_.drain_timeout, [this] { return busy_.load() == 0; });
  }
  // 4. Release the ones that did not finish and cancel their handlers.
  std::vector<InFlight> to_release;
  {
    std::lock_guard il(inflight_mu_);
    for (auto& [id, f] : inflight_) {
      if (f.completing || f.released) continue;
      f.released = true;
      f.cancel->Cancel();
      to_release.push_back(f);
    }
  }
  for (const auto& f : to_release) {
    if (auto st = queue_.Defer(f.receipt, milliseconds{0}, "released: worker draining"); !st) {
      log::Warn("worker: releasing a job on shutdown failed",
                {{"job", f.job_id}, {"error", st.error().message}});
      // The message is gone or no longer ours: typically the handler's final commit deleted it
      // just now (Store::AcksInCommit). That job finished; its status must not go back to QUEUED.
      if (queue::ReceiptNoLongerHolds(st.error())) continue;
    }
    SetStatus(JobId(f.job_id), store::JobStatus::kQueued, "");
    Outcome("released").Inc();
  }
  if (!to_release.empty())
    log::Info("worker: released unfinished jobs", {{"count", std::to_string(to_release.size())}});
  // 5. Join workers (cancelled handlers return promptly), then the supervisor.
  {
    std::lock_guard lock(mu_);
    exit_ = true;
  }
  work_cv_.notify_all();
  {
    std::lock_guard tl(threads_mu_);
    for (auto& t : workers_)
      if (t.joinable()) t.join();
  }
  {
    std::lock_guard lock(sup_mu_);
    sup_stop_ = true;
  }
  sup_cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  // 6. Every job is done: send the acks still waiting for a batch.
  {
    std::lock_guard lock(ack_mu_);
    ack_stop_ = true;
  }
  ack_cv_.notify_all();
  if (acker_.joinable()) acker_.join();
}

void WorkerPool::DispatchLoop() {
  while (true) {
    int take = 0;
    {
      std::unique_lock lock(mu_);
      dispatch_cv_.wait(lock, [&] {
        const int free =
            current_.load() - busy_.load() - static_cast<int>(pending_.size()) - reserved_;
        take = std::min(free, queue::kMaxReceiveBatch);
        return stopping_ || take > 0;
      });
      if (stopping_) return;
      reserved_ += take;
    }
    queue::ReceiveOptions ro;
    ro.max_messages = take;
    ro.visibility_timeout = settings_.visibility_timeout;
    ro.wait = settings_.receive_wait;
    auto got = queue_.Receive(ro);
    bool release = false;
    {
      // In one step: the received messages take their slots in pending_ and the rest of the
      // reservation goes back to the other receivers (never more messages than slots).
      std::lock_guard lock(mu_);
      reserved_ -= take;
      if (got && stopping_) {
        release = true;
      } else if (got) {
        for (auto& m : *got) pending_.push_back(std::move(m));
      }
    }
    dispatch_cv_.notify_all();
    if (!got) {
      log::Warn("worker: receive failed", {{"error", got.error().message}});
      std::unique_lock lock(mu_);
      dispatch_cv_.wait_for(lock, std::chrono::seconds{1}, [this] { return stopping_; });
      continue;
    }
    if (got->empty()) continue;
    if (release) {
      for (const auto& m : *got) Defer(m, milliseconds{0}, "released: worker draining", "released");
      return;
    }
    // One wake-up per message, not a broadcast: with hundreds of idle workers a broadcast per
    // receive woke them all to take a few messages (perf: ~70% of the server's CPU in futex
    // wait/wake with 1,024 workers). A woken worker that finds pending_ empty (another worker
    // took the message on its way back) waits again, so no message is stranded.
    for (size_t i = 0; i < got->size(); ++i) work_cv_.notify_one();
  }
}

void WorkerPool::WorkerLoop() {
  while (true) {
    queue::ReceivedMessage m;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [this] { return exit_ || !pending_.empty(); });
      if (pending_.empty()) return;  // exit_
      m = std::move(pending_.front());
      pending_.pop_front();
      ++busy_;
    }
    Process(m);
    {
      std::lock_guard lock(mu_);
      --busy_;
    }
    dispatch_cv_.notify_all();
    idle_cv_.notify_all();
  }
}

void WorkerPool::SupervisorLoop() {
  std::unique_lock lock(sup_mu_);
  while (!sup_stop_) {
    lock.unlock();
    Tick();
    lock.lock();
    sup_cv_.wait_for(lock, settings_.tick_interval, [this] { return sup_stop_; });
  }
}

void WorkerPool::Tick() {
  bool stopping;
  {
    std::lock_guard lock(mu_);
    stopping = stopping_;
  }
  if (!stopping) {
    if (auto st = queue_.Stats()) {
      const int d = DesiredWorkers(st->visible, settings_);
      desired_ = d;
      {
        std::lock_guard tl(threads_mu_);
        if (!stopped_ && started_) SpawnWorkersUpTo(d);
      }
      // Scale up or down at once: a lowered count only stops refilling the surplus slots; the
      // jobs already running finish.
      current_ = d;
      dispatch_cv_.notify_all();
    } else {
      log::Warn("worker: queue stats unavailable", {{"error", st.error().message}});
    }
  }
  Heartbeat();
}

void WorkerPool::Heartbeat() {
  const milliseconds interval = settings_.heartbeat_interval.count() > 0
                                    ? settings_.heartbeat_interval
                                    : settings_.visibility_timeout / 3;
  const TimePoint now = clock_.Now();
  std::vector<std::pair<std::string, std::string>> due;  // message id, receipt
  {
    std::lock_guard il(inflight_mu_);
    for (auto& [id, f] : inflight_) {
      if (f.released || now - f.last_extended < interval) continue;
      due.emplace_back(id, f.receipt);
    }
  }
  for (const auto& [id, receipt] : due) {
    auto st = queue_.ChangeVisibility(receipt, settings_.visibility_timeout);
    std::lock_guard il(inflight_mu_);
    auto it = inflight_.find(id);
    if (it == inflight_.end()) continue;
    if (st) {
      it->second.last_extended = now;
      heartbeats_->Inc();
    } else if (queue::ReceiptNoLongerHolds(st.error())) {
      // The lease is gone (expired and taken by someone else): stop the job, discard its result.
      if (!it->second.completing) {
        it->second.released = true;
        it->second.cancel->Cancel();
        log::Warn("worker: lost the message of a running job; cancelling it",
                  {{"job", it->second.job_id}, {"error", st.error().message}});
      }
    } else {
      log::Warn("worker: heartbeat failed",
                {{"job", it->second.job_id}, {"error", st.error().message}});
    }
  }
}

void WorkerPool::SetStatus(const JobId& job, store::JobStatus status, const std::string& error) {
  if (auto st = store_.UpdateJobStatus(job, status, error); !st) {
    log::Warn("worker: job status update failed", {{"job", job.str()},
                                                   {"status", store::JobStatusName(status)},
                                                   {"error", st.error().message}});
  }
}

int WorkerPool::NextDeferralAttempt(const queue::ReceivedMessage& m) const {
  int n = 1;
  for (const auto& h : m.history)
    if (h.kind == queue::HistoryKind::kDeferred) ++n;
  return n;
}

void WorkerPool::Defer(const queue::ReceivedMessage& m, milliseconds delay,
                       const std::string& reason, const char* outcome) {
  if (auto st = queue_.Defer(m.receipt, delay, reason); !st) {
    log::Warn("worker: defer failed", {{"message", m.message_id}, {"error", st.error().message}});
    Outcome("error").Inc();
    return;
  }
  Outcome(outcome).Inc();
}

void WorkerPool::FailJobNow(const queue::ReceivedMessage& m, const JobId& job,
                            const std::string& error, const char* outcome) {
  if (auto st = store_.UpdateJobStatus(job, store::JobStatus::kFailed, error); !st) {
    // Not recorded: leave the message to come back (visibility expiry) and try again.
    log::Warn("worker: could not record FAILED",
              {{"job", job.str()}, {"error", st.error().message}});
    Outcome("error").Inc();
    return;
  }
  if (auto st = queue_.Delete(m.receipt); !st) {
    log::Warn("worker: delete failed", {{"job", job.str()}, {"error", st.error().message}});
  }
  Outcome(outcome).Inc();
  log::Info("worker: job failed", {{"job", job.str()}, {"error", error}});
}

void WorkerPool::FailDelivery(const queue::ReceivedMessage& m, const store::Job* job,
                              const std::string& error) {
  const bool last = m.receive_count >= settings_.max_receive_count;
  if (job && last) SetStatus(job->id, store::JobStatus::kFailed, error);
  const milliseconds delay = retry_backoff_.Delay(m.receive_count, random_);
  auto out = queue_.Fail(m.receipt, error, delay);
  if (!out) {
    log::Warn("worker: fail failed", {{"message", m.message_id}, {"error", out.error().message}});
    Outcome("error").Inc();
    return;
  }
  if (*out == queue::FailOutcome::kDeadLettered) {
    if (job && !last) SetStatus(job->id, store::JobStatus::kFailed, error);
    Outcome("dead_lettered").Inc();
    log::Warn("worker: job dead-lettered",
              {{"job", job ? job->id.str() : ""}, {"message", m.message_id}, {"error", error}});
  } else {
    if (job) SetStatus(job->id, store::JobStatus::kQueued, "");
    Outcome("retried").Inc();
  }
}

void WorkerPool::DeadLetterNow(const queue::ReceivedMessage& m, const store::Job& job,
                               const std::string& error) {
  // FAILED first, as on the last retry: a crash before DeadLetter leaves a FAILED job whose
  // message comes back and is deleted as already done, never a dead-lettered job left RUNNING.
  SetStatus(job.id, store::JobStatus::kFailed, error);
  if (auto st = queue_.DeadLetter(m.receipt, error); !st) {
    log::Warn("worker: dead-letter failed",
              {{"message", m.message_id}, {"error", st.error().message}});
    Outcome("error").Inc();
    return;
  }
  Outcome("dead_lettered").Inc();
  log::Warn("worker: job dead-lettered (permanent error)",
            {{"job", job.id.str()}, {"message", m.message_id}, {"error", error}});
}

void WorkerPool::Process(const queue::ReceivedMessage& m) {
  JobId job_id;
  UserId user;
  if (!ParseBody(m.body, &job_id, &user)) {
    FailDelivery(m, nullptr, "malformed job message");
    return;
  }
  auto job = store_.GetJob(user, job_id);
  if (!job) {
    if (job.error().code == Errc::kNotFound) {
      // The job is gone (its user was deleted): nothing to do.
      if (auto st = queue_.Delete(m.receipt); !st)
        log::Warn("worker: delete failed", {{"job", job_id.str()}, {"error", st.error().message}});
      Outcome("dropped").Inc();
    } else {
      FailDelivery(m, nullptr, "store: " + job.error().message);
    }
    return;
  }
  if (job->status == store::JobStatus::kSucceeded || job->status == store::JobStatus::kFailed) {
    // Terminal already (a crash between the status commit and Delete): never run it again.
    if (auto st = queue_.Delete(m.receipt); !st)
      log::Warn("worker: delete failed", {{"job", job_id.str()}, {"error", st.error().message}});
    Outcome("already_done").Inc();
    return;
  }
  // Both of the job's connections in one read (one round trip on PostgreSQL); the handler gets
  // them in its context and does not read them again.
  JobContext ctx;
  auto conns = store_.GetConnections(user, {job->source, job->destination});
  if (!conns) {
    FailDelivery(m, &*job, "store: " + conns.error().message);
    return;
  }
  ctx.connections = std::move(*conns);
  const store::Connection* conn = ctx.Loaded(job->source);
  if (conn == nullptr) {
    FailJobNow(m, job_id, "source connection no longer exists", "connection_gone");
    return;
  }
  if (conn->status != store::ConnectionStatus::kActive) {
    FailJobNow(m, job_id,
               std::string("source connection is ") + store::ConnectionStatusName(conn->status) +
                   " (the user must reconnect)",
               "auth_failed");
    return;
  }

  // Rate limit: one token per execution, before any provider work; never overspend.
  const Priority prio = m.priority;
  auto decision = limiter_.TryAcquire(conn->provider, conn->provider_user_id, prio, 1);
  if (!decision || !decision->granted) {
    const int attempt = NextDeferralAttempt(m);
    if (!decision) {
      const bool safe_mode = decision.error().code == Errc::kUnavailable;
      if (!safe_mode)
        log::Error("worker: rate limiter refused the request",
                   {{"provider", conn->provider}, {"error", decision.error().message}});
      Defer(m, defer_backoff_.Delay(attempt, random_),
            safe_mode ? "rate limiter unavailable (safe mode)" : "rate limiter error",
            safe_mode ? "deferred_safe_mode" : "deferred_limiter_error");
    } else {
      Defer(m, defer_backoff_.Delay(attempt, random_, decision->retry_after),
            "rate limited: " + conn->provider, "deferred_rate_limited");
    }
    if (delay_tracker_) {
      if (auto d = delay_tracker_->OnDeferred(user, conn->provider)) {
        delayed_events_->Inc();
        log::Warn("sync delayed by rate limits",
                  {{"event", "sync_delayed"},
                   {"job", job_id.str()},
                   {"provider", conn->provider},
                   {"delay_s",
                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*d).count())}});
      }
    }
    return;
  }
  const TimePoint granted_at = clock_.Now();

  // RUNNING is for the API's readers; nothing below depends on it having committed, so it is not
  // waited for (one blocking store round trip less per job). Whatever this job writes later
  // commits after it (Store::UpdateJobStatusAsync). A failed write only leaves QUEUED showing.
  store_.UpdateJobStatusAsync(job_id, store::JobStatus::kRunning, "",
                              [job = job_id.str()](const Status& st) {
                                if (!st.ok())
                                  log::Warn("worker: RUNNING status not written",
                                            {{"job", job}, {"error", st.error().message}});
                              });
  auto cancel = std::make_shared<CancelToken>();
  {
    std::lock_guard il(inflight_mu_);
    InFlight f;
    f.receipt = m.receipt;
    f.job_id = job_id.str();
    f.last_extended = clock_.Now();
    f.cancel = cancel;
    inflight_[m.message_id] = std::move(f);
  }
  ctx.attempt = m.receive_count;
  ctx.message_id = m.message_id;
  ctx.receipt = m.receipt;
  ctx.provider = conn->provider;
  ctx.provider_user = conn->provider_user_id;
  ctx.granted_at = granted_at;
  ctx.cancel = cancel.get();
  Result<void> result = [&]() -> Result<void> {
    try {
      return handler_.Handle(*job, ctx);
    } catch (const std::exception& e) {
      return MakeError(Errc::kInternal, std::string("handler threw: ") + e.what());
    }
  }();
  {
    std::lock_guard il(inflight_mu_);
    auto it = inflight_.find(m.message_id);
    const bool discard = it == inflight_.end() || it->second.released;
    if (!discard) it->second.completing = true;
    if (discard) {
      if (it != inflight_.end()) inflight_.erase(it);
      return;  // released on shutdown or lease lost: the next holder runs it
    }
  }
  struct EraseOnExit {
    WorkerPool* p;
    const std::string& id;
    ~EraseOnExit() {
      std::lock_guard il(p->inflight_mu_);
      p->inflight_.erase(id);
    }
  } erase_on_exit{this, m.message_id};

  if (result) {
    if (!ctx.status_committed) {
      if (auto st = store_.UpdateJobStatus(job_id, store::JobStatus::kSucceeded, ""); !st) {
        FailDelivery(m, &*job, "store: " + st.error().message);
        return;
      }
    }
    handler_.OnSucceededCommitted(*job, ctx);
    if (!ctx.acked) Ack(m.receipt, job_id.str());
    if (delay_tracker_) delay_tracker_->OnCompleted(user, conn->provider);
    Outcome("succeeded").Inc();
    return;
  }
  const Error& e = result.error();
  switch (e.code) {
    case Errc::kRateLimited: {
      if (e.retry_after.count() > 0 && !handler_.ReportsProviderRateLimits()) {
        (void)limiter_.RecordRetryAfter(conn->provider, conn->provider_user_id, e.retry_after);
      }
      SetStatus(job_id, store::JobStatus::kQueued, "");
      Defer(m, defer_backoff_.Delay(NextDeferralAttempt(m), random_, e.retry_after),
            "provider rate limited: " + e.message, "deferred_provider_rate_limited");
      return;
    }
    case Errc::kNotYet:  // e.g. an interrupted push that may still land: wait, do not retry yet
      SetStatus(job_id, store::JobStatus::kQueued, "");
      Defer(m, std::max(e.retry_after, milliseconds{1}), "not settled: " + e.message,
            "deferred_not_settled");
      return;
    case Errc::kAuthRevoked:
      FailJobNow(m, job_id, "authorization revoked: " + e.message, "auth_failed");
      return;
    case Errc::kPermanent:  // will never succeed (SPEC S4): no retries, DLQ at once
      DeadLetterNow(m, *job, std::string(ErrcName(e.code)) + ": " + e.message);
      return;
    default:
      FailDelivery(m, &*job, std::string(ErrcName(e.code)) + ": " + e.message);
      return;
  }
}

}  // namespace syncwell::worker
