#include "store/sqlite/sqlite_job_queue.hpp"

#include <algorithm>
#include <future>
#include <memory>
#include <optional>
#include <tuple>

#include "store/sqlite/sqlite_store.hpp"

namespace syncwell::store {
namespace {

using queue::HistoryEntry;
using queue::HistoryKind;

// Expired dedup rows are removed a few at a time on every send, so the table stays bounded by
// the send rate times the window without a separate sweeper.
constexpr int64_t kDedupPruneBatch = 16;

Status BumpCounter(sqlite3* db, const char* name) {
  Stmt s(db, "UPDATE queue_counters SET value = value + 1 WHERE name = ?");
  s.Bind(1, name);
  return s.Exec();
}

Status AddDeliveryCounter(sqlite3* db, const char* name, int64_t n) {
  if (n == 0) return {};
  Stmt s(db, "UPDATE queue_delivery_counters SET value = value + ? WHERE name = ?");
  s.Bind(1, n).Bind(2, name);
  return s.Exec();
}

// One queue_messages row.
struct Row {
  int64_t id = 0;
  std::string group_id;
  std::string dedup_id;
  queue::Priority priority = queue::Priority::kMedium;
  std::string body;
  int64_t enqueued_at = 0;
  int64_t due_at = 0;
  int64_t visible_at = 0;
  int receive_count = 0;
  int64_t deliveries = 0;
  std::string state;
  bool is_head = false;
  std::vector<HistoryEntry> history;
  int64_t dead_lettered_at = 0;
};

constexpr const char* kRowCols =
    "id, group_id, dedup_id, priority, body, enqueued_at, due_at, visible_at, receive_count, "
    "deliveries, state, is_head, history, COALESCE(dead_lettered_at, 0)";

Row ReadRow(const Stmt& s, bool with_body) {
  Row r;
  r.id = s.Int(0);
  r.group_id = s.Text(1);
  r.dedup_id = s.Text(2);
  const int64_t p = s.Int(3);
  r.priority =
      p <= 0 ? queue::Priority::kHigh : (p == 1 ? queue::Priority::kMedium : queue::Priority::kLow);
  if (with_body) r.body = s.Blob(4);
  r.enqueued_at = s.Int(5);
  r.due_at = s.Int(6);
  r.visible_at = s.Int(7);
  r.receive_count = static_cast<int>(s.Int(8));
  r.deliveries = s.Int(9);
  r.state = s.Text(10);
  r.is_head = s.Int(11) != 0;
  r.history = queue::DecodeHistory(s.Text(12));
  r.dead_lettered_at = s.Int(13);
  return r;
}

Result<std::optional<Row>> LoadRow(sqlite3* db, int64_t id, bool with_body) {
  Stmt q(db, std::string("SELECT ") + kRowCols + " FROM queue_messages WHERE id = ?");
  q.Bind(1, id);
  auto row = q.Step();
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<Row>{};
  return std::optional<Row>(ReadRow(q, with_body));
}

// Makes the group's head flag right after a change of its messages: the head is the first
// non-dead-lettered message in (due_at, id) order, except that a held (in-flight) head is never
// displaced (a redriven message may sort before it). Two index lookups.
// `promoted` (optional) is set when another message became the group's head.
Status FixHead(sqlite3* db, const std::string& group, bool* promoted = nullptr) {
  std::optional<int64_t> cur;
  bool cur_held = false;
  {
    Stmt q(db, "SELECT id, state FROM queue_messages WHERE group_id = ? AND is_head = 1");
    q.Bind(1, group);
    auto row = q.Step();
    if (!row.ok()) return row.error();
    if (*row) {
      cur = q.Int(0);
      cur_held = q.Text(1) == "inflight";
    }
  }
  if (cur && cur_held) return {};
  std::optional<int64_t> first;
  {
    Stmt q(db,
           "SELECT id FROM queue_messages WHERE group_id = ? AND state <> 'dlq' "
           "ORDER BY due_at, id LIMIT 1");
    q.Bind(1, group);
    auto row = q.Step();
    if (!row.ok()) return row.error();
    if (*row) first = q.Int(0);
  }
  if (cur == first) return {};
  if (cur) {
    Stmt u(db, "UPDATE queue_messages SET is_head = 0 WHERE id = ?");
    u.Bind(1, *cur);
    if (Status st = u.Exec(); !st.ok()) return st;
  }
  if (first) {
    Stmt u(db, "UPDATE queue_messages SET is_head = 1 WHERE id = ?");
    u.Bind(1, *first);
    if (Status st = u.Exec(); !st.ok()) return st;
    if (promoted != nullptr) *promoted = true;
  }
  return {};
}

// Loads the message held under `receipt`; the contract's errors otherwise (nothing changed).
Result<Row> Held(sqlite3* db, std::string_view receipt) {
  int64_t id = 0, delivery = 0;
  if (!queue::ParseReceipt(receipt, &id, &delivery)) {
    return MakeError(Errc::kInvalidArgument, "malformed receipt");
  }
  auto row = LoadRow(db, id, false);
  if (!row.ok()) return row.error();
  if (!*row) return MakeError(Errc::kNotFound, "message is gone");
  if ((*row)->state != "inflight" || (*row)->deliveries != delivery) {
    return MakeError(Errc::kConflict, "stale receipt: the message is no longer held by it");
  }
  return std::move(**row);
}

Status SaveReturned(sqlite3* db, const Row& r) {
  Stmt u(db,
         "UPDATE queue_messages SET state = ?, visible_at = ?, receive_count = ?, history = ? "
         "WHERE id = ?");
  u.Bind(1, r.state)
      .Bind(2, r.visible_at)
      .Bind(3, static_cast<int64_t>(r.receive_count))
      .Bind(4, queue::EncodeHistory(r.history))
      .Bind(5, r.id);
  return u.Exec();
}

Status MoveToDlq(sqlite3* db, const Row& r, int64_t now) {
  {
    Stmt u(db,
           "UPDATE queue_messages SET state = 'dlq', is_head = 0, dead_lettered_at = ?, "
           "history = ? WHERE id = ?");
    u.Bind(1, now).Bind(2, queue::EncodeHistory(r.history)).Bind(3, r.id);
    if (Status st = u.Exec(); !st.ok()) return st;
  }
  if (Status st = AddDeliveryCounter(db, "dead_lettered_total", 1); !st.ok()) return st;
  return FixHead(db, r.group_id);
}

Status Redrive(sqlite3* db, int64_t id, const std::string& group, int64_t now) {
  {
    Stmt u(db,
           "UPDATE queue_messages SET state = 'ready', receive_count = 0, due_at = ?1, "
           "visible_at = ?1, dead_lettered_at = NULL WHERE id = ?2");
    u.Bind(1, now).Bind(2, id);
    if (Status st = u.Exec(); !st.ok()) return st;
  }
  if (Status st = AddDeliveryCounter(db, "redriven_total", 1); !st.ok()) return st;
  return FixHead(db, group);
}

queue::DlqEntry ToDlq(Row r, bool with_body) {
  queue::DlqEntry e;
  e.message_id = std::to_string(r.id);
  e.group_id = std::move(r.group_id);
  e.dedup_id = std::move(r.dedup_id);
  e.priority = r.priority;
  e.receive_count = r.receive_count;
  e.enqueued_at = FromUnixMillis(r.enqueued_at);
  e.dead_lettered_at = FromUnixMillis(r.dead_lettered_at);
  e.history = std::move(r.history);
  if (with_body) e.body = std::move(r.body);
  return e;
}

Error NoDlq(std::string_view id) {
  return MakeError(Errc::kNotFound, "no dead-lettered message " + std::string(id));
}

}  // namespace

Result<queue::SendOutcome> SqliteQueueSendInTx(sqlite3* db, const queue::OutgoingMessage& m,
                                               TimePoint now, std::chrono::seconds dedup_window) {
  const int64_t now_ms = ToUnixMillis(now);
  if (!m.dedup_id.empty()) {
    // Only a send that may add a dedup row prunes expired ones (up to a batch each), so the
    // table stays bounded by the rows of the last window; a send without one skips the query.
    {
      Stmt prune(db,
                 "DELETE FROM queue_dedup WHERE dedup_id IN "
                 "(SELECT dedup_id FROM queue_dedup WHERE expires_at <= ? LIMIT ?)");
      prune.Bind(1, now_ms).Bind(2, kDedupPruneBatch);
      if (Status st = prune.Exec(); !st.ok()) return st.error();
    }
    std::optional<int64_t> original;
    {
      Stmt q(db, "SELECT message_id FROM queue_dedup WHERE dedup_id = ? AND expires_at > ?");
      q.Bind(1, m.dedup_id).Bind(2, now_ms);
      auto row = q.Step();
      if (!row.ok()) return row.error();
      if (*row) original = q.Int(0);
    }
    if (original) {
      if (Status st = BumpCounter(db, "deduplicated_total"); !st.ok()) return st.error();
      return queue::SendOutcome{std::to_string(*original), true};
    }
  }
  const int64_t due = now_ms + std::max<int64_t>(0, m.delay.count());
  // The group's head tells where the new message goes, without FixHead's two queries and
  // update. No head: the group has no live message (every change that leaves one sets a head),
  // so the new message is the head. A held head, or one due no later than the new message
  // (whose id is larger), stays the head. Otherwise the new message sorts first: FixHead.
  bool has_head = false, head_stays = false;
  {
    Stmt q(db, "SELECT state, due_at FROM queue_messages WHERE group_id = ? AND is_head = 1");
    q.Bind(1, m.group_id);
    auto row = q.Step();
    if (!row.ok()) return row.error();
    if (*row) {
      has_head = true;
      head_stays = q.Text(0) == "inflight" || q.Int(1) <= due;
    }
  }
  int64_t id = 0;
  {
    Stmt ins(db,
             "INSERT INTO queue_messages(group_id, dedup_id, priority, body, enqueued_at, "
             "due_at, visible_at, receive_count, state, is_head) "
             "VALUES(?, ?, ?, ?, ?, ?, ?, 0, 'ready', ?)");
    ins.Bind(1, m.group_id)
        .Bind(2, m.dedup_id)
        .Bind(3, static_cast<int64_t>(m.priority))
        .BindBlob(4, m.body)
        .Bind(5, now_ms)
        .Bind(6, due)
        .Bind(7, due)
        .Bind(8, static_cast<int64_t>(has_head ? 0 : 1));
    if (Status st = ins.Exec(); !st.ok()) return st.error();
    id = sqlite3_last_insert_rowid(db);
  }
  if (has_head && !head_stays) {
    if (Status st = FixHead(db, m.group_id); !st.ok()) return st.error();
  }
  if (!m.dedup_id.empty()) {
    Stmt d(db,
           "INSERT INTO queue_dedup(dedup_id, message_id, expires_at) VALUES(?, ?, ?) "
           "ON CONFLICT(dedup_id) DO UPDATE SET message_id = excluded.message_id, "
           "expires_at = excluded.expires_at");
    d.Bind(1, m.dedup_id).Bind(2, id).Bind(3, now_ms + dedup_window.count() * 1000);
    if (Status st = d.Exec(); !st.ok()) return st.error();
  }
  if (Status st = BumpCounter(db, "enqueued_total"); !st.ok()) return st.error();
  return queue::SendOutcome{std::to_string(id), false};
}

SqliteJobQueue::SqliteJobQueue(SqliteDb& db, queue::QueueSettings settings, const Clock& clock)
    : db_(db), settings_(settings), clock_(clock) {}

namespace {
queue::QueueSettings WithWindow(queue::QueueSettings s, std::chrono::seconds window) {
  s.dedup_window = window;
  return s;
}
}  // namespace

SqliteJobQueue::SqliteJobQueue(SqliteDb& db, std::chrono::seconds dedup_window, const Clock& clock)
    : SqliteJobQueue(db, WithWindow({}, dedup_window), clock) {}

SqliteJobQueue::SqliteJobQueue(SqliteStore& store, queue::QueueSettings settings)
    : SqliteJobQueue(store.db(), WithWindow(settings, store.db().settings().dedup_window),
                     store.clock()) {
  store_ = &store;
  store.SetJobWakeups(&wakeups_);
}

SqliteJobQueue::~SqliteJobQueue() {
  if (store_ != nullptr) store_->SetJobWakeups(nullptr);
}

void SqliteJobQueue::Wake(size_t n) { wakeups_.Notify(n); }

Result<queue::SendOutcome> SqliteJobQueue::Send(const queue::OutgoingMessage& m) {
  queue::SendOutcome out;
  const TimePoint now = clock_.Now();
  Status st = db_.Write([&](sqlite3* db) -> Status {
    auto r = SqliteQueueSendInTx(db, m, now, settings_.dedup_window);
    if (!r.ok()) return r.error();
    out = *r;
    return {};
  });
  if (!st.ok()) return st.error();
  if (!out.deduplicated) Wake();
  return out;
}

std::vector<Result<queue::SendOutcome>> SqliteJobQueue::SendBatch(
    const std::vector<queue::OutgoingMessage>& messages) {
  // Every message is submitted before waiting, so the batch shares one group commit; the writer
  // runs the closures in order (dedup within the batch sees the earlier ones).
  const TimePoint now = clock_.Now();
  std::vector<queue::SendOutcome> sent(messages.size());
  std::vector<std::future<Status>> pending;
  pending.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    pending.push_back(db_.SubmitWrite([&, i](sqlite3* db) -> Status {
      auto r = SqliteQueueSendInTx(db, messages[i], now, settings_.dedup_window);
      if (!r.ok()) return r.error();
      sent[i] = *r;
      return {};
    }));
  }
  std::vector<Result<queue::SendOutcome>> out;
  out.reserve(messages.size());
  size_t wake = 0;
  for (size_t i = 0; i < pending.size(); ++i) {
    Status st = pending[i].get();
    if (st.ok()) {
      if (!sent[i].deduplicated) ++wake;
      out.emplace_back(sent[i]);
    } else {
      out.emplace_back(st.error());
    }
  }
  if (wake > 0) Wake(wake);
  return out;
}

