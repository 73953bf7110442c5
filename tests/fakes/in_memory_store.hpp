#pragma once
// InMemoryStore: an in-memory fake of store::Store and queue::JobQueue with the same semantics
// as the SQLite adapter (checked by tests/conformance/store_suite.hpp). For unit tests of
// handlers. Thread-safe: one mutex guards everything, so each method is one atomic "transaction".
// Header-only: no library to link.
#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "queue/job_queue.hpp"
#include "store/store.hpp"

namespace syncwell::fakes {

class InMemoryStore final : public store::Store, public queue::JobQueue {
 public:
  struct QueueMessage {
    int64_t id = 0;
    std::string group_id;
    std::string dedup_id;
    queue::Priority priority = queue::Priority::kMedium;
    std::string body;
    TimePoint enqueued_at{};
    TimePoint visible_at{};
    int receive_count = 0;
    std::string state = "ready";  // ready | inflight | dlq
  };

  explicit InMemoryStore(const Clock& clock,
                         std::chrono::seconds dedup_window = std::chrono::seconds{300},
                         std::chrono::hours idempotency_retention = std::chrono::hours{24})
      : clock_(clock), dedup_window_(dedup_window), idem_retention_(idempotency_retention) {}

  // Test hooks.
  std::vector<QueueMessage> Messages() const {
    std::lock_guard lock(mu_);
    std::vector<QueueMessage> out;
    for (const auto& [id, m] : messages_) out.push_back(m);
    return out;
  }
  // Makes the next mutation fail with `e` (nothing written), to test handler error paths.
  void FailNextWrite(Error e) {
    std::lock_guard lock(mu_);
    fail_next_ = std::move(e);
  }

  // ---- Store: users ----
  Result<store::User> EnsureUser(const UserId& user, store::Tier tier) override {
    std::lock_guard lock(mu_);
    if (auto f = TakeFailure()) return *f;
    auto it = users_.find(user);
    if (it == users_.end()) {
      store::User u;
      u.id = user;
      u.tier = tier;
      u.created_at = u.updated_at = Now();
      it = users_.emplace(user, u).first;
    }
    return it->second;
  }
  Result<store::User> GetUser(const UserId& user) override {
    std::lock_guard lock(mu_);
    auto it = users_.find(user);
    if (it == users_.end()) return NotFound("user", user.str());
    return it->second;
  }
  Status UpsertUser(const store::User& user) override {
    std::lock_guard lock(mu_);
    if (auto f = TakeFailure()) return *f;
    auto it = users_.find(user.id);
    if (it != users_.end()) {
      it->second.tier = user.tier;
      it->second.updated_at = Now();
      return {};
    }
    store::User u = user;
    if (u.settings_json.empty()) u.settings_json = "{}";
    u.created_at = OrNow(u.created_at);
    u.updated_at = Now();
    users_.emplace(u.id, u);
    return {};
  }
  Status UpdateUserSettings(const UserId& user, const std::string& settings_json,
                            const store::IdempotencyRecord* idem) override {
    std::lock_guard lock(mu_);
    return Mutate(idem, [&]() -> Status {
      auto it = users_.find(user);
      if (it == users_.end()) return NotFound("user", user.str());
      it->second.settings_json = settings_json;
      it->second.updated_at = Now();
      return {};
    });
  }

  // ---- connections ----
  Status CreateConnection(const store::Connection& c) override {
    std::lock_guard lock(mu_);
    if (auto f = TakeFailure()) return *f;
    if (connections_.count(c.id)) return MakeError(Errc::kAlreadyExists, "connection exists");
    store::Connection v = c;
    v.created_at = OrNow(v.created_at);
    v.updated_at = OrNow(v.updated_at);
    connections_.emplace(c.id, v);
    return {};
  }
  Result<store::Connection> GetConnection(const UserId& user, const ConnectionId& id) override {
    std::lock_guard lock(mu_);
    auto it = connections_.find(id);
    if (it == connections_.end() || it->second.user != user)
      return NotFound("connection", id.str());
    return it->second;
  }
  Result<std::vector<store::Connection>> ListConnections(const UserId& user) override {
    std::lock_guard lock(mu_);
    std::vector<store::Connection> out;
    for (const auto& [id, c] : connections_) {
      if (c.user == user) out.push_back(c);
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.created_at < b.created_at; });
    return out;
  }
  Status DeleteConnection(const UserId& user, const ConnectionId& id,
                          const store::IdempotencyRecord* idem) override {
    std::lock_guard lock(mu_);
    return Mutate(idem, [&]() -> Status {
      auto it = connections_.find(id);
      if (it == connections_.end() || it->second.user != user) {
        return NotFound("connection", id.str());
      }
      connections_.erase(it);
      std::erase_if(configs_, [&](const auto& kv) {
        const auto& c = kv.second;
        return c.user == user && (c.source == id || c.destination == id);
      });
      return {};
    });
  }

