#pragma once
// The Store (+ JobQueue send/stats) contract, stated once and instantiated for every adapter and
// the fake (store_conformance_test.cpp). A harness type H provides:
//   explicit H(ManualClock& clock);       // a fresh, empty, started store
//   store::Store& store();
//   queue::JobQueue& queue();              // the queue in the same database as store()
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "queue/job_queue.hpp"
#include "store/store.hpp"

namespace syncwell::conformance {

using namespace std::chrono_literals;

template <class H>
class StoreConformance : public ::testing::Test {
 protected:
  StoreConformance() : h_(clock_) {}

  store::Store& store() { return h_.store(); }
  queue::JobQueue& queue() { return h_.queue(); }

  static store::Connection Conn(const std::string& user, const std::string& id,
                                const std::string& provider = "fitbit") {
    store::Connection c;
    c.id = ConnectionId(id);
    c.user = UserId(user);
    c.provider = provider;
    c.provider_user_id = "pu-" + id;
    c.access_token_sealed = std::string("sealed\0access", 13);  // binary-safe
    c.refresh_token_sealed = "sealed-refresh";
    return c;
  }
  static store::SyncConfig Cfg(const std::string& user, const std::string& id,
                               const std::string& src, const std::string& dst) {
    store::SyncConfig c;
    c.id = SyncConfigId(id);
    c.user = UserId(user);
    c.source = ConnectionId(src);
    c.destination = ConnectionId(dst);
    c.data_type = "workout";
    c.conflict_strategy = "newest_wins";
    return c;
  }
  static store::Job MakeJob(const std::string& user, const std::string& id) {
    store::Job j;
    j.id = JobId(id);
    j.user = UserId(user);
    j.source = ConnectionId("conn_src");
    j.destination = ConnectionId("conn_dst");
    j.data_type = "steps";
    j.mode = "manual";
    j.priority = "high";
    return j;
  }
  static queue::OutgoingMessage Msg(const std::string& user, const std::string& dedup,
                                    std::chrono::milliseconds delay = 0ms) {
    queue::OutgoingMessage m;
    m.dedup_id = dedup;
    m.group_id = user;
    m.priority = queue::Priority::kHigh;
    m.delay = delay;
    m.body = R"({"jobId":"x"})";
    return m;
  }
  static store::IdempotencyRecord Idem(const std::string& user, const std::string& key,
                                       const std::string& body = "{}") {
    store::IdempotencyRecord r;
    r.user = UserId(user);
    r.key = key;
    r.request_hash = "hash-" + key;
    r.status_code = 202;
    r.response_body = body;
    return r;
  }

  ManualClock clock_;
  H h_;
};

TYPED_TEST_SUITE_P(StoreConformance);

TYPED_TEST_P(StoreConformance, EnsureUserCreatesOnceAndStoredTierWins) {
  auto u = this->store().EnsureUser(UserId("u1"), store::Tier::kPro);
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->tier, store::Tier::kPro);
  auto again = this->store().EnsureUser(UserId("u1"), store::Tier::kFree);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->tier, store::Tier::kPro);
  EXPECT_EQ(this->store().GetUser(UserId("nobody")).error().code, Errc::kNotFound);

  store::User admin;
  admin.id = UserId("u1");
  admin.tier = store::Tier::kFree;
  ASSERT_TRUE(this->store().UpsertUser(admin).ok());
  EXPECT_EQ(this->store().GetUser(UserId("u1"))->tier, store::Tier::kFree);
  ASSERT_TRUE(this->store().Ping().ok());
}

TYPED_TEST_P(StoreConformance, UserSettingsUpdateAndMissingUser) {
  ASSERT_TRUE(this->store().EnsureUser(UserId("u1"), store::Tier::kFree).ok());
  auto idem = this->Idem("u1", "k-settings");
  ASSERT_TRUE(this->store().UpdateUserSettings(UserId("u1"), R"({"a":1})", &idem).ok());
  EXPECT_EQ(this->store().GetUser(UserId("u1"))->settings_json, R"({"a":1})");
  auto missing = this->Idem("ghost", "k1");
  EXPECT_EQ(this->store().UpdateUserSettings(UserId("ghost"), "{}", &missing).error().code,
            Errc::kNotFound);
  EXPECT_FALSE(this->store().GetIdempotency(UserId("ghost"), "k1")->has_value());
}

TYPED_TEST_P(StoreConformance, ReadsAreScopedByUser) {
  auto& s = this->store();
  ASSERT_TRUE(s.CreateConnection(this->Conn("alice", "conn_a")).ok());
  ASSERT_TRUE(s.CreateSyncConfig(this->Cfg("alice", "cfg_a", "conn_a", "conn_a"), nullptr).ok());
  ASSERT_TRUE(s.CreateJob(this->MakeJob("alice", "job_a"), this->Msg("alice", "d1"), nullptr).ok());

  auto c = s.GetConnection(UserId("alice"), ConnectionId("conn_a"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_token_sealed, std::string("sealed\0access", 13));
  EXPECT_EQ(c->refresh_token_sealed, "sealed-refresh");
  EXPECT_EQ(c->status, store::ConnectionStatus::kActive);

  EXPECT_EQ(s.GetConnection(UserId("bob"), ConnectionId("conn_a")).error().code, Errc::kNotFound);
  EXPECT_EQ(s.GetSyncConfig(UserId("bob"), SyncConfigId("cfg_a")).error().code, Errc::kNotFound);
  EXPECT_EQ(s.GetJob(UserId("bob"), JobId("job_a")).error().code, Errc::kNotFound);
  EXPECT_TRUE(s.ListConnections(UserId("bob"))->empty());
  EXPECT_TRUE(s.ListSyncConfigs(UserId("bob"))->empty());
  EXPECT_EQ(s.ListConnections(UserId("alice"))->size(), 1u);
  // Bob can neither delete nor update Alice's records.
  EXPECT_EQ(s.DeleteConnection(UserId("bob"), ConnectionId("conn_a"), nullptr).error().code,
            Errc::kNotFound);
  EXPECT_EQ(s.UpdateSyncConfig(this->Cfg("bob", "cfg_a", "x", "y"), 1, nullptr).error().code,
            Errc::kNotFound);
  EXPECT_EQ(
      s.DeleteSyncConfig(UserId("bob"), SyncConfigId("cfg_a"), std::nullopt, nullptr).error().code,
      Errc::kNotFound);
  EXPECT_TRUE(s.GetConnection(UserId("alice"), ConnectionId("conn_a")).ok());
  EXPECT_EQ(s.GetSyncConfig(UserId("alice"), SyncConfigId("cfg_a"))->source.str(), "conn_a");
}

TYPED_TEST_P(StoreConformance, DuplicateIdsAreRejected) {
  auto& s = this->store();
  ASSERT_TRUE(s.CreateConnection(this->Conn("alice", "conn_a")).ok());
  EXPECT_EQ(s.CreateConnection(this->Conn("alice", "conn_a")).error().code, Errc::kAlreadyExists);
}

TYPED_TEST_P(StoreConformance, IdempotencyRecordIsWrittenWithTheChange) {
  auto& s = this->store();
  auto idem = this->Idem("alice", "key-1", R"({"id":"cfg_1"})");
  ASSERT_TRUE(s.CreateSyncConfig(this->Cfg("alice", "cfg_1", "c1", "c2"), &idem).ok());
  auto rec = s.GetIdempotency(UserId("alice"), "key-1");
  ASSERT_TRUE(rec.ok());
  ASSERT_TRUE(rec->has_value());
  EXPECT_EQ((*rec)->request_hash, "hash-key-1");
  EXPECT_EQ((*rec)->status_code, 202);
  EXPECT_EQ((*rec)->response_body, R"({"id":"cfg_1"})");
  // Another user's key space is separate.
  EXPECT_FALSE(s.GetIdempotency(UserId("bob"), "key-1")->has_value());

  // Same key again: kAlreadyExists and nothing changes.
  auto idem2 = this->Idem("alice", "key-1", "other");
  EXPECT_EQ(s.CreateSyncConfig(this->Cfg("alice", "cfg_2", "c1", "c2"), &idem2).error().code,
            Errc::kAlreadyExists);
  EXPECT_EQ(s.GetSyncConfig(UserId("alice"), SyncConfigId("cfg_2")).error().code, Errc::kNotFound);
  EXPECT_EQ((*s.GetIdempotency(UserId("alice"), "key-1"))->response_body, R"({"id":"cfg_1"})");

  EXPECT_EQ(
      s.CreateJob(this->MakeJob("alice", "job_2"), this->Msg("alice", "dj2"), &idem2).error().code,
      Errc::kAlreadyExists);
  EXPECT_EQ(s.GetJob(UserId("alice"), JobId("job_2")).error().code, Errc::kNotFound);
  auto stats = this->queue().Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, 0);
  EXPECT_EQ(stats->enqueued_total, 0);

  // The same key works for another user.
  auto bob = this->Idem("bob", "key-1");
  EXPECT_TRUE(s.CreateSyncConfig(this->Cfg("bob", "cfg_b", "c1", "c2"), &bob).ok());
}

