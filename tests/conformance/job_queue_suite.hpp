#pragma once
// The JobQueue contract (SPEC S3; queue/job_queue.hpp), stated once and instantiated for the fake
// and every adapter (job_queue_conformance_test.cpp). Any later adapter must pass it unchanged.
// A harness type H provides:
//   H(ManualClock& clock, const queue::QueueSettings& settings);  // a fresh, empty queue
//   queue::JobQueue& queue();
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "queue/job_queue.hpp"

namespace syncwell::conformance {

using namespace std::chrono_literals;

template <class H>
class JobQueueConformance : public ::testing::Test {
 protected:
  JobQueueConformance() : h_(std::make_unique<H>(clock_, queue::QueueSettings{})) {}

  queue::JobQueue& q() { return h_->queue(); }
  // A second queue with other settings (its own empty storage).
  std::unique_ptr<H> With(const queue::QueueSettings& s) { return std::make_unique<H>(clock_, s); }

  static queue::OutgoingMessage Msg(const std::string& group, const std::string& body,
                                    queue::Priority p = queue::Priority::kMedium,
                                    std::chrono::milliseconds delay = 0ms,
                                    const std::string& dedup = "") {
    queue::OutgoingMessage m;
    m.group_id = group;
    m.body = body;
    m.priority = p;
    m.delay = delay;
    m.dedup_id = dedup.empty() ? "dd-" + group + "-" + body : dedup;
    return m;
  }
  static std::string Send(queue::JobQueue& q, const queue::OutgoingMessage& m) {
    auto r = q.Send(m);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? r->message_id : "";
  }
  static std::vector<queue::ReceivedMessage> Recv(queue::JobQueue& q, int max = 10,
                                                  std::chrono::milliseconds vt = 0ms) {
    queue::ReceiveOptions o;
    o.max_messages = max;
    if (vt.count() > 0) o.visibility_timeout = vt;
    auto r = q.Receive(o);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : std::vector<queue::ReceivedMessage>{};
  }
  static std::vector<std::string> Bodies(const std::vector<queue::ReceivedMessage>& ms) {
    std::vector<std::string> out;
    for (const auto& m : ms) out.push_back(m.body);
    return out;
  }
  // Long-polls `q` (10 s bound) while `act` runs 50 ms later on another thread. Returns the bodies
  // received and whether the receive ended before its bound. Not a speed check: a receive never
  // woken ends at its bound (its last attempt then finds the message too), so "before the bound"
  // is what tells a wake-up from the deadline.
  static std::pair<std::vector<std::string>, bool> ReceiveWokenBy(
      queue::JobQueue& q, const std::function<void()>& act) {
    std::thread actor([&] {
      std::this_thread::sleep_for(50ms);
      act();
    });
    queue::ReceiveOptions wait;
    wait.wait = 10s;
    const auto t0 = std::chrono::steady_clock::now();
    auto got = q.Receive(wait);
    const bool woken = std::chrono::steady_clock::now() - t0 < wait.wait;
    actor.join();
    EXPECT_TRUE(got.ok()) << got.error().message;
    return {got.ok() ? Bodies(*got) : std::vector<std::string>{}, woken};
  }
  static queue::QueueStats StatsOf(queue::JobQueue& q) {
    auto s = q.Stats();
    EXPECT_TRUE(s.ok());
    return s.ok() ? *s : queue::QueueStats{};
  }
  // Receives the single head of `group`-only queue and fails it `n` times (retry delay 0).
  static void FailTimes(queue::JobQueue& q, int n) {
    for (int i = 0; i < n; ++i) {
      auto got = Recv(q, 1);
      ASSERT_EQ(got.size(), 1u);
      ASSERT_TRUE(q.Fail(got[0].receipt, "boom " + std::to_string(i + 1), 0ms).ok());
    }
  }

