// queue::LongPoll, the Receive loop both queue adapters share: one attempt when wait is 0, no
// lost wake-up (a Notify racing with an empty attempt, or arriving while blocked, ends the wait),
// errors returned at once, hooks only around real waits, and an empty result at the deadline.
// Waits are long (30 s) where a lost wake-up must show: a bug makes the result empty, not slow.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "queue/long_poll.hpp"

namespace syncwell::queue {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kLong{30'000};

std::vector<ReceivedMessage> One() {
  ReceivedMessage m;
  m.message_id = "m1";
  return {m};
}

TEST(LongPollTest, ZeroWaitMakesExactlyOneAttempt) {
  WakeupSignal w;
  int attempts = 0;
  auto r = LongPoll(milliseconds(0), kLong, w, [&]() -> Result<std::vector<ReceivedMessage>> {
    ++attempts;
    return std::vector<ReceivedMessage>{};
  });
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(attempts, 1);
}

TEST(LongPollTest, NotifyDuringAnEmptyAttemptIsNotLost) {
  WakeupSignal w;
  int attempts = 0;
  int waits = 0;
  LongPollHooks hooks{[&] { ++waits; }, nullptr};
  auto r = LongPoll(
      kLong, kLong, w,
      [&]() -> Result<std::vector<ReceivedMessage>> {
        // The first attempt finds nothing, but a send lands (and notifies) before it returns.
        if (++attempts == 1) {
          w.Notify();
          return std::vector<ReceivedMessage>{};
        }
        return One();
      },
      hooks);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(waits, 1);  // the wait returned at once: the counter had already moved
}

TEST(LongPollTest, NotifyWhileBlockedWakesTheReceiver) {
  WakeupSignal w;
  std::atomic<bool> sent{false};
  int before = 0, after = 0;
  LongPollHooks hooks{[&] { ++before; }, [&] { ++after; }};
  std::thread sender([&] {
    std::this_thread::sleep_for(milliseconds(50));
    sent = true;
    w.Notify();
  });
  auto r = LongPoll(
      kLong, kLong, w,
      [&]() -> Result<std::vector<ReceivedMessage>> {
        if (sent) return One();
        return std::vector<ReceivedMessage>{};
      },
      hooks);
  sender.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 1u);
  EXPECT_GE(before, 1);
  EXPECT_EQ(before, after);
}

TEST(LongPollTest, ErrorsReturnAtOnceWithoutWaiting) {
  WakeupSignal w;
  int waits = 0;
  LongPollHooks hooks{[&] { ++waits; }, nullptr};
  auto r = LongPoll(
      kLong, kLong, w,
      []() -> Result<std::vector<ReceivedMessage>> {
        return MakeError(Errc::kUnavailable, "down");
      },
      hooks);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  EXPECT_EQ(waits, 0);
}

TEST(LongPollTest, RechecksAndReturnsEmptyAtTheDeadline) {
  WakeupSignal w;
  int attempts = 0;
  auto r = LongPoll(milliseconds(200), milliseconds(10), w,
                    [&]() -> Result<std::vector<ReceivedMessage>> {
                      ++attempts;
                      return std::vector<ReceivedMessage>{};
                    });
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  EXPECT_GE(attempts, 2);  // re-checked without any Notify (messages from other processes)
}

// Notify(n) wakes n blocked waiters, not all of them: each woken receiver costs a claim query.
TEST(WakeupSignalTest, NotifyWakesAsManyWaitersAsAsked) {
  WakeupSignal w;
  std::atomic<int> woken{0};
  std::vector<std::thread> waiters;
  const uint64_t seen = w.Current();
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&] {
      w.WaitFor(seen, kLong);
      ++woken;
    });
  }
  while (w.Blocked() < 3) std::this_thread::sleep_for(milliseconds(1));
  w.Notify(1);
  while (woken.load() < 1) std::this_thread::sleep_for(milliseconds(1));
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(woken.load(), 1);  // the other two stay blocked
  EXPECT_EQ(w.Blocked(), 2u);
  w.NotifyAll();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(woken.load(), 3);
  EXPECT_EQ(w.Blocked(), 0u);
}

TEST(WakeupSignalTest, NotifyForMoreThanAreBlockedWakesAll) {
  WakeupSignal w;
  std::vector<std::thread> waiters;
  const uint64_t seen = w.Current();
  for (int i = 0; i < 2; ++i) waiters.emplace_back([&] { w.WaitFor(seen, kLong); });
  while (w.Blocked() < 2) std::this_thread::sleep_for(milliseconds(1));
  w.Notify(5);
  for (auto& t : waiters) t.join();  // would take kLong each if one were left blocked
  EXPECT_EQ(w.Blocked(), 0u);
}

// A full batch may leave messages behind: the receiver passes the wake-up on to another waiter;
// a partial batch took everything there was, so nobody else is woken for nothing.
TEST(LongPollTest, AFullBatchPassesTheWakeUpOn) {
  WakeupSignal w;
  auto two = [] {
    auto v = One();
    v.push_back(v.front());
    return v;
  };
  uint64_t before = w.Current();
  auto r = LongPoll(
      kLong, kLong, w, [&]() -> Result<std::vector<ReceivedMessage>> { return two(); }, {}, 2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(w.Current(), before + 1);
  before = w.Current();
  r = LongPoll(
      kLong, kLong, w, [&]() -> Result<std::vector<ReceivedMessage>> { return One(); }, {}, 2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(w.Current(), before);
}

// A receiver that loops: after an attempt that left fewer than its batch (it saw all there was),
// its next call waits for a wake-up before attempting, unless one came since.
TEST(LongPollTest, AfterADrainingAttemptTheNextCallWaitsFirst) {
  WakeupSignal w;
  int attempts = 0;
  auto empty = [&]() -> Result<std::vector<ReceivedMessage>> {
    ++attempts;
    return std::vector<ReceivedMessage>{};
  };
  ASSERT_TRUE(LongPoll(milliseconds(20), kLong, w, empty, {}, 2).ok());
  EXPECT_EQ(attempts, 2);  // at once, then at the deadline
  attempts = 0;
  ASSERT_TRUE(LongPoll(milliseconds(20), kLong, w, empty, {}, 2).ok());
  EXPECT_EQ(attempts, 1);  // no attempt at once: only the one at the deadline
  attempts = 0;
  w.Notify();  // something may have arrived since
  ASSERT_TRUE(LongPoll(milliseconds(20), kLong, w, empty, {}, 2).ok());
  EXPECT_EQ(attempts, 2);
  attempts = 0;
  WakeupSignal other;  // another queue: its own history
  ASSERT_TRUE(LongPoll(milliseconds(20), kLong, other, empty, {}, 2).ok());
  EXPECT_EQ(attempts, 2);
  attempts = 0;
  // Without a batch size (or with wait 0) every call attempts at once, as before.
  ASSERT_TRUE(LongPoll(milliseconds(20), kLong, other, empty).ok());
  EXPECT_EQ(attempts, 2);
}

}  // namespace
}  // namespace syncwell::queue