TYPED_TEST_P(StoreConformance, FailedChangeWritesNoIdempotencyRecord) {
  auto& s = this->store();
  auto idem = this->Idem("alice", "k-del");
  EXPECT_EQ(s.DeleteConnection(UserId("alice"), ConnectionId("conn_missing"), &idem).error().code,
            Errc::kNotFound);
  EXPECT_FALSE(s.GetIdempotency(UserId("alice"), "k-del")->has_value());

  ASSERT_TRUE(s.CreateSyncConfig(this->Cfg("alice", "cfg_1", "c1", "c2"), nullptr).ok());
  auto idem2 = this->Idem("alice", "k-upd");
  EXPECT_EQ(s.UpdateSyncConfig(this->Cfg("alice", "cfg_1", "c1", "c3"), 7, &idem2).error().code,
            Errc::kConflict);
  EXPECT_FALSE(s.GetIdempotency(UserId("alice"), "k-upd")->has_value());
  EXPECT_EQ(s.GetSyncConfig(UserId("alice"), SyncConfigId("cfg_1"))->destination.str(), "c2");

  // Duplicate job id with a fresh key: fails, and neither record nor message is written.
  ASSERT_TRUE(s.CreateJob(this->MakeJob("alice", "job_1"), this->Msg("alice", "m1"), nullptr).ok());
  auto idem3 = this->Idem("alice", "k-job");
  EXPECT_FALSE(s.CreateJob(this->MakeJob("alice", "job_1"), this->Msg("alice", "m2"), &idem3).ok());
  EXPECT_FALSE(s.GetIdempotency(UserId("alice"), "k-job")->has_value());
  EXPECT_EQ(this->queue().Stats()->enqueued_total, 1);
  // The key is still usable once the change can succeed.
  EXPECT_TRUE(s.CreateJob(this->MakeJob("alice", "job_3"), this->Msg("alice", "m3"), &idem3).ok());
  EXPECT_TRUE(s.GetIdempotency(UserId("alice"), "k-job")->has_value());
}

TYPED_TEST_P(StoreConformance, SyncConfigOptimisticVersions) {
  auto& s = this->store();
  ASSERT_TRUE(s.CreateSyncConfig(this->Cfg("alice", "cfg_1", "c1", "c2"), nullptr).ok());
  EXPECT_EQ(s.GetSyncConfig(UserId("alice"), SyncConfigId("cfg_1"))->version, 1);

  auto upd = this->Cfg("alice", "cfg_1", "c1", "c3");
  upd.conflict_strategy = "source_wins";
  upd.enabled = false;
  ASSERT_TRUE(s.UpdateSyncConfig(upd, 1, nullptr).ok());
  auto got = s.GetSyncConfig(UserId("alice"), SyncConfigId("cfg_1"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->version, 2);
  EXPECT_EQ(got->destination.str(), "c3");
  EXPECT_EQ(got->conflict_strategy, "source_wins");
  EXPECT_FALSE(got->enabled);

  EXPECT_EQ(s.UpdateSyncConfig(upd, 1, nullptr).error().code, Errc::kConflict);  // stale
  EXPECT_EQ(s.UpdateSyncConfig(this->Cfg("alice", "cfg_none", "a", "b"), 1, nullptr).error().code,
            Errc::kNotFound);
  EXPECT_EQ(s.DeleteSyncConfig(UserId("alice"), SyncConfigId("cfg_1"), 1, nullptr).error().code,
            Errc::kConflict);
  EXPECT_TRUE(s.GetSyncConfig(UserId("alice"), SyncConfigId("cfg_1")).ok());
  ASSERT_TRUE(s.DeleteSyncConfig(UserId("alice"), SyncConfigId("cfg_1"), 2, nullptr).ok());
  EXPECT_EQ(s.GetSyncConfig(UserId("alice"), SyncConfigId("cfg_1")).error().code, Errc::kNotFound);

  ASSERT_TRUE(s.CreateSyncConfig(this->Cfg("alice", "cfg_2", "c1", "c2"), nullptr).ok());
  ASSERT_TRUE(
      s.DeleteSyncConfig(UserId("alice"), SyncConfigId("cfg_2"), std::nullopt, nullptr).ok());
  EXPECT_EQ(s.DeleteSyncConfig(UserId("alice"), SyncConfigId("cfg_2"), std::nullopt, nullptr)
                .error()
                .code,
            Errc::kNotFound);
}

TYPED_TEST_P(StoreConformance, DeleteConnectionRemovesConfigsUsingIt) {
  auto& s = this->store();
  for (auto id : {"conn_a", "conn_b", "conn_c", "conn_d"}) {
    ASSERT_TRUE(s.CreateConnection(this->Conn("alice", id)).ok());
  }
  ASSERT_TRUE(s.CreateSyncConfig(this->Cfg("alice", "cfg_ab", "conn_a", "conn_b"), nullptr).ok());
  ASSERT_TRUE(s.CreateSyncConfig(this->Cfg("alice", "cfg_ba", "conn_b", "conn_a"), nullptr).ok());
  ASSERT_TRUE(s.CreateSyncConfig(this->Cfg("alice", "cfg_cd", "conn_c", "conn_d"), nullptr).ok());
  auto idem = this->Idem("alice", "k-delconn");
  ASSERT_TRUE(s.DeleteConnection(UserId("alice"), ConnectionId("conn_a"), &idem).ok());
  EXPECT_EQ(s.GetConnection(UserId("alice"), ConnectionId("conn_a")).error().code, Errc::kNotFound);
  auto cfgs = s.ListSyncConfigs(UserId("alice"));
  ASSERT_TRUE(cfgs.ok());
  ASSERT_EQ(cfgs->size(), 1u);
  EXPECT_EQ((*cfgs)[0].id.str(), "cfg_cd");
  EXPECT_EQ(s.ListConnections(UserId("alice"))->size(), 3u);
  EXPECT_TRUE(s.GetIdempotency(UserId("alice"), "k-delconn")->has_value());
}

TYPED_TEST_P(StoreConformance, CreateJobThenGetJobAndUpdateStatus) {
  auto& s = this->store();
  auto job = this->MakeJob("alice", "job_1");
  job.mode = "historical";
  job.priority = "low";
  job.start_date = "2025-01-01";
  job.end_date = "2025-12-31";
  auto idem = this->Idem("alice", "k-job", R"({"jobId":"job_1","status":"QUEUED"})");
  ASSERT_TRUE(s.CreateJob(job, this->Msg("alice", "dedup-1"), &idem).ok());
  auto got = s.GetJob(UserId("alice"), JobId("job_1"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, store::JobStatus::kQueued);
  EXPECT_EQ(got->mode, "historical");
  EXPECT_EQ(got->priority, "low");
  EXPECT_EQ(got->start_date, "2025-01-01");
  EXPECT_EQ(got->end_date, "2025-12-31");
  EXPECT_EQ(got->data_type, "steps");
  EXPECT_EQ(got->created_at, FromUnixMillis(ToUnixMillis(this->clock_.Now())));
  EXPECT_TRUE(s.GetIdempotency(UserId("alice"), "k-job")->has_value());
  auto stats = this->queue().Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, 1);
  EXPECT_EQ(stats->enqueued_total, 1);

  this->clock_.Advance(5s);
  ASSERT_TRUE(s.UpdateJobStatus(JobId("job_1"), store::JobStatus::kFailed, "boom").ok());
  got = s.GetJob(UserId("alice"), JobId("job_1"));
  EXPECT_EQ(got->status, store::JobStatus::kFailed);
  EXPECT_EQ(got->error, "boom");
  EXPECT_EQ(got->updated_at - got->created_at, 5s);
  EXPECT_EQ(s.UpdateJobStatus(JobId("job_none"), store::JobStatus::kRunning, "").error().code,
            Errc::kNotFound);
}

// The non-blocking CreateJob: the same outcome as CreateJob, its callback called exactly once
// (SQLite: on its completer thread after the group commit; others: the port's default).
TYPED_TEST_P(StoreConformance, CreateJobAsyncCompletesOnceWithCreateJobsOutcome) {
  auto& s = this->store();
  const auto create = [&](const char* job_id, const char* msg_id,
                          std::optional<store::IdempotencyRecord> idem) {
    auto calls = std::make_shared<std::atomic<int>>(0);
    std::promise<Status> done;
    auto fut = done.get_future();
    s.CreateJobAsync(
        this->MakeJob("alice", job_id), this->Msg("alice", msg_id), std::move(idem),
        [calls, done = std::make_shared<std::promise<Status>>(std::move(done))](Status st) mutable {
          if (calls->fetch_add(1) == 0) done->set_value(std::move(st));
        });
    Status st = fut.get();
    EXPECT_EQ(calls->load(), 1);
    return st;
  };
  auto idem = this->Idem("alice", "k-async", R"({"jobId":"job_a1","status":"QUEUED"})");
  ASSERT_TRUE(create("job_a1", "m-a1", idem).ok());
  auto got = s.GetJob(UserId("alice"), JobId("job_a1"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, store::JobStatus::kQueued);
  ASSERT_TRUE(s.GetIdempotency(UserId("alice"), "k-async")->has_value());
  EXPECT_EQ(this->queue().Stats()->enqueued_total, 1);
  // The key taken: kAlreadyExists, nothing written.
  EXPECT_EQ(create("job_a2", "m-a2", idem).error().code, Errc::kAlreadyExists);
  EXPECT_EQ(s.GetJob(UserId("alice"), JobId("job_a2")).error().code, Errc::kNotFound);
  EXPECT_EQ(this->queue().Stats()->enqueued_total, 1);
  // Without a record it still writes job and message together.
  ASSERT_TRUE(create("job_a3", "m-a3", std::nullopt).ok());
  EXPECT_TRUE(s.GetJob(UserId("alice"), JobId("job_a3")).ok());
  EXPECT_EQ(this->queue().Stats()->enqueued_total, 2);
}

// The non-blocking status write (the worker's RUNNING): callback once with UpdateJobStatus's
// outcome, and a write submitted after it returned always lands after it, without waiting for
// the callback in between.
TYPED_TEST_P(StoreConformance, UpdateJobStatusAsyncCommitsBeforeLaterWrites) {
  auto& s = this->store();
  ASSERT_TRUE(
      s.CreateJob(this->MakeJob("alice", "job_1"), this->Msg("alice", "m-1"), nullptr).ok());
  const auto async = [&](const char* job_id, store::JobStatus status) {
    auto calls = std::make_shared<std::atomic<int>>(0);
    auto done = std::make_shared<std::promise<Status>>();
    auto fut = done->get_future();
    s.UpdateJobStatusAsync(JobId(job_id), status, "", [calls, done](Status st) {
      if (calls->fetch_add(1) == 0) done->set_value(std::move(st));
    });
    return std::make_pair(calls, std::move(fut));
  };
  for (int i = 0; i < 20; ++i) {
    auto [calls, fut] = async("job_1", store::JobStatus::kRunning);
    ASSERT_TRUE(s.UpdateJobStatus(JobId("job_1"), store::JobStatus::kSucceeded, "").ok());
    EXPECT_TRUE(fut.get().ok());
    EXPECT_EQ(calls->load(), 1);
    EXPECT_EQ(s.GetJob(UserId("alice"), JobId("job_1"))->status, store::JobStatus::kSucceeded);
  }
  auto [calls, fut] = async("job_none", store::JobStatus::kRunning);
  EXPECT_EQ(fut.get().error().code, Errc::kNotFound);
  EXPECT_EQ(calls->load(), 1);
}

TYPED_TEST_P(StoreConformance, CreateJobDedupWritesJobButNotMessage) {
  auto& s = this->store();
  ASSERT_TRUE(
      s.CreateJob(this->MakeJob("alice", "job_1"), this->Msg("alice", "same"), nullptr).ok());
  ASSERT_TRUE(
      s.CreateJob(this->MakeJob("alice", "job_2"), this->Msg("alice", "same"), nullptr).ok());
  EXPECT_TRUE(s.GetJob(UserId("alice"), JobId("job_2")).ok());
  auto stats = this->queue().Stats();
  EXPECT_EQ(stats->visible, 1);
  EXPECT_EQ(stats->enqueued_total, 1);
  EXPECT_EQ(stats->deduplicated_total, 1);
}

TYPED_TEST_P(StoreConformance, QueueDedupInsideAndOutsideTheWindow) {
  auto& q = this->queue();
  auto first = q.Send(this->Msg("alice", "d-1"));
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_FALSE(first->deduplicated);
  EXPECT_FALSE(first->message_id.empty());

  this->clock_.Advance(299s);  // inside the 300 s window
  auto second = q.Send(this->Msg("alice", "d-1"));
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->deduplicated);
  EXPECT_EQ(second->message_id, first->message_id);
  auto other = q.Send(this->Msg("alice", "d-2"));
  EXPECT_FALSE(other->deduplicated);
  EXPECT_NE(other->message_id, first->message_id);

  this->clock_.Advance(2s);  // 301 s after the first send: outside the window
  auto third = q.Send(this->Msg("alice", "d-1"));
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(third->deduplicated);
  EXPECT_NE(third->message_id, first->message_id);

  auto stats = q.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, 3);
  EXPECT_EQ(stats->enqueued_total, 3);
  EXPECT_EQ(stats->deduplicated_total, 1);
  EXPECT_EQ(stats->in_flight, 0);
  EXPECT_EQ(stats->dlq, 0);
  EXPECT_NEAR(stats->oldest_age_seconds, 301.0, 0.01);
}

