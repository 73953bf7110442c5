// Runs the JobQueue contract (job_queue_suite.hpp) against the in-memory fake and the SQLite
// adapter, plus SQLite-only durability tests (state survives close and reopen).
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "conformance/job_queue_suite.hpp"
#include "fakes/in_memory_queue.hpp"
#include "store/sqlite/sqlite_db.hpp"
#include "store/sqlite/sqlite_job_queue.hpp"
#include "support/temp_dir.hpp"

namespace syncwell::conformance {
namespace {

class FakeHarness {
 public:
  FakeHarness(ManualClock& clock, const queue::QueueSettings& settings) : q_(clock, settings) {}
  queue::JobQueue& queue() { return q_; }

 private:
  fakes::InMemoryQueue q_;
};

class SqliteHarness {
 public:
  SqliteHarness(ManualClock& clock, const queue::QueueSettings& settings)
      : dir_(test_support::MakeTempDir("syncwell-queue")),
        db_(store::SqliteSettings{.data_dir = dir_, .dedup_window = settings.dedup_window}) {
    if (auto st = db_.Start(); !st.ok()) throw std::runtime_error(st.error().message);
    q_.emplace(db_, settings, clock);
  }
  ~SqliteHarness() {
    q_.reset();
    db_.Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  queue::JobQueue& queue() { return *q_; }

 private:
  std::string dir_;
  store::SqliteDb db_;
  std::optional<store::SqliteJobQueue> q_;
};

using Impls = ::testing::Types<FakeHarness, SqliteHarness>;

class HarnessNames {
 public:
  template <class T>
  static std::string GetName(int) {
    if constexpr (std::is_same_v<T, FakeHarness>) return "InMemory";
    return "Sqlite";
  }
};

}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(Queue, JobQueueConformance, Impls, HarnessNames);

// ---- SQLite only: durability across close/reopen (what kill -9 leaves is a committed prefix of
// the same transactions; the e2e crash test covers the real kill). ----

class SqliteJobQueueDurability : public ::testing::Test {
 protected:
  SqliteJobQueueDurability() : dir_(test_support::MakeTempDir("syncwell-queue-dur")) {}
  ~SqliteJobQueueDurability() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::unique_ptr<store::SqliteDb> Open() {
    auto db = std::make_unique<store::SqliteDb>(store::SqliteSettings{.data_dir = dir_});
    if (auto st = db->Start(); !st.ok()) throw std::runtime_error(st.error().message);
    return db;
  }
  static queue::OutgoingMessage Msg(const std::string& group, const std::string& body) {
    return queue::OutgoingMessage{"dd-" + body, group, queue::Priority::kHigh, {}, body};
  }

  std::string dir_;
  ManualClock clock_;
};

TEST_F(SqliteJobQueueDurability, ReopenKeepsHeldVisibleDlqAndReceipts) {
  std::string held_receipt;
  {
    auto db = Open();
    queue::QueueSettings s;
    s.max_receive_count = 1;
    store::SqliteJobQueue q(*db, s, clock_);
    ASSERT_TRUE(q.Send(Msg("A", "a1")).ok());
    ASSERT_TRUE(q.Send(Msg("A", "a2")).ok());
    ASSERT_TRUE(q.Send(Msg("B", "b1")).ok());
    ASSERT_TRUE(q.Send(Msg("C", "c1")).ok());
    queue::ReceiveOptions o;
    o.max_messages = 10;
    auto got = q.Receive(o);
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->size(), 3u);
    held_receipt = (*got)[0].receipt;  // a1 stays held
    ASSERT_TRUE(q.Delete((*got)[1].receipt).ok());
    ASSERT_EQ(*q.Fail((*got)[2].receipt, "bad", std::chrono::milliseconds{0}),
              queue::FailOutcome::kDeadLettered);
  }  // closed without any shutdown step of the queue
  auto db = Open();
  store::SqliteJobQueue q(*db, queue::QueueSettings{}, clock_);
  auto s = q.Stats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->in_flight, 1);
  EXPECT_EQ(s->visible, 1);  // a2
  EXPECT_EQ(s->dlq, 1);
  EXPECT_EQ(s->enqueued_total, 4);
  EXPECT_EQ(s->delivered_total, 3);
  EXPECT_EQ(s->dead_lettered_total, 1);
  // The group is still blocked by the held a1, and its receipt still works.
  queue::ReceiveOptions o;
  o.max_messages = 10;
  EXPECT_TRUE(q.Receive(o)->empty());
  ASSERT_TRUE(q.Delete(held_receipt).ok());
  auto next = q.Receive(o);
  ASSERT_EQ(next->size(), 1u);
  EXPECT_EQ((*next)[0].body, "a2");
  auto dlq = q.DlqList({});
  ASSERT_EQ(dlq->size(), 1u);
  EXPECT_EQ((*dlq)[0].group_id, "C");
  ASSERT_EQ((*dlq)[0].history.size(), 1u);
  EXPECT_EQ((*dlq)[0].history[0].text, "bad");
  // The dedup ids survived too.
  EXPECT_TRUE(q.Send(Msg("A", "a1"))->deduplicated);
}

TEST_F(SqliteJobQueueDurability, ReceiveReadsOnlyGroupHeads) {
  auto db = Open();
  store::SqliteJobQueue q(*db, queue::QueueSettings{}, clock_);
  // Whatever the plan of the head query, it must use the partial head index, not scan messages.
  auto plan = db->Read([](sqlite3* c) -> Result<std::string> {
    store::Stmt s(
        c,
        "EXPLAIN QUERY PLAN SELECT id, visible_at FROM queue_messages WHERE is_head = 1 AND "
        "priority = ? AND visible_at <= ? ORDER BY visible_at, id LIMIT ?");
    std::string out;
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      out += s.Text(3) + "\n";
    }
    return out;
  });
  ASSERT_TRUE(plan.ok());
  EXPECT_NE(plan->find("queue_messages_heads"), std::string::npos) << *plan;
  EXPECT_EQ(plan->find("TEMP B-TREE"), std::string::npos) << *plan;
}

}  // namespace syncwell::conformance
