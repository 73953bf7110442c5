#pragma once
// InMemoryQueue: the in-memory fake of queue::JobQueue with exactly the semantics of the SQLite
// adapter (checked by tests/conformance/job_queue_suite.hpp). Same data model as the adapter
// (millisecond times, per-group head flag, due-time order key, delivery numbers in receipts), kept
// in maps. Thread-safe: one mutex guards everything, so each method is one atomic "transaction";
// Receive with wait > 0 blocks on a condition variable signalled by Send (and re-checks every
// settings.long_poll_interval, for messages that become due). Header-only.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "queue/job_queue.hpp"

namespace syncwell::fakes {

class InMemoryQueue final : public queue::JobQueue {
 public:
  struct Message {
    int64_t id = 0;
    std::string group_id;
    std::string dedup_id;
    queue::Priority priority = queue::Priority::kMedium;
    std::string body;
    int64_t enqueued_at = 0;  // ms
    int64_t due_at = 0;       // order key within the group (with id)
    int64_t visible_at = 0;
    int receive_count = 0;
    int64_t deliveries = 0;
    std::string state = "ready";  // ready | inflight | dlq
    bool is_head = false;
    std::vector<queue::HistoryEntry> history;
    int64_t dead_lettered_at = 0;
  };

  explicit InMemoryQueue(const Clock& clock, queue::QueueSettings settings = {})
      : clock_(clock), settings_(settings) {}

  // ---- test / store hooks ----
  std::vector<Message> Messages() const {
    std::lock_guard lock(mu_);
    std::vector<Message> out;
    for (const auto& [id, m] : messages_) out.push_back(m);
    return out;
  }
  // Removes every message of `group` and the dedup ids that point at them (user purge).
  void PurgeGroup(const std::string& group) {
    std::lock_guard lock(mu_);
    for (auto it = messages_.begin(); it != messages_.end();) {
      if (it->second.group_id == group) {
        const int64_t id = it->first;
        std::erase_if(dedup_, [&](const auto& kv) { return kv.second.message_id == id; });
        it = messages_.erase(it);
      } else {
        ++it;
      }
    }
    heads_.erase(group);
    order_.erase(group);
  }

  // ---- JobQueue ----
  Result<queue::SendOutcome> Send(const queue::OutgoingMessage& m) override {
    queue::SendOutcome out;
    {
      std::lock_guard lock(mu_);
      out = SendLocked(m);
    }
    cv_.notify_all();
    return out;
  }

  Result<queue::QueueStats> Stats() override {
    std::lock_guard lock(mu_);
    const int64_t now = NowMs();
    queue::QueueStats s;
    std::optional<int64_t> oldest;
    for (const auto& [id, m] : messages_) {
      if (m.state == "dlq") {
        ++s.dlq;
      } else if (m.state == "inflight" && m.visible_at > now) {
        ++s.in_flight;
      } else if (m.state == "ready" && m.visible_at > now) {
        ++s.delayed;
      } else {
        ++s.visible;
        if (!oldest || m.visible_at < *oldest) oldest = m.visible_at;
      }
    }
    s.groups_in_flight = s.in_flight;
    if (oldest) s.oldest_age_seconds = static_cast<double>(now - *oldest) / 1000.0;
    s.enqueued_total = enqueued_total_;
    s.deduplicated_total = deduplicated_total_;
    s.delivered_total = delivered_total_;
    s.redelivered_total = redelivered_total_;
    s.dead_lettered_total = dead_lettered_total_;
    s.deferred_total = deferred_total_;
    s.redriven_total = redriven_total_;
    return s;
  }

  Result<std::vector<queue::ReceivedMessage>> Receive(
      const queue::ReceiveOptions& options) override {
    if (Status st = queue::ValidateReceive(options); !st.ok()) return st.error();
    const auto deadline = std::chrono::steady_clock::now() + options.wait;
    std::unique_lock lock(mu_);
    for (;;) {
      auto got = ReceiveLocked(options);
      const auto left = deadline - std::chrono::steady_clock::now();
      if (!got.empty() || left <= decltype(left)::zero()) return got;
      const uint64_t seen = wakeups_;
      cv_.wait_for(
          lock, std::min<std::chrono::steady_clock::duration>(left, settings_.long_poll_interval),
          [&] { return wakeups_ != seen; });
    }
  }

