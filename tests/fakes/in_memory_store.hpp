#pragma once
// InMemoryStore: an in-memory fake of store::Store and queue::JobQueue with the same semantics
// as the SQLite adapter (checked by tests/conformance/store_suite.hpp). The queue part is an
// InMemoryQueue (fakes/in_memory_queue.hpp, checked by job_queue_suite.hpp) sharing the clock.
// For unit tests of handlers. Thread-safe: one mutex guards the store part, so each method is
// one atomic "transaction" (the queue has its own lock, taken inside). Header-only.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "fakes/in_memory_queue.hpp"
#include "queue/job_queue.hpp"
#include "store/store.hpp"

namespace syncwell::fakes {

class InMemoryStore final : public store::Store, public queue::JobQueue {
 public:
  using QueueMessage = InMemoryQueue::Message;

  explicit InMemoryStore(const Clock& clock,
                         std::chrono::seconds dedup_window = std::chrono::seconds{300},
                         std::chrono::hours idempotency_retention = std::chrono::hours{24})
      : clock_(clock),
        idem_retention_(idempotency_retention),
        queue_(clock, QueueSettingsWith(dedup_window)) {}

  // Test hooks.
  std::vector<QueueMessage> Messages() const { return queue_.Messages(); }
  // Makes the next mutation fail with `e` (nothing written), to test handler error paths.
  void FailNextWrite(Error e) {
    std::lock_guard lock(mu_);
    fail_next_ = std::move(e);
  }
  // Makes the next ListDueUsers fail with `e` (scheduler error paths).
  void FailNextListDueUsers(Error e) {
    std::lock_guard lock(mu_);
    fail_next_list_due_ = std::move(e);
  }
  // Successful store mutations so far (write avoidance checks; queue operations not counted).
  int64_t MutationCount() const {
    std::lock_guard lock(mu_);
    return mutations_;
  }
  // Every ledger row (tests inspect the sync ledger).
  std::vector<store::LedgerEntry> LedgerRows() const {
    std::lock_guard lock(mu_);
    std::vector<store::LedgerEntry> out;
    for (const auto& [k, e] : ledger_) out.push_back(e);
    return out;
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
      schedule_[user] = Sched{store::ScheduleShardOf(user), 0, {}};
      ++mutations_;
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
      if (it->second.tier != user.tier) schedule_[user.id].next_ms = 0;  // re-placed
      it->second.tier = user.tier;
      it->second.updated_at = Now();
      ++mutations_;
      return {};
    }
    store::User u = user;
    if (u.settings_json.empty()) u.settings_json = "{}";
    u.created_at = OrNow(u.created_at);
    u.updated_at = Now();
    users_.emplace(u.id, u);
    schedule_[u.id] = Sched{store::ScheduleShardOf(u.id), 0, {}};
    ++mutations_;
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
    return CreateConnection(c, nullptr);
  }
  Status CreateConnection(const store::Connection& c,
                          const store::IdempotencyRecord* idem) override {
    std::lock_guard lock(mu_);
    return Mutate(idem, [&]() -> Status {
      if (connections_.count(c.id)) return MakeError(Errc::kAlreadyExists, "connection exists");
      store::Connection v = c;
      v.created_at = OrNow(v.created_at);
      v.updated_at = OrNow(v.updated_at);
      v.token_expires_at = FromUnixMillis(ToUnixMillis(v.token_expires_at));
      connections_.emplace(c.id, v);
      return {};
    });
  }
  Status ReplaceConnectionGrant(const store::Connection& c,
                                const store::IdempotencyRecord* idem) override {
    std::lock_guard lock(mu_);
    return Mutate(idem, [&]() -> Status {
      auto it = connections_.find(c.id);
      if (it == connections_.end() || it->second.user != c.user) {
        return NotFound("connection", c.id.str());
      }
      auto& v = it->second;
      v.access_token_sealed = c.access_token_sealed;
      v.refresh_token_sealed = c.refresh_token_sealed;
      v.token_expires_at = FromUnixMillis(ToUnixMillis(c.token_expires_at));
      v.provider_user_id = c.provider_user_id;
      v.status = c.status;
      v.token_version += 1;
      v.updated_at = Now();
      return {};
    });
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
  Result<std::vector<store::Connection>> FindConnectionsByProviderUser(
      const std::string& provider, const std::string& provider_user_id) override {
    std::lock_guard lock(mu_);
    std::vector<store::Connection> out;
    for (const auto& [id, c] : connections_) {
      if (c.provider == provider && c.provider_user_id == provider_user_id) out.push_back(c);
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
      std::erase_if(cursors_, [&](const auto& kv) {
        const auto& k = kv.first;
        return k.user == user && (k.source == id || k.destination == id);
      });
      std::erase_if(ledger_, [&](const auto& kv) {
        const auto& e = kv.second;
        return e.user == user && (e.source == id || e.destination == id);
      });
      return {};
    });
  }
  Status UpdateConnectionTokens(const UserId& user, const ConnectionId& id,
                                const std::string& access_sealed, const std::string& refresh_sealed,
                                TimePoint expires_at, int64_t expected_token_version) override {
    std::lock_guard lock(mu_);
    return Mutate(nullptr, [&]() -> Status {
      auto it = connections_.find(id);
      if (it == connections_.end() || it->second.user != user) {
        return NotFound("connection", id.str());
      }
      auto& c = it->second;
      if (c.token_version != expected_token_version) {
        return MakeError(Errc::kConflict, "connection " + id.str() + " tokens are at version " +
                                              std::to_string(c.token_version));
      }
      c.access_token_sealed = access_sealed;
      c.refresh_token_sealed = refresh_sealed;
      c.token_expires_at = FromUnixMillis(ToUnixMillis(expires_at));
      c.token_version = expected_token_version + 1;
      c.updated_at = Now();
      return {};
    });
  }
  Status SetConnectionStatus(const UserId& user, const ConnectionId& id,
                             store::ConnectionStatus status) override {
    std::lock_guard lock(mu_);
    return Mutate(nullptr, [&]() -> Status {
      auto it = connections_.find(id);
      if (it == connections_.end() || it->second.user != user) {
        return NotFound("connection", id.str());
      }
      it->second.status = status;
      it->second.updated_at = Now();
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
      (void)queue_.Send(msg);  // cannot fail; the store lock makes job + message one step
      return {};
    });
  }
  // For tests of the API's inline intake: with async writes on, CreateJobAsync parks the write
  // until RunParkedWrites() runs the parked ones, in order, on the calling thread.
  void SetAsyncWrites(bool on) { async_writes_ = on; }
  bool SupportsAsyncWrites() const override { return async_writes_; }
  void CreateJobAsync(store::Job job, queue::OutgoingMessage msg,
                      std::optional<store::IdempotencyRecord> idem,
                      std::function<void(Status)> done) override {
    if (!async_writes_) {
      Store::CreateJobAsync(std::move(job), std::move(msg), std::move(idem), std::move(done));
      return;
    }
    std::lock_guard lock(parked_mu_);
    parked_.push_back(
        [this, job = std::move(job), msg = std::move(msg), idem = std::move(idem),
         done = std::move(done)] { done(CreateJob(job, msg, idem ? &*idem : nullptr)); });
  }
  size_t RunParkedWrites() {
    std::vector<std::function<void()>> run;
    {
      std::lock_guard lock(parked_mu_);
      run.swap(parked_);
    }
    for (auto& w : run) w();
    return run.size();
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
    ++mutations_;
    return {};
  }