TYPED_TEST_P(StoreConformance, DelayedMessagesAreNotVisibleUntilDue) {
  auto& q = this->queue();
  ASSERT_TRUE(q.Send(this->Msg("alice", "late", 10s)).ok());
  auto s1 = q.Stats();
  EXPECT_EQ(s1->visible, 0);
  EXPECT_EQ(s1->delayed, 1);
  EXPECT_EQ(s1->oldest_age_seconds, 0.0);
  this->clock_.Advance(12s);
  auto s2 = q.Stats();
  EXPECT_EQ(s2->visible, 1);
  EXPECT_EQ(s2->delayed, 0);
  EXPECT_NEAR(s2->oldest_age_seconds, 2.0, 0.01);
}

TYPED_TEST_P(StoreConformance, PurgeUserRemovesEverythingOfThatUserOnly) {
  auto& s = this->store();
  for (auto user : {"alice", "bob"}) {
    const std::string u = user;
    ASSERT_TRUE(s.EnsureUser(UserId(u), store::Tier::kPro).ok());
    ASSERT_TRUE(s.CreateConnection(this->Conn(u, "conn_" + u)).ok());
    auto idem = this->Idem(u, "k-cfg");
    ASSERT_TRUE(s.CreateSyncConfig(this->Cfg(u, "cfg_" + u, "conn_" + u, "conn_" + u), &idem).ok());
    ASSERT_TRUE(s.CreateJob(this->MakeJob(u, "job_" + u), this->Msg(u, "dd-" + u), nullptr).ok());
  }
  ASSERT_TRUE(s.RequestUserDeletion(UserId("alice"), nullptr).ok());
  ASSERT_TRUE(s.PurgeUser(UserId("alice")).ok());

  const UserId alice("alice");
  EXPECT_EQ(s.GetUser(alice).error().code, Errc::kNotFound);
  EXPECT_TRUE(s.ListConnections(alice)->empty());
  EXPECT_TRUE(s.ListSyncConfigs(alice)->empty());
  EXPECT_EQ(s.GetJob(alice, JobId("job_alice")).error().code, Errc::kNotFound);
  EXPECT_FALSE(s.GetIdempotency(alice, "k-cfg")->has_value());
  auto stats = this->queue().Stats();
  EXPECT_EQ(stats->visible, 1);  // only bob's message is left
  EXPECT_EQ(s.GetUserDeletion(alice)->state, store::DeletionState::kCompleted);
  // Alice's dedup ids went with her messages: a new send is enqueued.
  EXPECT_FALSE(this->queue().Send(this->Msg("alice", "dd-alice"))->deduplicated);

  const UserId bob("bob");
  EXPECT_TRUE(s.GetUser(bob).ok());
  EXPECT_EQ(s.ListConnections(bob)->size(), 1u);
  EXPECT_EQ(s.ListSyncConfigs(bob)->size(), 1u);
  EXPECT_TRUE(s.GetJob(bob, JobId("job_bob")).ok());
  EXPECT_TRUE(s.GetIdempotency(bob, "k-cfg")->has_value());
  EXPECT_EQ(s.GetUserDeletion(bob)->state, store::DeletionState::kNone);
}