  ManualClock clock_;
  std::unique_ptr<H> h_;
};

TYPED_TEST_SUITE_P(JobQueueConformance);

TYPED_TEST_P(JobQueueConformance, FifoWithinAGroupOneInFlight) {
  auto& q = this->q();
  for (auto b : {"a1", "a2", "a3"}) this->Send(q, this->Msg("A", b));
  auto first = this->Recv(q);
  ASSERT_EQ(this->Bodies(first), std::vector<std::string>{"a1"});
  EXPECT_EQ(first[0].group_id, "A");
  EXPECT_EQ(first[0].receive_count, 1);
  EXPECT_EQ(first[0].enqueued_at, FromUnixMillis(ToUnixMillis(this->clock_.Now())));
  EXPECT_TRUE(this->Recv(q).empty());  // a2 waits while a1 is in flight
  ASSERT_TRUE(q.Delete(first[0].receipt).ok());
  auto second = this->Recv(q);
  ASSERT_EQ(this->Bodies(second), std::vector<std::string>{"a2"});
  ASSERT_TRUE(q.Delete(second[0].receipt).ok());
  EXPECT_EQ(this->Bodies(this->Recv(q)), std::vector<std::string>{"a3"});
}

TYPED_TEST_P(JobQueueConformance, OtherGroupsAreNotBlocked) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "a1"));
  this->Send(q, this->Msg("A", "a2"));
  this->Send(q, this->Msg("B", "b1"));
  this->Send(q, this->Msg("B", "b2"));
  this->Send(q, this->Msg("C", "c1"));
  auto got = this->Recv(q);
  ASSERT_EQ(this->Bodies(got), (std::vector<std::string>{"a1", "b1", "c1"}));
  // A's head keeps failing with long retry delays; B and C still flow.
  ASSERT_TRUE(q.Fail(got[0].receipt, "down", 1h).ok());
  ASSERT_TRUE(q.Delete(got[1].receipt).ok());
  ASSERT_TRUE(q.Delete(got[2].receipt).ok());
  auto b2 = this->Recv(q);
  ASSERT_EQ(this->Bodies(b2), std::vector<std::string>{"b2"});
  EXPECT_EQ(this->StatsOf(q).groups_in_flight, 1);
  ASSERT_TRUE(q.Delete(b2[0].receipt).ok());
  this->clock_.Advance(1h);
  EXPECT_EQ(this->Bodies(this->Recv(q)), std::vector<std::string>{"a1"});  // a1 before a2
}

TYPED_TEST_P(JobQueueConformance, DedupInsideAndOutsideTheWindow) {
  auto& q = this->q();
  auto first = q.Send(this->Msg("A", "x", queue::Priority::kMedium, 0ms, "d-1"));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->deduplicated);
  this->clock_.Advance(299s);
  auto dup = q.Send(this->Msg("A", "x", queue::Priority::kMedium, 0ms, "d-1"));
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->deduplicated);
  EXPECT_EQ(dup->message_id, first->message_id);
  // Deduplication holds even after the original was processed.
  auto got = this->Recv(q);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(q.Delete(got[0].receipt).ok());
  EXPECT_TRUE(q.Send(this->Msg("A", "x", queue::Priority::kMedium, 0ms, "d-1"))->deduplicated);
  this->clock_.Advance(2s);  // 301 s after the first send
  auto later = q.Send(this->Msg("A", "x", queue::Priority::kMedium, 0ms, "d-1"));
  EXPECT_FALSE(later->deduplicated);
  EXPECT_NE(later->message_id, first->message_id);
  auto s = this->StatsOf(q);
  EXPECT_EQ(s.enqueued_total, 2);
  EXPECT_EQ(s.deduplicated_total, 2);
  EXPECT_EQ(s.visible, 1);
}

// SendBatch: each message as Send would treat it, in order -- FIFO within a group follows the
// batch order, dedup applies against earlier sends and within the batch.
TYPED_TEST_P(JobQueueConformance, SendBatchActsLikeSendForEachMessageInOrder) {
  auto& q = this->q();
  auto before = q.Send(this->Msg("A", "a0", queue::Priority::kMedium, 0ms, "d-a0"));
  ASSERT_TRUE(before.ok());
  auto out = q.SendBatch({this->Msg("A", "a1"), this->Msg("B", "b1"),
                          this->Msg("A", "dup", queue::Priority::kMedium, 0ms, "d-a0"),
                          this->Msg("A", "a2"),
                          this->Msg("B", "b1-again", queue::Priority::kMedium, 0ms, "dd-B-b1")});
  ASSERT_EQ(out.size(), 5u);
  for (const auto& r : out) ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(out[0]->deduplicated);
  EXPECT_FALSE(out[1]->deduplicated);
  EXPECT_TRUE(out[2]->deduplicated);  // against an earlier send
  EXPECT_EQ(out[2]->message_id, before->message_id);
  EXPECT_FALSE(out[3]->deduplicated);
  EXPECT_TRUE(out[4]->deduplicated);  // within the batch
  EXPECT_EQ(out[4]->message_id, out[1]->message_id);
  EXPECT_TRUE(q.SendBatch({}).empty());

  std::vector<std::string> a, b;
  for (int round = 0; round < 4; ++round) {
    for (const auto& m : this->Recv(q)) {
      (m.group_id == "A" ? a : b).push_back(m.body);
      ASSERT_TRUE(q.Delete(m.receipt).ok());
    }
  }
  EXPECT_EQ(a, (std::vector<std::string>{"a0", "a1", "a2"}));
  EXPECT_EQ(b, (std::vector<std::string>{"b1"}));
  auto st = this->StatsOf(q);
  EXPECT_EQ(st.enqueued_total, 4);
  EXPECT_EQ(st.deduplicated_total, 2);
}

