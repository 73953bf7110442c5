#include "queue/long_poll.hpp"

#include <algorithm>

namespace syncwell::queue {

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

Result<std::vector<ReceivedMessage>> LongPoll(std::chrono::milliseconds wait,
                                              std::chrono::milliseconds recheck_interval,
                                              WakeupSignal& wakeups,
                                              const ReceiveOnceFn& receive_once,
                                              const LongPollHooks& hooks, size_t max_messages) {
  // The wait is a bound on blocking, so it is real time; visibility uses the injected clock.
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    const uint64_t seen = wakeups.Current();
    auto got = receive_once();
    if (got.ok() && max_messages > 0 && got->size() >= max_messages) wakeups.Notify();
    if (!got.ok() || !got->empty()) return got;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= decltype(left)::zero()) return got;
    if (hooks.before_wait) hooks.before_wait();
    wakeups.WaitFor(seen, std::min<std::chrono::steady_clock::duration>(left, recheck_interval));
    if (hooks.after_wait) hooks.after_wait();
  }
}

}  // namespace syncwell::queue