// A purge also removes the user's dead-lettered messages (and their dedup rows), which no
// index on the group alone finds in every adapter, and leaves other users' DLQ entries alone.
TYPED_TEST_P(StoreConformance, PurgeUserRemovesDeadLetteredMessagesOfThatUserOnly) {
  auto& s = this->store();
  auto& q = this->queue();
  for (auto user : {"alice", "bob"}) {
    const std::string u = user;
    ASSERT_TRUE(s.EnsureUser(UserId(u), store::Tier::kPro).ok());
    ASSERT_TRUE(
        s.CreateJob(this->MakeJob(u, "job1_" + u), this->Msg(u, "dead-" + u), nullptr).ok());
  }
  queue::ReceiveOptions ro;
  ro.max_messages = 10;
  auto got = q.Receive(ro);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 2u);
  for (const auto& m : *got) ASSERT_TRUE(q.DeadLetter(m.receipt, "test").ok());
  for (auto user : {"alice", "bob"}) {
    const std::string u = user;
    ASSERT_TRUE(
        s.CreateJob(this->MakeJob(u, "job2_" + u), this->Msg(u, "live-" + u), nullptr).ok());
  }
  ASSERT_EQ(q.Stats()->dlq, 2);

  ASSERT_TRUE(s.PurgeUser(UserId("alice")).ok());
  auto stats = q.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->dlq, 1);
  EXPECT_EQ(stats->visible, 1);
  auto dlq = q.DlqList({});
  ASSERT_TRUE(dlq.ok());
  ASSERT_EQ(dlq->size(), 1u);
  EXPECT_EQ((*dlq)[0].group_id, "bob");
  EXPECT_FALSE(q.Send(this->Msg("alice", "dead-alice"))->deduplicated);
  EXPECT_FALSE(q.Send(this->Msg("alice", "live-alice"))->deduplicated);
  EXPECT_TRUE(q.Send(this->Msg("bob", "dead-bob"))->deduplicated);
}

TYPED_TEST_P(StoreConformance, DeletionStatesPendingThenCompleted) {
  auto& s = this->store();
  const UserId u("alice");
  EXPECT_EQ(s.GetUserDeletion(u)->state, store::DeletionState::kNone);
  const TimePoint t0 = FromUnixMillis(ToUnixMillis(this->clock_.Now()));
  auto idem = this->Idem("alice", "k-del");
  ASSERT_TRUE(s.RequestUserDeletion(u, &idem).ok());
  this->clock_.Advance(1s);
  ASSERT_TRUE(s.RequestUserDeletion(UserId("bob"), nullptr).ok());
  ASSERT_TRUE(s.RequestUserDeletion(u, nullptr).ok());  // idempotent
  auto d = s.GetUserDeletion(u);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->state, store::DeletionState::kPending);
  EXPECT_EQ(d->requested_at, t0);
  EXPECT_FALSE(d->completed_at.has_value());
  auto pending = s.PendingDeletions(10);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].str(), "alice");  // oldest request first
  EXPECT_EQ(s.PendingDeletions(1)->size(), 1u);

  this->clock_.Advance(1s);
  ASSERT_TRUE(s.PurgeUser(u).ok());
  d = s.GetUserDeletion(u);
  EXPECT_EQ(d->state, store::DeletionState::kCompleted);
  ASSERT_TRUE(d->completed_at.has_value());
  EXPECT_EQ(*d->completed_at, t0 + 2s);
  pending = s.PendingDeletions(10);
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].str(), "bob");
}

// The combined reads agree with the single ones: GetConnections leaves out absent and other
// users' connections; GetWriteGuard is GetIdempotency (retention included) + GetUserDeletion.
TYPED_TEST_P(StoreConformance, CombinedReadsMatchTheSingleReads) {
  auto& s = this->store();
  ASSERT_TRUE(s.CreateConnection(this->Conn("alice", "conn_a")).ok());
  ASSERT_TRUE(s.CreateConnection(this->Conn("alice", "conn_b", "strava")).ok());
  ASSERT_TRUE(s.CreateConnection(this->Conn("bob", "conn_c")).ok());
  auto got = s.GetConnections(UserId("alice"), {ConnectionId("conn_b"), ConnectionId("conn_c"),
                                                ConnectionId("conn_a"), ConnectionId("nope")});
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), 2u);
  std::vector<std::string> ids{(*got)[0].id.str(), (*got)[1].id.str()};
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"conn_a", "conn_b"}));
  for (const auto& c : *got) {
    auto one = s.GetConnection(UserId("alice"), c.id);
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(c.provider, one->provider);
    EXPECT_EQ(c.access_token_sealed, one->access_token_sealed);
    EXPECT_EQ(c.status, one->status);
  }
  EXPECT_TRUE(s.GetConnections(UserId("bob"), {ConnectionId("conn_a")})->empty());
  EXPECT_TRUE(s.GetConnections(UserId("alice"), {})->empty());

  const UserId u("alice");
  auto none = s.GetWriteGuard(u, "k-guard");
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_FALSE(none->idempotency.has_value());
  EXPECT_EQ(none->deletion.state, store::DeletionState::kNone);

  ASSERT_TRUE(s.EnsureUser(u, store::Tier::kFree).ok());
  auto idem = this->Idem("alice", "k-guard", R"({"ok":true})");
  ASSERT_TRUE(s.UpdateUserSettings(u, "{}", &idem).ok());
  ASSERT_TRUE(s.RequestUserDeletion(u, nullptr).ok());
  auto both = s.GetWriteGuard(u, "k-guard");
  ASSERT_TRUE(both.ok()) << both.error().message;
  ASSERT_TRUE(both->idempotency.has_value());
  const auto single = s.GetIdempotency(u, "k-guard");
  ASSERT_TRUE(single.ok() && single->has_value());
  EXPECT_EQ(both->idempotency->request_hash, (*single)->request_hash);
  EXPECT_EQ(both->idempotency->status_code, (*single)->status_code);
  EXPECT_EQ(both->idempotency->response_body, R"({"ok":true})");
  EXPECT_EQ(both->idempotency->created_at, (*single)->created_at);
  EXPECT_EQ(both->deletion.state, store::DeletionState::kPending);
  EXPECT_EQ(both->deletion.requested_at, s.GetUserDeletion(u)->requested_at);
  EXPECT_FALSE(s.GetWriteGuard(UserId("bob"), "k-guard")->idempotency.has_value());

  this->clock_.Advance(std::chrono::hours{25});  // past the retention: the record is ignored
  EXPECT_FALSE(s.GetWriteGuard(u, "k-guard")->idempotency.has_value());
  ASSERT_TRUE(s.PurgeUser(u).ok());
  EXPECT_EQ(s.GetWriteGuard(u, "k-guard")->deletion.state, store::DeletionState::kCompleted);
}

TYPED_TEST_P(StoreConformance, ControlEventsInInsertionOrder) {
  auto& s = this->store();
  EXPECT_TRUE(s.ControlEventsAfter(0)->empty());
  ASSERT_TRUE(s.AddControlEvent("jwks_drop", "kid-2").ok());
  ASSERT_TRUE(s.AddControlEvent("jwks_drop", "kid-1").ok());
  ASSERT_TRUE(s.AddControlEvent("other", "x").ok());
  auto all = s.ControlEventsAfter(0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].value, "kid-2");
  EXPECT_EQ((*all)[1].value, "kid-1");
  EXPECT_EQ((*all)[2].kind, "other");
  EXPECT_LT((*all)[0].seq, (*all)[1].seq);
  EXPECT_LT((*all)[1].seq, (*all)[2].seq);
  auto rest = s.ControlEventsAfter((*all)[1].seq);
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].value, "x");
  EXPECT_TRUE(s.ControlEventsAfter((*all)[2].seq)->empty());
}

TYPED_TEST_P(StoreConformance, IdempotencyRetentionAndPurge) {
  auto& s = this->store();
  auto old_key = this->Idem("alice", "old");
  ASSERT_TRUE(s.UpdateUserSettings(UserId("alice"), "{}", &old_key).error().code ==
              Errc::kNotFound);
  ASSERT_TRUE(s.EnsureUser(UserId("alice"), store::Tier::kFree).ok());
  ASSERT_TRUE(s.UpdateUserSettings(UserId("alice"), "{}", &old_key).ok());
  this->clock_.Advance(std::chrono::hours{23});
  auto fresh = this->Idem("alice", "fresh");
  ASSERT_TRUE(s.UpdateUserSettings(UserId("alice"), "{}", &fresh).ok());
  EXPECT_TRUE(s.GetIdempotency(UserId("alice"), "old")->has_value());  // 23 h: still kept

  this->clock_.Advance(std::chrono::hours{2});  // "old" is now 25 h old: ignored, key reusable
  EXPECT_FALSE(s.GetIdempotency(UserId("alice"), "old")->has_value());
  EXPECT_TRUE(s.GetIdempotency(UserId("alice"), "fresh")->has_value());

  auto purged = s.PurgeIdempotencyBefore(this->clock_.Now() - std::chrono::hours{24});
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 1);
  EXPECT_TRUE(s.GetIdempotency(UserId("alice"), "fresh")->has_value());
  EXPECT_EQ(*s.PurgeIdempotencyBefore(this->clock_.Now() - std::chrono::hours{24}), 0);
  ASSERT_TRUE(s.UpdateUserSettings(UserId("alice"), "{}", &old_key).ok());  // reusable
}

