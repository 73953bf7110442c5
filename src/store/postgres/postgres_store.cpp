#include "store/postgres/postgres_store.hpp"

#include <functional>
#include <map>
#include <tuple>
#include <utility>

#include "store/postgres/postgres_job_queue.hpp"

namespace syncwell::store {

using pg::PgConn;
using pg::PgParam;
using pg::PgResult;

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
)sql"}};
}

}  // namespace pg

namespace {

constexpr int64_t kPurgeBatch = 1000;

int64_t Ms(TimePoint t) { return ToUnixMillis(t); }
TimePoint OrNow(TimePoint t, TimePoint now) { return t == TimePoint{} ? now : t; }

Error NotFound(std::string_view what, const std::string& id) {
  return MakeError(Errc::kNotFound, std::string(what) + " " + id + " not found");
}
Error Exists(std::string_view what, const std::string& id) {
  return MakeError(Errc::kAlreadyExists, std::string(what) + " " + id + " already exists");
}

// bytea travels as hex text both ways (decode($n, 'hex') / encode(col, 'hex')), so binary tokens
// with NUL bytes survive the text protocol whatever the server's bytea_output is.

// Array literals for $n::text[] / $n::bigint[] parameters (every element quoted, so empty strings
// and the word NULL stay strings).
std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i != 0) out += ',';
    out += '"';
    for (char ch : values[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  out += '}';
  return out;
}
std::string IntArray(const std::vector<int64_t>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i != 0) out += ',';
    out += std::to_string(values[i]);
  }
  out += '}';
  return out;
}

// A statement whose parameters are numbered as they are added ($1, $2, ...), for SQL assembled
// from optional parts.
struct Sql {
  std::string text;
  std::vector<PgParam> params;
  std::string Param(PgParam p) {
    params.push_back(std::move(p));
    return "$" + std::to_string(params.size());
  }
};

// Ledger rows as column arrays for one unnest() statement: one row per key (the last entry of a
// key wins, as sequential upserts would; ON CONFLICT cannot touch a row twice in one statement),
// sorted by key so concurrent batches lock rows in the same order.
struct LedgerArrays {
  std::vector<std::string> user, destination, source, source_record, fingerprint, dest_record, job;
  std::vector<int64_t> source_modified;

  explicit LedgerArrays(const std::vector<LedgerEntry>& entries) {
    using Key = std::tuple<const std::string&, const std::string&, const std::string&,
                           const std::string&, const std::string&>;
    std::map<Key, const LedgerEntry*> by_key;
    for (const auto& e : entries) {
      by_key.insert_or_assign(
          Key(e.user.str(), e.destination.str(), e.source.str(), e.source_record_id, e.fingerprint),
          &e);
    }
    for (const auto& [key, e] : by_key) {
      user.push_back(e->user.str());
      destination.push_back(e->destination.str());
      source.push_back(e->source.str());
      source_record.push_back(e->source_record_id);
      fingerprint.push_back(e->fingerprint);
      dest_record.push_back(e->dest_record_id);
      job.push_back(e->job.str());
      source_modified.push_back(e->source_modified_ms);
    }
  }
  // "FROM unnest(...) AS t(u, d, s, r, f, x, j, m)" with the parameters added to `sql`.
  std::string From(Sql& sql) const {
    return "unnest(" + sql.Param(TextArray(user)) + "::text[], " +
           sql.Param(TextArray(destination)) + "::text[], " + sql.Param(TextArray(source)) +
           "::text[], " + sql.Param(TextArray(source_record)) + "::text[], " +
           sql.Param(TextArray(fingerprint)) + "::text[], " + sql.Param(TextArray(dest_record)) +
           "::text[], " + sql.Param(TextArray(job)) + "::text[], " +
           sql.Param(IntArray(source_modified)) + "::bigint[]) AS t(u, d, s, r, f, x, j, m)";
  }
};

constexpr const char* kLedgerKey =
    "(user_id, destination_id, source_id, source_record_id, fingerprint)";
constexpr const char* kLedgerInsertCols =
    "INSERT INTO sync_ledger (user_id, destination_id, source_id, source_record_id, fingerprint, "
    "dest_record_id, state, job_id, source_modified_ms, updated_at) ";

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

constexpr const char* kLedgerCols =
    "destination_id, source_id, source_record_id, fingerprint, dest_record_id, state, job_id, "
    "user_id, source_modified_ms, updated_at";
