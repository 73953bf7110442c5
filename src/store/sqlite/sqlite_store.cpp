#include "store/sqlite/sqlite_store.hpp"

#include <algorithm>
#include <utility>

#include "store/sqlite/sqlite_job_queue.hpp"
#include "store/sqlite/sqlite_query.hpp"

namespace syncwell::store {

using sqlite_query::Ms;
using sqlite_query::NotFound;
using sqlite_query::OrNow;
using sqlite_query::QueryAll;
using sqlite_query::QueryOne;

namespace {

constexpr int64_t kPurgeBatch = 1000;

// Column order: id, tier, settings_json, created_at, updated_at
constexpr const char* kUserCols = "id, tier, settings_json, created_at, updated_at";
User ReadUser(const Stmt& s) {
  User u;
  u.id = UserId(s.Text(0));
  ParseTier(s.Text(1), &u.tier);
  u.settings_json = s.Text(2);
  u.created_at = FromUnixMillis(s.Int(3));
  u.updated_at = FromUnixMillis(s.Int(4));
  return u;
}

constexpr const char* kConnCols =
    "id, user_id, provider, status, provider_user_id, access_token_sealed, refresh_token_sealed, "
    "created_at, updated_at, token_expires_at, token_version";
Connection ReadConnection(const Stmt& s) {
  Connection c;
  c.id = ConnectionId(s.Text(0));
  c.user = UserId(s.Text(1));
  c.provider = s.Text(2);
  ParseConnectionStatus(s.Text(3), &c.status);
  c.provider_user_id = s.Text(4);
  c.access_token_sealed = s.Blob(5);
  c.refresh_token_sealed = s.Blob(6);
  c.created_at = FromUnixMillis(s.Int(7));
  c.updated_at = FromUnixMillis(s.Int(8));
  c.token_expires_at = FromUnixMillis(s.Int(9));
  c.token_version = s.Int(10);
  return c;
}

constexpr const char* kCfgCols =
    "id, user_id, source_id, destination_id, data_type, conflict_strategy, enabled, version, "
    "created_at, updated_at";
SyncConfig ReadSyncConfig(const Stmt& s) {
  SyncConfig c;
  c.id = SyncConfigId(s.Text(0));
  c.user = UserId(s.Text(1));
  c.source = ConnectionId(s.Text(2));
  c.destination = ConnectionId(s.Text(3));
  c.data_type = s.Text(4);
  c.conflict_strategy = s.Text(5);
  c.enabled = s.Int(6) != 0;
  c.version = s.Int(7);
  c.created_at = FromUnixMillis(s.Int(8));
  c.updated_at = FromUnixMillis(s.Int(9));
  return c;
}

constexpr const char* kJobCols =
    "id, user_id, source_id, destination_id, data_type, mode, priority, start_date, end_date, "
    "status, error, created_at, updated_at, summary";
// SUCCEEDED / FAILED: never kept in the row cache (see EnableRowCache).
bool IsTerminal(JobStatus s) { return s == JobStatus::kSucceeded || s == JobStatus::kFailed; }

Job ReadJob(const Stmt& s) {
  Job j;
  j.id = JobId(s.Text(0));
  j.user = UserId(s.Text(1));
  j.source = ConnectionId(s.Text(2));
  j.destination = ConnectionId(s.Text(3));
  j.data_type = s.Text(4);
  j.mode = s.Text(5);
  j.priority = s.Text(6);
  j.start_date = s.Text(7);
  j.end_date = s.Text(8);
  ParseJobStatus(s.Text(9), &j.status);
  j.error = s.Text(10);
  j.created_at = FromUnixMillis(s.Int(11));
  j.updated_at = FromUnixMillis(s.Int(12));
  j.summary = s.Text(13);
  return j;
}

}  // namespace

SqliteStore::SqliteStore(SqliteSettings settings, const Clock& clock)
    : db_(std::move(settings)), clock_(clock) {
  EnableRowCache(0);
}

SqliteStore::~SqliteStore() { Stop(); }

void SqliteStore::EnableRowCache(size_t max_entries) {
  jobs_ = std::make_unique<RowCache<std::string, Job>>(max_entries);
  cursors_ = std::make_unique<RowCache<SyncCursorKey, SyncCursor, CursorKeyHash>>(max_entries);
}

void SqliteStore::ClearRowCache() {
  jobs_->Clear();
  cursors_->Clear();
}

SqliteStore::RowCacheCounts SqliteStore::GetRowCacheStats() const {
  return {jobs_->GetStats(), cursors_->GetStats()};
}

size_t SqliteStore::CursorKeyHash::operator()(const SyncCursorKey& k) const {
  const std::hash<std::string_view> h;
  size_t x = h(k.user.str());
  for (std::string_view part :
       {std::string_view(k.source.str()), std::string_view(k.destination.str()),
        std::string_view(k.data_type)})
    x = x * 1'000'003u ^ h(part);
  return x;
}

void SqliteStore::JobStatusCommitted(const JobId& id, JobStatus status, const std::string& error,
                                     const std::string* summary, int64_t updated_ms) {
  if (IsTerminal(status)) {
    jobs_->Erase(id.str());
    return;
  }
  jobs_->Update(id.str(), [&](Job& j) {
    j.status = status;
    j.error = error;
    if (summary) j.summary = *summary;
    j.updated_at = FromUnixMillis(updated_ms);
  });
}

Status SqliteStore::Start() { return db_.Start(); }
void SqliteStore::Stop() { db_.Stop(); }

Status SqliteStore::WriteWithIdem(const IdempotencyRecord* idem,
                                  std::function<Status(sqlite3*)> change) {
  return db_.Write(WithIdem(idem, std::move(change)));
}

SqliteDb::WriteFn SqliteStore::WithIdem(const IdempotencyRecord* idem,
                                        SqliteDb::WriteFn change) const {
  if (idem == nullptr) return change;
  const TimePoint now = clock_.Now();
  const int64_t cutoff = Ms(now - db_.settings().idempotency_retention);
  IdempotencyRecord rec = *idem;
  rec.created_at = OrNow(rec.created_at, now);
  return [rec = std::move(rec), cutoff, change = std::move(change)](sqlite3* db) -> Status {
    // The record goes first: an existing (unexpired) key changes nothing. A record past the
    // retention is replaced, as if it had been purged already.
    Stmt ins(db,
             "INSERT INTO idempotency(user_id, key, request_hash, status_code, response_body, "
             "created_at) VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(user_id, key) DO UPDATE SET "
             "request_hash = excluded.request_hash, status_code = excluded.status_code, "
             "response_body = excluded.response_body, created_at = excluded.created_at "
             "WHERE idempotency.created_at < ?");
    ins.Bind(1, rec.user.str())
        .Bind(2, rec.key)
        .Bind(3, rec.request_hash)
        .Bind(4, static_cast<int64_t>(rec.status_code))
        .Bind(5, rec.response_body)
        .Bind(6, Ms(rec.created_at))
        .Bind(7, cutoff);
    if (Status st = ins.Exec(); !st.ok()) return st;
    if (sqlite3_changes(db) == 0) {
      return MakeError(Errc::kAlreadyExists, "idempotency key already used: " + rec.key);
    }
    return change(db);  // on failure the savepoint rolls the record back too
  };
}

// ---- users ----

Result<User> SqliteStore::EnsureUser(const UserId& user, Tier tier) {
  auto existing = GetUser(user);
  if (existing.ok() || existing.error().code != Errc::kNotFound) return existing;
  const int64_t now = Ms(clock_.Now());
  User out;
  Status st = db_.Write([&](sqlite3* db) -> Status {
    Stmt ins(db,
             "INSERT INTO users(id, tier, settings_json, created_at, updated_at, shard) "
             "VALUES(?, ?, '{}', ?, ?, ?) ON CONFLICT(id) DO NOTHING");
    ins.Bind(1, user.str())
        .Bind(2, TierName(tier))
        .Bind(3, now)
        .Bind(4, now)
        .Bind(5, ScheduleShardOf(user));
    if (Status s = ins.Exec(); !s.ok()) return s;
    auto r = QueryOne<User>(
        db, std::string("SELECT ") + kUserCols + " FROM users WHERE id = ?",
        [&](Stmt& s) { s.Bind(1, user.str()); }, ReadUser, NotFound("user", user.str()));
    if (!r.ok()) return r.error();
    out = std::move(*r);
    return {};
  });
  if (!st.ok()) return st.error();
  return out;
}

Result<User> SqliteStore::GetUser(const UserId& user) {
  return db_.Read([&](sqlite3* db) {
    return QueryOne<User>(
        db, std::string("SELECT ") + kUserCols + " FROM users WHERE id = ?",
        [&](Stmt& s) { s.Bind(1, user.str()); }, ReadUser, NotFound("user", user.str()));
  });
}

Status SqliteStore::UpsertUser(const User& user) {
  const TimePoint now = clock_.Now();
  const int64_t created = Ms(OrNow(user.created_at, now));
  return db_.Write([&](sqlite3* db) -> Status {
    // An existing user keeps its settings; only the tier changes (admin command). A tier change
    // unplaces the schedule slot (0) so the scheduler re-places it within the new interval.
    Stmt s(db,
           "INSERT INTO users(id, tier, settings_json, created_at, updated_at, shard) "
           "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET tier = excluded.tier, "
           "updated_at = excluded.updated_at, next_sync_at = CASE WHEN users.tier = excluded.tier "
           "THEN users.next_sync_at ELSE 0 END");
    s.Bind(1, user.id.str())
        .Bind(2, TierName(user.tier))
        .Bind(3, user.settings_json.empty() ? std::string("{}") : user.settings_json)
        .Bind(4, created)
        .Bind(5, Ms(now))
        .Bind(6, ScheduleShardOf(user.id));
    return s.Exec();
  });
}

Status SqliteStore::UpdateUserSettings(const UserId& user, const std::string& settings_json,
                                       const IdempotencyRecord* idem) {
  const int64_t now = Ms(clock_.Now());
  return WriteWithIdem(idem, [&](sqlite3* db) -> Status {
    Stmt s(db, "UPDATE users SET settings_json = ?, updated_at = ? WHERE id = ?");
    s.Bind(1, settings_json).Bind(2, now).Bind(3, user.str());
    if (Status st = s.Exec(); !st.ok()) return st;
    if (sqlite3_changes(db) == 0) return NotFound("user", user.str());
    return {};
  });
}

// ---- connections ----

Status SqliteStore::CreateConnection(const Connection& c) { return CreateConnection(c, nullptr); }

Status SqliteStore::CreateConnection(const Connection& c, const IdempotencyRecord* idem) {
  const TimePoint now = clock_.Now();
  return WriteWithIdem(idem, [&](sqlite3* db) -> Status {
    Stmt s(db,
           "INSERT INTO connections(id, user_id, provider, status, provider_user_id, "
           "access_token_sealed, refresh_token_sealed, created_at, updated_at, token_expires_at, "
           "token_version) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.Bind(1, c.id.str())
        .Bind(2, c.user.str())
        .Bind(3, c.provider)
        .Bind(4, ConnectionStatusName(c.status))
        .Bind(5, c.provider_user_id)
        .BindBlob(6, c.access_token_sealed)
        .BindBlob(7, c.refresh_token_sealed)
        .Bind(8, Ms(OrNow(c.created_at, now)))
        .Bind(9, Ms(OrNow(c.updated_at, now)))
        .Bind(10, Ms(c.token_expires_at))
        .Bind(11, c.token_version);
    return s.Exec();
  });
}

Status SqliteStore::ReplaceConnectionGrant(const Connection& c, const IdempotencyRecord* idem) {
  const int64_t now = Ms(clock_.Now());
  return WriteWithIdem(idem, [&](sqlite3* db) -> Status {
    Stmt s(db,
           "UPDATE connections SET access_token_sealed = ?, refresh_token_sealed = ?, "
           "token_expires_at = ?, provider_user_id = ?, status = ?, "
           "token_version = token_version + 1, updated_at = ? WHERE id = ? AND user_id = ?");
    s.BindBlob(1, c.access_token_sealed)
        .BindBlob(2, c.refresh_token_sealed)
        .Bind(3, Ms(c.token_expires_at))
        .Bind(4, c.provider_user_id)
        .Bind(5, ConnectionStatusName(c.status))
        .Bind(6, now)
        .Bind(7, c.id.str())
        .Bind(8, c.user.str());
    if (Status st = s.Exec(); !st.ok()) return st;
    if (sqlite3_changes(db) == 0) return NotFound("connection", c.id.str());
    return {};
  });
}

namespace {
Result<Connection> SelectConnection(sqlite3* db, const UserId& user, const ConnectionId& id) {
  return QueryOne<Connection>(
      db, std::string("SELECT ") + kConnCols + " FROM connections WHERE id = ? AND user_id = ?",
      [&](Stmt& s) { s.Bind(1, id.str()).Bind(2, user.str()); }, ReadConnection,
      NotFound("connection", id.str()));
}
}  // namespace

Result<Connection> SqliteStore::GetConnection(const UserId& user, const ConnectionId& id) {
  return db_.Read([&](sqlite3* db) { return SelectConnection(db, user, id); });
}

Result<std::vector<Connection>> SqliteStore::GetConnections(const UserId& user,
                                                            const std::vector<ConnectionId>& ids) {
  return db_.Read([&](sqlite3* db) -> Result<std::vector<Connection>> {
    std::vector<Connection> out;
    for (const auto& id : ids) {
      if (std::any_of(out.begin(), out.end(), [&](const Connection& c) { return c.id == id; }))
        continue;  // asked twice
      auto c = SelectConnection(db, user, id);
      if (c) {
        out.push_back(std::move(*c));
      } else if (c.error().code != Errc::kNotFound) {
        return c.error();
      }
    }
    return out;
  });
}

Result<std::vector<Connection>> SqliteStore::ListConnections(const UserId& user) {
  return db_.Read([&](sqlite3* db) {
    return QueryAll<Connection>(
        db,
        std::string("SELECT ") + kConnCols +
            " FROM connections WHERE user_id = ? ORDER BY created_at, id",
        [&](Stmt& s) { s.Bind(1, user.str()); }, ReadConnection);
  });
}

Result<std::vector<Connection>> SqliteStore::FindConnectionsByProviderUser(
    const std::string& provider, const std::string& provider_user_id) {
  return db_.Read([&](sqlite3* db) {
    return QueryAll<Connection>(
        db,
        std::string("SELECT ") + kConnCols +
            " FROM connections WHERE provider = ? AND provider_user_id = ? ORDER BY created_at, id",
        [&](Stmt& s) { s.Bind(1, provider).Bind(2, provider_user_id); }, ReadConnection);
  });
}

Status SqliteStore::DeleteConnection(const UserId& user, const ConnectionId& id,
                                     const IdempotencyRecord* idem) {
  return WriteWithIdem(idem, [&](sqlite3* db) -> Status {
    Stmt del(db, "DELETE FROM connections WHERE id = ? AND user_id = ?");
    del.Bind(1, id.str()).Bind(2, user.str());
    if (Status st = del.Exec(); !st.ok()) return st;
    if (sqlite3_changes(db) == 0) return NotFound("connection", id.str());
    // Configs, cursors and ledger rows where the connection is either side (SPEC S13).
    static constexpr const char* kDeletes[] = {
        "DELETE FROM sync_configs WHERE user_id = ?1 AND (source_id = ?2 OR destination_id = ?2)",
        "DELETE FROM sync_cursors WHERE user_id = ?1 AND (source_id = ?2 OR destination_id = ?2)",
        "DELETE FROM sync_ledger WHERE user_id = ?1 AND destination_id = ?2",
        "DELETE FROM sync_ledger WHERE user_id = ?1 AND source_id = ?2",
    };
    for (const char* sql : kDeletes) {
      Stmt d(db, sql);
      d.Bind(1, user.str()).Bind(2, id.str());
      if (Status st = d.Exec(); !st.ok()) return st;
    }
    if (cursors_->enabled()) db_.OnCommit([this] { cursors_->Clear(); });  // rare: drop them all
    return {};
  });
}

Status SqliteStore::UpdateConnectionTokens(const UserId& user, const ConnectionId& id,
                                           const std::string& access_sealed,
                                           const std::string& refresh_sealed, TimePoint expires_at,
                                           int64_t expected_token_version) {
  const int64_t now = Ms(clock_.Now());
  return db_.Write([&](sqlite3* db) -> Status {
    Stmt s(db,
           "UPDATE connections SET access_token_sealed = ?, refresh_token_sealed = ?, "
           "token_expires_at = ?, token_version = ?, updated_at = ? "
           "WHERE id = ? AND user_id = ? AND token_version = ?");
    s.BindBlob(1, access_sealed)
        .BindBlob(2, refresh_sealed)
        .Bind(3, Ms(expires_at))
        .Bind(4, expected_token_version + 1)
        .Bind(5, now)
        .Bind(6, id.str())
        .Bind(7, user.str())
        .Bind(8, expected_token_version);
    if (Status st = s.Exec(); !st.ok()) return st;
    if (sqlite3_changes(db) != 0) return {};
    Stmt q(db, "SELECT token_version FROM connections WHERE id = ? AND user_id = ?");
    q.Bind(1, id.str()).Bind(2, user.str());
    auto row = q.Step();
    if (!row.ok()) return row.error();
    if (!*row) return NotFound("connection", id.str());
    return MakeError(Errc::kConflict, "connection " + id.str() + " tokens are at version " +
                                          std::to_string(q.Int(0)));
  });
}

Status SqliteStore::SetConnectionStatus(const UserId& user, const ConnectionId& id,
                                        ConnectionStatus status) {
  const int64_t now = Ms(clock_.Now());
  return db_.Write([&](sqlite3* db) -> Status {
    Stmt s(db, "UPDATE connections SET status = ?, updated_at = ? WHERE id = ? AND user_id = ?");
    s.Bind(1, ConnectionStatusName(status)).Bind(2, now).Bind(3, id.str()).Bind(4, user.str());
    if (Status st = s.Exec(); !st.ok()) return st;
    if (sqlite3_changes(db) == 0) return NotFound("connection", id.str());
    return {};
  });
}

// ---- sync configs ----

Status SqliteStore::CreateSyncConfig(const SyncConfig& c, const IdempotencyRecord* idem) {
  const TimePoint now = clock_.Now();
  return WriteWithIdem(idem, [&](sqlite3* db) -> Status {
    Stmt s(db,
           "INSERT INTO sync_configs(id, user_id, source_id, destination_id, data_type, "
           "conflict_strategy, enabled, version, created_at, updated_at) "
           "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.Bind(1, c.id.str())
        .Bind(2, c.user.str())
        .Bind(3, c.source.str())
        .Bind(4, c.destination.str())
        .Bind(5, c.data_type)
        .Bind(6, c.conflict_strategy)
        .Bind(7, static_cast<int64_t>(c.enabled ? 1 : 0))
        .Bind(8, c.version)
        .Bind(9, Ms(OrNow(c.created_at, now)))
        .Bind(10, Ms(OrNow(c.updated_at, now)));
    return s.Exec();
  });
}

Result<SyncConfig> SqliteStore::GetSyncConfig(const UserId& user, const SyncConfigId& id) {
  return db_.Read([&](sqlite3* db) {
    return QueryOne<SyncConfig>(
        db, std::string("SELECT ") + kCfgCols + " FROM sync_configs WHERE id = ? AND user_id = ?",
        [&](Stmt& s) { s.Bind(1, id.str()).Bind(2, user.str()); }, ReadSyncConfig,
        NotFound("sync config", id.str()));
  });
}

Result<std::vector<SyncConfig>> SqliteStore::ListSyncConfigs(const UserId& user) {
  return db_.Read([&](sqlite3* db) {
    return QueryAll<SyncConfig>(
        db,
        std::string("SELECT ") + kCfgCols +
            " FROM sync_configs WHERE user_id = ? ORDER BY created_at, id",
        [&](Stmt& s) { s.Bind(1, user.str()); }, ReadSyncConfig);
  });
}

namespace {
// After an UPDATE/DELETE guarded by version matched nothing: kNotFound or kConflict.
Status MissOrStale(sqlite3* db, const UserId& user, const SyncConfigId& id) {
  Stmt q(db, "SELECT version FROM sync_configs WHERE id = ? AND user_id = ?");
  q.Bind(1, id.str()).Bind(2, user.str());
  auto row = q.Step();
  if (!row.ok()) return row.error();
  if (!*row) return NotFound("sync config", id.str());
  return MakeError(Errc::kConflict,
                   "sync config " + id.str() + " is at version " + std::to_string(q.Int(0)));
}
}  // namespace

Status SqliteStore::UpdateSyncConfig(const SyncConfig& c, int64_t expected_version,
                                     const IdempotencyRecord* idem) {
  const int64_t now = Ms(clock_.Now());
  return WriteWithIdem(idem, [&](sqlite3* db) -> Status {
    Stmt s(db,
           "UPDATE sync_configs SET source_id = ?, destination_id = ?, data_type = ?, "
           "conflict_strategy = ?, enabled = ?, version = ?, updated_at = ? "
           "WHERE id = ? AND user_id = ? AND version = ?");
    s.Bind(1, c.source.str())
        .Bind(2, c.destination.str())
        .Bind(3, c.data_type)
        .Bind(4, c.conflict_strategy)
        .Bind(5, static_cast<int64_t>(c.enabled ? 1 : 0))
        .Bind(6, expected_version + 1)
        .Bind(7, now)
        .Bind(8, c.id.str())
        .Bind(9, c.user.str())
        .Bind(10, expected_version);
    if (Status st = s.Exec(); !st.ok()) return st;
    if (sqlite3_changes(db) == 0) return MissOrStale(db, c.user, c.id);
    return {};
  });
}

Status SqliteStore::DeleteSyncConfig(const UserId& user, const SyncConfigId& id,
                                     std::optional<int64_t> expected_version,
                                     const IdempotencyRecord* idem) {
  return WriteWithIdem(idem, [&](sqlite3* db) -> Status {
    Stmt s(
        db,
        "DELETE FROM sync_configs WHERE id = ? AND user_id = ? AND (?3 IS NULL OR version = ?3)");
    s.Bind(1, id.str()).Bind(2, user.str());
    if (expected_version) {
      s.Bind(3, *expected_version);
    } else {
      s.BindNull(3);
    }
    if (Status st = s.Exec(); !st.ok()) return st;
    if (sqlite3_changes(db) == 0) return MissOrStale(db, user, id);
    return {};
  });
}

// ---- jobs ----

Status SqliteStore::CreateJob(const Job& job, const queue::OutgoingMessage& msg,
                              const IdempotencyRecord* idem) {
  Status st = db_.Write(CreateJobFn(job, msg, idem));
  if (st.ok()) JobSent();
  return st;
}

void SqliteStore::CreateJobAsync(Job job, queue::OutgoingMessage msg,
                                 std::optional<IdempotencyRecord> idem,
                                 std::function<void(Status)> done) {
  db_.SubmitWrite(CreateJobFn(std::move(job), std::move(msg), idem ? &*idem : nullptr),
                  [this, done = std::move(done)](const Status& st) {
                    if (st.ok()) JobSent();
                    done(st);
                  });
}

SqliteDb::WriteFn SqliteStore::CreateJobFn(Job job, queue::OutgoingMessage msg,
                                           const IdempotencyRecord* idem) {
  const TimePoint now = clock_.Now();
  const auto window = db_.settings().dedup_window;
  return WithIdem(
      idem, [this, job = std::move(job), msg = std::move(msg), now, window](sqlite3* db) -> Status {
        Stmt s(
            db,
            "INSERT INTO jobs(id, user_id, source_id, destination_id, data_type, mode, priority, "
            "start_date, end_date, status, error, created_at, updated_at, summary) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        s.Bind(1, job.id.str())
            .Bind(2, job.user.str())
            .Bind(3, job.source.str())
            .Bind(4, job.destination.str())
            .Bind(5, job.data_type)
            .Bind(6, job.mode)
            .Bind(7, job.priority)
            .Bind(8, job.start_date)
            .Bind(9, job.end_date)
            .Bind(10, JobStatusName(job.status))
            .Bind(11, job.error)
            .Bind(12, Ms(OrNow(job.created_at, now)))
            .Bind(13, Ms(OrNow(job.updated_at, now)))
            .Bind(14, job.summary);
        if (Status st = s.Exec(); !st.ok()) return st;
        auto sent = SqliteQueueSendInTx(db, msg, now, window);
        if (!sent.ok()) return sent.error();
        if (jobs_->enabled() && !IsTerminal(job.status)) {
          Job row = job;  // as GetJob would read it back: times in whole milliseconds
          row.created_at = FromUnixMillis(Ms(OrNow(job.created_at, now)));
          row.updated_at = FromUnixMillis(Ms(OrNow(job.updated_at, now)));
          db_.OnCommit([this, row = std::move(row)]() mutable {
            const std::string key = row.id.str();
            jobs_->Put(key, std::move(row));
          });
        }
        return {};
      });
}

Result<Job> SqliteStore::GetJob(const UserId& user, const JobId& id) {
  auto job = jobs_->GetOrRead(
      id.str(),
      [&] {
        return db_.Read([&](sqlite3* db) {
          return QueryOne<Job>(
              db, std::string("SELECT ") + kJobCols + " FROM jobs WHERE id = ? AND user_id = ?",
              [&](Stmt& s) { s.Bind(1, id.str()).Bind(2, user.str()); }, ReadJob,
              NotFound("job", id.str()));
        });
      },
      [](const Job& j) { return !IsTerminal(j.status); });
  if (job.ok() && job->user != user) return NotFound("job", id.str());  // a cached job of another
  return job;
}

Status SqliteStore::UpdateJobStatus(const JobId& id, JobStatus status, const std::string& error) {
  return db_.Write(UpdateJobStatusFn(id, status, error));
}

void SqliteStore::UpdateJobStatusAsync(const JobId& id, JobStatus status, std::string error,
                                       std::function<void(Status)> done) {
  db_.SubmitWrite(UpdateJobStatusFn(id, status, std::move(error)), std::move(done));
}

SqliteDb::WriteFn SqliteStore::UpdateJobStatusFn(const JobId& id, JobStatus status,
                                                 std::string error) {
  const int64_t now = Ms(clock_.Now());
  return [this, id, status, error = std::move(error), now](sqlite3* db) -> Status {
    Stmt s(db, "UPDATE jobs SET status = ?, error = ?, updated_at = ? WHERE id = ?");
    s.Bind(1, JobStatusName(status)).Bind(2, error).Bind(3, now).Bind(4, id.str());
    if (Status st = s.Exec(); !st.ok()) return st;
    if (sqlite3_changes(db) == 0) return NotFound("job", id.str());
    if (jobs_->enabled()) {
      db_.OnCommit(
          [this, id, status, error, now] { JobStatusCommitted(id, status, error, nullptr, now); });
    }
    return {};
  };
}

// ---- idempotency ----

Result<std::optional<IdempotencyRecord>> SqliteStore::GetIdempotency(const UserId& user,
                                                                     const std::string& key) {
  const int64_t cutoff = Ms(clock_.Now() - db_.settings().idempotency_retention);
  return db_.Read([&](sqlite3* db) -> Result<std::optional<IdempotencyRecord>> {
    Stmt s(db,
           "SELECT request_hash, status_code, response_body, created_at FROM idempotency "
           "WHERE user_id = ? AND key = ? AND created_at >= ?");
    s.Bind(1, user.str()).Bind(2, key).Bind(3, cutoff);
    auto row = s.Step();
    if (!row.ok()) return row.error();
    if (!*row) return std::optional<IdempotencyRecord>{};
    IdempotencyRecord r;
    r.user = user;
    r.key = key;
    r.request_hash = s.Text(0);
    r.status_code = static_cast<int>(s.Int(1));
    r.response_body = s.Text(2);
    r.created_at = FromUnixMillis(s.Int(3));
    return std::optional<IdempotencyRecord>(std::move(r));
  });
}

Result<int64_t> SqliteStore::PurgeIdempotencyBefore(TimePoint cutoff) {
  // Bounded batches: each is one small write closure, so the writer (and everyone's group
  // commit) is never held by one huge delete.
  int64_t total = 0;
  for (;;) {
    int64_t n = 0;
    Status st = db_.Write([&](sqlite3* db) -> Status {
      Stmt s(db,
             "DELETE FROM idempotency WHERE (user_id, key) IN "
             "(SELECT user_id, key FROM idempotency WHERE created_at < ? LIMIT ?)");
      s.Bind(1, Ms(cutoff)).Bind(2, kPurgeBatch);
      if (Status e = s.Exec(); !e.ok()) return e;
      n = sqlite3_changes(db);
      return {};
    });
    if (!st.ok()) return st.error();
    total += n;
    if (n < kPurgeBatch) return total;
  }
}

// ---- user deletion ----

Status SqliteStore::RequestUserDeletion(const UserId& user, const IdempotencyRecord* idem) {
  const int64_t now = Ms(clock_.Now());
  return WriteWithIdem(idem, [&](sqlite3* db) -> Status {
    // Pending stays pending (requested_at unchanged); a completed deletion is requested again
    // (the user may have come back and created data since).
    Stmt s(db,
           "INSERT INTO user_deletions(user_id, state, requested_at, completed_at) "
           "VALUES(?, 'pending', ?, NULL) ON CONFLICT(user_id) DO UPDATE SET state = 'pending', "
           "requested_at = excluded.requested_at, completed_at = NULL "
           "WHERE user_deletions.state <> 'pending'");
    s.Bind(1, user.str()).Bind(2, now);
    return s.Exec();
  });
}

Result<UserDeletion> SqliteStore::GetUserDeletion(const UserId& user) {
  return db_.Read([&](sqlite3* db) -> Result<UserDeletion> {
    Stmt s(db, "SELECT state, requested_at, completed_at FROM user_deletions WHERE user_id = ?");
    s.Bind(1, user.str());
    auto row = s.Step();
    if (!row.ok()) return row.error();
    UserDeletion d;
    d.user = user;
    if (!*row) return d;  // kNone
    d.state = s.Text(0) == "completed" ? DeletionState::kCompleted : DeletionState::kPending;
    d.requested_at = FromUnixMillis(s.Int(1));
    if (!s.IsNull(2)) d.completed_at = FromUnixMillis(s.Int(2));
    return d;
  });
}

Result<std::vector<UserId>> SqliteStore::PendingDeletions(size_t limit) {
  return db_.Read([&](sqlite3* db) {
    return QueryAll<UserId>(
        db,
        "SELECT user_id FROM user_deletions WHERE state = 'pending' "
        "ORDER BY requested_at, user_id LIMIT ?",
        [&](Stmt& s) { s.Bind(1, static_cast<int64_t>(limit)); },
        [](const Stmt& s) { return UserId(s.Text(0)); });
  });
}

namespace {
// `col` of every message of group ?1: live ones by queue_messages_group_order, dead-lettered
// ones by queue_messages_by_state (no index on group_id alone: one index less per send).
std::string GroupMessages(const char* col) {
  return std::string("(SELECT ") + col +
         " FROM queue_messages WHERE group_id = ?1 AND state <> 'dlq' UNION ALL SELECT " + col +
         " FROM queue_messages WHERE state = 'dlq' AND group_id = ?1)";
}
}  // namespace

Status SqliteStore::PurgeUser(const UserId& user) {
  const int64_t now = Ms(clock_.Now());
  return db_.Write([&](sqlite3* db) -> Status {
    static const std::vector<std::string> kDeletes = {
        "DELETE FROM queue_dedup WHERE dedup_id IN " + GroupMessages("dedup_id") +
            " AND message_id IN " + GroupMessages("id"),
        "DELETE FROM queue_messages WHERE id IN " + GroupMessages("id"),
        "DELETE FROM sync_configs WHERE user_id = ?1",
        "DELETE FROM sync_cursors WHERE user_id = ?1",
        "DELETE FROM sync_ledger WHERE user_id = ?1",
        "DELETE FROM connections WHERE user_id = ?1",
        "DELETE FROM jobs WHERE user_id = ?1",
        "DELETE FROM idempotency WHERE user_id = ?1",
        "DELETE FROM users WHERE id = ?1",
    };
    for (const std::string& sql : kDeletes) {
      Stmt s(db, sql);
      s.Bind(1, user.str());
      if (Status st = s.Exec(); !st.ok()) return st;
    }
    Stmt done(db,
              "INSERT INTO user_deletions(user_id, state, requested_at, completed_at) "
              "VALUES(?1, 'completed', ?2, ?2) ON CONFLICT(user_id) DO UPDATE SET "
              "state = 'completed', completed_at = excluded.completed_at");
    done.Bind(1, user.str()).Bind(2, now);
    if (Status st = done.Exec(); !st.ok()) return st;
    if (jobs_->enabled()) db_.OnCommit([this] { ClearRowCache(); });  // rare: drop them all
    return {};
  });
}

// ---- control events ----

Status SqliteStore::AddControlEvent(const std::string& kind, const std::string& value) {
  const int64_t now = Ms(clock_.Now());
  return db_.Write([&](sqlite3* db) -> Status {
    Stmt s(db, "INSERT INTO control_events(kind, value, created_at) VALUES(?, ?, ?)");
    s.Bind(1, kind).Bind(2, value).Bind(3, now);
    return s.Exec();
  });
}

Result<std::vector<Store::ControlEvent>> SqliteStore::ControlEventsAfter(int64_t after_seq) {
  return db_.Read([&](sqlite3* db) {
    return QueryAll<ControlEvent>(
        db, "SELECT seq, kind, value FROM control_events WHERE seq > ? ORDER BY seq",
        [&](Stmt& s) { s.Bind(1, after_seq); },
        [](const Stmt& s) {
          return ControlEvent{s.Int(0), s.Text(1), s.Text(2)};
        });
  });
}

Status SqliteStore::Ping() {
  return db_.Read([](sqlite3* db) -> Status {
    Stmt s(db, "SELECT 1");
    auto row = s.Step();
    if (!row.ok()) return row.error();
    return {};
  });
}

}  // namespace syncwell::store
