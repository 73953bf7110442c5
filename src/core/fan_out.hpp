#pragma once
// FanOut: lets one caller run independent blocking tasks side by side on a shared, bounded pool
// of helper threads. Made for a sync job's provider requests that do not depend on each other
// (a connector's day-window pulls, its per-record creates): each mostly waits on the network, so
// a first sync's ~20 requests in a row took ~20 round trips of the provider's latency.
//
// Contract:
//  * Run(n, parallel, fn) calls fn(i) exactly once for every i in [0, n) and returns when every
//    call has returned. At most `parallel` calls of one Run are in progress at once, the caller's
//    own thread included; parallel <= 1 runs them all on the caller, in index order.
//  * The caller always works too: whenever it is free it claims the next index itself. A busy
//    pool (every helper working for other callers) only makes a Run sequential, never stuck, so
//    Run may be called from any number of threads, and from inside fn.
//  * Helpers are threads started on demand up to max_threads (fewer if the system refuses one),
//    kept (idle ones sleep) until the FanOut is destroyed. max_threads 0: every Run is
//    sequential.
//  * fn runs on other threads: it may write only what belongs to its index. An exception from fn
//    does not end a helper: Run rethrows it on the caller's thread once every call has returned
//    (the first, if several threw), as if the calls had run there.
//  * Thread-safe. The destructor joins the helpers; no Run may be in progress then.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace syncwell {

class FanOut {
 public:
  explicit FanOut(size_t max_threads);
  ~FanOut();
  FanOut(const FanOut&) = delete;
  FanOut& operator=(const FanOut&) = delete;

  void Run(size_t n, size_t parallel, const std::function<void(size_t)>& fn);

  size_t max_threads() const { return max_threads_; }
  size_t threads_started() const;

 private:
  struct Batch;
  static void Work(Batch& b);
  void HelperLoop();

  const size_t max_threads_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Batch>> tickets_;  // one per helper a Run asked for
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool spawn_failed_ = false;  // the system refused a thread: start no more
  bool stopping_ = false;
};

}  // namespace syncwell