  Status Delete(std::string_view receipt) override {
    std::lock_guard lock(mu_);
    auto held = Held(receipt);
    if (!held.ok()) return held.error();
    Message& m = **held;
    const std::string group = m.group_id;
    RemoveFromOrder(m);
    if (m.is_head) heads_.erase(group);
    messages_.erase(m.id);
    FixHead(group);
    ++wakeups_;  // the group's next message may be deliverable now
    cv_.notify_all();
    return {};
  }

  Status ChangeVisibility(std::string_view receipt, std::chrono::milliseconds timeout) override {
    if (timeout.count() < 0) return MakeError(Errc::kInvalidArgument, "timeout must be >= 0");
    std::lock_guard lock(mu_);
    auto held = Held(receipt);
    if (!held.ok()) return held.error();
    Message& m = **held;
    const int64_t now = NowMs();
    m.visible_at = now + timeout.count();
    if (timeout.count() == 0) m.state = "ready";
    return {};
  }

  Status Defer(std::string_view receipt, std::chrono::milliseconds delay,
               std::string_view reason) override {
    if (delay.count() < 0) return MakeError(Errc::kInvalidArgument, "delay must be >= 0");
    std::lock_guard lock(mu_);
    auto held = Held(receipt);
    if (!held.ok()) return held.error();
    Message& m = **held;
    const int64_t now = NowMs();
    queue::AppendHistory(
        &m.history,
        {FromUnixMillis(now), queue::HistoryKind::kDeferred, m.receive_count, std::string(reason)},
        settings_.history_limit);
    m.receive_count = std::max(0, m.receive_count - 1);
    m.state = "ready";
    m.visible_at = now + delay.count();
    ++deferred_total_;
    return {};
  }

  Result<queue::FailOutcome> Fail(std::string_view receipt, std::string_view error,
                                  std::chrono::milliseconds retry_delay) override {
    if (retry_delay.count() < 0) return MakeError(Errc::kInvalidArgument, "delay must be >= 0");
    std::lock_guard lock(mu_);
    auto held = Held(receipt);
    if (!held.ok()) return held.error();
    Message& m = **held;
    const int64_t now = NowMs();
    queue::AppendHistory(
        &m.history,
        {FromUnixMillis(now), queue::HistoryKind::kFailed, m.receive_count, std::string(error)},
        settings_.history_limit);
    if (m.receive_count >= settings_.max_receive_count) {
      MoveToDlq(m, now);
      return queue::FailOutcome::kDeadLettered;
    }
    m.state = "ready";
    m.visible_at = now + retry_delay.count();
    return queue::FailOutcome::kRetrying;
  }

  Status DeadLetter(std::string_view receipt, std::string_view error) override {
    {
      std::lock_guard lock(mu_);
      auto held = Held(receipt);
      if (!held.ok()) return held.error();
      Message& m = **held;
      const int64_t now = NowMs();
      queue::AppendHistory(
          &m.history,
          {FromUnixMillis(now), queue::HistoryKind::kFailed, m.receive_count, std::string(error)},
          settings_.history_limit);
      MoveToDlq(m, now);
      ++wakeups_;  // the group's next message may be deliverable now
    }
    cv_.notify_all();
    return {};
  }

  Result<std::vector<queue::DlqEntry>> DlqList(const queue::DlqListOptions& options) override {
    int64_t after = 0;
    if (!options.after_message_id.empty() &&
        !queue::ParseMessageId(options.after_message_id, &after)) {
      return MakeError(Errc::kInvalidArgument, "bad message id");
    }
    std::lock_guard lock(mu_);
    std::vector<queue::DlqEntry> out;
    for (auto it = messages_.upper_bound(after); it != messages_.end(); ++it) {
      if (out.size() >= options.limit) break;
      if (it->second.state == "dlq") out.push_back(ToDlq(it->second, false));
    }
    return out;
  }

  Result<queue::DlqEntry> DlqGet(std::string_view message_id) override {
    std::lock_guard lock(mu_);
    auto m = FindDlq(message_id);
    if (!m.ok()) return m.error();
    return ToDlq(**m, true);
  }