  // ---- sync configs ----
  Status CreateSyncConfig(const store::SyncConfig& c,
                          const store::IdempotencyRecord* idem) override {
    std::lock_guard lock(mu_);
    return Mutate(idem, [&]() -> Status {
      if (configs_.count(c.id)) return MakeError(Errc::kAlreadyExists, "sync config exists");
      store::SyncConfig v = c;
      v.created_at = OrNow(v.created_at);
      v.updated_at = OrNow(v.updated_at);
      configs_.emplace(c.id, v);
      return {};
    });
  }
  Result<store::SyncConfig> GetSyncConfig(const UserId& user, const SyncConfigId& id) override {
    std::lock_guard lock(mu_);
    auto it = configs_.find(id);
    if (it == configs_.end() || it->second.user != user) return NotFound("sync config", id.str());
    return it->second;
  }
  Result<std::vector<store::SyncConfig>> ListSyncConfigs(const UserId& user) override {
    std::lock_guard lock(mu_);
    std::vector<store::SyncConfig> out;
    for (const auto& [id, c] : configs_) {
      if (c.user == user) out.push_back(c);
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.created_at < b.created_at; });
    return out;
  }
  Status UpdateSyncConfig(const store::SyncConfig& c, int64_t expected_version,
                          const store::IdempotencyRecord* idem) override {
    std::lock_guard lock(mu_);
    return Mutate(idem, [&]() -> Status {
      auto it = configs_.find(c.id);
      if (it == configs_.end() || it->second.user != c.user)
        return NotFound("sync config", c.id.str());
      if (it->second.version != expected_version)
        return MakeError(Errc::kConflict, "stale version");
      auto& v = it->second;
      v.source = c.source;
      v.destination = c.destination;
      v.data_type = c.data_type;
      v.conflict_strategy = c.conflict_strategy;
      v.enabled = c.enabled;
      v.version = expected_version + 1;
      v.updated_at = Now();
      return {};
    });
  }
  Status DeleteSyncConfig(const UserId& user, const SyncConfigId& id,
                          std::optional<int64_t> expected_version,
                          const store::IdempotencyRecord* idem) override {
    std::lock_guard lock(mu_);
    return Mutate(idem, [&]() -> Status {
      auto it = configs_.find(id);
      if (it == configs_.end() || it->second.user != user) return NotFound("sync config", id.str());
      if (expected_version && it->second.version != *expected_version) {
        return MakeError(Errc::kConflict, "stale version");
      }
      configs_.erase(it);
      return {};
    });
  }

  // ---- jobs ----
  Status CreateJob(const store::Job& job, const queue::OutgoingMessage& msg,
                   const store::IdempotencyRecord* idem) override {
    std::lock_guard lock(mu_);
    return Mutate(idem, [&]() -> Status {
      if (jobs_.count(job.id)) return MakeError(Errc::kAlreadyExists, "job exists");
      store::Job v = job;
      v.created_at = OrNow(v.created_at);
      v.updated_at = OrNow(v.updated_at);
      jobs_.emplace(job.id, v);
      SendLocked(msg);
      return {};
    });
  }
  Result<store::Job> GetJob(const UserId& user, const JobId& id) override {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.user != user) return NotFound("job", id.str());
    return it->second;
  }
  Status UpdateJobStatus(const JobId& id, store::JobStatus status,
                         const std::string& error) override {
    std::lock_guard lock(mu_);
    if (auto f = TakeFailure()) return *f;
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return NotFound("job", id.str());
    it->second.status = status;
    it->second.error = error;
    it->second.updated_at = Now();
    return {};
  }

  // ---- idempotency ----
  Result<std::optional<store::IdempotencyRecord>> GetIdempotency(const UserId& user,
                                                                 const std::string& key) override {
    std::lock_guard lock(mu_);
    auto it = idem_.find({user, key});
    if (it == idem_.end() || it->second.created_at < Now() - idem_retention_) {
      return std::optional<store::IdempotencyRecord>{};
    }
    return std::optional<store::IdempotencyRecord>(it->second);
  }
  Result<int64_t> PurgeIdempotencyBefore(TimePoint cutoff) override {
    std::lock_guard lock(mu_);
    return static_cast<int64_t>(
        std::erase_if(idem_, [&](const auto& kv) { return kv.second.created_at < cutoff; }));
  }

  // ---- user deletion ----
  Status RequestUserDeletion(const UserId& user, const store::IdempotencyRecord* idem) override {
    std::lock_guard lock(mu_);
    return Mutate(idem, [&]() -> Status {
      auto& d = deletions_[user];
      if (d.state != store::DeletionState::kPending) {
        d.user = user;
        d.state = store::DeletionState::kPending;
        d.requested_at = Now();
        d.completed_at.reset();
      }
      return {};
    });
  }
  Result<store::UserDeletion> GetUserDeletion(const UserId& user) override {
    std::lock_guard lock(mu_);
    auto it = deletions_.find(user);
    if (it == deletions_.end()) {
      store::UserDeletion d;
      d.user = user;
      return d;
    }
    return it->second;
  }
  Result<std::vector<UserId>> PendingDeletions(size_t limit) override {
    std::lock_guard lock(mu_);
    std::vector<const store::UserDeletion*> pending;
    for (const auto& [u, d] : deletions_) {
      if (d.state == store::DeletionState::kPending) pending.push_back(&d);
    }
    std::stable_sort(pending.begin(), pending.end(),
                     [](auto* a, auto* b) { return a->requested_at < b->requested_at; });
    std::vector<UserId> out;
    for (size_t i = 0; i < pending.size() && i < limit; ++i) out.push_back(pending[i]->user);
    return out;
  }
  Status PurgeUser(const UserId& user) override {
    std::lock_guard lock(mu_);
    if (auto f = TakeFailure()) return *f;
    users_.erase(user);
    std::erase_if(connections_, [&](const auto& kv) { return kv.second.user == user; });
    std::erase_if(configs_, [&](const auto& kv) { return kv.second.user == user; });
    std::erase_if(jobs_, [&](const auto& kv) { return kv.second.user == user; });
    std::erase_if(idem_, [&](const auto& kv) { return kv.first.first == user; });
    for (auto it = messages_.begin(); it != messages_.end();) {
      if (it->second.group_id == user.str()) {
        std::erase_if(dedup_, [&](const auto& kv) { return kv.second.message_id == it->first; });
        it = messages_.erase(it);
      } else {
        ++it;
      }
    }
    auto& d = deletions_[user];
    d.user = user;
    if (d.state == store::DeletionState::kNone) d.requested_at = Now();
    d.state = store::DeletionState::kCompleted;
    d.completed_at = Now();
    return {};
  }

  // ---- control events ----
  Status AddControlEvent(const std::string& kind, const std::string& value) override {
    std::lock_guard lock(mu_);
    if (auto f = TakeFailure()) return *f;
    events_.push_back(ControlEvent{++last_seq_, kind, value});
    return {};
  }
  Result<std::vector<ControlEvent>> ControlEventsAfter(int64_t after_seq) override {
    std::lock_guard lock(mu_);
    std::vector<ControlEvent> out;
    for (const auto& e : events_) {
      if (e.seq > after_seq) out.push_back(e);
    }
    return out;
  }

  Status Ping() override { return {}; }

  // ---- JobQueue ----
  Result<queue::SendOutcome> Send(const queue::OutgoingMessage& m) override {
    std::lock_guard lock(mu_);
    if (auto f = TakeFailure()) return *f;
    return SendLocked(m);
  }
  Result<queue::QueueStats> Stats() override {
    std::lock_guard lock(mu_);
    queue::QueueStats s;
    const TimePoint now = Now();
    std::optional<TimePoint> oldest;
    for (const auto& [id, m] : messages_) {
      if (m.state == "ready" && m.visible_at <= now) {
        ++s.visible;
        if (!oldest || m.visible_at < *oldest) oldest = m.visible_at;
      } else if (m.state == "ready") {
        ++s.delayed;
      } else if (m.state == "inflight") {
        ++s.in_flight;
      } else if (m.state == "dlq") {
        ++s.dlq;
      }
    }
    if (oldest) s.oldest_age_seconds = std::chrono::duration<double>(now - *oldest).count();
    s.enqueued_total = enqueued_total_;
    s.deduplicated_total = deduplicated_total_;
    return s;
  }

 private:
  struct Dedup {
    int64_t message_id;
    TimePoint expires_at;
  };

  TimePoint Now() const {
    // Millisecond precision, like the SQLite adapter.
    return FromUnixMillis(ToUnixMillis(clock_.Now()));
  }
  TimePoint OrNow(TimePoint t) const {
    return t == TimePoint{} ? Now() : FromUnixMillis(ToUnixMillis(t));
  }
  static Error NotFound(std::string_view what, const std::string& id) {
    return MakeError(Errc::kNotFound, std::string(what) + " " + id + " not found");
  }
  std::optional<Error> TakeFailure() {
    std::optional<Error> f;
    f.swap(fail_next_);
    return f;
  }

  // One "transaction": the idempotency key check, the change, then the record. Changes are
  // applied by `change` only after its own checks pass, so a failure leaves nothing behind.
  template <class F>
  Status Mutate(const store::IdempotencyRecord* idem, F change) {
    if (auto f = TakeFailure()) return *f;
    if (idem != nullptr) {
      auto it = idem_.find({idem->user, idem->key});
      if (it != idem_.end() && it->second.created_at >= Now() - idem_retention_) {
        return MakeError(Errc::kAlreadyExists, "idempotency key already used: " + idem->key);
      }
    }
    Status st = change();
    if (!st.ok()) return st;
    if (idem != nullptr) {
      store::IdempotencyRecord rec = *idem;
      rec.created_at = OrNow(rec.created_at);
      idem_[{idem->user, idem->key}] = rec;
    }
    return {};
  }

  queue::SendOutcome SendLocked(const queue::OutgoingMessage& m) {
    const TimePoint now = Now();
    std::erase_if(dedup_, [&](const auto& kv) { return kv.second.expires_at <= now; });
    if (!m.dedup_id.empty()) {
      auto it = dedup_.find(m.dedup_id);
      if (it != dedup_.end()) {
        ++deduplicated_total_;
        return queue::SendOutcome{std::to_string(it->second.message_id), true};
      }
    }
    QueueMessage msg;
    msg.id = ++last_message_id_;
    msg.group_id = m.group_id;
    msg.dedup_id = m.dedup_id;
    msg.priority = m.priority;
    msg.body = m.body;
    msg.enqueued_at = now;
    msg.visible_at = now + std::max(m.delay, std::chrono::milliseconds{0});
    messages_.emplace(msg.id, msg);
    if (!m.dedup_id.empty()) dedup_[m.dedup_id] = Dedup{msg.id, now + dedup_window_};
    ++enqueued_total_;
    return queue::SendOutcome{std::to_string(msg.id), false};
  }

  const Clock& clock_;
  const std::chrono::seconds dedup_window_;
  const std::chrono::hours idem_retention_;

  mutable std::mutex mu_;
  std::optional<Error> fail_next_;
  std::map<UserId, store::User> users_;
  std::map<ConnectionId, store::Connection> connections_;
  std::map<SyncConfigId, store::SyncConfig> configs_;
  std::map<JobId, store::Job> jobs_;
  std::map<std::pair<UserId, std::string>, store::IdempotencyRecord> idem_;
  std::map<UserId, store::UserDeletion> deletions_;
  std::vector<ControlEvent> events_;
  int64_t last_seq_ = 0;
  std::map<int64_t, QueueMessage> messages_;
  std::map<std::string, Dedup> dedup_;
  int64_t last_message_id_ = 0;
  int64_t enqueued_total_ = 0;
  int64_t deduplicated_total_ = 0;
};

}  // namespace syncwell::fakes
