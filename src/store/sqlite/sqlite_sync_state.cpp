// SqliteStore: the sync engine's state (SPEC S4) -- cursors and the sync ledger -- and the tiered
// schedule (SPEC S7: when each user syncs next). Split from sqlite_store.cpp to keep files small;
// same class, same rules (one write closure per call).
#include <string>
#include <vector>

#include "store/sqlite/sqlite_job_queue.hpp"
#include "store/sqlite/sqlite_query.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace syncwell::store {

using sqlite_query::Ms;
using sqlite_query::NotFound;
using sqlite_query::QueryAll;
using sqlite_query::QueryOne;

// ---- sync state: cursors and the ledger ----

namespace {

constexpr const char* kLedgerCols =
    "destination_id, source_id, source_record_id, fingerprint, dest_record_id, state, job_id, "
    "user_id, source_modified_ms, updated_at";
LedgerEntry ReadLedger(const Stmt& s) {
  LedgerEntry e;
  e.destination = ConnectionId(s.Text(0));
  e.source = ConnectionId(s.Text(1));
  e.source_record_id = s.Text(2);
  e.fingerprint = s.Text(3);
  e.dest_record_id = s.Text(4);
  e.state = s.Text(5) == "done" ? LedgerState::kDone : LedgerState::kPending;
  e.job = JobId(s.Text(6));
  e.user = UserId(s.Text(7));
  e.source_modified_ms = s.Int(8);
  e.updated_at = FromUnixMillis(s.Int(9));
  return e;
}

}  // namespace

Result<SyncCursor> SqliteStore::GetCursor(const SyncCursorKey& key) {
  const auto read = [&] {
    return db_.Read([&](sqlite3* db) {
      return QueryOne<SyncCursor>(
          db,
          "SELECT last_sync_ms, version, updated_at FROM sync_cursors WHERE user_id = ? AND "
          "source_id = ? AND destination_id = ? AND data_type = ?",
          [&](Stmt& s) {
            s.Bind(1, key.user.str())
                .Bind(2, key.source.str())
                .Bind(3, key.destination.str())
                .Bind(4, key.data_type);
          },
          [&](const Stmt& s) {
            SyncCursor c;
            c.key = key;
            c.last_sync_ms = s.Int(0);
            c.version = s.Int(1);
            c.updated_at = FromUnixMillis(s.Int(2));
            return c;
          },
          MakeError(Errc::kNotFound, "no sync cursor"));
    });
  };
  return cursors_->GetOrRead(key, read, [](const SyncCursor&) { return true; });
}

Result<std::vector<LedgerEntry>> SqliteStore::GetLedgerEntries(
    const UserId& user, const ConnectionId& destination, const ConnectionId& source,
    const std::vector<std::string>& source_record_ids) {
  // One primary-key prefix lookup per id on one leased connection (a cached statement; no
  // variable-length IN lists).
  return db_.Read([&](sqlite3* db) -> Result<std::vector<LedgerEntry>> {
    std::vector<LedgerEntry> out;
    const std::string sql = std::string("SELECT ") + kLedgerCols +
                            " FROM sync_ledger WHERE user_id = ? AND destination_id = ? AND "
                            "source_id = ? AND source_record_id = ?";
    for (const auto& id : source_record_ids) {
      auto rows = QueryAll<LedgerEntry>(
          db, sql,
          [&](Stmt& s) {
            s.Bind(1, user.str()).Bind(2, destination.str()).Bind(3, source.str()).Bind(4, id);
          },
          ReadLedger);
      if (!rows.ok()) return rows.error();
      for (auto& e : *rows) out.push_back(std::move(e));
    }
    return out;
  });
}

Result<std::vector<std::string>> SqliteStore::OwnWrittenRecords(
    const UserId& user, const ConnectionId& at, const std::vector<std::string>& record_ids) {
  // Named: without ANALYZE statistics the planner prefers the primary key's (user, destination)
  // prefix and walks all of that pair's rows; the covering partial index is one seek.
  return db_.Read([&](sqlite3* db) -> Result<std::vector<std::string>> {
    std::vector<std::string> out;
    for (const auto& id : record_ids) {
      if (id.empty()) continue;
      Stmt s(db,
             "SELECT 1 FROM sync_ledger INDEXED BY sync_ledger_own_writes WHERE user_id = ? AND "
             "destination_id = ? AND dest_record_id = ? AND state = 'done' LIMIT 1");
      s.Bind(1, user.str()).Bind(2, at.str()).Bind(3, id);
      auto row = s.Step();
      if (!row.ok()) return row.error();
      if (*row) out.push_back(id);
    }
    return out;
  });
}