// ---- sync state: connection tokens, cursors, the ledger (SPEC S4, S13) ----

TYPED_TEST_P(StoreConformance, ConnectionTokensCompareAndSet) {
  auto& s = this->store();
  auto c = this->Conn("alice", "conn_a");
  c.token_expires_at = FromUnixMillis(1'900'000'000'123);
  ASSERT_TRUE(s.CreateConnection(c).ok());
  auto got = s.GetConnection(UserId("alice"), ConnectionId("conn_a"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->token_version, 0);
  EXPECT_EQ(got->token_expires_at, FromUnixMillis(1'900'000'000'123));

  const std::string access("new\0access", 10);  // binary-safe
  const TimePoint exp = FromUnixMillis(1'900'000'100'000);
  ASSERT_TRUE(s.UpdateConnectionTokens(UserId("alice"), ConnectionId("conn_a"), access,
                                       "new-refresh", exp, 0)
                  .ok());
  got = s.GetConnection(UserId("alice"), ConnectionId("conn_a"));
  EXPECT_EQ(got->token_version, 1);
  EXPECT_EQ(got->access_token_sealed, access);
  EXPECT_EQ(got->refresh_token_sealed, "new-refresh");
  EXPECT_EQ(got->token_expires_at, exp);

  // Another process refreshed first: stale version -> kConflict, nothing changes.
  EXPECT_EQ(s.UpdateConnectionTokens(UserId("alice"), ConnectionId("conn_a"), "x", "y", exp, 0)
                .error()
                .code,
            Errc::kConflict);
  got = s.GetConnection(UserId("alice"), ConnectionId("conn_a"));
  EXPECT_EQ(got->access_token_sealed, access);
  EXPECT_EQ(got->token_version, 1);
  // Scoped by user; missing connection.
  EXPECT_EQ(s.UpdateConnectionTokens(UserId("bob"), ConnectionId("conn_a"), "x", "y", exp, 1)
                .error()
                .code,
            Errc::kNotFound);
  EXPECT_EQ(s.UpdateConnectionTokens(UserId("alice"), ConnectionId("conn_none"), "x", "y", exp, 0)
                .error()
                .code,
            Errc::kNotFound);
  EXPECT_EQ(s.GetConnection(UserId("alice"), ConnectionId("conn_a"))->token_version, 1);
}

TYPED_TEST_P(StoreConformance, CreateConnectionWithIdempotencyAndReplaceGrant) {
  auto& s = this->store();
  auto idem = this->Idem("alice", "k-conn", R"({"connectionId":"conn_a"})");
  ASSERT_TRUE(s.CreateConnection(this->Conn("alice", "conn_a"), &idem).ok());
  EXPECT_TRUE(s.GetIdempotency(UserId("alice"), "k-conn")->has_value());
  // Same key: nothing written; a duplicate id with a fresh key: no record written.
  EXPECT_EQ(s.CreateConnection(this->Conn("alice", "conn_b"), &idem).error().code,
            Errc::kAlreadyExists);
  EXPECT_EQ(s.GetConnection(UserId("alice"), ConnectionId("conn_b")).error().code, Errc::kNotFound);
  auto idem2 = this->Idem("alice", "k-conn-2");
  EXPECT_EQ(s.CreateConnection(this->Conn("alice", "conn_a"), &idem2).error().code,
            Errc::kAlreadyExists);
  EXPECT_FALSE(s.GetIdempotency(UserId("alice"), "k-conn-2")->has_value());

  ASSERT_TRUE(s.SetConnectionStatus(UserId("alice"), ConnectionId("conn_a"),
                                    store::ConnectionStatus::kNeedsReauth)
                  .ok());
  auto fresh = this->Conn("alice", "conn_a");
  fresh.access_token_sealed = "sealed-new-access";
  fresh.refresh_token_sealed = "sealed-new-refresh";
  fresh.token_expires_at = FromUnixMillis(1'900'000'000'000);
  fresh.provider_user_id = "pu-new";
  fresh.status = store::ConnectionStatus::kActive;
  auto idem3 = this->Idem("alice", "k-reauth");
  ASSERT_TRUE(s.ReplaceConnectionGrant(fresh, &idem3).ok());
  auto got = s.GetConnection(UserId("alice"), ConnectionId("conn_a"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->access_token_sealed, "sealed-new-access");
  EXPECT_EQ(got->refresh_token_sealed, "sealed-new-refresh");
  EXPECT_EQ(got->token_expires_at, FromUnixMillis(1'900'000'000'000));
  EXPECT_EQ(got->provider_user_id, "pu-new");
  EXPECT_EQ(got->status, store::ConnectionStatus::kActive);
  EXPECT_EQ(got->token_version, 1);  // a refresh holding version 0 now gets kConflict
  EXPECT_TRUE(s.GetIdempotency(UserId("alice"), "k-reauth")->has_value());
  EXPECT_EQ(
      s.UpdateConnectionTokens(UserId("alice"), ConnectionId("conn_a"), "x", "y", TimePoint{}, 0)
          .error()
          .code,
      Errc::kConflict);
  // Scoped by user; a failed change writes no idempotency record.
  auto other = fresh;
  other.user = UserId("bob");
  auto idem4 = this->Idem("bob", "k-reauth");
  EXPECT_EQ(s.ReplaceConnectionGrant(other, &idem4).error().code, Errc::kNotFound);
  EXPECT_FALSE(s.GetIdempotency(UserId("bob"), "k-reauth")->has_value());
}

TYPED_TEST_P(StoreConformance, FindConnectionsByProviderUserAcrossUsers) {
  auto& s = this->store();
  auto a = this->Conn("alice", "conn_a", "strava");
  a.provider_user_id = "athlete-7";
  ASSERT_TRUE(s.CreateConnection(a).ok());
  this->clock_.Advance(1s);
  auto b = this->Conn("bob", "conn_b", "strava");
  b.provider_user_id = "athlete-7";
  b.status = store::ConnectionStatus::kNeedsReauth;
  ASSERT_TRUE(s.CreateConnection(b).ok());
  auto other_provider = this->Conn("carol", "conn_c", "fitbit");
  other_provider.provider_user_id = "athlete-7";
  ASSERT_TRUE(s.CreateConnection(other_provider).ok());
  auto other_user = this->Conn("dave", "conn_d", "strava");
  other_user.provider_user_id = "athlete-8";
  ASSERT_TRUE(s.CreateConnection(other_user).ok());

  auto found = s.FindConnectionsByProviderUser("strava", "athlete-7");
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ((*found)[0].id.str(), "conn_a");  // oldest first
  EXPECT_EQ((*found)[1].id.str(), "conn_b");
  EXPECT_EQ((*found)[1].status, store::ConnectionStatus::kNeedsReauth);
  EXPECT_EQ((*found)[1].user.str(), "bob");
  EXPECT_TRUE(s.FindConnectionsByProviderUser("strava", "nobody")->empty());
  EXPECT_TRUE(s.FindConnectionsByProviderUser("garmin", "athlete-7")->empty());
}

TYPED_TEST_P(StoreConformance, SetConnectionStatus) {
  auto& s = this->store();
  ASSERT_TRUE(s.CreateConnection(this->Conn("alice", "conn_a")).ok());
  ASSERT_TRUE(s.SetConnectionStatus(UserId("alice"), ConnectionId("conn_a"),
                                    store::ConnectionStatus::kNeedsReauth)
                  .ok());
  EXPECT_EQ(s.GetConnection(UserId("alice"), ConnectionId("conn_a"))->status,
            store::ConnectionStatus::kNeedsReauth);
  EXPECT_EQ(
      s.SetConnectionStatus(UserId("bob"), ConnectionId("conn_a"), store::ConnectionStatus::kActive)
          .error()
          .code,
      Errc::kNotFound);
  EXPECT_EQ(s.GetConnection(UserId("alice"), ConnectionId("conn_a"))->status,
            store::ConnectionStatus::kNeedsReauth);
}

namespace sync_state {
inline store::SyncCursorKey Key(const std::string& user, const std::string& type = "workout") {
  return store::SyncCursorKey{UserId(user), ConnectionId("conn_src"), ConnectionId("conn_dst"),
                              type};
}
inline store::LedgerEntry Row(const std::string& user, const std::string& src_id,
                              const std::string& fp, const std::string& dest_id = "",
                              const std::string& dst = "conn_dst",
                              const std::string& src = "conn_src") {
  store::LedgerEntry e;
  e.user = UserId(user);
  e.destination = ConnectionId(dst);
  e.source = ConnectionId(src);
  e.source_record_id = src_id;
  e.fingerprint = fp;
  e.dest_record_id = dest_id;
  e.job = JobId("job_1");
  e.source_modified_ms = 1000;
  return e;
}
inline store::SyncCommit::CursorUpdate Cursor(const std::string& user, int64_t expected,
                                              int64_t value) {
  return store::SyncCommit::CursorUpdate{Key(user), expected, value};
}
}  // namespace sync_state

// SyncCommit::ack_receipt, for adapters that say AcksInCommit (the queue in the same database):
// the message is deleted with the commit; a receipt that no longer holds its message deletes
// nothing and fails nothing; a commit that fails (stale cursor) deletes nothing either.
TYPED_TEST_P(StoreConformance, CommitSyncAcksTheMessageInTheSameTransaction) {
  using namespace sync_state;
  auto& s = this->store();
  if (!s.AcksInCommit()) GTEST_SKIP() << "this adapter's jobs are acknowledged through the queue";
  auto& q = this->queue();
  for (const char* user : {"alice", "bob", "carol"}) {
    const std::string u(user);
    ASSERT_TRUE(s.CreateJob(this->MakeJob(u, "job_" + u), this->Msg(u, "m-" + u), nullptr).ok());
  }
  auto got = q.Receive({.max_messages = 10});
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 3u);
  std::map<std::string, std::string> receipt;  // by user (group)
  for (const auto& m : *got) receipt[m.group_id] = m.receipt;

  store::SyncCommit ok;
  ok.cursor = Cursor("alice", 0, 100);
  ok.job = store::SyncCommit::JobUpdate{JobId("job_alice"), store::JobStatus::kSucceeded, "", ""};
  ok.ack_receipt = receipt["alice"];
  ASSERT_TRUE(s.CommitSync(ok).ok());
  EXPECT_EQ(q.Stats()->in_flight, 2);
  EXPECT_EQ(q.Delete(receipt["alice"]).error().code, Errc::kNotFound);  // already gone

  // bob's lease was released meanwhile: his receipt holds nothing, the commit still lands.
  ASSERT_TRUE(q.ChangeVisibility(receipt["bob"], 0ms).ok());
  store::SyncCommit stale;
  stale.job = store::SyncCommit::JobUpdate{JobId("job_bob"), store::JobStatus::kSucceeded, "", ""};
  stale.ack_receipt = receipt["bob"];
  ASSERT_TRUE(s.CommitSync(stale).ok());
  EXPECT_EQ(s.GetJob(UserId("bob"), JobId("job_bob"))->status, store::JobStatus::kSucceeded);
  EXPECT_EQ(q.Stats()->visible, 1);  // bob's message is back, to be dropped as already done

  // carol's commit fails on its cursor: her message stays held.
  ASSERT_TRUE(s.CommitSync([] {
                 store::SyncCommit c;
                 c.cursor = Cursor("carol", 0, 100);
                 return c;
               }())
                  .ok());
  store::SyncCommit conflict;
  conflict.cursor = Cursor("carol", 0, 200);  // stale: the cursor exists
  conflict.job =
      store::SyncCommit::JobUpdate{JobId("job_carol"), store::JobStatus::kSucceeded, "", ""};
  conflict.ack_receipt = receipt["carol"];
  EXPECT_EQ(s.CommitSync(conflict).error().code, Errc::kConflict);
  EXPECT_EQ(s.GetJob(UserId("carol"), JobId("job_carol"))->status, store::JobStatus::kQueued);
  EXPECT_TRUE(q.Delete(receipt["carol"]).ok());  // still held by her receipt
}

TYPED_TEST_P(StoreConformance, CursorCompareAndSet) {
  using namespace sync_state;
  auto& s = this->store();
  EXPECT_EQ(s.GetCursor(Key("alice")).error().code, Errc::kNotFound);

  store::SyncCommit c;
  c.cursor = Cursor("alice", 0, 5000);
  ASSERT_TRUE(s.CommitSync(c).ok());
  auto cur = s.GetCursor(Key("alice"));
  ASSERT_TRUE(cur.ok());
  EXPECT_EQ(cur->last_sync_ms, 5000);
  EXPECT_EQ(cur->version, 1);
  EXPECT_EQ(cur->key, Key("alice"));
  // Other keys are separate.
  EXPECT_EQ(s.GetCursor(Key("alice", "steps")).error().code, Errc::kNotFound);
  EXPECT_EQ(s.GetCursor(Key("bob")).error().code, Errc::kNotFound);

  // "Create" again: someone else created it first.
  c.cursor = Cursor("alice", 0, 9000);
  EXPECT_EQ(s.CommitSync(c).error().code, Errc::kConflict);
  c.cursor = Cursor("alice", 1, 9000);
  ASSERT_TRUE(s.CommitSync(c).ok());
  cur = s.GetCursor(Key("alice"));
  EXPECT_EQ(cur->last_sync_ms, 9000);
  EXPECT_EQ(cur->version, 2);

  // Stale version: kConflict and NOTHING of the commit is written (ledger rows included).
  c.cursor = Cursor("alice", 1, 12000);
  c.done.push_back(Row("alice", "r1", "fp1", "d1"));
  EXPECT_EQ(s.CommitSync(c).error().code, Errc::kConflict);
  EXPECT_EQ(s.GetCursor(Key("alice"))->last_sync_ms, 9000);
  auto rows = s.GetLedgerEntries(UserId("alice"), ConnectionId("conn_dst"),
                                 ConnectionId("conn_src"), {"r1"});
  ASSERT_TRUE(rows.ok());
  EXPECT_TRUE(rows->empty());
}

TYPED_TEST_P(StoreConformance, LedgerPendingThenDone) {
  using namespace sync_state;
  auto& s = this->store();
  const UserId alice("alice");
  const ConnectionId dst("conn_dst"), src("conn_src");
  ASSERT_TRUE(s.RecordPendingWrites({Row("alice", "r1", "fp1"), Row("alice", "r2", "fp2")}).ok());
  auto rows = s.GetLedgerEntries(alice, dst, src, {"r1", "r2", "r3"});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  for (const auto& e : *rows) {
    EXPECT_EQ(e.state, store::LedgerState::kPending);
    EXPECT_TRUE(e.dest_record_id.empty());
    EXPECT_EQ(e.job.str(), "job_1");
    EXPECT_EQ(e.source_modified_ms, 1000);
  }
  // Pending rows are not "ours" yet for loop suppression (no destination id).
  EXPECT_TRUE(s.OwnWrittenRecords(alice, dst, {"d1", "d2"})->empty());

  store::SyncCommit c;
  c.done.push_back(Row("alice", "r1", "fp1", "d1"));
  ASSERT_TRUE(s.CommitSync(c).ok());
  rows = s.GetLedgerEntries(alice, dst, src, {"r1"});
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].state, store::LedgerState::kDone);
  EXPECT_EQ((*rows)[0].dest_record_id, "d1");
  EXPECT_EQ((*rows)[0].fingerprint, "fp1");
  EXPECT_EQ(s.GetLedgerEntries(alice, dst, src, {"r2"})->at(0).state, store::LedgerState::kPending);

  // A new intent for a done row never turns it back into pending.
  auto again = Row("alice", "r1", "fp1");
  again.job = JobId("job_2");
  ASSERT_TRUE(s.RecordPendingWrites({again}).ok());
  rows = s.GetLedgerEntries(alice, dst, src, {"r1"});
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].state, store::LedgerState::kDone);
  EXPECT_EQ((*rows)[0].dest_record_id, "d1");
  // A new fingerprint of the same source record is a separate row.
  ASSERT_TRUE(s.RecordPendingWrites({Row("alice", "r1", "fp1b")}).ok());
  EXPECT_EQ(s.GetLedgerEntries(alice, dst, src, {"r1"})->size(), 2u);

  // Reverse lookup: only done rows at that connection, only the asked ids, only this user.
  auto own = s.OwnWrittenRecords(alice, dst, {"d1", "d2", "x"});
  ASSERT_TRUE(own.ok());
  ASSERT_EQ(own->size(), 1u);
  EXPECT_EQ((*own)[0], "d1");
  EXPECT_TRUE(s.OwnWrittenRecords(alice, src, {"d1"})->empty());
  EXPECT_TRUE(s.OwnWrittenRecords(UserId("bob"), dst, {"d1"})->empty());
  EXPECT_TRUE(s.GetLedgerEntries(UserId("bob"), dst, src, {"r1"})->empty());
  EXPECT_TRUE(s.GetLedgerEntries(alice, src, dst, {"r1"})->empty());
}