Result<std::vector<queue::ReceivedMessage>> SqliteJobQueue::Receive(
    const queue::ReceiveOptions& options) {
  if (Status st = queue::ValidateReceive(options); !st.ok()) return st.error();
  return queue::LongPoll(
      options.wait, settings_.long_poll_interval, wakeups_, [&] { return ReceiveOnce(options); },
      {}, static_cast<size_t>(options.max_messages));
}

Result<std::vector<queue::ReceivedMessage>> SqliteJobQueue::ReceiveOnce(
    const queue::ReceiveOptions& options) {
  const int64_t now = ToUnixMillis(clock_.Now());
  const int64_t vt = options.visibility_timeout.value_or(settings_.visibility_timeout).count();
  const auto want = static_cast<size_t>(options.max_messages);
  std::vector<queue::ReceivedMessage> out;
  Status st = db_.Write([&](sqlite3* db) -> Status {
    out.clear();
    int64_t redelivered = 0;
    while (out.size() < want) {
      const auto need = static_cast<int64_t>(want - out.size());
      // The `need` best visible heads of each priority, merged by effective time.
      std::vector<std::tuple<int64_t, int64_t>> candidates;  // (effective time, id)
      for (auto p : {queue::Priority::kHigh, queue::Priority::kMedium, queue::Priority::kLow}) {
        Stmt q(db,
               "SELECT id, visible_at FROM queue_messages WHERE is_head = 1 AND priority = ? "
               "AND visible_at <= ? ORDER BY visible_at, id LIMIT ?");
        q.Bind(1, static_cast<int64_t>(p)).Bind(2, now).Bind(3, need);
        const int64_t lag = queue::PriorityLagMillis(settings_, p);
        for (;;) {
          auto row = q.Step();
          if (!row.ok()) return row.error();
          if (!*row) break;
          candidates.emplace_back(q.Int(1) + lag, q.Int(0));
        }
      }
      if (candidates.empty()) break;
      std::sort(candidates.begin(), candidates.end());
      candidates.resize(std::min(candidates.size(), static_cast<size_t>(need)));
      for (const auto& [eff, id] : candidates) {
        auto loaded = LoadRow(db, id, true);
        if (!loaded.ok()) return loaded.error();
        if (!*loaded) return MakeError(Errc::kInternal, "queue head vanished");
        Row r = std::move(**loaded);
        if (r.state == "inflight") {  // its holder's visibility timeout expired
          queue::AppendHistory(&r.history,
                               {FromUnixMillis(now), HistoryKind::kExpired, r.receive_count,
                                "visibility timeout expired"},
                               settings_.history_limit);
        }
        if (r.receive_count >= settings_.max_receive_count) {
          if (Status s = MoveToDlq(db, r, now); !s.ok()) return s;
          continue;
        }
        ++r.receive_count;
        ++r.deliveries;
        r.visible_at = now + vt;
        {
          Stmt u(db,
                 "UPDATE queue_messages SET state = 'inflight', receive_count = ?, "
                 "deliveries = ?, visible_at = ?, history = ? WHERE id = ?");
          u.Bind(1, static_cast<int64_t>(r.receive_count))
              .Bind(2, r.deliveries)
              .Bind(3, r.visible_at)
              .Bind(4, queue::EncodeHistory(r.history))
              .Bind(5, r.id);
          if (Status s = u.Exec(); !s.ok()) return s;
        }
        if (r.deliveries > 1) ++redelivered;
        queue::ReceivedMessage m;
        m.receipt = queue::FormatReceipt(r.id, r.deliveries);
        m.message_id = std::to_string(r.id);
        m.group_id = std::move(r.group_id);
        m.dedup_id = std::move(r.dedup_id);
        m.priority = r.priority;
        m.body = std::move(r.body);
        m.receive_count = r.receive_count;
        m.enqueued_at = FromUnixMillis(r.enqueued_at);
        m.visible_until = FromUnixMillis(r.visible_at);
        m.history = std::move(r.history);
        out.push_back(std::move(m));
      }
    }
    if (Status s = AddDeliveryCounter(db, "delivered_total", static_cast<int64_t>(out.size()));
        !s.ok()) {
      return s;
    }
    return AddDeliveryCounter(db, "redelivered_total", redelivered);
  });
  if (!st.ok()) return st.error();
  return out;
}