LedgerEntry ReadLedger(const PgResult& r, int i) {
  LedgerEntry e;
  e.destination = ConnectionId(r.Str(i, 0));
  e.source = ConnectionId(r.Str(i, 1));
  e.source_record_id = r.Str(i, 2);
  e.fingerprint = r.Str(i, 3);
  e.dest_record_id = r.Str(i, 4);
  e.state = r.Text(i, 5) == "done" ? LedgerState::kDone : LedgerState::kPending;
  e.job = JobId(r.Str(i, 6));
  e.user = UserId(r.Str(i, 7));
  e.source_modified_ms = r.Int(i, 8);
  e.updated_at = FromUnixMillis(r.Int(i, 9));
  return e;
}

template <class T, class ReadRow>
Result<std::vector<T>> All(Result<PgResult> r, ReadRow read) {
  if (!r) return r.error();
  std::vector<T> out;
  out.reserve(static_cast<size_t>(r->rows()));
  for (int i = 0; i < r->rows(); ++i) out.push_back(read(*r, i));
  return out;
}

template <class T, class ReadRow>
Result<T> One(Result<PgResult> r, ReadRow read, Error not_found) {
  if (!r) return r.error();
  if (r->rows() == 0) return not_found;
  return read(*r, 0);
}

// How a write's result becomes the call's status.
using Check = std::function<Status(const PgResult&)>;

// Any result is fine (upserts, deletes of whatever is there).
Status AnyResult(const PgResult&) { return {}; }

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