TYPED_TEST_P(JobQueueConformance, VisibilityExpiryRedeliversAndCounts) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "a1"));
  auto first = this->Recv(q);  // default visibility timeout: 90 s
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].visible_until, FromUnixMillis(ToUnixMillis(this->clock_.Now())) + 90s);
  this->clock_.Advance(89s);
  EXPECT_TRUE(this->Recv(q).empty());
  EXPECT_EQ(this->StatsOf(q).in_flight, 1);
  this->clock_.Advance(2s);
  EXPECT_EQ(this->StatsOf(q).in_flight, 0);
  EXPECT_EQ(this->StatsOf(q).visible, 1);
  auto again = this->Recv(q);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].message_id, first[0].message_id);
  EXPECT_EQ(again[0].receive_count, 2);
  EXPECT_NE(again[0].receipt, first[0].receipt);
  ASSERT_EQ(again[0].history.size(), 1u);
  EXPECT_EQ(again[0].history[0].kind, queue::HistoryKind::kExpired);
  EXPECT_EQ(again[0].history[0].receive_count, 1);
  auto s = this->StatsOf(q);
  EXPECT_EQ(s.delivered_total, 2);
  EXPECT_EQ(s.redelivered_total, 1);
}

TYPED_TEST_P(JobQueueConformance, StaleReceiptIsRejectedWithoutEffect) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "a1"));
  auto first = this->Recv(q, 1, 10s);
  ASSERT_EQ(first.size(), 1u);
  // Before redelivery the receipt still works, even after its timeout expired.
  this->clock_.Advance(11s);
  ASSERT_TRUE(q.ChangeVisibility(first[0].receipt, 10s).ok());
  EXPECT_TRUE(this->Recv(q).empty());
  this->clock_.Advance(11s);
  auto second = this->Recv(q, 1, 30s);
  ASSERT_EQ(second.size(), 1u);
  const std::string stale = first[0].receipt;
  EXPECT_EQ(q.Delete(stale).error().code, Errc::kConflict);
  EXPECT_EQ(q.ChangeVisibility(stale, 0ms).error().code, Errc::kConflict);
  EXPECT_EQ(q.Defer(stale, 0ms, "x").error().code, Errc::kConflict);
  EXPECT_EQ(q.Fail(stale, "x", 0ms).error().code, Errc::kConflict);
  EXPECT_EQ(q.Delete("not-a-receipt").error().code, Errc::kInvalidArgument);
  auto s = this->StatsOf(q);  // still held by the second receiver
  EXPECT_EQ(s.in_flight, 1);
  EXPECT_EQ(s.visible, 0);
  EXPECT_EQ(s.deferred_total, 0);
  EXPECT_TRUE(this->Recv(q).empty());
  ASSERT_TRUE(q.Delete(second[0].receipt).ok());
  EXPECT_EQ(q.Delete(second[0].receipt).error().code, Errc::kNotFound);
  EXPECT_EQ(this->StatsOf(q).in_flight, 0);
}

TYPED_TEST_P(JobQueueConformance, DeleteBatchActsLikeDeleteForEachReceipt) {
  auto& q = this->q();
  for (auto g : {"A", "B", "C"}) {
    this->Send(q, this->Msg(g, std::string(g) + "1"));
    this->Send(q, this->Msg(g, std::string(g) + "2"));
  }
  auto first = this->Recv(q, 10, 10s);
  ASSERT_EQ(first.size(), 3u);  // the three heads
  // A and B stay held; C's delivery expires and C1 is received again: its first receipt is stale.
  for (const auto& m : first) {
    if (m.group_id != "C") {
      ASSERT_TRUE(q.ChangeVisibility(m.receipt, 60s).ok());
    }
  }
  this->clock_.Advance(11s);
  auto again = this->Recv(q, 10, 30s);
  ASSERT_EQ(this->Bodies(again), std::vector<std::string>{"C1"});

  std::vector<std::string> receipts;
  for (const auto& m : first) receipts.push_back(m.receipt);
  receipts.push_back("not-a-receipt");
  auto statuses = q.DeleteBatch(receipts);
  ASSERT_EQ(statuses.size(), receipts.size());
  for (size_t i = 0; i < first.size(); ++i) {
    if (first[i].group_id == "C") {
      EXPECT_EQ(statuses[i].error().code, Errc::kConflict);  // stale: C1 stays held
    } else {
      EXPECT_TRUE(statuses[i].ok()) << statuses[i].error().message;
    }
  }
  EXPECT_EQ(statuses.back().error().code, Errc::kInvalidArgument);
  // A2 and B2 are the new heads; C waits for its holder.
  auto next = this->Bodies(this->Recv(q));
  std::sort(next.begin(), next.end());
  EXPECT_EQ(next, (std::vector<std::string>{"A2", "B2"}));
  const size_t a_or_b = first[0].group_id == "C" ? 1 : 0;
  auto gone = q.DeleteBatch({receipts[a_or_b]});
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].error().code, Errc::kNotFound);  // already deleted
  EXPECT_TRUE(q.DeleteBatch({}).empty());
  ASSERT_TRUE(q.Delete(again[0].receipt).ok());

  // The same receipt twice in one batch: the second finds the message gone. The group is empty
  // afterwards, so its next message is deliverable at once.
  this->Send(q, this->Msg("D", "D1"));
  std::string d1;
  for (const auto& m : this->Recv(q)) {
    if (m.group_id == "D") d1 = m.receipt;
  }
  ASSERT_FALSE(d1.empty());
  auto twice = q.DeleteBatch({d1, d1});
  ASSERT_EQ(twice.size(), 2u);
  EXPECT_TRUE(twice[0].ok()) << twice[0].error().message;
  EXPECT_EQ(twice[1].error().code, Errc::kNotFound);
  this->Send(q, this->Msg("D", "D2"));
  bool d2 = false;
  for (const auto& m : this->Recv(q)) d2 = d2 || m.body == "D2";
  EXPECT_TRUE(d2);
}