namespace {
// The write closure of one Delete (the receipt is copied: DeleteBatch submits without waiting).
// `*promoted` is set when the group's next message became its head: the caller wakes the
// long-polling receivers after the commit, so a user's next job does not wait for a poll.
SqliteDb::WriteFn DeleteFn(std::string_view receipt, bool* promoted) {
  return [receipt = std::string(receipt), promoted](sqlite3* db) -> Status {
    return SqliteQueueDeleteInTx(db, receipt, promoted);
  };
}
}  // namespace

Status SqliteQueueDeleteInTx(sqlite3* db, std::string_view receipt, bool* promoted) {
  auto held = Held(db, receipt);
  if (!held.ok()) return held.error();
  {
    Stmt d(db, "DELETE FROM queue_messages WHERE id = ?");
    d.Bind(1, held->id);
    if (Status st = d.Exec(); !st.ok()) return st;
  }
  return FixHead(db, held->group_id, promoted);
}

Status SqliteJobQueue::Delete(std::string_view receipt) {
  bool promoted = false;
  Status st = db_.Write(DeleteFn(receipt, &promoted));
  if (st.ok() && promoted) Wake();
  return st;
}

std::vector<Status> SqliteJobQueue::DeleteBatch(const std::vector<std::string>& receipts) {
  // One flag per closure (not vector<bool>: each closure writes its own element).
  auto promoted = std::make_unique<bool[]>(receipts.size());
  std::vector<std::future<Status>> pending;
  pending.reserve(receipts.size());
  for (size_t i = 0; i < receipts.size(); ++i) {
    pending.push_back(db_.SubmitWrite(DeleteFn(receipts[i], &promoted[i])));
  }
  std::vector<Status> out;
  out.reserve(pending.size());
  size_t wake = 0;
  for (size_t i = 0; i < pending.size(); ++i) {
    out.push_back(pending[i].get());
    if (out.back().ok() && promoted[i]) ++wake;
  }
  if (wake > 0) Wake(wake);
  return out;
}