  Status DlqRedrive(std::string_view message_id) override {
    std::lock_guard lock(mu_);
    auto m = FindDlq(message_id);
    if (!m.ok()) return m.error();
    Redrive(**m, NowMs());
    cv_.notify_all();
    return {};
  }

  Result<int64_t> DlqRedriveAll() override {
    std::lock_guard lock(mu_);
    const int64_t now = NowMs();
    int64_t n = 0;
    for (auto& [id, m] : messages_) {
      if (m.state == "dlq") {
        Redrive(m, now);
        ++n;
      }
    }
    cv_.notify_all();
    return n;
  }

  Result<int64_t> DlqPurge() override {
    std::lock_guard lock(mu_);
    return static_cast<int64_t>(
        std::erase_if(messages_, [](const auto& kv) { return kv.second.state == "dlq"; }));
  }

 private:
  struct Dedup {
    int64_t message_id;
    int64_t expires_at;
  };

  int64_t NowMs() const { return ToUnixMillis(clock_.Now()); }

  queue::SendOutcome SendLocked(const queue::OutgoingMessage& m) {
    const int64_t now = NowMs();
    std::erase_if(dedup_, [&](const auto& kv) { return kv.second.expires_at <= now; });
    if (!m.dedup_id.empty()) {
      auto it = dedup_.find(m.dedup_id);
      if (it != dedup_.end()) {
        ++deduplicated_total_;
        return queue::SendOutcome{std::to_string(it->second.message_id), true};
      }
    }
    Message msg;
    msg.id = ++last_message_id_;
    msg.group_id = m.group_id;
    msg.dedup_id = m.dedup_id;
    msg.priority = m.priority;
    msg.body = m.body;
    msg.enqueued_at = now;
    msg.due_at = msg.visible_at = now + std::max<int64_t>(0, m.delay.count());
    order_[msg.group_id].emplace(msg.due_at, msg.id);
    messages_.emplace(msg.id, msg);
    FixHead(msg.group_id);
    if (!m.dedup_id.empty()) {
      dedup_[m.dedup_id] = Dedup{msg.id, now + settings_.dedup_window.count() * 1000};
    }
    ++enqueued_total_;
    ++wakeups_;
    return queue::SendOutcome{std::to_string(msg.id), false};
  }

  // The group's head is the first message in (due_at, id) order that is not dead-lettered, except
  // that a held (in-flight) head is never displaced (a redriven message may sort before it).
  void FixHead(const std::string& group) {
    auto hit = heads_.find(group);
    if (hit != heads_.end() && messages_.at(hit->second).state == "inflight") return;
    std::optional<int64_t> first;
    auto oit = order_.find(group);
    if (oit != order_.end() && !oit->second.empty()) first = oit->second.begin()->second;
    if (hit != heads_.end() && first && hit->second == *first) return;
    if (hit != heads_.end()) {
      messages_.at(hit->second).is_head = false;
      heads_.erase(hit);
    }
    if (first) {
      messages_.at(*first).is_head = true;
      heads_[group] = *first;
    }
  }

  void RemoveFromOrder(const Message& m) {
    auto oit = order_.find(m.group_id);
    if (oit == order_.end()) return;
    oit->second.erase({m.due_at, m.id});
    if (oit->second.empty()) order_.erase(oit);
  }

  void MoveToDlq(Message& m, int64_t now) {
    RemoveFromOrder(m);
    if (m.is_head) heads_.erase(m.group_id);
    m.is_head = false;
    m.state = "dlq";
    m.dead_lettered_at = now;
    ++dead_lettered_total_;
    FixHead(m.group_id);
  }

  void Redrive(Message& m, int64_t now) {
    m.state = "ready";
    m.receive_count = 0;
    m.due_at = m.visible_at = now;
    m.dead_lettered_at = 0;
    order_[m.group_id].emplace(m.due_at, m.id);
    ++redriven_total_;
    ++wakeups_;
    FixHead(m.group_id);
  }