Status PostgresStore::WriteTx(const IdempotencyRecord* idem,
                              const std::function<Status(PgConn&)>& change) {
  if (idem == nullptr) return pool_.WithTx(change);
  const TimePoint now = clock_.Now();
  const int64_t cutoff = Ms(now - idempotency_retention_);
  const int64_t created = Ms(OrNow(idem->created_at, now));
  return pool_.WithTx([&](PgConn& c) -> Status {
    // The record goes first: a key in use (and unexpired) changes nothing. A concurrent request
    // with the same key waits on this row, then finds it taken. A record past the retention is
    // replaced, as if it had been purged already.
    auto r = c.Exec(
        "INSERT INTO idempotency (user_id, key, request_hash, status_code, response_body, "
        "created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, key) DO UPDATE SET "
        "request_hash = EXCLUDED.request_hash, status_code = EXCLUDED.status_code, "
        "response_body = EXCLUDED.response_body, created_at = EXCLUDED.created_at "
        "WHERE idempotency.created_at < $7",
        {PgParam(idem->user.str()), PgParam(idem->key), PgParam(idem->request_hash),
         PgParam(idem->status_code), PgParam(idem->response_body), PgParam(created),
         PgParam(cutoff)});
    if (!r) return r.error();
    if (r->affected() == 0) {
      return MakeError(Errc::kAlreadyExists, "idempotency key already used: " + idem->key);
    }
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
  auto created =
      Exec(std::string("INSERT INTO users (") + kUserCols +
               ") VALUES ($1, $2, '{}', $3, $3) ON CONFLICT (id) DO NOTHING RETURNING " + kUserCols,
           {PgParam(user.str()), PgParam(TierName(tier)), PgParam(now)});
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
  // An existing user keeps its settings; only the tier changes (admin command).
  return Write(nullptr,
               "INSERT INTO users (id, tier, settings_json, created_at, updated_at) "
               "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET tier = EXCLUDED.tier, "
               "updated_at = EXCLUDED.updated_at",
               {PgParam(user.id.str()), PgParam(TierName(user.tier)),
                PgParam(user.settings_json.empty() ? std::string("{}") : user.settings_json),
                PgParam(Ms(OrNow(user.created_at, now))), PgParam(Ms(now))},
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
  const TimePoint now = clock_.Now();
  return WriteTx(idem, [&](PgConn& c) -> Status {
    auto r = c.Exec(
        "INSERT INTO jobs (id, user_id, source_id, destination_id, data_type, mode, priority, "
        "start_date, end_date, status, error, created_at, updated_at, summary) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
        "ON CONFLICT DO NOTHING",
        {PgParam(job.id.str()), PgParam(job.user.str()), PgParam(job.source.str()),
         PgParam(job.destination.str()), PgParam(job.data_type), PgParam(job.mode),
         PgParam(job.priority), PgParam(job.start_date), PgParam(job.end_date),
         PgParam(JobStatusName(job.status)), PgParam(job.error),
         PgParam(Ms(OrNow(job.created_at, now))), PgParam(Ms(OrNow(job.updated_at, now))),
         PgParam(job.summary)});
    if (!r) return r.error();
    if (r->affected() == 0) return Exists("job", job.id.str());
    auto sent = PgQueueSendInTx(c, msg, now, dedup_window_);
    if (!sent) return sent.error();
    return {};
  });
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

// ---- sync state: cursors and the ledger ----

Result<SyncCursor> PostgresStore::GetCursor(const SyncCursorKey& key) {
  return One<SyncCursor>(
      Exec("SELECT last_sync_ms, version, updated_at FROM sync_cursors WHERE user_id = $1 AND "
           "source_id = $2 AND destination_id = $3 AND data_type = $4",
           {PgParam(key.user.str()), PgParam(key.source.str()), PgParam(key.destination.str()),
            PgParam(key.data_type)}),
      [&](const PgResult& r, int i) {
        SyncCursor c;
        c.key = key;
        c.last_sync_ms = r.Int(i, 0);
        c.version = r.Int(i, 1);
        c.updated_at = FromUnixMillis(r.Int(i, 2));
        return c;
      },
      MakeError(Errc::kNotFound, "no sync cursor"));
}

Result<std::vector<LedgerEntry>> PostgresStore::GetLedgerEntries(
    const UserId& user, const ConnectionId& destination, const ConnectionId& source,
    const std::vector<std::string>& source_record_ids) {
  if (source_record_ids.empty()) return std::vector<LedgerEntry>{};
  return All<LedgerEntry>(
      // A key lookup per id (a join, not "= ANY": its plan does not depend on statistics).
      Exec(std::string("SELECT ") + kLedgerCols +
               " FROM unnest($4::text[]) AS ids(r) JOIN sync_ledger ON user_id = $1 AND "
               "destination_id = $2 AND source_id = $3 AND source_record_id = ids.r",
           {PgParam(user.str()), PgParam(destination.str()), PgParam(source.str()),
            PgParam(TextArray(source_record_ids))}),
      ReadLedger);
}

Result<std::vector<std::string>> PostgresStore::OwnWrittenRecords(
    const UserId& user, const ConnectionId& at, const std::vector<std::string>& record_ids) {
  std::vector<std::string> ids;
  ids.reserve(record_ids.size());
  for (const auto& id : record_ids) {
    if (!id.empty()) ids.push_back(id);
  }
  if (ids.empty()) return std::vector<std::string>{};
  return All<std::string>(
      Exec("SELECT ids.r FROM unnest($3::text[]) AS ids(r) WHERE EXISTS (SELECT 1 FROM "
           "sync_ledger WHERE user_id = $1 AND destination_id = $2 AND state = 'done' AND "
           "dest_record_id = ids.r)",
           {PgParam(user.str()), PgParam(at.str()), PgParam(TextArray(ids))}),
      [](const PgResult& r, int i) { return r.Str(i, 0); });
}

Status PostgresStore::RecordPendingWrites(const std::vector<LedgerEntry>& entries) {
  if (entries.empty()) return {};
  // One statement (atomic on its own). A done row stays done; a pending one takes the new intent.
  const LedgerArrays rows(entries);
  Sql sql;
  const std::string now = sql.Param(Ms(clock_.Now()));
  sql.text = std::string(kLedgerInsertCols) + "SELECT u, d, s, r, f, '', 'pending', j, m, " + now +
             " FROM " + rows.From(sql) + " ON CONFLICT " + kLedgerKey +
             " DO UPDATE SET job_id = EXCLUDED.job_id, source_modified_ms = "
             "EXCLUDED.source_modified_ms, updated_at = EXCLUDED.updated_at "
             "WHERE sync_ledger.state = 'pending'";
  return Write(nullptr, sql.text, sql.params, AnyResult);
}

Status PostgresStore::CommitSync(const SyncCommit& c) {
  if (!c.cursor && c.done.empty() && !c.job) return {};
  // ONE statement, so the common commit is one round trip and atomic without BEGIN/COMMIT:
  //   job_row locks the job row (FOR UPDATE: it cannot disappear before `upd` updates it),
  //   cur     the cursor compare-and-set, only if the job exists,
  //   led     the ledger upsert and `upd` the job's status, only if the cursor moved.
  // A racing commit of the same cursor waits on the cursor row lock, then matches nothing, so the
  // loser writes nothing and never touches the winner's ledger rows.
  const int64_t now = Ms(clock_.Now());
  Sql sql;
  const std::string now_p = sql.Param(now);
  std::vector<std::string> ctes;
  std::string job_ok = "true";
  if (c.job) {
    ctes.push_back("job_row AS (SELECT id FROM jobs WHERE id = " + sql.Param(c.job->id.str()) +
                   " FOR UPDATE)");
    job_ok = "EXISTS (SELECT 1 FROM job_row)";
  }
  std::string cursor_ok = job_ok;
  if (c.cursor) {
    const auto& k = c.cursor->key;
    const std::string user = sql.Param(k.user.str()), src = sql.Param(k.source.str()),
                      dst = sql.Param(k.destination.str()), type = sql.Param(k.data_type),
                      last = sql.Param(c.cursor->last_sync_ms);
    if (c.cursor->expected_version == 0) {
      ctes.push_back(
          "cur AS (INSERT INTO sync_cursors (user_id, source_id, destination_id, "
          "data_type, last_sync_ms, version, updated_at) SELECT " +
          user + ", " + src + ", " + dst + ", " + type + ", " + last + ", 1, " + now_p + " WHERE " +
          job_ok + " ON CONFLICT DO NOTHING RETURNING 1)");
    } else {
      ctes.push_back("cur AS (UPDATE sync_cursors SET last_sync_ms = " + last +
                     ", version = version + 1, updated_at = " + now_p + " WHERE user_id = " + user +
                     " AND source_id = " + src + " AND destination_id = " + dst +
                     " AND data_type = " + type + " AND version = " +
                     sql.Param(c.cursor->expected_version) + " AND " + job_ok + " RETURNING 1)");
    }
    cursor_ok = "EXISTS (SELECT 1 FROM cur)";
  }
  if (!c.done.empty()) {
    const LedgerArrays rows(c.done);
    ctes.push_back("led AS (" + std::string(kLedgerInsertCols) +
                   "SELECT u, d, s, r, f, x, 'done', j, m, " + now_p + " FROM " + rows.From(sql) +
                   " WHERE " + cursor_ok + " ON CONFLICT " + kLedgerKey +
                   " DO UPDATE SET dest_record_id = EXCLUDED.dest_record_id, state = 'done', "
                   "job_id = EXCLUDED.job_id, source_modified_ms = EXCLUDED.source_modified_ms, "
                   "updated_at = EXCLUDED.updated_at)");
  }
  if (c.job) {
    ctes.push_back("upd AS (UPDATE jobs SET status = " + sql.Param(JobStatusName(c.job->status)) +
                   ", error = " + sql.Param(c.job->error) +
                   ", summary = " + sql.Param(c.job->summary) + ", updated_at = " + now_p +
                   " WHERE id IN (SELECT id FROM job_row) AND " + cursor_ok + ")");
  }
  std::string text = "WITH ";
  for (size_t i = 0; i < ctes.size(); ++i) text += (i == 0 ? "" : ", ") + ctes[i];
  text += " SELECT " + job_ok + ", " + cursor_ok;
  auto r = Exec(text, sql.params);
  if (!r) return r.error();
  if (r->Bool(0, 1)) return {};  // the cursor moved (or there was none) and the job exists
  // Nothing was written. The contract's order: a stale cursor is kConflict even when the job is
  // missing too (the engine then keeps its ledger rows and retries the job).
  const Error stale = MakeError(
      Errc::kConflict, "sync cursor moved (expected version " +
                           std::to_string(c.cursor ? c.cursor->expected_version : 0) + ")");
  if (r->Bool(0, 0)) return stale;
  if (c.cursor) {  // the job is missing: was the cursor stale as well? (rare path)
    auto cur = GetCursor(c.cursor->key);
    if (!cur && cur.error().code != Errc::kNotFound) return cur.error();
    if ((cur ? cur->version : 0) != c.cursor->expected_version) return stale;
  }
  return NotFound("job", c.job->id.str());
}

// ---- idempotency ----

Result<std::optional<IdempotencyRecord>> PostgresStore::GetIdempotency(const UserId& user,
                                                                       const std::string& key) {
  const int64_t cutoff = Ms(clock_.Now() - idempotency_retention_);
  auto r = Exec(
      "SELECT request_hash, status_code, response_body, created_at FROM idempotency "
      "WHERE user_id = $1 AND key = $2 AND created_at >= $3",
      {PgParam(user.str()), PgParam(key), PgParam(cutoff)});
  if (!r) return r.error();
  if (r->rows() == 0) return std::optional<IdempotencyRecord>{};
  IdempotencyRecord rec;
  rec.user = user;
  rec.key = key;
  rec.request_hash = r->Str(0, 0);
  rec.status_code = static_cast<int>(r->Int(0, 1));
  rec.response_body = r->Str(0, 2);
  rec.created_at = FromUnixMillis(r->Int(0, 3));
  return std::optional<IdempotencyRecord>(std::move(rec));
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
  auto r = Exec("SELECT state, requested_at, completed_at FROM user_deletions WHERE user_id = $1",
                {PgParam(user.str())});
  if (!r) return r.error();
  UserDeletion d;
  d.user = user;
  if (r->rows() == 0) return d;  // kNone
  d.state = r->Text(0, 0) == "completed" ? DeletionState::kCompleted : DeletionState::kPending;
  d.requested_at = FromUnixMillis(r->Int(0, 1));
  if (!r->IsNull(0, 2)) d.completed_at = FromUnixMillis(r->Int(0, 2));
  return d;
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