Status SqliteJobQueue::ChangeVisibility(std::string_view receipt,
                                        std::chrono::milliseconds timeout) {
  if (timeout.count() < 0) return MakeError(Errc::kInvalidArgument, "timeout must be >= 0");
  const int64_t now = ToUnixMillis(clock_.Now());
  Status st = db_.Write([&](sqlite3* db) -> Status {
    auto held = Held(db, receipt);
    if (!held.ok()) return held.error();
    Row& r = *held;
    r.visible_at = now + timeout.count();
    if (timeout.count() == 0) r.state = "ready";  // released: the receipt ends here
    return SaveReturned(db, r);
  });
  if (st.ok() && timeout.count() == 0) Wake();
  return st;
}

Status SqliteJobQueue::Defer(std::string_view receipt, std::chrono::milliseconds delay,
                             std::string_view reason) {
  if (delay.count() < 0) return MakeError(Errc::kInvalidArgument, "delay must be >= 0");
  const int64_t now = ToUnixMillis(clock_.Now());
  return db_.Write([&](sqlite3* db) -> Status {
    auto held = Held(db, receipt);
    if (!held.ok()) return held.error();
    Row& r = *held;
    queue::AppendHistory(
        &r.history,
        {FromUnixMillis(now), HistoryKind::kDeferred, r.receive_count, std::string(reason)},
        settings_.history_limit);
    r.receive_count = std::max(0, r.receive_count - 1);
    r.state = "ready";
    r.visible_at = now + delay.count();
    if (Status st = SaveReturned(db, r); !st.ok()) return st;
    return AddDeliveryCounter(db, "deferred_total", 1);
  });
}

