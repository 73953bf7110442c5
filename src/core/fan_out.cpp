#include "core/fan_out.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <system_error>

namespace syncwell {

// One Run. Callers and helpers claim indices with `next`; the last call to return (by `done`)
// wakes the caller. Helpers hold the batch by shared_ptr, so a ticket taken after the Run ended
// finds no index left and touches nothing of the caller's.
struct FanOut::Batch {
  Batch(const std::function<void(size_t)>* f, size_t count) : fn(f), n(count) {}
  const std::function<void(size_t)>* fn;
  const size_t n;
  std::atomic<size_t> next{0};
  std::atomic<size_t> done{0};
  std::mutex mu;
  std::condition_variable all_done;
  std::exception_ptr error;  // the first exception of a call (guarded by mu)
};

FanOut::FanOut(size_t max_threads) : max_threads_(max_threads) {}

FanOut::~FanOut() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

size_t FanOut::threads_started() const {
  std::lock_guard lock(mu_);
  return threads_.size();
}

void FanOut::Work(Batch& b) {
  for (;;) {
    const size_t i = b.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= b.n) return;
    try {
      (*b.fn)(i);
    } catch (...) {
      std::lock_guard lock(b.mu);
      if (!b.error) b.error = std::current_exception();
    }
    if (b.done.fetch_add(1, std::memory_order_acq_rel) + 1 == b.n) {
      std::lock_guard lock(b.mu);  // the caller checks `done` under it: no lost wake-up
      b.all_done.notify_one();
    }
  }
}

void FanOut::Run(size_t n, size_t parallel, const std::function<void(size_t)>& fn) {
  const size_t helpers =
      max_threads_ > 0 && std::min(parallel, n) > 1 ? std::min(parallel, n) - 1 : 0;
  auto batch = std::make_shared<Batch>(&fn, n);
  if (helpers > 0) {
    {
      std::lock_guard lock(mu_);
      for (size_t k = 0; k < helpers; ++k) tickets_.push_back(batch);
      // Start helpers while there are more tickets than idle ones (a thread starts idle). If the
      // system refuses a thread, the pool stays as it is: the caller works through the rest.
      while (idle_ < tickets_.size() && threads_.size() < max_threads_ && !spawn_failed_) {
        try {
          threads_.emplace_back([this] { HelperLoop(); });
          ++idle_;
        } catch (const std::system_error&) {
          spawn_failed_ = true;
        }
      }
    }
    for (size_t k = 0; k < helpers; ++k) wake_.notify_one();
  }
  Work(*batch);  // without helpers: every call here, in index order
  std::unique_lock lock(batch->mu);
  batch->all_done.wait(lock, [&] { return batch->done.load(std::memory_order_acquire) == n; });
  if (batch->error) std::rethrow_exception(batch->error);
}

void FanOut::HelperLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !tickets_.empty(); });
    if (tickets_.empty()) return;  // stopping, nothing left
    std::shared_ptr<Batch> b = std::move(tickets_.front());
    tickets_.pop_front();
    --idle_;
    lock.unlock();
    Work(*b);
    b.reset();
    lock.lock();
    ++idle_;
  }
}

}  // namespace syncwell