TYPED_TEST_P(StoreConformance, CommitSyncWritesJobStatusInTheSameTransaction) {
  using namespace sync_state;
  auto& s = this->store();
  ASSERT_TRUE(s.CreateJob(this->MakeJob("alice", "job_1"), this->Msg("alice", "d1"), nullptr).ok());
  store::SyncCommit c;
  c.cursor = Cursor("alice", 0, 100);
  c.done.push_back(Row("alice", "r1", "fp1", "d1"));
  c.job =
      store::SyncCommit::JobUpdate{JobId("job_1"), store::JobStatus::kSucceeded, "", "written 1"};
  ASSERT_TRUE(s.CommitSync(c).ok());
  auto job = s.GetJob(UserId("alice"), JobId("job_1"));
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->status, store::JobStatus::kSucceeded);
  EXPECT_EQ(job->summary, "written 1");
  // A later status update keeps the summary.
  ASSERT_TRUE(s.UpdateJobStatus(JobId("job_1"), store::JobStatus::kSucceeded, "").ok());
  EXPECT_EQ(s.GetJob(UserId("alice"), JobId("job_1"))->summary, "written 1");

  // Unknown job: kNotFound and nothing written.
  store::SyncCommit bad;
  bad.cursor = Cursor("bob", 0, 100);
  bad.done.push_back(Row("bob", "r9", "fp9", "d9"));
  bad.job = store::SyncCommit::JobUpdate{JobId("job_none"), store::JobStatus::kSucceeded, "", ""};
  EXPECT_EQ(s.CommitSync(bad).error().code, Errc::kNotFound);
  EXPECT_EQ(s.GetCursor(Key("bob")).error().code, Errc::kNotFound);
  EXPECT_TRUE(
      s.GetLedgerEntries(UserId("bob"), ConnectionId("conn_dst"), ConnectionId("conn_src"), {"r9"})
          ->empty());
}