TYPED_TEST_P(JobQueueConformance, ChangeVisibilityExtendsAndReleases) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "a1"));
  auto got = this->Recv(q);
  ASSERT_EQ(got.size(), 1u);
  this->clock_.Advance(80s);
  ASSERT_TRUE(q.ChangeVisibility(got[0].receipt, 60s).ok());  // heartbeat: hidden until 140 s
  this->clock_.Advance(59s);
  EXPECT_TRUE(this->Recv(q).empty());
  ASSERT_TRUE(q.ChangeVisibility(got[0].receipt, 5min).ok());
  this->clock_.Advance(4min);
  EXPECT_TRUE(this->Recv(q).empty());
  EXPECT_EQ(q.ChangeVisibility(got[0].receipt, -1ms).error().code, Errc::kInvalidArgument);
  ASSERT_TRUE(q.ChangeVisibility(got[0].receipt, 0ms).ok());  // release now
  EXPECT_EQ(q.Delete(got[0].receipt).error().code, Errc::kConflict);
  auto again = this->Recv(q);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].receive_count, 2);  // a release still counts as a receive
  EXPECT_TRUE(again[0].history.empty());
}

TYPED_TEST_P(JobQueueConformance, FifthFailureDeadLettersWithHistory) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "a1"));
  this->Send(q, this->Msg("A", "a2"));
  for (int i = 1; i <= 5; ++i) {
    auto got = this->Recv(q);
    ASSERT_EQ(this->Bodies(got), std::vector<std::string>{"a1"}) << "delivery " << i;
    EXPECT_EQ(got[0].receive_count, i);
    EXPECT_EQ(got[0].history.size(), static_cast<size_t>(i - 1));
    auto out = q.Fail(got[0].receipt, "boom " + std::to_string(i), 1s);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(*out, i < 5 ? queue::FailOutcome::kRetrying : queue::FailOutcome::kDeadLettered);
    if (i < 5) {
      EXPECT_TRUE(this->Recv(q).empty());  // retry delay; a2 waits behind a1
      this->clock_.Advance(1s);
    }
  }
  auto s = this->StatsOf(q);
  EXPECT_EQ(s.dlq, 1);
  EXPECT_EQ(s.dead_lettered_total, 1);
  auto dlq = q.DlqList({});
  ASSERT_TRUE(dlq.ok());
  ASSERT_EQ(dlq->size(), 1u);
  const auto& e = (*dlq)[0];
  EXPECT_EQ(e.group_id, "A");
  EXPECT_EQ(e.receive_count, 5);
  EXPECT_FALSE(e.body.has_value());  // list carries no bodies
  EXPECT_EQ(e.dead_lettered_at, FromUnixMillis(ToUnixMillis(this->clock_.Now())));
  ASSERT_EQ(e.history.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(e.history[i].kind, queue::HistoryKind::kFailed);
    EXPECT_EQ(e.history[i].text, "boom " + std::to_string(i + 1));
    EXPECT_EQ(e.history[i].receive_count, i + 1);
  }
  // The group moves on.
  EXPECT_EQ(this->Bodies(this->Recv(q)), std::vector<std::string>{"a2"});
}

