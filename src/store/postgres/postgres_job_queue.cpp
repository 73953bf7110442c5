#include "store/postgres/postgres_job_queue.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

namespace syncwell::store {
namespace {

using queue::HistoryEntry;
using queue::HistoryKind;

// Counter rows (queue_counters.shard 0..kCounterShards-1, created by migration 1).
constexpr int kCounterShards = 1024;  // measured: 16 rows made senders queue on row locks
// Housekeep deletes expired dedup rows in batches of this many, at most kDedupMaxBatches per call.
constexpr int64_t kDedupBatch = 2000;
constexpr int kDedupMaxBatches = 50;
// Autocommit calls retried on kRetryable (deadlock, serialization failure).
constexpr int kRetries = 4;

// A counter shard per call: spread over the rows so that concurrent transactions rarely wait
// for one another's counter row lock.
int PickShard() {
  // Seeded per thread from the OS (not the thread id, which repeats across processes).
  thread_local uint32_t x = static_cast<uint32_t>(std::random_device{}()) | 1u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return static_cast<int>(x % kCounterShards);
}

std::string HexBytea(std::string_view bytes) { return "\\x" + pg::HexEncode(bytes); }

// History is a text column: PostgreSQL rejects NUL and invalid UTF-8, which an error text from
// a provider may contain. Replaces those bytes with '?' (the history is diagnostic text).
std::string SafeText(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len != 0 && c != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    }
    if (ok && len == 2) ok = c >= 0xC2;  // overlong
    if (ok && len == 3) {
      const auto d = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xE0 && d < 0xA0) && !(c == 0xED && d >= 0xA0);  // overlong, surrogates
    }
    if (ok && len == 4) {
      const auto d = static_cast<unsigned char>(s[i + 1]);
      ok = c <= 0xF4 && !(c == 0xF0 && d < 0x90) && !(c == 0xF4 && d >= 0x90);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

std::string EncodeHistorySafe(const std::vector<HistoryEntry>& history) {
  return SafeText(queue::EncodeHistory(history));
}

queue::Priority PriorityOf(int64_t p) {
  return p <= 0 ? queue::Priority::kHigh
                : (p == 1 ? queue::Priority::kMedium : queue::Priority::kLow);
}

Error Malformed() { return MakeError(Errc::kInvalidArgument, "malformed receipt"); }

// The receipt functions' answer (0 done, 1 gone, 2 not held under this delivery).
// queue_delete and the receipt functions: 0 done, 4 done and the group's next message is ready
// (queue migration 3), 1 gone, 2 stale receipt.
constexpr int64_t kDoneNextReady = 4;

Status ReceiptStatus(int64_t code) {
  if (code == 0 || code == kDoneNextReady) return {};
  if (code == 1) return MakeError(Errc::kNotFound, "message is gone");
  return MakeError(Errc::kConflict, "stale receipt: the message is no longer held by it");
}

Error NoDlq(std::string_view id) {
  return MakeError(Errc::kNotFound, "no dead-lettered message " + std::string(id));
}

// One autocommit statement (each queue function is its own transaction), retried on deadlock /
// serialization failure: a failed attempt changed nothing.
Result<pg::PgResult> ExecRetry(pg::PgPool& pool, std::string_view sql,
                               const std::vector<pg::PgParam>& params) {
  Result<pg::PgResult> r = MakeError(Errc::kInternal, "postgres: no attempt");
  for (int attempt = 0; attempt < kRetries; ++attempt) {
    r = pool.Exec(sql, params);
    if (r || r.error().code != Errc::kRetryable) return r;
  }
  return r;
}

constexpr const char* kSendSql =
    "SELECT o_id, o_dedup FROM queue_send($1, $2, $3::smallint, $4::bytea, $5::bigint, "
    "$6::bigint, $7::bigint, $8::smallint)";

// Columns of a DLQ entry (body last, only for DlqGet).
constexpr const char* kDlqCols =
    "id, group_id, dedup_id, priority, receive_count, enqueued_at_ms, dead_lettered_at_ms, "
    "history";

queue::DlqEntry ReadDlq(const pg::PgResult& r, int row) {
  queue::DlqEntry e;
  e.message_id = r.Str(row, 0);
  e.group_id = r.Str(row, 1);
  e.dedup_id = r.Str(row, 2);
  e.priority = PriorityOf(r.Int(row, 3));
  e.receive_count = static_cast<int>(r.Int(row, 4));
  e.enqueued_at = FromUnixMillis(r.Int(row, 5));
  e.dead_lettered_at = FromUnixMillis(r.Int(row, 6));
  e.history = queue::DecodeHistory(r.Text(row, 7));
  return e;
}

}  // namespace

pg::PgStatement PgQueueSendStatement(const queue::OutgoingMessage& m, TimePoint now,
                                     std::chrono::seconds dedup_window) {
  const int64_t now_ms = ToUnixMillis(now);
  const int64_t due = now_ms + std::max<int64_t>(0, m.delay.count());
  return pg::PgStatement{
      kSendSql,
      {pg::PgParam(m.group_id), pg::PgParam(m.dedup_id), pg::PgParam(static_cast<int>(m.priority)),
       pg::PgParam(HexBytea(m.body)), pg::PgParam(now_ms), pg::PgParam(due),
       pg::PgParam(now_ms + dedup_window.count() * 1000), pg::PgParam(PickShard())}};
}

Result<queue::SendOutcome> PgQueueSendOutcome(const pg::PgResult& r) {
  if (r.rows() != 1) return MakeError(Errc::kInternal, "queue_send returned no row");
  return queue::SendOutcome{r.Str(0, 0), r.Bool(0, 1)};
}

Result<int64_t> PgQueuePurgeGroupInTx(pg::PgConn& conn, std::string_view group) {
  auto r = conn.Exec("SELECT queue_purge_group($1)", {pg::PgParam(group)});
  if (!r) return r.error();
  return r->Int(0, 0);
}

PostgresJobQueue::PostgresJobQueue(pg::PgPool& pool, queue::QueueSettings settings,
                                   const Clock& clock)
    : pool_(pool), settings_(settings), clock_(clock) {}

PostgresJobQueue::~PostgresJobQueue() { Stop(); }

void PostgresJobQueue::Wake(size_t n) { wakeups_.Notify(n); }

Result<queue::SendOutcome> PostgresJobQueue::Send(const queue::OutgoingMessage& m) {
  const pg::PgStatement send = PgQueueSendStatement(m, clock_.Now(), settings_.dedup_window);
  auto r = ExecRetry(pool_, send.sql, send.params);
  if (!r) return r.error();
  auto out = PgQueueSendOutcome(*r);
  if (out && !out->deduplicated) Wake();
  return out;
}

std::vector<Result<queue::SendOutcome>> PostgresJobQueue::SendBatch(
    const std::vector<queue::OutgoingMessage>& messages) {
  if (messages.empty()) return {};
  // One statement, one commit for the batch: queue_send_many (set-based; it takes its row locks
  // in a fixed order, so concurrent batches do not deadlock -- the first version, one queue_send
  // per message with a random counter row each, made 8 batches of 100 deadlock for minutes).
  const int64_t now_ms = ToUnixMillis(clock_.Now());
  std::vector<std::string> groups, dedups, bodies;
  std::vector<int64_t> priorities, dues;
  for (const auto& m : messages) {
    groups.push_back(m.group_id);
    dedups.push_back(m.dedup_id);
    bodies.push_back(HexBytea(m.body));
    priorities.push_back(static_cast<int64_t>(m.priority));
    dues.push_back(now_ms + std::max<int64_t>(0, m.delay.count()));
  }
  auto r = ExecRetry(
      pool_,
      "SELECT o_ord, o_id, o_dedup FROM queue_send_many($1::text[], $2::text[], "
      "$3::smallint[], $4::bytea[], $5::bigint[], $6::bigint, $7::bigint, "
      "$8::smallint)",
      {pg::PgParam(pg::TextArray(groups)), pg::PgParam(pg::TextArray(dedups)),
       pg::PgParam(pg::IntArray(priorities)), pg::PgParam(pg::TextArray(bodies)),
       pg::PgParam(pg::IntArray(dues)), pg::PgParam(now_ms),
       pg::PgParam(now_ms + settings_.dedup_window.count() * 1000), pg::PgParam(PickShard())});
  std::vector<Result<queue::SendOutcome>> out(
      messages.size(), MakeError(Errc::kInternal, "queue_send_many: no row"));
  if (!r) {
    for (auto& o : out) o = r.error();
    return out;
  }
  size_t sent = 0;
  for (int row = 0; row < r->rows(); ++row) {
    const int64_t ord = r->Int(row, 0);
    if (ord < 1 || ord > static_cast<int64_t>(out.size())) continue;
    out[static_cast<size_t>(ord - 1)] = queue::SendOutcome{r->Str(row, 1), r->Bool(row, 2)};
    if (!r->Bool(row, 2)) ++sent;
  }
  if (sent > 0) Wake(sent);
  return out;
}

Result<std::vector<queue::ReceivedMessage>> PostgresJobQueue::Receive(
    const queue::ReceiveOptions& options) {
  if (Status st = queue::ValidateReceive(options); !st.ok()) return st.error();
  // Blocked receivers are counted so that the listener registers this process in queue_waiters
  // (which makes senders NOTIFY) while any wait, and for a moment after the last one.
  queue::LongPollHooks hooks;
  hooks.before_wait = [this] {
    if (waiting_.fetch_add(1) == 0) Kick();  // the first waiter: register for NOTIFYs
  };
  hooks.after_wait = [this] {
    last_wait_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count();
    waiting_.fetch_sub(1);
  };
  return queue::LongPoll(
      options.wait, settings_.long_poll_interval, wakeups_, [&] { return ReceiveOnce(options); },
      hooks, static_cast<size_t>(options.max_messages));
}

Result<std::vector<queue::ReceivedMessage>> PostgresJobQueue::ReceiveOnce(
    const queue::ReceiveOptions& options) {
  const int64_t now = ToUnixMillis(clock_.Now());
  const int64_t until =
      now + options.visibility_timeout.value_or(settings_.visibility_timeout).count();
  const auto want = static_cast<size_t>(options.max_messages);
  std::vector<queue::ReceivedMessage> out;
  // Usually one pass; heads that need the slow path are handled and the claim repeated for the
  // slots they left (a dead-lettered head frees its group's next message in the same receive).
  for (int pass = 0; pass < 2 * queue::kMaxReceiveBatch && out.size() < want; ++pass) {
    auto r = ExecRetry(
        pool_,
        "SELECT o_ord, o_slow, o_id, o_group, o_dedup, o_priority, o_body, o_enqueued, "
        "o_receive_count, o_deliveries, o_history FROM queue_claim($1::bigint, $2::bigint, "
        "$3::integer, $4::integer, $5::bigint, $6::bigint, $7::smallint) ORDER BY o_ord",
        {pg::PgParam(now), pg::PgParam(until), pg::PgParam(static_cast<int64_t>(want - out.size())),
         pg::PgParam(settings_.max_receive_count),
         pg::PgParam(queue::PriorityLagMillis(settings_, queue::Priority::kMedium)),
         pg::PgParam(queue::PriorityLagMillis(settings_, queue::Priority::kLow)),
         pg::PgParam(PickShard())});
    if (!r) {
      if (!out.empty()) break;  // what was claimed is held: hand it out
      return r.error();
    }
    std::vector<std::pair<int64_t, std::string>> slow;
    for (int i = 0; i < r->rows(); ++i) {
      if (r->Bool(i, 1)) {
        slow.emplace_back(r->Int(i, 2), r->Str(i, 3));
        continue;
      }
      queue::ReceivedMessage m;
      m.message_id = r->Str(i, 2);
      m.receipt = queue::FormatReceipt(r->Int(i, 2), r->Int(i, 9));
      m.group_id = r->Str(i, 3);
      m.dedup_id = r->Str(i, 4);
      m.priority = PriorityOf(r->Int(i, 5));
      m.body = pg::HexDecode(r->Text(i, 6));
      m.enqueued_at = FromUnixMillis(r->Int(i, 7));
      m.receive_count = static_cast<int>(r->Int(i, 8));
      m.visible_until = FromUnixMillis(until);
      m.history = queue::DecodeHistory(r->Text(i, 10));
      out.push_back(std::move(m));
    }
    if (slow.empty()) break;
    auto handled = ReceiveSlow(slow, now, until, &out);
    if (!handled.ok()) {
      if (!out.empty()) break;
      return handled.error();
    }
    if (*handled == 0) break;  // other receivers have them
  }
  return out;
}

// Expired holds and heads at the receive limit, each in its own short transaction: lock the
// group row (skip it if another receiver has it), re-check that the message is still its
// claimable head, then record the expiry and deliver it, or dead-letter it.
Result<int> PostgresJobQueue::ReceiveSlow(const std::vector<std::pair<int64_t, std::string>>& heads,
                                          int64_t now, int64_t until,
                                          std::vector<queue::ReceivedMessage>* out) {
  int handled = 0;
  for (const auto& head : heads) {
    const int64_t id = head.first;  // (not a structured binding: captured below)
    const std::string& group = head.second;
    std::optional<queue::ReceivedMessage> delivered;
    bool dead_lettered = false;
    Status st = pool_.WithTx([&](pg::PgConn& c) -> Status {
      delivered.reset();
      dead_lettered = false;
      auto g = c.Exec(
          "SELECT head_id, head_visible_at_ms FROM queue_groups WHERE group_id = $1 "
          "FOR UPDATE SKIP LOCKED",
          {pg::PgParam(group)});
      if (!g) return g.error();
      if (g->rows() != 1 || g->Int(0, 0) != id || g->Int(0, 1) > now) return {};
      auto m = c.Exec(
          "SELECT state, receive_count, deliveries, history, dedup_id, priority, "
          "encode(body, 'hex'), enqueued_at_ms FROM queue_messages WHERE id = $1",
          {pg::PgParam(id)});
      if (!m) return m.error();
      if (m->rows() != 1 || m->Text(0, 0) == "dlq") return {};
      const int receive_count = static_cast<int>(m->Int(0, 1));
      std::vector<HistoryEntry> history = queue::DecodeHistory(m->Text(0, 3));
      if (m->Text(0, 0) == "inflight") {  // its holder's visibility timeout expired
        queue::AppendHistory(&history,
                             {FromUnixMillis(now), HistoryKind::kExpired, receive_count,
                              "visibility timeout expired"},
                             settings_.history_limit);
      }
      const std::string encoded = EncodeHistorySafe(history);
      if (receive_count >= settings_.max_receive_count) {
        auto d = c.Exec(
            "SELECT queue_dead_letter($1::bigint, $2::bigint, $3, $4::smallint)",
            {pg::PgParam(id), pg::PgParam(now), pg::PgParam(encoded), pg::PgParam(PickShard())});
        if (!d) return d.error();
        dead_lettered = d->Bool(0, 0);
        return {};
      }
      auto d = c.Exec(
          "SELECT o_receive_count, o_deliveries FROM queue_deliver($1::bigint, $2::bigint, $3, "
          "$4::smallint)",
          {pg::PgParam(id), pg::PgParam(until), pg::PgParam(encoded), pg::PgParam(PickShard())});
      if (!d) return d.error();
      if (d->rows() != 1 || d->IsNull(0, 0)) return {};
      queue::ReceivedMessage msg;
      msg.message_id = std::to_string(id);
      msg.receipt = queue::FormatReceipt(id, d->Int(0, 1));
      msg.group_id = group;
      msg.dedup_id = m->Str(0, 4);
      msg.priority = PriorityOf(m->Int(0, 5));
      msg.body = pg::HexDecode(m->Text(0, 6));
      msg.enqueued_at = FromUnixMillis(m->Int(0, 7));
      msg.receive_count = static_cast<int>(d->Int(0, 0));
      msg.visible_until = FromUnixMillis(until);
      msg.history = queue::DecodeHistory(encoded);
      delivered = std::move(msg);
      return {};
    });
    if (!st.ok()) return st.error();
    if (dead_lettered) ++handled;
    if (delivered) {
      ++handled;
      out->push_back(std::move(*delivered));
    }
  }
  return handled;
}

Status PostgresJobQueue::Delete(std::string_view receipt) {
  int64_t id = 0, delivery = 0;
  if (!queue::ParseReceipt(receipt, &id, &delivery)) return Malformed();
  auto r = ExecRetry(pool_, "SELECT queue_delete($1::bigint, $2::bigint)",
                     {pg::PgParam(id), pg::PgParam(delivery)});
  if (!r) return r.error();
  Status st = ReceiptStatus(r->Int(0, 0));
  if (r->Int(0, 0) == kDoneNextReady) WakeAfterDelete();
  return st;
}

// The group's next message is ready now: wake one of this process's blocked receivers per such
// group so a user's next job does not wait for a recheck (other processes find it at their
// recheck). Only when one is blocked: each woken receiver makes a claim query.
void PostgresJobQueue::WakeAfterDelete(size_t n) {
  if (waiting_.load(std::memory_order_relaxed) > 0) Wake(n);
}

std::vector<Status> PostgresJobQueue::DeleteBatch(const std::vector<std::string>& receipts) {
  std::vector<Status> out(receipts.size());
  std::vector<int64_t> ids, deliveries, ords;
  for (size_t i = 0; i < receipts.size(); ++i) {
    int64_t id = 0, delivery = 0;
    if (!queue::ParseReceipt(receipts[i], &id, &delivery)) {
      out[i] = Malformed();
      continue;
    }
    ids.push_back(id);
    deliveries.push_back(delivery);
    ords.push_back(static_cast<int64_t>(i));
  }
  if (ids.empty()) return out;
  // Id order: concurrent batches lock group rows in one order.
  auto r = ExecRetry(pool_,
                     "SELECT b.ord, queue_delete(b.id, b.d) FROM (SELECT * FROM "
                     "unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, d, ord) "
                     "ORDER BY u.id) b",
                     {pg::PgParam(pg::IntArray(ids)), pg::PgParam(pg::IntArray(deliveries)),
                      pg::PgParam(pg::IntArray(ords))});
  for (size_t i = 0; i < receipts.size(); ++i) {
    if (!r && out[i].ok()) out[i] = r.error();
  }
  if (!r) return out;
  size_t next_ready = 0;
  for (int row = 0; row < r->rows(); ++row) {
    if (r->Int(row, 1) == kDoneNextReady) ++next_ready;
    out[static_cast<size_t>(r->Int(row, 0))] = ReceiptStatus(r->Int(row, 1));
  }
  if (next_ready > 0) WakeAfterDelete(next_ready);
  return out;
}

Status PostgresJobQueue::ChangeVisibility(std::string_view receipt,
                                          std::chrono::milliseconds timeout) {
  if (timeout.count() < 0) return MakeError(Errc::kInvalidArgument, "timeout must be >= 0");
  int64_t id = 0, delivery = 0;
  if (!queue::ParseReceipt(receipt, &id, &delivery)) return Malformed();
  const int64_t now = ToUnixMillis(clock_.Now());
  const bool release = timeout.count() == 0;  // released: the receipt ends here
  auto r = ExecRetry(pool_,
                     "SELECT queue_change_visibility($1::bigint, $2::bigint, $3::bigint, "
                     "$4::boolean)",
                     {pg::PgParam(id), pg::PgParam(delivery), pg::PgParam(now + timeout.count()),
                      pg::PgParam(release)});
  if (!r) return r.error();
  Status st = ReceiptStatus(r->Int(0, 0));
  if (st.ok() && release) Wake();
  return st;
}

// The held message of `receipt`, read after its group row was locked (so nobody changes it
// until commit): what Fail/Defer/DeadLetter need to rewrite its history.
struct HeldRow {
  int64_t id = 0;
  int receive_count = 0;
  std::vector<HistoryEntry> history;
};

template <class Fn>
Status PostgresJobQueue::WithHeld(std::string_view receipt, Fn&& apply) {
  int64_t id = 0, delivery = 0;
  if (!queue::ParseReceipt(receipt, &id, &delivery)) return Malformed();
  return pool_.WithTx([&](pg::PgConn& c) -> Status {
    auto lock = c.Exec(
        "SELECT 1 FROM queue_groups WHERE group_id = "
        "(SELECT group_id FROM queue_messages WHERE id = $1) FOR UPDATE",
        {pg::PgParam(id)});
    if (!lock) return lock.error();
    auto m =
        c.Exec("SELECT state, deliveries, receive_count, history FROM queue_messages WHERE id = $1",
               {pg::PgParam(id)});
    if (!m) return m.error();
    if (m->rows() != 1) return ReceiptStatus(1);
    if (m->Text(0, 0) != "inflight" || m->Int(0, 1) != delivery) return ReceiptStatus(2);
    HeldRow row;
    row.id = id;
    row.receive_count = static_cast<int>(m->Int(0, 2));
    row.history = queue::DecodeHistory(m->Text(0, 3));
    return apply(c, row);
  });
}

Status PostgresJobQueue::Defer(std::string_view receipt, std::chrono::milliseconds delay,
                               std::string_view reason) {
  if (delay.count() < 0) return MakeError(Errc::kInvalidArgument, "delay must be >= 0");
  const int64_t now = ToUnixMillis(clock_.Now());
  return WithHeld(receipt, [&](pg::PgConn& c, HeldRow& r) -> Status {
    queue::AppendHistory(
        &r.history,
        {FromUnixMillis(now), HistoryKind::kDeferred, r.receive_count, std::string(reason)},
        settings_.history_limit);
    auto u = c.Exec(
        "SELECT queue_return($1::bigint, $2::bigint, $3::integer, $4)",
        {pg::PgParam(r.id), pg::PgParam(now + delay.count()),
         pg::PgParam(std::max(0, r.receive_count - 1)), pg::PgParam(EncodeHistorySafe(r.history))});
    if (!u) return u.error();
    auto k = c.Exec("UPDATE queue_counters SET deferred = deferred + 1 WHERE shard = $1",
                    {pg::PgParam(PickShard())});
    if (!k) return k.error();
    return {};
  });
}

Result<queue::FailOutcome> PostgresJobQueue::Fail(std::string_view receipt, std::string_view error,
                                                  std::chrono::milliseconds retry_delay) {
  if (retry_delay.count() < 0) return MakeError(Errc::kInvalidArgument, "delay must be >= 0");
  const int64_t now = ToUnixMillis(clock_.Now());
  queue::FailOutcome outcome = queue::FailOutcome::kRetrying;
  Status st = WithHeld(receipt, [&](pg::PgConn& c, HeldRow& r) -> Status {
    queue::AppendHistory(
        &r.history,
        {FromUnixMillis(now), HistoryKind::kFailed, r.receive_count, std::string(error)},
        settings_.history_limit);
    if (r.receive_count >= settings_.max_receive_count) {
      outcome = queue::FailOutcome::kDeadLettered;
      auto d = c.Exec("SELECT queue_dead_letter($1::bigint, $2::bigint, $3, $4::smallint)",
                      {pg::PgParam(r.id), pg::PgParam(now),
                       pg::PgParam(EncodeHistorySafe(r.history)), pg::PgParam(PickShard())});
      if (!d) return d.error();
      return {};
    }
    outcome = queue::FailOutcome::kRetrying;
    auto u = c.Exec("SELECT queue_return($1::bigint, $2::bigint, $3::integer, $4)",
                    {pg::PgParam(r.id), pg::PgParam(now + retry_delay.count()),
                     pg::PgParam(r.receive_count), pg::PgParam(EncodeHistorySafe(r.history))});
    if (!u) return u.error();
    return {};
  });
  if (!st.ok()) return st.error();
  if (outcome == queue::FailOutcome::kDeadLettered) Wake();  // the group's next message
  return outcome;
}

Status PostgresJobQueue::DeadLetter(std::string_view receipt, std::string_view error) {
  const int64_t now = ToUnixMillis(clock_.Now());
  Status st = WithHeld(receipt, [&](pg::PgConn& c, HeldRow& r) -> Status {
    queue::AppendHistory(
        &r.history,
        {FromUnixMillis(now), HistoryKind::kFailed, r.receive_count, std::string(error)},
        settings_.history_limit);
    auto d = c.Exec("SELECT queue_dead_letter($1::bigint, $2::bigint, $3, $4::smallint)",
                    {pg::PgParam(r.id), pg::PgParam(now), pg::PgParam(EncodeHistorySafe(r.history)),
                     pg::PgParam(PickShard())});
    if (!d) return d.error();
    return {};
  });
  if (st.ok()) Wake();  // the group's next message may be deliverable now
  return st;
}

Result<std::vector<queue::DlqEntry>> PostgresJobQueue::DlqList(
    const queue::DlqListOptions& options) {
  int64_t after = 0;
  if (!options.after_message_id.empty() &&
      !queue::ParseMessageId(options.after_message_id, &after)) {
    return MakeError(Errc::kInvalidArgument, "bad message id");
  }
  auto r =
      pool_.Exec(std::string("SELECT ") + kDlqCols +
                     " FROM queue_messages WHERE dead_lettered_at_ms IS NOT NULL AND id > $1 "
                     "ORDER BY id LIMIT $2",
                 {pg::PgParam(after),
                  pg::PgParam(static_cast<int64_t>(std::min<size_t>(options.limit, 1u << 30)))});
  if (!r) return r.error();
  std::vector<queue::DlqEntry> out;
  out.reserve(static_cast<size_t>(r->rows()));
  for (int i = 0; i < r->rows(); ++i) out.push_back(ReadDlq(*r, i));
  return out;
}

Result<queue::DlqEntry> PostgresJobQueue::DlqGet(std::string_view message_id) {
  int64_t id = 0;
  if (!queue::ParseMessageId(message_id, &id)) return NoDlq(message_id);
  auto r = pool_.Exec(std::string("SELECT ") + kDlqCols +
                          ", encode(body, 'hex') FROM queue_messages WHERE id = $1 AND "
                          "dead_lettered_at_ms IS NOT NULL",
                      {pg::PgParam(id)});
  if (!r) return r.error();
  if (r->rows() != 1) return NoDlq(message_id);
  queue::DlqEntry e = ReadDlq(*r, 0);
  e.body = pg::HexDecode(r->Text(0, 8));
  return e;
}

Status PostgresJobQueue::DlqRedrive(std::string_view message_id) {
  int64_t id = 0;
  if (!queue::ParseMessageId(message_id, &id)) return NoDlq(message_id);
  auto r = ExecRetry(
      pool_, "SELECT queue_redrive($1::bigint, $2::bigint, $3::smallint)",
      {pg::PgParam(id), pg::PgParam(ToUnixMillis(clock_.Now())), pg::PgParam(PickShard())});
  if (!r) return r.error();
  if (!r->Bool(0, 0)) return NoDlq(message_id);
  Wake();
  return {};
}

Result<int64_t> PostgresJobQueue::DlqRedriveAll() {
  auto r = ExecRetry(pool_, "SELECT queue_redrive_all($1::bigint, $2::smallint)",
                     {pg::PgParam(ToUnixMillis(clock_.Now())), pg::PgParam(PickShard())});
  if (!r) return r.error();
  const int64_t n = r->Int(0, 0);
  if (n > 0) wakeups_.NotifyAll();
  return n;
}

Result<int64_t> PostgresJobQueue::DlqPurge() {
  auto r = ExecRetry(pool_, "DELETE FROM queue_messages WHERE dead_lettered_at_ms IS NOT NULL", {});
  if (!r) return r.error();
  return r->affected();
}

Result<queue::QueueStats> PostgresJobQueue::Stats() {
  const int64_t now = ToUnixMillis(clock_.Now());
  // One statement, so the gauges and counters are one snapshot. The gauges scan queue_messages
  // (no index on state/visible_at, which would make every receive update non-HOT).
  auto r = pool_.Exec(
      "SELECT m.visible, m.delayed, m.in_flight, m.dlq, m.oldest, c.enqueued, c.deduplicated, "
      "c.delivered, c.redelivered, c.dead_lettered, c.deferred, c.redriven FROM "
      "(SELECT count(*) FILTER (WHERE state <> 'dlq' AND visible_at_ms <= $1) AS visible, "
      "        count(*) FILTER (WHERE state = 'ready' AND visible_at_ms > $1) AS delayed, "
      "        count(*) FILTER (WHERE state = 'inflight' AND visible_at_ms > $1) AS in_flight, "
      "        count(*) FILTER (WHERE state = 'dlq') AS dlq, "
      "        min(visible_at_ms) FILTER (WHERE state <> 'dlq' AND visible_at_ms <= $1) AS oldest "
      "   FROM queue_messages) m, "
      "(SELECT sum(enqueued) AS enqueued, sum(deduplicated) AS deduplicated, "
      "        sum(delivered) AS delivered, sum(redelivered) AS redelivered, "
      "        sum(dead_lettered) AS dead_lettered, sum(deferred) AS deferred, "
      "        sum(redriven) AS redriven FROM queue_counters) c",
      {pg::PgParam(now)});
  if (!r) return r.error();
  if (r->rows() != 1) return MakeError(Errc::kInternal, "queue stats: no row");
  queue::QueueStats s;
  s.visible = r->Int(0, 0);
  s.delayed = r->Int(0, 1);
  s.in_flight = r->Int(0, 2);
  s.groups_in_flight = s.in_flight;  // at most one held message per group
  s.dlq = r->Int(0, 3);
  if (!r->IsNull(0, 4)) s.oldest_age_seconds = static_cast<double>(now - r->Int(0, 4)) / 1000.0;
  s.enqueued_total = r->Int(0, 5);
  s.deduplicated_total = r->Int(0, 6);
  s.delivered_total = r->Int(0, 7);
  s.redelivered_total = r->Int(0, 8);
  s.dead_lettered_total = r->Int(0, 9);
  s.deferred_total = r->Int(0, 10);
  s.redriven_total = r->Int(0, 11);
  return s;
}

Result<QueueHousekeeping> PostgresJobQueue::Housekeep() {
  const int64_t now = ToUnixMillis(clock_.Now());
  QueueHousekeeping out;
  for (int i = 0; i < kDedupMaxBatches; ++i) {
    auto r =
        ExecRetry(pool_,
                  "DELETE FROM queue_dedup WHERE dedup_id IN (SELECT dedup_id FROM queue_dedup "
                  "WHERE expires_at_ms <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                  {pg::PgParam(now), pg::PgParam(kDedupBatch)});
    if (!r) return r.error();
    out.dedup_rows_deleted += r->affected();
    if (r->affected() < kDedupBatch) break;
  }
  return out;
}

}  // namespace syncwell::store