  // ---- sync state ----
  Result<store::SyncCursor> GetCursor(const store::SyncCursorKey& key) override {
    std::lock_guard lock(mu_);
    auto it = cursors_.find(key);
    if (it == cursors_.end()) return MakeError(Errc::kNotFound, "no sync cursor");
    return it->second;
  }
  Result<std::vector<store::LedgerEntry>> GetLedgerEntries(
      const UserId& user, const ConnectionId& destination, const ConnectionId& source,
      const std::vector<std::string>& source_record_ids) override {
    std::lock_guard lock(mu_);
    std::vector<store::LedgerEntry> out;
    for (const auto& id : source_record_ids) {
      for (auto it = ledger_.lower_bound({destination, source, id, std::string()});
           it != ledger_.end() && it->first.destination == destination &&
           it->first.source == source && it->first.source_record_id == id;
           ++it) {
        if (it->second.user == user) out.push_back(it->second);
      }
    }
    return out;
  }
  Result<std::vector<std::string>> OwnWrittenRecords(
      const UserId& user, const ConnectionId& at,
      const std::vector<std::string>& record_ids) override {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& id : record_ids) {
      if (id.empty()) continue;
      for (const auto& [k, e] : ledger_) {
        if (e.destination == at && e.user == user && e.state == store::LedgerState::kDone &&
            e.dest_record_id == id) {
          out.push_back(id);
          break;
        }
      }
    }
    return out;
  }
  Status RecordPendingWrites(const std::vector<store::LedgerEntry>& entries) override {
    std::lock_guard lock(mu_);
    if (entries.empty()) return {};
    return Mutate(nullptr, [&]() -> Status {
      for (const auto& e : entries) {
        auto [it, inserted] = ledger_.try_emplace(KeyOf(e), e);
        auto& row = it->second;
        if (inserted) {
          row.dest_record_id.clear();
          row.state = store::LedgerState::kPending;
        } else if (row.state == store::LedgerState::kPending) {
          row.job = e.job;
          row.source_modified_ms = e.source_modified_ms;
        } else {
          continue;  // done stays done
        }
        row.updated_at = Now();
      }
      return {};
    });
  }
  Status CommitSync(const store::SyncCommit& c) override {
    std::lock_guard lock(mu_);
    return Mutate(nullptr, [&]() -> Status {
      // Every check first, so that a failure leaves nothing behind.
      if (c.cursor) {
        auto it = cursors_.find(c.cursor->key);
        const int64_t have = it == cursors_.end() ? 0 : it->second.version;
        if (have != c.cursor->expected_version) {
          return MakeError(Errc::kConflict, "sync cursor moved (expected version " +
                                                std::to_string(c.cursor->expected_version) + ")");
        }
      }
      if (c.job && !jobs_.count(c.job->id)) return NotFound("job", c.job->id.str());
      if (c.cursor) {
        auto& cur = cursors_[c.cursor->key];
        cur.key = c.cursor->key;
        cur.last_sync_ms = c.cursor->last_sync_ms;
        cur.version = c.cursor->expected_version + 1;
        cur.updated_at = Now();
      }
      for (const auto& e : c.done) {
        auto& row = ledger_[KeyOf(e)];
        row = e;
        row.state = store::LedgerState::kDone;
        row.updated_at = Now();
      }
      if (c.job) {
        auto& j = jobs_.at(c.job->id);
        j.status = c.job->status;
        j.error = c.job->error;
        j.summary = c.job->summary;
        j.updated_at = Now();
      }
      return {};
    });
  }

  // ---- idempotency ----
  Result<std::optional<store::IdempotencyRecord>> GetIdempotency(const UserId& user,
                                                                 const std::string& key) override {
    std::lock_guard lock(mu_);
    ++idempotency_reads_;
    auto it = idem_.find({user, key});
    if (it == idem_.end() || it->second.created_at < Now() - idem_retention_) {
      return std::optional<store::IdempotencyRecord>{};
    }
    return std::optional<store::IdempotencyRecord>(it->second);
  }
  // How often a stored idempotency record was looked up (GetIdempotency, GetWriteGuard).
  int idempotency_reads() const {
    std::lock_guard lock(mu_);
    return idempotency_reads_;
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
    schedule_.erase(user);
    std::erase_if(connections_, [&](const auto& kv) { return kv.second.user == user; });
    std::erase_if(configs_, [&](const auto& kv) { return kv.second.user == user; });
    std::erase_if(jobs_, [&](const auto& kv) { return kv.second.user == user; });
    std::erase_if(idem_, [&](const auto& kv) { return kv.first.first == user; });
    std::erase_if(cursors_, [&](const auto& kv) { return kv.first.user == user; });
    std::erase_if(ledger_, [&](const auto& kv) { return kv.second.user == user; });
    ++mutations_;
    queue_.PurgeGroup(user.str());
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
    ++mutations_;
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

  // ---- the tiered schedule ----
  Result<std::vector<store::ScheduledUser>> ListDueUsers(int shard, TimePoint now,
                                                         size_t limit) override {
    std::lock_guard lock(mu_);
    if (fail_next_list_due_) {
      Error e = *fail_next_list_due_;
      fail_next_list_due_.reset();
      return e;
    }
    std::vector<store::ScheduledUser> out;
    for (const auto& [id, sc] : schedule_) {
      if (sc.shard != shard || sc.next_ms > ToUnixMillis(now)) continue;
      store::ScheduledUser u;
      u.user = id;
      u.tier = users_.at(id).tier;
      u.shard = sc.shard;
      u.next_sync_at = FromUnixMillis(sc.next_ms);
      u.recent_slots = sc.recent;
      auto d = deletions_.find(id);
      u.deletion_pending =
          d != deletions_.end() && d->second.state == store::DeletionState::kPending;
      out.push_back(std::move(u));
    }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return a.next_sync_at < b.next_sync_at;  // ties: id order (the map's)
    });
    if (out.size() > limit) out.resize(limit);
    return out;
  }
  Status AdvanceSchedule(const UserId& user, TimePoint expected_next, TimePoint next,
                         const std::vector<TimePoint>& recent_slots) override {
    std::lock_guard lock(mu_);
    if (auto f = TakeFailure()) return *f;
    auto it = schedule_.find(user);
    if (it == schedule_.end()) return NotFound("user", user.str());
    if (it->second.next_ms != ToUnixMillis(expected_next)) {
      return MakeError(Errc::kConflict, "schedule of user moved");
    }
    it->second.next_ms = ToUnixMillis(next);
    it->second.recent.clear();
    for (const TimePoint& t : recent_slots) {
      if (it->second.recent.size() == store::kRecentSlots) break;
      it->second.recent.push_back(FromUnixMillis(ToUnixMillis(t)));
    }
    ++mutations_;
    return {};
  }
  Result<int64_t> AssignScheduleShards(size_t) override { return int64_t{0}; }  // always set

  Status Ping() override { return {}; }

  // ---- JobQueue: forwarded to the InMemoryQueue fake (same semantics) ----
  Result<queue::SendOutcome> Send(const queue::OutgoingMessage& m) override {
    {
      std::lock_guard lock(mu_);
      if (auto f = TakeFailure()) return *f;
    }
    return queue_.Send(m);
  }
  Result<queue::QueueStats> Stats() override { return queue_.Stats(); }
  Result<std::vector<queue::ReceivedMessage>> Receive(const queue::ReceiveOptions& o) override {
    return queue_.Receive(o);
  }
  Status Delete(std::string_view receipt) override { return queue_.Delete(receipt); }
  Status ChangeVisibility(std::string_view receipt, std::chrono::milliseconds t) override {
    return queue_.ChangeVisibility(receipt, t);
  }
  Status Defer(std::string_view receipt, std::chrono::milliseconds delay,
               std::string_view reason) override {
    return queue_.Defer(receipt, delay, reason);
  }
  Result<queue::FailOutcome> Fail(std::string_view receipt, std::string_view error,
                                  std::chrono::milliseconds retry_delay) override {
    return queue_.Fail(receipt, error, retry_delay);
  }
  Status DeadLetter(std::string_view receipt, std::string_view error) override {
    return queue_.DeadLetter(receipt, error);
  }
  Result<std::vector<queue::DlqEntry>> DlqList(const queue::DlqListOptions& o) override {
    return queue_.DlqList(o);
  }
  Result<queue::DlqEntry> DlqGet(std::string_view id) override { return queue_.DlqGet(id); }
  Status DlqRedrive(std::string_view id) override { return queue_.DlqRedrive(id); }
  Result<int64_t> DlqRedriveAll() override { return queue_.DlqRedriveAll(); }
  Result<int64_t> DlqPurge() override { return queue_.DlqPurge(); }

 private:
  static queue::QueueSettings QueueSettingsWith(std::chrono::seconds dedup_window) {
    queue::QueueSettings s;
    s.dedup_window = dedup_window;
    return s;
  }
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
    ++mutations_;
    if (idem != nullptr) {
      store::IdempotencyRecord rec = *idem;
      rec.created_at = OrNow(rec.created_at);
      idem_[{idem->user, idem->key}] = rec;
    }
    return {};
  }

  const Clock& clock_;
  const std::chrono::hours idem_retention_;
  int idempotency_reads_ = 0;

  mutable std::mutex mu_;
  std::atomic<bool> async_writes_{false};
  std::mutex parked_mu_;
  std::vector<std::function<void()>> parked_;
  std::optional<Error> fail_next_;
  std::map<UserId, store::User> users_;
  std::map<ConnectionId, store::Connection> connections_;
  std::map<SyncConfigId, store::SyncConfig> configs_;
  std::map<JobId, store::Job> jobs_;
  std::map<std::pair<UserId, std::string>, store::IdempotencyRecord> idem_;
  std::map<UserId, store::UserDeletion> deletions_;
  struct Sched {
    int shard = 0;
    int64_t next_ms = 0;  // 0 = not placed yet
    std::vector<TimePoint> recent;
  };
  std::map<UserId, Sched> schedule_;
  std::optional<Error> fail_next_list_due_;
  struct LedgerKey {
    ConnectionId destination;
    ConnectionId source;
    std::string source_record_id;
    std::string fingerprint;
    auto operator<=>(const LedgerKey&) const = default;
  };
  static LedgerKey KeyOf(const store::LedgerEntry& e) {
    return LedgerKey{e.destination, e.source, e.source_record_id, e.fingerprint};
  }
  std::map<store::SyncCursorKey, store::SyncCursor> cursors_;
  std::map<LedgerKey, store::LedgerEntry> ledger_;
  int64_t mutations_ = 0;
  std::vector<ControlEvent> events_;
  int64_t last_seq_ = 0;
  InMemoryQueue queue_;
};

}  // namespace syncwell::fakes