TYPED_TEST_P(JobQueueConformance, DeadLetterMovesToTheDlqAtOnce) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "a1"));
  this->Send(q, this->Msg("A", "a2"));
  auto got = this->Recv(q);
  ASSERT_EQ(this->Bodies(got), std::vector<std::string>{"a1"});
  EXPECT_EQ(got[0].receive_count, 1);  // first delivery: far below max_receive_count
  ASSERT_TRUE(q.DeadLetter(got[0].receipt, "mapping error").ok());
  // The receipt ended with it.
  EXPECT_EQ(q.Delete(got[0].receipt).error().code, Errc::kConflict);
  EXPECT_EQ(q.DeadLetter(got[0].receipt, "again").error().code, Errc::kConflict);
  EXPECT_EQ(q.DeadLetter("not-a-receipt", "x").error().code, Errc::kInvalidArgument);
  auto s = this->StatsOf(q);
  EXPECT_EQ(s.dlq, 1);
  EXPECT_EQ(s.dead_lettered_total, 1);
  EXPECT_EQ(s.in_flight, 0);
  auto dlq = q.DlqList({});
  ASSERT_TRUE(dlq.ok());
  ASSERT_EQ(dlq->size(), 1u);
  const auto& e = (*dlq)[0];
  EXPECT_EQ(e.message_id, got[0].message_id);
  EXPECT_EQ(e.group_id, "A");
  EXPECT_EQ(e.receive_count, 1);
  EXPECT_EQ(e.dead_lettered_at, FromUnixMillis(ToUnixMillis(this->clock_.Now())));
  ASSERT_EQ(e.history.size(), 1u);
  EXPECT_EQ(e.history[0].kind, queue::HistoryKind::kFailed);
  EXPECT_EQ(e.history[0].text, "mapping error");
  EXPECT_EQ(e.history[0].receive_count, 1);
  EXPECT_EQ(q.DlqGet(e.message_id)->body, std::optional<std::string>("a1"));
  // The group moves on at once.
  auto next = this->Recv(q);
  ASSERT_EQ(this->Bodies(next), std::vector<std::string>{"a2"});
  ASSERT_TRUE(q.Delete(next[0].receipt).ok());
  // Redrive brings it back with the receive count reset and the history kept.
  ASSERT_TRUE(q.DlqRedrive(e.message_id).ok());
  auto again = this->Recv(q);
  ASSERT_EQ(this->Bodies(again), std::vector<std::string>{"a1"});
  EXPECT_EQ(again[0].receive_count, 1);
  ASSERT_EQ(again[0].history.size(), 1u);
  EXPECT_EQ(again[0].history[0].text, "mapping error");
  ASSERT_TRUE(q.Delete(again[0].receipt).ok());
  s = this->StatsOf(q);
  EXPECT_EQ(s.dlq, 0);
  EXPECT_EQ(s.redriven_total, 1);
  EXPECT_EQ(s.dead_lettered_total, 1);
}

TYPED_TEST_P(JobQueueConformance, DeadLetterWithAStaleOrDeletedReceiptChangesNothing) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "a1"));
  auto first = this->Recv(q, 1, 10s);
  ASSERT_EQ(first.size(), 1u);
  this->clock_.Advance(11s);
  auto second = this->Recv(q, 1, 30s);  // the first holder's lease expired; taken again
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(q.DeadLetter(first[0].receipt, "stale").error().code, Errc::kConflict);
  auto s = this->StatsOf(q);
  EXPECT_EQ(s.dlq, 0);
  EXPECT_EQ(s.dead_lettered_total, 0);
  EXPECT_EQ(s.in_flight, 1);
  EXPECT_TRUE(q.DlqList({})->empty());
  // Still held by the second receiver, whose receipt works; no "stale" entry was recorded.
  ASSERT_TRUE(q.ChangeVisibility(second[0].receipt, 0ms).ok());
  auto third = this->Recv(q);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].receive_count, 3);
  for (const auto& h : third[0].history) EXPECT_NE(h.text, "stale");
  ASSERT_TRUE(q.Delete(third[0].receipt).ok());
  EXPECT_EQ(q.DeadLetter(third[0].receipt, "gone").error().code, Errc::kNotFound);
  s = this->StatsOf(q);
  EXPECT_EQ(s.dlq, 0);
  EXPECT_EQ(s.dead_lettered_total, 0);
}

TYPED_TEST_P(JobQueueConformance, ExpiredDeliveriesCountTowardTheDlq) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "a1"));
  this->Send(q, this->Msg("A", "a2"));
  for (int i = 1; i <= 5; ++i) {
    auto got = this->Recv(q, 10, 10s);
    ASSERT_EQ(this->Bodies(got), std::vector<std::string>{"a1"});
    EXPECT_EQ(got[0].receive_count, i);
    this->clock_.Advance(11s);  // the holder died
  }
  // The 6th receive finds a1 expired for the 5th time: dead-lettered, and a2 delivered instead.
  EXPECT_EQ(this->Bodies(this->Recv(q)), std::vector<std::string>{"a2"});
  auto dlq = q.DlqList({});
  ASSERT_EQ(dlq->size(), 1u);
  ASSERT_EQ((*dlq)[0].history.size(), 5u);
  EXPECT_EQ((*dlq)[0].history[4].kind, queue::HistoryKind::kExpired);
  EXPECT_EQ(this->StatsOf(q).dead_lettered_total, 1);
}