Status SqliteStore::RecordPendingWrites(const std::vector<LedgerEntry>& entries) {
  if (entries.empty()) return {};
  const int64_t now = Ms(clock_.Now());
  return db_.Write([&](sqlite3* db) -> Status {
    for (const auto& e : entries) {
      Stmt s(db,
             "INSERT INTO sync_ledger(destination_id, source_id, source_record_id, fingerprint, "
             "dest_record_id, state, job_id, user_id, source_modified_ms, updated_at) "
             "VALUES(?, ?, ?, ?, '', 'pending', ?, ?, ?, ?) "
             "ON CONFLICT(user_id, destination_id, source_id, source_record_id, fingerprint) DO "
             "UPDATE SET "
             "job_id = excluded.job_id, source_modified_ms = excluded.source_modified_ms, "
             "updated_at = excluded.updated_at WHERE sync_ledger.state = 'pending'");
      s.Bind(1, e.destination.str())
          .Bind(2, e.source.str())
          .Bind(3, e.source_record_id)
          .Bind(4, e.fingerprint)
          .Bind(5, e.job.str())
          .Bind(6, e.user.str())
          .Bind(7, e.source_modified_ms)
          .Bind(8, now);
      if (Status st = s.Exec(); !st.ok()) return st;
    }
    return {};
  });
}

Status SqliteStore::CommitSync(const SyncCommit& c) {
  const int64_t now = Ms(clock_.Now());
  return db_.Write([&](sqlite3* db) -> Status {
    // The cursor first: a stale version fails the closure before anything else is written (and
    // the closure's savepoint would roll back the rest anyway).
    if (c.cursor) {
      const auto& k = c.cursor->key;
      if (c.cursor->expected_version == 0) {
        Stmt ins(db,
                 "INSERT INTO sync_cursors(user_id, source_id, destination_id, data_type, "
                 "last_sync_ms, version, updated_at) VALUES(?, ?, ?, ?, ?, 1, ?) "
                 "ON CONFLICT(user_id, source_id, destination_id, data_type) DO NOTHING");
        ins.Bind(1, k.user.str())
            .Bind(2, k.source.str())
            .Bind(3, k.destination.str())
            .Bind(4, k.data_type)
            .Bind(5, c.cursor->last_sync_ms)
            .Bind(6, now);
        if (Status st = ins.Exec(); !st.ok()) return st;
      } else {
        Stmt upd(db,
                 "UPDATE sync_cursors SET last_sync_ms = ?, version = version + 1, updated_at = ? "
                 "WHERE user_id = ? AND source_id = ? AND destination_id = ? AND data_type = ? "
                 "AND version = ?");
        upd.Bind(1, c.cursor->last_sync_ms)
            .Bind(2, now)
            .Bind(3, k.user.str())
            .Bind(4, k.source.str())
            .Bind(5, k.destination.str())
            .Bind(6, k.data_type)
            .Bind(7, c.cursor->expected_version);
        if (Status st = upd.Exec(); !st.ok()) return st;
      }
      if (sqlite3_changes(db) == 0) {
        return MakeError(Errc::kConflict, "sync cursor moved (expected version " +
                                              std::to_string(c.cursor->expected_version) + ")");
      }
      if (cursors_->enabled()) {
        SyncCursor after{.key = k,
                         .last_sync_ms = c.cursor->last_sync_ms,
                         .version = c.cursor->expected_version + 1,  // 0 (created) -> 1
                         .updated_at = FromUnixMillis(now)};
        db_.OnCommit([this, after = std::move(after)]() mutable {
          const SyncCursorKey key = after.key;
          cursors_->Put(key, std::move(after));
        });
      }
    }
    for (const auto& e : c.done) {
      Stmt s(db,
             "INSERT INTO sync_ledger(destination_id, source_id, source_record_id, fingerprint, "
             "dest_record_id, state, job_id, user_id, source_modified_ms, updated_at) "
             "VALUES(?, ?, ?, ?, ?, 'done', ?, ?, ?, ?) "
             "ON CONFLICT(user_id, destination_id, source_id, source_record_id, fingerprint) DO "
             "UPDATE SET "
             "dest_record_id = excluded.dest_record_id, state = 'done', job_id = excluded.job_id, "
             "source_modified_ms = excluded.source_modified_ms, updated_at = excluded.updated_at");
      s.Bind(1, e.destination.str())
          .Bind(2, e.source.str())
          .Bind(3, e.source_record_id)
          .Bind(4, e.fingerprint)
          .Bind(5, e.dest_record_id)
          .Bind(6, e.job.str())
          .Bind(7, e.user.str())
          .Bind(8, e.source_modified_ms)
          .Bind(9, now);
      if (Status st = s.Exec(); !st.ok()) return st;
    }
    if (c.job) {
      Stmt s(db, "UPDATE jobs SET status = ?, error = ?, summary = ?, updated_at = ? WHERE id = ?");
      s.Bind(1, JobStatusName(c.job->status))
          .Bind(2, c.job->error)
          .Bind(3, c.job->summary)
          .Bind(4, now)
          .Bind(5, c.job->id.str());
      if (Status st = s.Exec(); !st.ok()) return st;
      if (sqlite3_changes(db) == 0) return NotFound("job", c.job->id.str());
      if (jobs_->enabled()) {
        db_.OnCommit([this, j = *c.job, now] {
          JobStatusCommitted(j.id, j.status, j.error, &j.summary, now);
        });
      }
      if (!c.ack_receipt.empty()) {
        bool promoted = false;
        Status acked = SqliteQueueDeleteInTx(db, c.ack_receipt, &promoted);
        if (acked.ok()) {
          if (promoted) db_.OnCommit([this] { JobSent(); });  // the user's next job is ready
        } else if (!queue::ReceiptNoLongerHolds(acked.error()) &&
                   acked.error().code != Errc::kInvalidArgument) {  // malformed: holds nothing
          return acked;  // a database error: nothing of this commit lands
        }  // else the receipt no longer holds the message: nothing deleted, the rest commits
      }
    }
    return {};
  });
}