Result<queue::FailOutcome> SqliteJobQueue::Fail(std::string_view receipt, std::string_view error,
                                                std::chrono::milliseconds retry_delay) {
  if (retry_delay.count() < 0) return MakeError(Errc::kInvalidArgument, "delay must be >= 0");
  const int64_t now = ToUnixMillis(clock_.Now());
  queue::FailOutcome outcome = queue::FailOutcome::kRetrying;
  Status st = db_.Write([&](sqlite3* db) -> Status {
    auto held = Held(db, receipt);
    if (!held.ok()) return held.error();
    Row& r = *held;
    queue::AppendHistory(
        &r.history,
        {FromUnixMillis(now), HistoryKind::kFailed, r.receive_count, std::string(error)},
        settings_.history_limit);
    if (r.receive_count >= settings_.max_receive_count) {
      outcome = queue::FailOutcome::kDeadLettered;
      return MoveToDlq(db, r, now);
    }
    outcome = queue::FailOutcome::kRetrying;
    r.state = "ready";
    r.visible_at = now + retry_delay.count();
    return SaveReturned(db, r);
  });
  if (!st.ok()) return st.error();
  return outcome;
}

Status SqliteJobQueue::DeadLetter(std::string_view receipt, std::string_view error) {
  const int64_t now = ToUnixMillis(clock_.Now());
  Status st = db_.Write([&](sqlite3* db) -> Status {
    auto held = Held(db, receipt);
    if (!held.ok()) return held.error();
    Row& r = *held;
    queue::AppendHistory(
        &r.history,
        {FromUnixMillis(now), HistoryKind::kFailed, r.receive_count, std::string(error)},
        settings_.history_limit);
    return MoveToDlq(db, r, now);
  });
  if (st.ok()) Wake();  // the group's next message may be deliverable now
  return st;
}