TYPED_TEST_P(JobQueueConformance, DeferDoesNotCountAsAFailedReceive) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "a1"));
  for (int i = 0; i < 12; ++i) {
    auto got = this->Recv(q);
    ASSERT_EQ(got.size(), 1u) << "deferral " << i;
    EXPECT_EQ(got[0].receive_count, 1);
    ASSERT_TRUE(q.Defer(got[0].receipt, 15min, "rate limited").ok());
    EXPECT_EQ(q.Delete(got[0].receipt).error().code, Errc::kConflict);
    this->clock_.Advance(15min - 1ms);
    EXPECT_TRUE(this->Recv(q).empty());  // the deferral delay is honoured
    EXPECT_EQ(this->StatsOf(q).delayed, 1);
    this->clock_.Advance(1ms);
  }
  auto got = this->Recv(q);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_FALSE(got[0].history.empty());
  EXPECT_EQ(got[0].history.back().kind, queue::HistoryKind::kDeferred);
  EXPECT_EQ(got[0].history.back().text, "rate limited");
  auto s = this->StatsOf(q);
  EXPECT_EQ(s.dlq, 0);
  EXPECT_EQ(s.deferred_total, 12);
  // Failures still count after deferrals: 5 failures dead-letter it.
  ASSERT_TRUE(q.Fail(got[0].receipt, "f", 0ms).ok());
  this->FailTimes(q, 3);
  auto last = this->Recv(q);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].receive_count, 5);
  EXPECT_EQ(*q.Fail(last[0].receipt, "f", 0ms), queue::FailOutcome::kDeadLettered);
}

TYPED_TEST_P(JobQueueConformance, DelaysOfAnyLength) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "a1", queue::Priority::kMedium, 24h));
  EXPECT_TRUE(this->Recv(q).empty());
  auto s = this->StatsOf(q);
  EXPECT_EQ(s.delayed, 1);
  EXPECT_EQ(s.visible, 0);
  this->clock_.Advance(24h - 1s);
  EXPECT_TRUE(this->Recv(q).empty());
  this->clock_.Advance(1s);
  auto got = this->Recv(q);
  ASSERT_EQ(this->Bodies(got), std::vector<std::string>{"a1"});
  // A retry delay of 30 h.
  ASSERT_TRUE(q.Fail(got[0].receipt, "later", 30h).ok());
  this->clock_.Advance(29h);
  EXPECT_TRUE(this->Recv(q).empty());
  this->clock_.Advance(1h);
  EXPECT_EQ(this->Recv(q).size(), 1u);
}

TYPED_TEST_P(JobQueueConformance, DelayedSendDoesNotHoldBackLaterMessagesOfItsGroup) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "poll-later", queue::Priority::kMedium, 1h));
  this->clock_.Advance(1ms);
  this->Send(q, this->Msg("A", "now"));
  auto got = this->Recv(q);
  ASSERT_EQ(this->Bodies(got), std::vector<std::string>{"now"});
  ASSERT_TRUE(q.Delete(got[0].receipt).ok());
  EXPECT_TRUE(this->Recv(q).empty());
  this->clock_.Advance(1h);
  EXPECT_EQ(this->Bodies(this->Recv(q)), std::vector<std::string>{"poll-later"});
}

TYPED_TEST_P(JobQueueConformance, HigherPriorityFirst) {
  auto& q = this->q();
  this->Send(q, this->Msg("L", "low", queue::Priority::kLow));
  this->Send(q, this->Msg("M", "medium", queue::Priority::kMedium));
  this->Send(q, this->Msg("H", "high", queue::Priority::kHigh));
  this->Send(q, this->Msg("H2", "high2", queue::Priority::kHigh));
  EXPECT_EQ(this->Bodies(this->Recv(q, 1)), std::vector<std::string>{"high"});
  auto rest = this->Recv(q, 10);
  ASSERT_EQ(this->Bodies(rest), (std::vector<std::string>{"high2", "medium", "low"}));
  EXPECT_EQ(rest[0].priority, queue::Priority::kHigh);
  EXPECT_EQ(rest[2].priority, queue::Priority::kLow);
}

TYPED_TEST_P(JobQueueConformance, LowPriorityIsNotStarved) {
  auto& q = this->q();  // default starvation bound: priority_lag_low = 300 s
  this->Send(q, this->Msg("backfill", "low", queue::Priority::kLow));
  int low_delivered_at = -1;
  for (int i = 0; i < 100 && low_delivered_at < 0; ++i) {
    // A steady stream: one new high message per 10 s, and one receive slot per 10 s.
    this->Send(q, this->Msg("user" + std::to_string(i), "high", queue::Priority::kHigh));
    auto got = this->Recv(q, 1);
    ASSERT_EQ(got.size(), 1u);
    if (got[0].body == "low") low_delivered_at = i * 10;
    ASSERT_TRUE(q.Delete(got[0].receipt).ok());
    this->clock_.Advance(10s);
  }
  EXPECT_GE(low_delivered_at, 290);  // high went first while the low one was young
  EXPECT_LE(low_delivered_at, 310);  // but not longer than the bound
}