  std::vector<queue::ReceivedMessage> ReceiveLocked(const queue::ReceiveOptions& options) {
    const int64_t now = NowMs();
    const int64_t vt = options.visibility_timeout.value_or(settings_.visibility_timeout).count();
    std::vector<queue::ReceivedMessage> out;
    const auto want = static_cast<size_t>(options.max_messages);
    while (out.size() < want) {
      std::vector<std::tuple<int64_t, int64_t>> candidates;  // (effective time, id)
      for (const auto& [group, id] : heads_) {
        const Message& m = messages_.at(id);
        if (m.visible_at <= now) {
          candidates.emplace_back(m.visible_at + queue::PriorityLagMillis(settings_, m.priority),
                                  id);
        }
      }
      if (candidates.empty()) break;
      std::sort(candidates.begin(), candidates.end());
      candidates.resize(std::min(candidates.size(), want - out.size()));
      for (const auto& [eff, id] : candidates) {
        Message& m = messages_.at(id);
        if (m.state == "inflight") {  // its holder's visibility timeout expired
          queue::AppendHistory(&m.history,
                               {FromUnixMillis(now), queue::HistoryKind::kExpired, m.receive_count,
                                "visibility timeout expired"},
                               settings_.history_limit);
        }
        if (m.receive_count >= settings_.max_receive_count) {
          MoveToDlq(m, now);
          continue;
        }
        ++m.receive_count;
        ++m.deliveries;
        m.state = "inflight";
        m.visible_at = now + vt;
        ++delivered_total_;
        if (m.deliveries > 1) ++redelivered_total_;
        queue::ReceivedMessage r;
        r.receipt = queue::FormatReceipt(m.id, m.deliveries);
        r.message_id = std::to_string(m.id);
        r.group_id = m.group_id;
        r.dedup_id = m.dedup_id;
        r.priority = m.priority;
        r.body = m.body;
        r.receive_count = m.receive_count;
        r.enqueued_at = FromUnixMillis(m.enqueued_at);
        r.visible_until = FromUnixMillis(m.visible_at);
        r.history = m.history;
        out.push_back(std::move(r));
      }
    }
    return out;
  }

  // The message held under `receipt`, or the error of the contract (nothing changed).
  Result<Message*> Held(std::string_view receipt) {
    int64_t id = 0, delivery = 0;
    if (!queue::ParseReceipt(receipt, &id, &delivery)) {
      return MakeError(Errc::kInvalidArgument, "malformed receipt");
    }
    auto it = messages_.find(id);
    if (it == messages_.end()) return MakeError(Errc::kNotFound, "message is gone");
    if (it->second.state != "inflight" || it->second.deliveries != delivery) {
      return MakeError(Errc::kConflict, "stale receipt: the message is no longer held by it");
    }
    return &it->second;
  }

  Result<Message*> FindDlq(std::string_view message_id) {
    int64_t id = 0;
    if (!queue::ParseMessageId(message_id, &id)) {
      return MakeError(Errc::kNotFound, "no dead-lettered message " + std::string(message_id));
    }
    auto it = messages_.find(id);
    if (it == messages_.end() || it->second.state != "dlq") {
      return MakeError(Errc::kNotFound, "no dead-lettered message " + std::string(message_id));
    }
    return &it->second;
  }

  static queue::DlqEntry ToDlq(const Message& m, bool with_body) {
    queue::DlqEntry e;
    e.message_id = std::to_string(m.id);
    e.group_id = m.group_id;
    e.dedup_id = m.dedup_id;
    e.priority = m.priority;
    e.receive_count = m.receive_count;
    e.enqueued_at = FromUnixMillis(m.enqueued_at);
    e.dead_lettered_at = FromUnixMillis(m.dead_lettered_at);
    e.history = m.history;
    if (with_body) e.body = m.body;
    return e;
  }

  const Clock& clock_;
  const queue::QueueSettings settings_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t wakeups_ = 0;
  std::map<int64_t, Message> messages_;
  std::map<std::string, Dedup> dedup_;
  std::map<std::string, int64_t> heads_;                                // group -> head id
  std::map<std::string, std::set<std::pair<int64_t, int64_t>>> order_;  // group -> {(due, id)}
  int64_t last_message_id_ = 0;
  int64_t enqueued_total_ = 0;
  int64_t deduplicated_total_ = 0;
  int64_t delivered_total_ = 0;
  int64_t redelivered_total_ = 0;
  int64_t dead_lettered_total_ = 0;
  int64_t deferred_total_ = 0;
  int64_t redriven_total_ = 0;
};

}  // namespace syncwell::fakes