Result<std::vector<queue::DlqEntry>> SqliteJobQueue::DlqList(const queue::DlqListOptions& options) {
  int64_t after = 0;
  if (!options.after_message_id.empty() &&
      !queue::ParseMessageId(options.after_message_id, &after)) {
    return MakeError(Errc::kInvalidArgument, "bad message id");
  }
  return db_.Read([&](sqlite3* db) -> Result<std::vector<queue::DlqEntry>> {
    std::vector<queue::DlqEntry> out;
    Stmt q(db, std::string("SELECT ") + kRowCols +
                   " FROM queue_messages WHERE state = 'dlq' AND id > ? ORDER BY id LIMIT ?");
    q.Bind(1, after).Bind(2, static_cast<int64_t>(std::min<size_t>(options.limit, 1u << 30)));
    for (;;) {
      auto row = q.Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      out.push_back(ToDlq(ReadRow(q, false), false));
    }
    return out;
  });
}

Result<queue::DlqEntry> SqliteJobQueue::DlqGet(std::string_view message_id) {
  int64_t id = 0;
  if (!queue::ParseMessageId(message_id, &id)) return NoDlq(message_id);
  return db_.Read([&](sqlite3* db) -> Result<queue::DlqEntry> {
    auto row = LoadRow(db, id, true);
    if (!row.ok()) return row.error();
    if (!*row || (*row)->state != "dlq") return NoDlq(message_id);
    return ToDlq(std::move(**row), true);
  });
}

Status SqliteJobQueue::DlqRedrive(std::string_view message_id) {
  int64_t id = 0;
  if (!queue::ParseMessageId(message_id, &id)) return NoDlq(message_id);
  const int64_t now = ToUnixMillis(clock_.Now());
  Status st = db_.Write([&](sqlite3* db) -> Status {
    auto row = LoadRow(db, id, false);
    if (!row.ok()) return row.error();
    if (!*row || (*row)->state != "dlq") return NoDlq(message_id);
    return Redrive(db, id, (*row)->group_id, now);
  });
  if (st.ok()) Wake();
  return st;
}