TYPED_TEST_P(StoreConformance, DeleteConnectionAndPurgeUserRemoveSyncState) {
  using namespace sync_state;
  auto& s = this->store();
  for (auto u : {"alice", "bob"}) {
    const std::string user = u;
    for (auto id : {"conn_src", "conn_dst", "conn_other"}) {
      // Connection ids are global; give each user their own.
      ASSERT_TRUE(s.CreateConnection(this->Conn(user, std::string(id) + "_" + user)).ok());
    }
  }
  auto seed = [&](const std::string& user) {
    const std::string src = "conn_src_" + user, dst = "conn_dst_" + user,
                      other = "conn_other_" + user;
    store::SyncCommit c;
    c.cursor = store::SyncCommit::CursorUpdate{
        store::SyncCursorKey{UserId(user), ConnectionId(src), ConnectionId(dst), "workout"}, 0, 1};
    c.done.push_back(Row(user, "r1", "fp1", "d1", dst, src));    // src -> dst
    c.done.push_back(Row(user, "d1", "fp1", "r1", src, dst));    // dst -> src
    c.done.push_back(Row(user, "r2", "fp2", "o2", other, src));  // src -> other
    ASSERT_TRUE(s.CommitSync(c).ok());
    store::SyncCommit c2;
    c2.cursor = store::SyncCommit::CursorUpdate{
        store::SyncCursorKey{UserId(user), ConnectionId(other), ConnectionId(src), "workout"}, 0,
        1};
    ASSERT_TRUE(s.CommitSync(c2).ok());
  };
  seed("alice");
  seed("bob");

  // Deleting alice's destination connection removes every cursor and ledger row that names it.
  ASSERT_TRUE(s.DeleteConnection(UserId("alice"), ConnectionId("conn_dst_alice"), nullptr).ok());
  const UserId alice("alice");
  EXPECT_EQ(s.GetCursor(store::SyncCursorKey{alice, ConnectionId("conn_src_alice"),
                                             ConnectionId("conn_dst_alice"), "workout"})
                .error()
                .code,
            Errc::kNotFound);
  EXPECT_TRUE(s.GetLedgerEntries(alice, ConnectionId("conn_dst_alice"),
                                 ConnectionId("conn_src_alice"), {"r1"})
                  ->empty());
  EXPECT_TRUE(s.GetLedgerEntries(alice, ConnectionId("conn_src_alice"),
                                 ConnectionId("conn_dst_alice"), {"d1"})
                  ->empty());
  // What does not involve it stays.
  EXPECT_EQ(s.GetLedgerEntries(alice, ConnectionId("conn_other_alice"),
                               ConnectionId("conn_src_alice"), {"r2"})
                ->size(),
            1u);
  EXPECT_TRUE(s.GetCursor(store::SyncCursorKey{alice, ConnectionId("conn_other_alice"),
                                               ConnectionId("conn_src_alice"), "workout"})
                  .ok());

  // Purging alice removes the rest of her sync state; bob keeps all of his.
  ASSERT_TRUE(s.PurgeUser(alice).ok());
  EXPECT_TRUE(s.GetLedgerEntries(alice, ConnectionId("conn_other_alice"),
                                 ConnectionId("conn_src_alice"), {"r2"})
                  ->empty());
  EXPECT_EQ(s.GetCursor(store::SyncCursorKey{alice, ConnectionId("conn_other_alice"),
                                             ConnectionId("conn_src_alice"), "workout"})
                .error()
                .code,
            Errc::kNotFound);
  const UserId bob("bob");
  EXPECT_EQ(
      s.GetLedgerEntries(bob, ConnectionId("conn_dst_bob"), ConnectionId("conn_src_bob"), {"r1"})
          ->size(),
      1u);
  EXPECT_EQ(s.OwnWrittenRecords(bob, ConnectionId("conn_dst_bob"), {"d1"})->size(), 1u);
  EXPECT_TRUE(s.GetCursor(store::SyncCursorKey{bob, ConnectionId("conn_src_bob"),
                                               ConnectionId("conn_dst_bob"), "workout"})
                  .ok());
}

// ---- the tiered schedule (SPEC S7) ----
namespace schedule_cases {
// `n` user ids that all live on one shard (the first id's), found by trying names.
inline std::vector<UserId> UsersOnOneShard(const std::string& prefix, size_t n) {
  std::vector<UserId> out;
  int shard = -1;
  for (int i = 0; out.size() < n && i < 100000; ++i) {
    UserId u(prefix + std::to_string(i));
    if (shard == -1) shard = store::ScheduleShardOf(u);
    if (store::ScheduleShardOf(u) == shard) out.push_back(u);
  }
  return out;
}
inline const store::ScheduledUser* Find(const std::vector<store::ScheduledUser>& v,
                                        const UserId& u) {
  for (const auto& e : v) {
    if (e.user == u) return &e;
  }
  return nullptr;
}
}  // namespace schedule_cases

// The scheduler derives job ids from (config, slot) and counts kAlreadyExists as "merged":
// a second CreateJob with an existing id must fail that way and send no second message, even
// outside the queue's dedup window.
TYPED_TEST_P(StoreConformance, CreateJobWithAnExistingIdIsAlreadyExistsAndSendsNothing) {
  auto& s = this->store();
  ASSERT_TRUE(
      s.CreateJob(this->MakeJob("alice", "job_sch_1"), this->Msg("alice", "job_sch_1"), nullptr)
          .ok());
  this->clock_.Advance(3600s);  // far outside the dedup window
  auto again =
      s.CreateJob(this->MakeJob("alice", "job_sch_1"), this->Msg("alice", "job_sch_1"), nullptr);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::kAlreadyExists) << again.error().message;
  auto stats = this->queue().Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->enqueued_total, 1);
  EXPECT_EQ(stats->visible + stats->delayed + stats->in_flight, 1);
}