TYPED_TEST_P(JobQueueConformance, BatchLimitIsTen) {
  auto& q = this->q();
  for (int i = 0; i < 15; ++i) this->Send(q, this->Msg("g" + std::to_string(i), "m"));
  queue::ReceiveOptions too_many;
  too_many.max_messages = 11;
  EXPECT_EQ(q.Receive(too_many).error().code, Errc::kInvalidArgument);
  too_many.max_messages = 0;
  EXPECT_EQ(q.Receive(too_many).error().code, Errc::kInvalidArgument);
  queue::ReceiveOptions zero_vt;
  zero_vt.visibility_timeout = 0ms;
  EXPECT_EQ(q.Receive(zero_vt).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(this->Recv(q, 10).size(), 10u);
  EXPECT_EQ(this->Recv(q, 10).size(), 5u);
  EXPECT_EQ(this->StatsOf(q).groups_in_flight, 15);
}

TYPED_TEST_P(JobQueueConformance, DlqInspectRedriveOneAndAll) {
  queue::QueueSettings st;
  st.max_receive_count = 1;
  auto h = this->With(st);
  auto& q = h->queue();
  for (auto g : {"A", "B", "C"}) {
    this->Send(q, this->Msg(g, std::string("body-") + g));
    this->FailTimes(q, 1);
  }
  auto list = q.DlqList({});
  ASSERT_EQ(list->size(), 3u);
  // Paging.
  auto page = q.DlqList({.limit = 1, .after_message_id = (*list)[0].message_id});
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].message_id, (*list)[1].message_id);
  // Inspect one.
  auto one = q.DlqGet((*list)[0].message_id);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->body, std::optional<std::string>("body-A"));
  EXPECT_EQ(one->history.size(), 1u);
  EXPECT_EQ(q.DlqGet("999999").error().code, Errc::kNotFound);
  // Redrive one: back in the source queue with the receive count reset, history kept.
  ASSERT_TRUE(q.DlqRedrive((*list)[0].message_id).ok());
  EXPECT_EQ(q.DlqRedrive((*list)[0].message_id).error().code, Errc::kNotFound);
  auto got = this->Recv(q);
  ASSERT_EQ(this->Bodies(got), std::vector<std::string>{"body-A"});
  EXPECT_EQ(got[0].receive_count, 1);
  EXPECT_EQ(got[0].history.size(), 1u);
  ASSERT_TRUE(q.Delete(got[0].receipt).ok());
  // Redrive all.
  EXPECT_EQ(*q.DlqRedriveAll(), 2);
  EXPECT_EQ(*q.DlqRedriveAll(), 0);
  EXPECT_EQ(this->Bodies(this->Recv(q)), (std::vector<std::string>{"body-B", "body-C"}));
  auto s = this->StatsOf(q);
  EXPECT_EQ(s.dlq, 0);
  EXPECT_EQ(s.redriven_total, 3);
  EXPECT_EQ(s.dead_lettered_total, 3);
}

TYPED_TEST_P(JobQueueConformance, RedrivenMessageWaitsForTheGroupsHolder) {
  queue::QueueSettings st;
  st.max_receive_count = 1;
  auto h = this->With(st);
  auto& q = h->queue();
  this->Send(q, this->Msg("A", "a1"));
  this->FailTimes(q, 1);  // a1 -> DLQ
  this->Send(q, this->Msg("A", "a2"));
  auto held = this->Recv(q);
  ASSERT_EQ(this->Bodies(held), std::vector<std::string>{"a2"});
  auto dlq = q.DlqList({});
  ASSERT_TRUE(q.DlqRedrive((*dlq)[0].message_id).ok());
  EXPECT_TRUE(this->Recv(q).empty());  // still one in flight per group
  ASSERT_TRUE(q.Delete(held[0].receipt).ok());
  EXPECT_EQ(this->Bodies(this->Recv(q)), std::vector<std::string>{"a1"});
}

TYPED_TEST_P(JobQueueConformance, PurgeEmptiesTheDlqOnly) {
  queue::QueueSettings st;
  st.max_receive_count = 1;
  auto h = this->With(st);
  auto& q = h->queue();
  this->Send(q, this->Msg("A", "a"));
  this->FailTimes(q, 1);
  this->Send(q, this->Msg("B", "b"));
  this->FailTimes(q, 1);
  this->Send(q, this->Msg("C", "c"));
  auto purged = q.DlqPurge();
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 2);
  EXPECT_TRUE(q.DlqList({})->empty());
  auto s = this->StatsOf(q);
  EXPECT_EQ(s.dlq, 0);
  EXPECT_EQ(s.visible, 1);
  EXPECT_EQ(this->Bodies(this->Recv(q)), std::vector<std::string>{"c"});
}

TYPED_TEST_P(JobQueueConformance, StatsGaugesAndCounters) {
  auto& q = this->q();
  this->Send(q, this->Msg("A", "a1"));
  this->Send(q, this->Msg("A", "a2"));
  this->Send(q, this->Msg("B", "b1"));
  this->Send(q, this->Msg("C", "c1", queue::Priority::kMedium, 1h));
  this->Send(q, this->Msg("B", "b1"));  // duplicate
  this->clock_.Advance(10s);
  auto s0 = this->StatsOf(q);
  EXPECT_EQ(s0.visible, 3);
  EXPECT_EQ(s0.delayed, 1);
  EXPECT_EQ(s0.in_flight, 0);
  EXPECT_NEAR(s0.oldest_age_seconds, 10.0, 0.01);
  auto got = this->Recv(q);  // a1, b1
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(q.Delete(got[1].receipt).ok());
  auto s = this->StatsOf(q);
  EXPECT_EQ(s.visible, 1);  // a2 (waiting behind a1)
  EXPECT_EQ(s.delayed, 1);
  EXPECT_EQ(s.in_flight, 1);
  EXPECT_EQ(s.groups_in_flight, 1);
  EXPECT_EQ(s.dlq, 0);
  EXPECT_EQ(s.enqueued_total, 4);
  EXPECT_EQ(s.deduplicated_total, 1);
  EXPECT_EQ(s.delivered_total, 2);
  EXPECT_EQ(s.redelivered_total, 0);
  EXPECT_EQ(s.dead_lettered_total, 0);
  EXPECT_NEAR(s.oldest_age_seconds, 10.0, 0.01);
}

