#pragma once
// The long-poll loop of JobQueue::Receive (options.wait > 0), shared by the queue adapters
// (store/sqlite/sqlite_job_queue.cpp, store/postgres/postgres_job_queue.cpp).
//
// An adapter owns a WakeupSignal, calls Notify() whenever a message may have become receivable
// (its own sends, releases, redrives; for PostgreSQL also NOTIFYs seen by the listener thread),
// and implements Receive as "validate, then LongPoll(receive once)". LongPoll never busy-waits and
// never loses a wake-up: it reads the wake-up counter BEFORE each attempt and waits only while the
// counter still has that value, so a Notify() that races with an empty attempt ends the wait at
// once. Waits are capped at `recheck_interval` so that messages no Notify() announces (sent by
// another process or object, or delays that come due) are still found.
//
// Thread-safe: any number of threads may wait on, and notify, one WakeupSignal.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "core/result.hpp"
#include "queue/job_queue.hpp"

namespace syncwell::queue {

// A wake-up counter with a condition variable.
//
// Notify(n) wakes n blocked waiters, not all: "n messages may have become receivable" needs n
// receive attempts, and every woken receiver makes one (a PostgreSQL claim query or a SQLite read
// transaction). Waking all of them per message made ~3 claims per job in a fleet of two worker
// processes with 7 receivers each (docs/BENCHMARKS.md, "Fleet end to end"). No wake-up is lost:
// a receiver that is not blocked yet sees the changed counter and makes its attempt anyway.
class WakeupSignal {
 public:
  WakeupSignal();

  // Bumps the counter and wakes `n` blocked waiters (every one when fewer are blocked).
  void Notify(size_t n = 1);
  // Bumps the counter and wakes every blocked waiter (many messages may be receivable: a
  // listener that was not listening, a redrive of the whole DLQ).
  void NotifyAll();
  // The counter now; read it before the attempt whose outcome decides whether to wait.
  uint64_t Current();
  // Blocks until the counter differs from `seen` (returns at once if it already does), a Notify
  // picked this waiter, or `timeout` passed.
  void WaitFor(uint64_t seen, std::chrono::steady_clock::duration timeout);
  // Threads blocked in WaitFor now (tests).
  size_t Blocked();
  // Unique per signal in this process (an address can be reused by a later signal).
  uint64_t id() const { return id_; }

 private:
  const uint64_t id_;
  std::mutex mu_;  // guards count_, blocked_
  std::condition_variable cv_;
  uint64_t count_ = 0;
  size_t blocked_ = 0;  // threads inside WaitFor
};

// One non-blocking receive attempt (already validated options).
using ReceiveOnceFn = std::function<Result<std::vector<ReceivedMessage>>()>;

// Optional calls around each blocking wait (not around attempts that return at once). The
// PostgreSQL adapter uses them to count blocked receivers, which decides whether senders NOTIFY.
struct LongPollHooks {
  std::function<void()> before_wait;  // right before the wait
  std::function<void()> after_wait;   // right after it (the signal's lock released)
};

// Calls `receive_once` until it fails, returns messages, or `wait` (real time, steady clock,
// measured from this call) has passed; between empty attempts it waits on `wakeups` for at most
// min(time left, recheck_interval). With wait <= 0 it makes exactly one attempt. Returns the last
// attempt's result (an empty vector when the deadline passed).
//
// With `max_messages` > 0 (the receive's batch size) two more rules save attempts that would find
// nothing: an attempt that returns a full batch (more may be waiting) passes the wake-up on to one
// more waiter; and a call with wait > 0 from a thread whose previous attempt on this signal, less
// than `recheck_interval` ago, returned less than its batch starts by waiting (until a Notify since
// that attempt, or the rest of the interval) instead of attempting at once.
Result<std::vector<ReceivedMessage>> LongPoll(std::chrono::milliseconds wait,
                                              std::chrono::milliseconds recheck_interval,
                                              WakeupSignal& wakeups,
                                              const ReceiveOnceFn& receive_once,
                                              const LongPollHooks& hooks = {},
                                              size_t max_messages = 0);

}  // namespace syncwell::queue