TYPED_TEST_P(StoreConformance, ScheduleNewUsersAreUnplacedOnTheirShard) {
  using schedule_cases::Find;
  const UserId alice("alice"), bob("bob");
  store::User a;
  a.id = alice;
  a.tier = store::Tier::kPro;
  ASSERT_TRUE(this->store().UpsertUser(a).ok());
  ASSERT_TRUE(this->store().EnsureUser(bob, store::Tier::kFree).ok());
  const TimePoint now = this->clock_.Now();
  for (const UserId& u : {alice, bob}) {
    const int shard = store::ScheduleShardOf(u);
    ASSERT_GE(shard, 0);
    ASSERT_LT(shard, store::kScheduleShards);
    auto due = this->store().ListDueUsers(shard, now, 100);
    ASSERT_TRUE(due.ok()) << due.error().message;
    const auto* e = Find(*due, u);
    ASSERT_NE(e, nullptr) << u.str();
    EXPECT_EQ(e->shard, shard);
    EXPECT_EQ(e->next_sync_at, TimePoint{});  // unplaced
    EXPECT_TRUE(e->recent_slots.empty());
    EXPECT_FALSE(e->deletion_pending);
    EXPECT_EQ(e->tier, u == alice ? store::Tier::kPro : store::Tier::kFree);
    // Not on any other shard.
    auto other = this->store().ListDueUsers((shard + 1) % store::kScheduleShards, now, 100);
    ASSERT_TRUE(other.ok());
    EXPECT_EQ(Find(*other, u), nullptr);
  }
}

TYPED_TEST_P(StoreConformance, AdvanceScheduleIsCompareAndSetAndDueByTime) {
  using schedule_cases::Find;
  const UserId alice("alice");
  ASSERT_TRUE(this->store().EnsureUser(alice, store::Tier::kPro).ok());
  const int shard = store::ScheduleShardOf(alice);
  const TimePoint now = FromUnixMillis(ToUnixMillis(this->clock_.Now()));
  const TimePoint next = now + 10min;
  const std::vector<TimePoint> recent = {now - 1min, now - 16min, now - 31min, now - 46min,
                                         now - 61min};
  ASSERT_TRUE(this->store().AdvanceSchedule(alice, TimePoint{}, next, recent).ok());
  // Stale expectation: kConflict, nothing changed; unknown user: kNotFound.
  auto stale = this->store().AdvanceSchedule(alice, TimePoint{}, now + 1h, {});
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, Errc::kConflict);
  EXPECT_EQ(this->store().AdvanceSchedule(UserId("nobody"), TimePoint{}, now, {}).error().code,
            Errc::kNotFound);

  auto before = this->store().ListDueUsers(shard, next - 1ms, 100);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(Find(*before, alice), nullptr);  // not due yet
  auto at = this->store().ListDueUsers(shard, next, 100);
  ASSERT_TRUE(at.ok());
  const auto* e = Find(*at, alice);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->next_sync_at, next);
  // Newest first, truncated to kRecentSlots.
  ASSERT_EQ(e->recent_slots.size(), store::kRecentSlots);
  for (size_t i = 0; i < store::kRecentSlots; ++i) EXPECT_EQ(e->recent_slots[i], recent[i]);

  // The same tier keeps the slot; another tier unplaces it (re-placed by the scheduler).
  store::User same;
  same.id = alice;
  same.tier = store::Tier::kPro;
  ASSERT_TRUE(this->store().UpsertUser(same).ok());
  EXPECT_NE(Find(*this->store().ListDueUsers(shard, next, 100), alice), nullptr);
  EXPECT_EQ(Find(*this->store().ListDueUsers(shard, now, 100), alice), nullptr);
  store::User down = same;
  down.tier = store::Tier::kFree;
  ASSERT_TRUE(this->store().UpsertUser(down).ok());
  auto replaced = this->store().ListDueUsers(shard, now, 100);
  ASSERT_TRUE(replaced.ok());
  e = Find(*replaced, alice);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->next_sync_at, TimePoint{});
  EXPECT_EQ(e->tier, store::Tier::kFree);
  // The old expectation is stale now.
  EXPECT_EQ(this->store().AdvanceSchedule(alice, next, now + 1h, {}).error().code, Errc::kConflict);
}

TYPED_TEST_P(StoreConformance, ListDueUsersOrdersByNextSyncAndHonoursTheLimit) {
  const auto users = schedule_cases::UsersOnOneShard("sched-user-", 5);
  ASSERT_EQ(users.size(), 5u);
  const int shard = store::ScheduleShardOf(users[0]);
  const TimePoint now = FromUnixMillis(ToUnixMillis(this->clock_.Now()));
  // Slots in reverse order of creation: users[4] is due first.
  for (size_t i = 0; i < users.size(); ++i) {
    ASSERT_TRUE(this->store().EnsureUser(users[i], store::Tier::kFree).ok());
    const TimePoint slot = now + std::chrono::minutes(10 - static_cast<int>(i));
    ASSERT_TRUE(this->store().AdvanceSchedule(users[i], TimePoint{}, slot, {}).ok());
  }
  auto first = this->store().ListDueUsers(shard, now + 10min, 3);
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ((*first)[0].user, users[4]);
  EXPECT_EQ((*first)[1].user, users[3]);
  EXPECT_EQ((*first)[2].user, users[2]);
  auto partial = this->store().ListDueUsers(shard, now + 7min, 100);
  ASSERT_TRUE(partial.ok());
  ASSERT_EQ(partial->size(), 2u);  // slots 6 and 7 minutes
  EXPECT_EQ(this->store().ListDueUsers(shard, now, 100)->size(), 0u);
  // Shard assignment of rows from before the schedule: nothing to do on a fresh store.
  auto assigned = this->store().AssignScheduleShards(100);
  ASSERT_TRUE(assigned.ok()) << assigned.error().message;
  EXPECT_EQ(*assigned, 0);
}

TYPED_TEST_P(StoreConformance, ScheduleFlagsPendingDeletionAndForgetsPurgedUsers) {
  using schedule_cases::Find;
  const UserId alice("alice");
  ASSERT_TRUE(this->store().EnsureUser(alice, store::Tier::kPro).ok());
  const int shard = store::ScheduleShardOf(alice);
  const TimePoint now = this->clock_.Now();
  ASSERT_TRUE(this->store().RequestUserDeletion(alice, nullptr).ok());
  auto due = this->store().ListDueUsers(shard, now, 100);
  ASSERT_TRUE(due.ok());
  const auto* e = Find(*due, alice);
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->deletion_pending);
  ASSERT_TRUE(this->store().PurgeUser(alice).ok());
  EXPECT_EQ(Find(*this->store().ListDueUsers(shard, now, 100), alice), nullptr);
  EXPECT_EQ(this->store().AdvanceSchedule(alice, TimePoint{}, now, {}).error().code,
            Errc::kNotFound);
}

REGISTER_TYPED_TEST_SUITE_P(
    StoreConformance, EnsureUserCreatesOnceAndStoredTierWins, UserSettingsUpdateAndMissingUser,
    ReadsAreScopedByUser, DuplicateIdsAreRejected, IdempotencyRecordIsWrittenWithTheChange,
    FailedChangeWritesNoIdempotencyRecord, SyncConfigOptimisticVersions,
    DeleteConnectionRemovesConfigsUsingIt, CreateJobThenGetJobAndUpdateStatus,
    CreateJobDedupWritesJobButNotMessage, CreateJobAsyncCompletesOnceWithCreateJobsOutcome,
    UpdateJobStatusAsyncCommitsBeforeLaterWrites, QueueDedupInsideAndOutsideTheWindow,
    DelayedMessagesAreNotVisibleUntilDue, PurgeUserRemovesEverythingOfThatUserOnly,
    PurgeUserRemovesDeadLetteredMessagesOfThatUserOnly, DeletionStatesPendingThenCompleted,
    CombinedReadsMatchTheSingleReads, ControlEventsInInsertionOrder, IdempotencyRetentionAndPurge,
    ConnectionTokensCompareAndSet, CreateConnectionWithIdempotencyAndReplaceGrant,
    FindConnectionsByProviderUserAcrossUsers, SetConnectionStatus, CursorCompareAndSet,
    CommitSyncAcksTheMessageInTheSameTransaction, LedgerPendingThenDone,
    CommitSyncWritesJobStatusInTheSameTransaction, DeleteConnectionAndPurgeUserRemoveSyncState,
    CreateJobWithAnExistingIdIsAlreadyExistsAndSendsNothing,
    ScheduleNewUsersAreUnplacedOnTheirShard, AdvanceScheduleIsCompareAndSetAndDueByTime,
    ListDueUsersOrdersByNextSyncAndHonoursTheLimit,
    ScheduleFlagsPendingDeletionAndForgetsPurgedUsers);

}  // namespace syncwell::conformance
