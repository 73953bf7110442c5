#include "queue/long_poll.hpp"

#include <algorithm>
#include <atomic>

namespace syncwell::queue {

WakeupSignal::WakeupSignal()
    : id_([] {
        static std::atomic<uint64_t> next{1};
        return next.fetch_add(1);
      }()) {}

void WakeupSignal::Notify(size_t n) {
  bool all = false;
  {
    std::lock_guard lock(mu_);
    ++count_;
    all = n >= blocked_;
  }
  if (all) {
    cv_.notify_all();
    return;
  }
  for (size_t i = 0; i < n; ++i) cv_.notify_one();
}

void WakeupSignal::NotifyAll() {
  {
    std::lock_guard lock(mu_);
    ++count_;
  }
  cv_.notify_all();
}

size_t WakeupSignal::Blocked() {
  std::lock_guard lock(mu_);
  return blocked_;
}

uint64_t WakeupSignal::Current() {
  std::lock_guard lock(mu_);
  return count_;
}

void WakeupSignal::WaitFor(uint64_t seen, std::chrono::steady_clock::duration timeout) {
  std::unique_lock lock(mu_);
  if (count_ != seen) return;
  ++blocked_;
  // Not a predicate wait: with Notify(n) < blocked_ only the n picked waiters may return early.
  // (A spurious wake-up also returns early; it costs one receive attempt.)
  cv_.wait_for(lock, timeout);
  --blocked_;
}

namespace {

// This thread's last attempt through LongPoll, when it left messages it could have taken (fewer
// than asked for: it saw everything there was). A receiver that loops (the worker pool's
// dispatchers) then starts its next call as if it had been waiting since that attempt: it waits
// for a wake-up first, for the rest of the recheck interval, instead of repeating the attempt at
// once; in a fleet that repeat was ~1 empty claim query per job. A wake-up since that attempt
// (the counter moved) or an interval gone by makes the attempt at once, as before.
struct DrainedAttempt {
  uint64_t signal = 0;  // WakeupSignal::id()
  uint64_t seen = 0;
  std::chrono::steady_clock::time_point at;
};
thread_local DrainedAttempt last_drained;

}  // namespace

Result<std::vector<ReceivedMessage>> LongPoll(std::chrono::milliseconds wait,
                                              std::chrono::milliseconds recheck_interval,
                                              WakeupSignal& wakeups,
                                              const ReceiveOnceFn& receive_once,
                                              const LongPollHooks& hooks, size_t max_messages) {
  // The wait is a bound on blocking, so it is real time; visibility uses the injected clock.
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + wait;
  if (const DrainedAttempt d = last_drained; max_messages > 0 && wait.count() > 0 &&
                                             d.signal == wakeups.id() &&
                                             start - d.at < recheck_interval) {
    if (hooks.before_wait) hooks.before_wait();
    wakeups.WaitFor(d.seen, std::min<std::chrono::steady_clock::duration>(
                                wait, recheck_interval - (start - d.at)));
    if (hooks.after_wait) hooks.after_wait();
  }
  for (;;) {
    const uint64_t seen = wakeups.Current();
    const auto at = std::chrono::steady_clock::now();
    auto got = receive_once();
    last_drained = {};
    if (got.ok() && max_messages > 0) {
      if (got->size() >= max_messages) {
        wakeups.Notify();  // a full batch: more may be waiting
      } else {
        last_drained = {wakeups.id(), seen, at};
      }
    }
    if (!got.ok() || !got->empty()) return got;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= decltype(left)::zero()) return got;
    if (hooks.before_wait) hooks.before_wait();
    wakeups.WaitFor(seen, std::min<std::chrono::steady_clock::duration>(left, recheck_interval));
    if (hooks.after_wait) hooks.after_wait();
  }
}

}  // namespace syncwell::queue