TYPED_TEST_P(JobQueueConformance, LongPollReturnsWhenAMessageArrives) {
  auto& q = this->q();
  queue::ReceiveOptions quick;
  quick.wait = 20ms;
  auto none = q.Receive(quick);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  std::thread sender([&] {
    std::this_thread::sleep_for(50ms);
    (void)q.Send(this->Msg("A", "late"));
  });
  queue::ReceiveOptions wait;
  wait.wait = 30s;  // a bound, never reached when the send arrives
  auto got = q.Receive(wait);
  sender.join();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(this->Bodies(*got), std::vector<std::string>{"late"});
}

// A user's next job must not wait for a poll: deleting the group's head wakes a receiver that is
// long-polling. The recheck interval is an hour, so only that wake-up can end the wait early; a
// queue without it returns empty after the 10 s bound.
TYPED_TEST_P(JobQueueConformance, DeleteWakesALongPollForTheGroupsNextMessage) {
  queue::QueueSettings st;
  st.long_poll_interval = std::chrono::hours(1);
  auto h = this->With(st);
  auto& q = h->queue();
  this->Send(q, this->Msg("A", "first"));
  this->Send(q, this->Msg("A", "second"));
  auto first = q.Receive({});
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(this->Bodies(*first), std::vector<std::string>{"first"});

  const auto [bodies, woken] =
      this->ReceiveWokenBy(q, [&] { EXPECT_TRUE(q.Delete((*first)[0].receipt).ok()); });
  EXPECT_EQ(bodies, std::vector<std::string>{"second"});
  EXPECT_TRUE(woken) << "the receive waited for its whole bound: Delete did not wake it";
}

// The same through DeleteBatch (how workers acknowledge), with an acknowledgement whose group has
// no next message in the batch: only the group that has one may wake the receiver, and it must.
TYPED_TEST_P(JobQueueConformance, DeleteBatchWakesALongPollForTheGroupsNextMessage) {
  queue::QueueSettings st;
  st.long_poll_interval = std::chrono::hours(1);
  auto h = this->With(st);
  auto& q = h->queue();
  this->Send(q, this->Msg("A", "a1"));
  this->Send(q, this->Msg("A", "a2"));
  this->Send(q, this->Msg("B", "b1"));
  queue::ReceiveOptions two;
  two.max_messages = 2;
  auto first = q.Receive(two);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 2u);

  const auto [bodies, woken] = this->ReceiveWokenBy(q, [&] {
    for (const Status& s : q.DeleteBatch({(*first)[0].receipt, (*first)[1].receipt}))
      EXPECT_TRUE(s.ok());
  });
  EXPECT_EQ(bodies, std::vector<std::string>{"a2"});
  EXPECT_TRUE(woken) << "the receive waited for its whole bound: DeleteBatch did not wake it";
}

REGISTER_TYPED_TEST_SUITE_P(
    JobQueueConformance, SendBatchActsLikeSendForEachMessageInOrder, FifoWithinAGroupOneInFlight,
    OtherGroupsAreNotBlocked, DedupInsideAndOutsideTheWindow, VisibilityExpiryRedeliversAndCounts,
    StaleReceiptIsRejectedWithoutEffect, DeleteBatchActsLikeDeleteForEachReceipt,
    ChangeVisibilityExtendsAndReleases, FifthFailureDeadLettersWithHistory,
    DeadLetterMovesToTheDlqAtOnce, DeadLetterWithAStaleOrDeletedReceiptChangesNothing,
    ExpiredDeliveriesCountTowardTheDlq, DeferDoesNotCountAsAFailedReceive, DelaysOfAnyLength,
    DelayedSendDoesNotHoldBackLaterMessagesOfItsGroup, HigherPriorityFirst, LowPriorityIsNotStarved,
    BatchLimitIsTen, DlqInspectRedriveOneAndAll, RedrivenMessageWaitsForTheGroupsHolder,
    PurgeEmptiesTheDlqOnly, StatsGaugesAndCounters, LongPollReturnsWhenAMessageArrives,
    DeleteWakesALongPollForTheGroupsNextMessage, DeleteBatchWakesALongPollForTheGroupsNextMessage);

}  // namespace syncwell::conformance