// ---- the tiered schedule (SPEC S7) ----

Result<std::vector<ScheduledUser>> SqliteStore::ListDueUsers(int shard, TimePoint now,
                                                             size_t limit) {
  return db_.Read([&](sqlite3* db) {
    // users_due (shard, next_sync_at) serves the range; the deletion lookup is by primary key.
    return QueryAll<ScheduledUser>(
        db,
        "SELECT u.id, u.tier, u.shard, u.next_sync_at, u.recent_slots, "
        "EXISTS(SELECT 1 FROM user_deletions d WHERE d.user_id = u.id AND d.state = 'pending') "
        "FROM users u WHERE u.shard = ? AND u.next_sync_at <= ? "
        "ORDER BY u.next_sync_at, u.id LIMIT ?",
        [&](Stmt& s) { s.Bind(1, shard).Bind(2, Ms(now)).Bind(3, static_cast<int64_t>(limit)); },
        [](const Stmt& s) {
          ScheduledUser u;
          u.user = UserId(s.Text(0));
          ParseTier(s.Text(1), &u.tier);
          u.shard = static_cast<int>(s.Int(2));
          u.next_sync_at = FromUnixMillis(s.Int(3));
          u.recent_slots = DecodeSlots(s.Text(4));
          u.deletion_pending = s.Int(5) != 0;
          return u;
        });
  });
}

Status SqliteStore::AdvanceSchedule(const UserId& user, TimePoint expected_next, TimePoint next,
                                    const std::vector<TimePoint>& recent_slots) {
  std::vector<TimePoint> recent = recent_slots;
  if (recent.size() > kRecentSlots) recent.resize(kRecentSlots);
  return db_.Write([&](sqlite3* db) -> Status {
    Stmt s(db,
           "UPDATE users SET next_sync_at = ?, recent_slots = ? WHERE id = ? AND next_sync_at = ?");
    s.Bind(1, Ms(next)).Bind(2, EncodeSlots(recent)).Bind(3, user.str()).Bind(4, Ms(expected_next));
    if (Status st = s.Exec(); !st.ok()) return st;
    if (sqlite3_changes(db) == 1) return {};
    Stmt q(db, "SELECT next_sync_at FROM users WHERE id = ?");
    q.Bind(1, user.str());
    auto row = q.Step();
    if (!row.ok()) return row.error();
    if (!*row) return NotFound("user", user.str());
    return MakeError(Errc::kConflict, "schedule of user moved (next_sync_at " +
                                          std::to_string(q.Int(0)) + ", expected " +
                                          std::to_string(Ms(expected_next)) + ")");
  });
}

Result<int64_t> SqliteStore::AssignScheduleShards(size_t limit) {
  auto ids = db_.Read([&](sqlite3* db) {
    return QueryAll<UserId>(
        db, "SELECT id FROM users WHERE shard = -1 LIMIT ?",
        [&](Stmt& s) { s.Bind(1, static_cast<int64_t>(limit)); },
        [](const Stmt& s) { return UserId(s.Text(0)); });
  });
  if (!ids.ok()) return ids.error();
  if (ids->empty()) return int64_t{0};
  int64_t assigned = 0;
  Status st = db_.Write([&](sqlite3* db) -> Status {
    assigned = 0;
    for (const UserId& u : *ids) {
      Stmt s(db, "UPDATE users SET shard = ? WHERE id = ? AND shard = -1");
      s.Bind(1, ScheduleShardOf(u)).Bind(2, u.str());
      if (Status e = s.Exec(); !e.ok()) return e;
      assigned += sqlite3_changes(db);
    }
    return {};
  });
  if (!st.ok()) return st.error();
  return assigned;
}

}  // namespace syncwell::store