Result<int64_t> SqliteJobQueue::DlqRedriveAll() {
  const int64_t now = ToUnixMillis(clock_.Now());
  int64_t n = 0;
  Status st = db_.Write([&](sqlite3* db) -> Status {
    n = 0;
    std::vector<std::pair<int64_t, std::string>> ids;
    {
      Stmt q(db, "SELECT id, group_id FROM queue_messages WHERE state = 'dlq' ORDER BY id");
      for (;;) {
        auto row = q.Step();
        if (!row.ok()) return row.error();
        if (!*row) break;
        ids.emplace_back(q.Int(0), q.Text(1));
      }
    }
    for (const auto& [id, group] : ids) {
      if (Status s = Redrive(db, id, group, now); !s.ok()) return s;
      ++n;
    }
    return {};
  });
  if (!st.ok()) return st.error();
  if (n > 0) wakeups_.NotifyAll();
  return n;
}

Result<int64_t> SqliteJobQueue::DlqPurge() {
  int64_t n = 0;
  Status st = db_.Write([&](sqlite3* db) -> Status {
    Stmt d(db, "DELETE FROM queue_messages WHERE state = 'dlq'");
    if (Status s = d.Exec(); !s.ok()) return s;
    n = sqlite3_changes(db);
    return {};
  });
  if (!st.ok()) return st.error();
  return n;
}

Result<queue::QueueStats> SqliteJobQueue::Stats() {
  const int64_t now_ms = ToUnixMillis(clock_.Now());
  return db_.Read([&](sqlite3* db) -> Result<queue::QueueStats> {
    queue::QueueStats s;
    // One read transaction so the gauges are a consistent snapshot.
    if (Status st = ExecSql(db, "BEGIN"); !st.ok()) return st.error();
    auto run = [&]() -> Status {
      std::optional<int64_t> oldest;
      for (const char* state : {"ready", "inflight"}) {
        {
          Stmt q(db,
                 "SELECT COUNT(*), MIN(visible_at) FROM queue_messages "
                 "WHERE state = ? AND visible_at <= ?");
          q.Bind(1, state).Bind(2, now_ms);
          auto row = q.Step();
          if (!row.ok()) return row.error();
          s.visible += q.Int(0);
          if (!q.IsNull(1) && (!oldest || q.Int(1) < *oldest)) oldest = q.Int(1);
        }
        {
          Stmt q(db, "SELECT COUNT(*) FROM queue_messages WHERE state = ? AND visible_at > ?");
          q.Bind(1, state).Bind(2, now_ms);
          auto row = q.Step();
          if (!row.ok()) return row.error();
          (std::string_view(state) == "ready" ? s.delayed : s.in_flight) = q.Int(0);
        }
      }
      s.groups_in_flight = s.in_flight;  // at most one held message per group
      if (oldest) s.oldest_age_seconds = static_cast<double>(now_ms - *oldest) / 1000.0;
      {
        Stmt q(db, "SELECT COUNT(*) FROM queue_messages WHERE state = 'dlq'");
        auto row = q.Step();
        if (!row.ok()) return row.error();
        s.dlq = q.Int(0);
      }
      for (const char* table : {"queue_counters", "queue_delivery_counters"}) {
        Stmt c(db, std::string("SELECT name, value FROM ") + table);
        for (;;) {
          auto row = c.Step();
          if (!row.ok()) return row.error();
          if (!*row) break;
          const std::string name = c.Text(0);
          const int64_t v = c.Int(1);
          if (name == "enqueued_total") s.enqueued_total = v;
          if (name == "deduplicated_total") s.deduplicated_total = v;
          if (name == "delivered_total") s.delivered_total = v;
          if (name == "redelivered_total") s.redelivered_total = v;
          if (name == "dead_lettered_total") s.dead_lettered_total = v;
          if (name == "deferred_total") s.deferred_total = v;
          if (name == "redriven_total") s.redriven_total = v;
        }
      }
      return {};
    };
    Status st = run();
    (void)ExecSql(db, "COMMIT");
    if (!st.ok()) return st.error();
    return s;
  });
}

}  // namespace syncwell::store
