#include "store/postgres/postgres_store.hpp"

#include <functional>
#include <string>
#include <utility>

#include "store/postgres/postgres_job_queue.hpp"
#include "store/postgres/postgres_query.hpp"

namespace syncwell::store {

using pg::PgConn;
using pg::PgParam;
using pg::PgResult;
using pg::PgStatement;
using pg_query::All;
using pg_query::AnyResult;
using pg_query::Check;
using pg_query::Ms;
using pg_query::NotFound;
using pg_query::One;
using pg_query::TextArray;

namespace pg {

// The store schema. Never edit a shipped migration: append a new version.
//
// Times are bigint milliseconds from the injected Clock. Sealed tokens are bytea (binary). Every
// lookup a PostgresStore method does has an index; notes on the less obvious ones:
//  * sync_ledger's key starts with user_id: every read is user-scoped, PurgeUser deletes by it, and
//    DeleteConnection (rare) filters one user's rows by source, so the hottest table needs only
//    the key plus the partial loop-suppression index (done rows only: pending rows have no
//    destination id yet). Connection ids are global, so the extra key column changes nothing.
//  * jobs (tens of millions a day) are purged by PurgeFinishedJobsBefore via (status, updated_at).
//  * connections and sync_cursors are updated in place (tokens, cursor CAS) without touching an
//    indexed column: fillfactor leaves room for HOT updates.
std::vector<Migration> StoreMigrations() {
  return {Migration{"store", 1, "store tables and sync state", R"sql(
CREATE TABLE users (
  id text PRIMARY KEY,
  tier text NOT NULL,
  settings_json text NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL
);

CREATE TABLE connections (
  id text PRIMARY KEY,
  user_id text NOT NULL,
  provider text NOT NULL,
  status text NOT NULL,
  provider_user_id text NOT NULL,
  access_token_sealed bytea NOT NULL,
  refresh_token_sealed bytea NOT NULL,
  token_expires_at bigint NOT NULL DEFAULT 0,
  token_version bigint NOT NULL DEFAULT 0,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL
) WITH (fillfactor = 90);
CREATE INDEX connections_by_user ON connections (user_id, created_at, id);
-- Webhooks map a provider's user id to our connections (SPEC S7).
CREATE INDEX connections_by_provider_user ON connections (provider, provider_user_id, created_at, id);

CREATE TABLE sync_configs (
  id text PRIMARY KEY,
  user_id text NOT NULL,
  source_id text NOT NULL,
  destination_id text NOT NULL,
  data_type text NOT NULL,
  conflict_strategy text NOT NULL,
  enabled boolean NOT NULL,
  version bigint NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL
);
CREATE INDEX sync_configs_by_user ON sync_configs (user_id, created_at, id);

CREATE TABLE jobs (
  id text PRIMARY KEY,
  user_id text NOT NULL,
  source_id text NOT NULL,
  destination_id text NOT NULL,
  data_type text NOT NULL,
  mode text NOT NULL,
  priority text NOT NULL,
  start_date text NOT NULL,
  end_date text NOT NULL,
  status text NOT NULL,
  error text NOT NULL,
  summary text NOT NULL DEFAULT '',
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
CREATE INDEX jobs_by_user ON jobs (user_id);
CREATE INDEX jobs_by_status_updated ON jobs (status, updated_at);

CREATE TABLE idempotency (
  user_id text NOT NULL,
  key text NOT NULL,
  request_hash text NOT NULL,
  status_code int NOT NULL,
  response_body text NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (user_id, key)
) WITH (autovacuum_vacuum_scale_factor = 0.02);
CREATE INDEX idempotency_by_created ON idempotency (created_at);

CREATE TABLE user_deletions (
  user_id text PRIMARY KEY,
  state text NOT NULL CHECK (state IN ('pending', 'completed')),
  requested_at bigint NOT NULL,
  completed_at bigint
);
CREATE INDEX user_deletions_pending ON user_deletions (requested_at, user_id)
  WHERE state = 'pending';

CREATE TABLE control_events (
  seq bigserial PRIMARY KEY,
  kind text NOT NULL,
  value text NOT NULL,
  created_at bigint NOT NULL
);

-- Sync engine state (SPEC S4): ids, times and fingerprints only, never health values.
CREATE TABLE sync_cursors (
  user_id text NOT NULL,
  source_id text NOT NULL,
  destination_id text NOT NULL,
  data_type text NOT NULL,
  last_sync_ms bigint NOT NULL,
  version bigint NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (user_id, source_id, destination_id, data_type)
) WITH (fillfactor = 80);

CREATE TABLE sync_ledger (
  user_id text NOT NULL,
  destination_id text NOT NULL,
  source_id text NOT NULL,
  source_record_id text NOT NULL,
  fingerprint text NOT NULL,
  dest_record_id text NOT NULL,
  state text NOT NULL CHECK (state IN ('pending', 'done')),
  job_id text NOT NULL,
  source_modified_ms bigint NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (user_id, destination_id, source_id, source_record_id, fingerprint)
);
-- Loop suppression: "did we write record X at connection C?"
CREATE INDEX sync_ledger_own_writes ON sync_ledger (user_id, destination_id, dest_record_id)
  WHERE state = 'done';
)sql"},
          // The tiered schedule (SPEC S7). Shards need murmur3 (C++), so existing rows get -1
          // here and PostgresStore::AssignScheduleShards (run by the scheduler that owns shard 0)
          // fills them in; next_sync_at 0 = not placed yet (the scheduler spreads such users over
          // their tier's interval, so an upgrade does not make everyone due at once).
          Migration{"store", 2, "tiered schedule: user shard and next sync time", R"sql(
ALTER TABLE users ADD COLUMN shard int NOT NULL DEFAULT -1;
ALTER TABLE users ADD COLUMN next_sync_at bigint NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN recent_slots text NOT NULL DEFAULT '';
CREATE INDEX users_due ON users (shard, next_sync_at);
)sql"},
          // Lets a statement of a pipelined transaction (PgConn::ExecTx) fail the whole
          // transaction when it changed no row: the idempotency claim of CreateJob.
          Migration{"store", 3, "sw_require_one: fail a transaction from SQL", R"sql(
CREATE FUNCTION sw_require_one(p_count bigint, p_message text) RETURNS bigint
LANGUAGE plpgsql AS $f$
BEGIN
  IF p_count <> 1 THEN
    RAISE unique_violation USING MESSAGE = p_message;
  END IF;
  RETURN p_count;
END
$f$;
)sql"}};
}

}  // namespace pg

namespace {

constexpr int64_t kPurgeBatch = 1000;

TimePoint OrNow(TimePoint t, TimePoint now) { return t == TimePoint{} ? now : t; }

Error Exists(std::string_view what, const std::string& id) {
  return MakeError(Errc::kAlreadyExists, std::string(what) + " " + id + " already exists");
}

// bytea travels as hex text both ways (decode($n, 'hex') / encode(col, 'hex')), so binary tokens
// with NUL bytes survive the text protocol whatever the server's bytea_output is.

constexpr const char* kUserCols = "id, tier, settings_json, created_at, updated_at";
User ReadUser(const PgResult& r, int i) {
  User u;
  u.id = UserId(r.Str(i, 0));
  ParseTier(r.Text(i, 1), &u.tier);
  u.settings_json = r.Str(i, 2);
  u.created_at = FromUnixMillis(r.Int(i, 3));
  u.updated_at = FromUnixMillis(r.Int(i, 4));
  return u;
}

constexpr const char* kConnCols =
    "id, user_id, provider, status, provider_user_id, encode(access_token_sealed, 'hex'), "
    "encode(refresh_token_sealed, 'hex'), created_at, updated_at, token_expires_at, token_version";
Connection ReadConnection(const PgResult& r, int i) {
  Connection c;
  c.id = ConnectionId(r.Str(i, 0));
  c.user = UserId(r.Str(i, 1));
  c.provider = r.Str(i, 2);
  ParseConnectionStatus(r.Text(i, 3), &c.status);
  c.provider_user_id = r.Str(i, 4);
  c.access_token_sealed = pg::HexDecode(r.Text(i, 5));
  c.refresh_token_sealed = pg::HexDecode(r.Text(i, 6));
  c.created_at = FromUnixMillis(r.Int(i, 7));
  c.updated_at = FromUnixMillis(r.Int(i, 8));
  c.token_expires_at = FromUnixMillis(r.Int(i, 9));
  c.token_version = r.Int(i, 10);
  return c;
}

constexpr const char* kCfgCols =
    "id, user_id, source_id, destination_id, data_type, conflict_strategy, enabled, version, "
    "created_at, updated_at";
SyncConfig ReadSyncConfig(const PgResult& r, int i) {
  SyncConfig c;
  c.id = SyncConfigId(r.Str(i, 0));
  c.user = UserId(r.Str(i, 1));
  c.source = ConnectionId(r.Str(i, 2));
  c.destination = ConnectionId(r.Str(i, 3));
  c.data_type = r.Str(i, 4);
  c.conflict_strategy = r.Str(i, 5);
  c.enabled = r.Bool(i, 6);
  c.version = r.Int(i, 7);
  c.created_at = FromUnixMillis(r.Int(i, 8));
  c.updated_at = FromUnixMillis(r.Int(i, 9));
  return c;
}

constexpr const char* kJobCols =
    "id, user_id, source_id, destination_id, data_type, mode, priority, start_date, end_date, "
    "status, error, created_at, updated_at, summary";
Job ReadJob(const PgResult& r, int i) {
  Job j;
  j.id = JobId(r.Str(i, 0));
  j.user = UserId(r.Str(i, 1));
  j.source = ConnectionId(r.Str(i, 2));
  j.destination = ConnectionId(r.Str(i, 3));
  j.data_type = r.Str(i, 4);
  j.mode = r.Str(i, 5);
  j.priority = r.Str(i, 6);
  j.start_date = r.Str(i, 7);
  j.end_date = r.Str(i, 8);
  ParseJobStatus(r.Text(i, 9), &j.status);
  j.error = r.Str(i, 10);
  j.created_at = FromUnixMillis(r.Int(i, 11));
  j.updated_at = FromUnixMillis(r.Int(i, 12));
  j.summary = r.Str(i, 13);
  return j;
}

// The statement must change a row; none changed -> `none`.
Check ChangesRow(Error none) {
  return [none = std::move(none)](const PgResult& r) -> Status {
    if (r.affected() == 0) return none;
    return {};
  };
}

// "WITH upd AS (<versioned change> RETURNING 1) SELECT (SELECT count(*) FROM upd), (SELECT version
// ...)": a change that matched nothing is kNotFound (no row in the statement's snapshot) or
// kConflict (the row is at another version).
Check Versioned(std::string what, std::string id) {
  return [what = std::move(what), id = std::move(id)](const PgResult& r) -> Status {
    if (r.Int(0, 0) != 0) return {};
    if (r.IsNull(0, 1)) return NotFound(what, id);
    return MakeError(Errc::kConflict,
                     what + " " + id + " is at version " + std::to_string(r.Int(0, 1)));
  };
}

}  // namespace

PostgresStore::PostgresStore(pg::PgPool& pool, const Clock& clock,
                             std::chrono::seconds dedup_window,
                             std::chrono::hours idempotency_retention)
    : pool_(pool),
      clock_(clock),
      dedup_window_(dedup_window),
      idempotency_retention_(idempotency_retention) {}

Result<PgResult> PostgresStore::Exec(std::string_view sql, const std::vector<PgParam>& params) {
  for (int attempt = 1;; ++attempt) {
    auto r = pool_.Exec(sql, params);
    if (r || r.error().code != Errc::kRetryable || attempt >= pool_.settings().tx_retries) {
      return r;
    }
  }
}

// The idempotency record's claim: inserted, or replacing a record past the retention (as if it
// had been purged already); a key in use and unexpired fails the transaction with kAlreadyExists
// (unique violation raised by sw_require_one) and so changes nothing. A concurrent request with
// the same key waits on this row, then finds it taken.
PgStatement PostgresStore::IdempotencyClaim(const IdempotencyRecord& idem, TimePoint now) const {
  return PgStatement{
      "WITH i AS (INSERT INTO idempotency (user_id, key, request_hash, status_code, "
      "response_body, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, key) DO "
      "UPDATE SET request_hash = EXCLUDED.request_hash, status_code = EXCLUDED.status_code, "
      "response_body = EXCLUDED.response_body, created_at = EXCLUDED.created_at "
      "WHERE idempotency.created_at < $7 RETURNING 1) "
      "SELECT sw_require_one((SELECT count(*) FROM i), $8::text)",
      {PgParam(idem.user.str()), PgParam(idem.key), PgParam(idem.request_hash),
       PgParam(idem.status_code), PgParam(idem.response_body),
       PgParam(Ms(OrNow(idem.created_at, now))), PgParam(Ms(now - idempotency_retention_)),
       PgParam("idempotency key already used: " + idem.key)}};
}

Status PostgresStore::WriteTx(const IdempotencyRecord* idem,
                              const std::function<Status(PgConn&)>& change) {
  if (idem == nullptr) return pool_.WithTx(change);
  const PgStatement claim = IdempotencyClaim(*idem, clock_.Now());
  return pool_.WithTx([&](PgConn& c) -> Status {
    // The record goes first: a key in use changes nothing.
    auto r = c.Exec(claim.sql, claim.params);
    if (!r) return r.error();
    return change(c);  // on failure WithTx rolls the record back too
  });
}

Status PostgresStore::Write(const IdempotencyRecord* idem, std::string_view sql,
                            const std::vector<PgParam>& params, const Check& check) {
  if (idem == nullptr) {
    auto r = Exec(sql, params);
    if (!r) return r.error();
    return check(*r);
  }
  return WriteTx(idem, [&](PgConn& c) -> Status {
    auto r = c.Exec(sql, params);
    if (!r) return r.error();
    return check(*r);
  });
}

// ---- users ----

Result<User> PostgresStore::EnsureUser(const UserId& user, Tier tier) {
  auto existing = GetUser(user);
  if (existing.ok() || existing.error().code != Errc::kNotFound) return existing;
  const int64_t now = Ms(clock_.Now());
  auto created = Exec(
      std::string("INSERT INTO users (") + kUserCols +
          ", shard) VALUES ($1, $2, '{}', $3, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING " +
          kUserCols,
      {PgParam(user.str()), PgParam(TierName(tier)), PgParam(now), PgParam(ScheduleShardOf(user))});
  if (!created) return created.error();
  if (created->rows() == 1) return ReadUser(*created, 0);
  return GetUser(user);  // created concurrently by another request
}

Result<User> PostgresStore::GetUser(const UserId& user) {
  return One<User>(
      Exec(std::string("SELECT ") + kUserCols + " FROM users WHERE id = $1", {PgParam(user.str())}),
      ReadUser, NotFound("user", user.str()));
}

Status PostgresStore::UpsertUser(const User& user) {
  const TimePoint now = clock_.Now();
  // An existing user keeps its settings; only the tier changes (admin command). A tier change
  // unplaces the schedule slot (0) so the scheduler re-places it within the new interval.
  return Write(nullptr,
               "INSERT INTO users (id, tier, settings_json, created_at, updated_at, shard) "
               "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET tier = "
               "EXCLUDED.tier, updated_at = EXCLUDED.updated_at, next_sync_at = CASE WHEN "
               "users.tier = EXCLUDED.tier THEN users.next_sync_at ELSE 0 END",
               {PgParam(user.id.str()), PgParam(TierName(user.tier)),
                PgParam(user.settings_json.empty() ? std::string("{}") : user.settings_json),
                PgParam(Ms(OrNow(user.created_at, now))), PgParam(Ms(now)),
                PgParam(ScheduleShardOf(user.id))},
               AnyResult);
}

Status PostgresStore::UpdateUserSettings(const UserId& user, const std::string& settings_json,
                                         const IdempotencyRecord* idem) {
  return Write(idem, "UPDATE users SET settings_json = $1, updated_at = $2 WHERE id = $3",
               {PgParam(settings_json), PgParam(Ms(clock_.Now())), PgParam(user.str())},
               ChangesRow(NotFound("user", user.str())));
}

// ---- connections ----

Status PostgresStore::CreateConnection(const Connection& c) { return CreateConnection(c, nullptr); }

Status PostgresStore::CreateConnection(const Connection& c, const IdempotencyRecord* idem) {
  const TimePoint now = clock_.Now();
  return Write(
      idem,
      "INSERT INTO connections (id, user_id, provider, status, provider_user_id, "
      "access_token_sealed, refresh_token_sealed, created_at, updated_at, token_expires_at, "
      "token_version) VALUES ($1, $2, $3, $4, $5, decode($6, 'hex'), decode($7, 'hex'), $8, $9, "
      "$10, $11) ON CONFLICT DO NOTHING",
      {PgParam(c.id.str()), PgParam(c.user.str()), PgParam(c.provider),
       PgParam(ConnectionStatusName(c.status)), PgParam(c.provider_user_id),
       PgParam(pg::HexEncode(c.access_token_sealed)),
       PgParam(pg::HexEncode(c.refresh_token_sealed)), PgParam(Ms(OrNow(c.created_at, now))),
       PgParam(Ms(OrNow(c.updated_at, now))), PgParam(Ms(c.token_expires_at)),
       PgParam(c.token_version)},
      ChangesRow(Exists("connection", c.id.str())));
}

Status PostgresStore::ReplaceConnectionGrant(const Connection& c, const IdempotencyRecord* idem) {
  return Write(
      idem,
      "UPDATE connections SET access_token_sealed = decode($1, 'hex'), "
      "refresh_token_sealed = decode($2, 'hex'), token_expires_at = $3, provider_user_id = $4, "
      "status = $5, token_version = token_version + 1, updated_at = $6 "
      "WHERE id = $7 AND user_id = $8",
      {PgParam(pg::HexEncode(c.access_token_sealed)),
       PgParam(pg::HexEncode(c.refresh_token_sealed)), PgParam(Ms(c.token_expires_at)),
       PgParam(c.provider_user_id), PgParam(ConnectionStatusName(c.status)),
       PgParam(Ms(clock_.Now())), PgParam(c.id.str()), PgParam(c.user.str())},
      ChangesRow(NotFound("connection", c.id.str())));
}

Result<Connection> PostgresStore::GetConnection(const UserId& user, const ConnectionId& id) {
  return One<Connection>(
      Exec(std::string("SELECT ") + kConnCols + " FROM connections WHERE id = $1 AND user_id = $2",
           {PgParam(id.str()), PgParam(user.str())}),
      ReadConnection, NotFound("connection", id.str()));
}

Result<std::vector<Connection>> PostgresStore::GetConnections(
    const UserId& user, const std::vector<ConnectionId>& ids) {
  std::vector<std::string> raw;
  raw.reserve(ids.size());
  for (const auto& id : ids) raw.push_back(id.str());
  return All<Connection>(Exec(std::string("SELECT ") + kConnCols +
                                  " FROM connections WHERE user_id = $1 AND id = ANY($2::text[])",
                              {PgParam(user.str()), PgParam(TextArray(raw))}),
                         ReadConnection);
}

Result<std::vector<Connection>> PostgresStore::ListConnections(const UserId& user) {
  return All<Connection>(Exec(std::string("SELECT ") + kConnCols +
                                  " FROM connections WHERE user_id = $1 ORDER BY created_at, id",
                              {PgParam(user.str())}),
                         ReadConnection);
}

Result<std::vector<Connection>> PostgresStore::FindConnectionsByProviderUser(
    const std::string& provider, const std::string& provider_user_id) {
  return All<Connection>(Exec(std::string("SELECT ") + kConnCols +
                                  " FROM connections WHERE provider = $1 AND provider_user_id = $2 "
                                  "ORDER BY created_at, id",
                              {PgParam(provider), PgParam(provider_user_id)}),
                         ReadConnection);
}

Status PostgresStore::DeleteConnection(const UserId& user, const ConnectionId& id,
                                       const IdempotencyRecord* idem) {
  // One statement: the connection, then (only if it was there) every config, cursor and ledger
  // row where it is either side (SPEC S13).
  return Write(idem,
               "WITH c AS (DELETE FROM connections WHERE id = $2 AND user_id = $1 RETURNING id), "
               "cfg AS (DELETE FROM sync_configs WHERE user_id = $1 AND (source_id = $2 OR "
               "destination_id = $2) AND EXISTS (SELECT 1 FROM c)), "
               "cur AS (DELETE FROM sync_cursors WHERE user_id = $1 AND (source_id = $2 OR "
               "destination_id = $2) AND EXISTS (SELECT 1 FROM c)), "
               "led AS (DELETE FROM sync_ledger WHERE user_id = $1 AND (destination_id = $2 OR "
               "source_id = $2) AND EXISTS (SELECT 1 FROM c)) "
               "SELECT count(*) FROM c",
               {PgParam(user.str()), PgParam(id.str())}, [&](const PgResult& r) -> Status {
                 if (r.Int(0, 0) == 0) return NotFound("connection", id.str());
                 return {};
               });
}

Status PostgresStore::UpdateConnectionTokens(const UserId& user, const ConnectionId& id,
                                             const std::string& access_sealed,
                                             const std::string& refresh_sealed,
                                             TimePoint expires_at, int64_t expected_token_version) {
  // Compare-and-set in one statement: a racing writer waits on the row lock, then re-checks the
  // version and matches nothing.
  return Write(
      nullptr,
      "WITH upd AS (UPDATE connections SET access_token_sealed = decode($3, 'hex'), "
      "refresh_token_sealed = decode($4, 'hex'), token_expires_at = $5, token_version = $7, "
      "updated_at = $8 WHERE id = $1 AND user_id = $2 AND token_version = $6 RETURNING 1) "
      "SELECT (SELECT count(*) FROM upd), "
      "(SELECT token_version FROM connections WHERE id = $1 AND user_id = $2)",
      {PgParam(id.str()), PgParam(user.str()), PgParam(pg::HexEncode(access_sealed)),
       PgParam(pg::HexEncode(refresh_sealed)), PgParam(Ms(expires_at)),
       PgParam(expected_token_version), PgParam(expected_token_version + 1),
       PgParam(Ms(clock_.Now()))},
      Versioned("connection tokens of", id.str()));
}

Status PostgresStore::SetConnectionStatus(const UserId& user, const ConnectionId& id,
                                          ConnectionStatus status) {
  return Write(nullptr,
               "UPDATE connections SET status = $1, updated_at = $2 WHERE id = $3 AND user_id = $4",
               {PgParam(ConnectionStatusName(status)), PgParam(Ms(clock_.Now())), PgParam(id.str()),
                PgParam(user.str())},
               ChangesRow(NotFound("connection", id.str())));
}

// ---- sync configs ----

Status PostgresStore::CreateSyncConfig(const SyncConfig& c, const IdempotencyRecord* idem) {
  const TimePoint now = clock_.Now();
  return Write(idem,
               "INSERT INTO sync_configs (id, user_id, source_id, destination_id, data_type, "
               "conflict_strategy, enabled, version, created_at, updated_at) "
               "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
               {PgParam(c.id.str()), PgParam(c.user.str()), PgParam(c.source.str()),
                PgParam(c.destination.str()), PgParam(c.data_type), PgParam(c.conflict_strategy),
                PgParam(c.enabled), PgParam(c.version), PgParam(Ms(OrNow(c.created_at, now))),
                PgParam(Ms(OrNow(c.updated_at, now)))},
               ChangesRow(Exists("sync config", c.id.str())));
}

Result<SyncConfig> PostgresStore::GetSyncConfig(const UserId& user, const SyncConfigId& id) {
  return One<SyncConfig>(
      Exec(std::string("SELECT ") + kCfgCols + " FROM sync_configs WHERE id = $1 AND user_id = $2",
           {PgParam(id.str()), PgParam(user.str())}),
      ReadSyncConfig, NotFound("sync config", id.str()));
}

Result<std::vector<SyncConfig>> PostgresStore::ListSyncConfigs(const UserId& user) {
  return All<SyncConfig>(Exec(std::string("SELECT ") + kCfgCols +
                                  " FROM sync_configs WHERE user_id = $1 ORDER BY created_at, id",
                              {PgParam(user.str())}),
                         ReadSyncConfig);
}

Status PostgresStore::UpdateSyncConfig(const SyncConfig& c, int64_t expected_version,
                                       const IdempotencyRecord* idem) {
  return Write(idem,
               "WITH upd AS (UPDATE sync_configs SET source_id = $1, destination_id = $2, "
               "data_type = $3, conflict_strategy = $4, enabled = $5, version = $6, "
               "updated_at = $7 WHERE id = $8 AND user_id = $9 AND version = $10 RETURNING 1) "
               "SELECT (SELECT count(*) FROM upd), "
               "(SELECT version FROM sync_configs WHERE id = $8 AND user_id = $9)",
               {PgParam(c.source.str()), PgParam(c.destination.str()), PgParam(c.data_type),
                PgParam(c.conflict_strategy), PgParam(c.enabled), PgParam(expected_version + 1),
                PgParam(Ms(clock_.Now())), PgParam(c.id.str()), PgParam(c.user.str()),
                PgParam(expected_version)},
               Versioned("sync config", c.id.str()));
}

Status PostgresStore::DeleteSyncConfig(const UserId& user, const SyncConfigId& id,
                                       std::optional<int64_t> expected_version,
                                       const IdempotencyRecord* idem) {
  return Write(idem,
               "WITH upd AS (DELETE FROM sync_configs WHERE id = $1 AND user_id = $2 "
               "AND ($3::bigint IS NULL OR version = $3::bigint) RETURNING 1) "
               "SELECT (SELECT count(*) FROM upd), "
               "(SELECT version FROM sync_configs WHERE id = $1 AND user_id = $2)",
               {PgParam(id.str()), PgParam(user.str()),
                expected_version ? PgParam(*expected_version) : PgParam()},
               Versioned("sync config", id.str()));
}

// ---- jobs ----

Status PostgresStore::CreateJob(const Job& job, const queue::OutgoingMessage& msg,
                                const IdempotencyRecord* idem) {
  // One round trip: a pipelined implicit transaction of the idempotency claim, the job row (an
  // existing id fails the transaction: unique violation -> kAlreadyExists) and its queue
  // message. They commit together, or at the first failure none does. (Measured under intake
  // load: BEGIN, three statements and COMMIT one after another were five round trips.)
  const TimePoint now = clock_.Now();
  std::vector<PgStatement> tx;
  if (idem != nullptr) tx.push_back(IdempotencyClaim(*idem, now));
  tx.push_back(PgStatement{
      "INSERT INTO jobs (id, user_id, source_id, destination_id, data_type, mode, priority, "
      "start_date, end_date, status, error, created_at, updated_at, summary) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
      {PgParam(job.id.str()), PgParam(job.user.str()), PgParam(job.source.str()),
       PgParam(job.destination.str()), PgParam(job.data_type), PgParam(job.mode),
       PgParam(job.priority), PgParam(job.start_date), PgParam(job.end_date),
       PgParam(JobStatusName(job.status)), PgParam(job.error),
       PgParam(Ms(OrNow(job.created_at, now))), PgParam(Ms(OrNow(job.updated_at, now))),
       PgParam(job.summary)}});
  tx.push_back(PgQueueSendStatement(msg, now, dedup_window_));
  auto r = pool_.ExecTx(tx);
  if (!r) return r.error();
  if (auto sent = PgQueueSendOutcome(r->back()); !sent) return sent.error();
  return {};
}

Result<Job> PostgresStore::GetJob(const UserId& user, const JobId& id) {
  return One<Job>(
      Exec(std::string("SELECT ") + kJobCols + " FROM jobs WHERE id = $1 AND user_id = $2",
           {PgParam(id.str()), PgParam(user.str())}),
      ReadJob, NotFound("job", id.str()));
}

Status PostgresStore::UpdateJobStatus(const JobId& id, JobStatus status, const std::string& error) {
  return Write(nullptr, "UPDATE jobs SET status = $1, error = $2, updated_at = $3 WHERE id = $4",
               {PgParam(JobStatusName(status)), PgParam(error), PgParam(Ms(clock_.Now())),
                PgParam(id.str())},
               ChangesRow(NotFound("job", id.str())));
}

Result<int64_t> PostgresStore::PurgeFinishedJobsBefore(TimePoint cutoff, size_t limit) {
  if (limit == 0) return int64_t{0};
  // SKIP LOCKED: housekeepers of several processes take different rows instead of queueing on the
  // same ones (and a job row being updated right now is left for the next pass).
  auto r = Exec(
      "DELETE FROM jobs WHERE ctid = ANY(ARRAY(SELECT ctid FROM jobs WHERE status IN "
      "('SUCCEEDED', 'FAILED') AND updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
      {PgParam(Ms(cutoff)), PgParam(static_cast<int64_t>(limit))});
  if (!r) return r.error();
  return r->affected();
}

// ---- idempotency ----

namespace {

// An idempotency record from columns col.. : created_at, request_hash, status_code,
// response_body.
constexpr const char* kIdemCols = "created_at, request_hash, status_code, response_body";
IdempotencyRecord ReadIdempotency(const PgResult& r, int col, const UserId& user,
                                  const std::string& key) {
  IdempotencyRecord rec;
  rec.user = user;
  rec.key = key;
  rec.created_at = FromUnixMillis(r.Int(0, col));
  rec.request_hash = r.Str(0, col + 1);
  rec.status_code = static_cast<int>(r.Int(0, col + 2));
  rec.response_body = r.Str(0, col + 3);
  return rec;
}

// A deletion state from columns col.. : state, requested_at, completed_at (a NULL state: none).
constexpr const char* kDeletionCols = "state, requested_at, completed_at";
UserDeletion ReadDeletion(const PgResult& r, int col, const UserId& user) {
  UserDeletion d;
  d.user = user;
  if (r.rows() == 0 || r.IsNull(0, col)) return d;  // kNone
  d.state = r.Text(0, col) == "completed" ? DeletionState::kCompleted : DeletionState::kPending;
  d.requested_at = FromUnixMillis(r.Int(0, col + 1));
  if (!r.IsNull(0, col + 2)) d.completed_at = FromUnixMillis(r.Int(0, col + 2));
  return d;
}

}  // namespace

Result<std::optional<IdempotencyRecord>> PostgresStore::GetIdempotency(const UserId& user,
                                                                       const std::string& key) {
  const int64_t cutoff = Ms(clock_.Now() - idempotency_retention_);
  auto r = Exec(std::string("SELECT ") + kIdemCols +
                    " FROM idempotency WHERE user_id = $1 AND key = $2 AND created_at >= $3",
                {PgParam(user.str()), PgParam(key), PgParam(cutoff)});
  if (!r) return r.error();
  if (r->rows() == 0) return std::optional<IdempotencyRecord>{};
  return std::optional<IdempotencyRecord>(ReadIdempotency(*r, 0, user, key));
}

Result<int64_t> PostgresStore::PurgeIdempotencyBefore(TimePoint cutoff) {
  // Bounded batches, each its own short statement: no long transaction, no huge lock set.
  int64_t total = 0;
  for (;;) {
    auto r = Exec(
        "DELETE FROM idempotency WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency "
        "WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        {PgParam(Ms(cutoff)), PgParam(kPurgeBatch)});
    if (!r) return r.error();
    total += r->affected();
    if (r->affected() < kPurgeBatch) return total;
  }
}

// ---- user deletion ----

Status PostgresStore::RequestUserDeletion(const UserId& user, const IdempotencyRecord* idem) {
  // Pending stays pending (requested_at unchanged); a completed deletion is requested again
  // (the user may have come back and created data since).
  return Write(idem,
               "INSERT INTO user_deletions (user_id, state, requested_at, completed_at) "
               "VALUES ($1, 'pending', $2, NULL) ON CONFLICT (user_id) DO UPDATE SET "
               "state = 'pending', requested_at = EXCLUDED.requested_at, completed_at = NULL "
               "WHERE user_deletions.state <> 'pending'",
               {PgParam(user.str()), PgParam(Ms(clock_.Now()))}, AnyResult);
}

Result<UserDeletion> PostgresStore::GetUserDeletion(const UserId& user) {
  auto r = Exec(std::string("SELECT ") + kDeletionCols + " FROM user_deletions WHERE user_id = $1",
                {PgParam(user.str())});
  if (!r) return r.error();
  return ReadDeletion(*r, 0, user);
}

Result<Store::WriteGuard> PostgresStore::GetWriteGuard(const UserId& user, const std::string& key) {
  const int64_t cutoff = Ms(clock_.Now() - idempotency_retention_);
  auto r = Exec(
      "SELECT i.created_at, i.request_hash, i.status_code, i.response_body, d.state, "
      "d.requested_at, d.completed_at FROM (SELECT 1) AS one "
      "LEFT JOIN idempotency i ON i.user_id = $1 AND i.key = $2 AND i.created_at >= $3 "
      "LEFT JOIN user_deletions d ON d.user_id = $1",
      {PgParam(user.str()), PgParam(key), PgParam(cutoff)});
  if (!r) return r.error();
  if (r->rows() != 1) return MakeError(Errc::kInternal, "write guard: expected one row");
  WriteGuard g;
  if (!r->IsNull(0, 0)) g.idempotency = ReadIdempotency(*r, 0, user, key);
  g.deletion = ReadDeletion(*r, 4, user);
  return g;
}

Result<std::vector<UserId>> PostgresStore::PendingDeletions(size_t limit) {
  return All<UserId>(Exec("SELECT user_id FROM user_deletions WHERE state = 'pending' "
                          "ORDER BY requested_at, user_id LIMIT $1",
                          {PgParam(static_cast<int64_t>(limit))}),
                     [](const PgResult& r, int i) { return UserId(r.Str(i, 0)); });
}

Status PostgresStore::PurgeUser(const UserId& user) {
  const int64_t now = Ms(clock_.Now());
  return pool_.WithTx([&](PgConn& c) -> Status {
    // The user's queue messages (the group is the user id), their dedup records and group row --
    // by the queue adapter, which locks the group row first like every queue writer.
    if (auto n = PgQueuePurgeGroupInTx(c, user.str()); !n) return n.error();
    // Everything the store holds for the user, then the completed marker: one statement.
    auto r = c.Exec(
        "WITH cfg AS (DELETE FROM sync_configs WHERE user_id = $1), "
        "cur AS (DELETE FROM sync_cursors WHERE user_id = $1), "
        "led AS (DELETE FROM sync_ledger WHERE user_id = $1), "
        "con AS (DELETE FROM connections WHERE user_id = $1), "
        "job AS (DELETE FROM jobs WHERE user_id = $1), "
        "idm AS (DELETE FROM idempotency WHERE user_id = $1), "
        "usr AS (DELETE FROM users WHERE id = $1) "
        "INSERT INTO user_deletions (user_id, state, requested_at, completed_at) "
        "VALUES ($1, 'completed', $2, $2) ON CONFLICT (user_id) DO UPDATE SET "
        "state = 'completed', completed_at = EXCLUDED.completed_at",
        {PgParam(user.str()), PgParam(now)});
    if (!r) return r.error();
    return {};
  });
}

// ---- control events ----

Status PostgresStore::AddControlEvent(const std::string& kind, const std::string& value) {
  const int64_t now = Ms(clock_.Now());
  return pool_.WithTx([&](PgConn& c) -> Status {
    // Writers take turns (the table lock is held to commit), so seq order is commit order and a
    // reader that saw seq n can never later find a smaller seq committed. Readers are not
    // blocked. Control events are rare admin actions.
    if (auto st = c.ExecScript("LOCK TABLE control_events IN EXCLUSIVE MODE"); !st) return st;
    auto r = c.Exec("INSERT INTO control_events (kind, value, created_at) VALUES ($1, $2, $3)",
                    {PgParam(kind), PgParam(value), PgParam(now)});
    if (!r) return r.error();
    return {};
  });
}

Result<std::vector<Store::ControlEvent>> PostgresStore::ControlEventsAfter(int64_t after_seq) {
  return All<ControlEvent>(
      Exec("SELECT seq, kind, value FROM control_events WHERE seq > $1 ORDER BY seq",
           {PgParam(after_seq)}),
      [](const PgResult& r, int i) {
        return ControlEvent{r.Int(i, 0), r.Str(i, 1), r.Str(i, 2)};
      });
}

Status PostgresStore::Ping() {
  auto r = pool_.Exec("SELECT 1");
  if (!r) return r.error();
  return {};
}

}  // namespace syncwell::store
