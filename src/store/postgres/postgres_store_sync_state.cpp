// PostgresStore: the sync engine's state (SPEC S4) -- cursors and the sync ledger -- and the tiered
// schedule (SPEC S7: when each user syncs next). Split from
// postgres_store.cpp to keep files small; same class, same rules (every time from the injected
// Clock, ledger batches as one statement over unnest()ed arrays sorted by key).
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "store/postgres/postgres_query.hpp"
#include "store/postgres/postgres_store.hpp"

namespace syncwell::store {

using pg::PgParam;
using pg::PgResult;
using pg_query::All;
using pg_query::AnyResult;
using pg_query::IntArray;
using pg_query::Ms;
using pg_query::NotFound;
using pg_query::One;
using pg_query::TextArray;

namespace {

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

}  // namespace

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

// ---- the tiered schedule (SPEC S7) ----

Result<std::vector<ScheduledUser>> PostgresStore::ListDueUsers(int shard, TimePoint now,
                                                               size_t limit) {
  // users_due (shard, next_sync_at) serves the range; the deletion probe is by primary key.
  return All<ScheduledUser>(
      Exec("SELECT u.id, u.tier, u.shard, u.next_sync_at, u.recent_slots, EXISTS (SELECT 1 FROM "
           "user_deletions d WHERE d.user_id = u.id AND d.state = 'pending') FROM users u "
           "WHERE u.shard = $1 AND u.next_sync_at <= $2 ORDER BY u.next_sync_at, u.id LIMIT $3",
           {PgParam(shard), PgParam(Ms(now)), PgParam(static_cast<int64_t>(limit))}),
      [](const PgResult& r, int i) {
        ScheduledUser u;
        u.user = UserId(r.Str(i, 0));
        ParseTier(r.Text(i, 1), &u.tier);
        u.shard = static_cast<int>(r.Int(i, 2));
        u.next_sync_at = FromUnixMillis(r.Int(i, 3));
        u.recent_slots = DecodeSlots(r.Text(i, 4));
        u.deletion_pending = r.Bool(i, 5);
        return u;
      });
}

Status PostgresStore::AdvanceSchedule(const UserId& user, TimePoint expected_next, TimePoint next,
                                      const std::vector<TimePoint>& recent_slots) {
  std::vector<TimePoint> recent = recent_slots;
  if (recent.size() > kRecentSlots) recent.resize(kRecentSlots);
  // One statement: the conditional UPDATE, and (when it matched nothing) why -- the row's
  // current slot (another scheduler or a tier change moved it) or no row at all.
  auto r = Exec(
      "WITH upd AS (UPDATE users SET next_sync_at = $1, recent_slots = $2 WHERE id = $3 AND "
      "next_sync_at = $4 RETURNING 1) SELECT (SELECT count(*) FROM upd), "
      "(SELECT next_sync_at FROM users WHERE id = $3)",
      {PgParam(Ms(next)), PgParam(EncodeSlots(recent)), PgParam(user.str()),
       PgParam(Ms(expected_next))});
  if (!r) return r.error();
  if (r->Int(0, 0) != 0) return {};
  if (r->IsNull(0, 1)) return NotFound("user", user.str());
  return MakeError(Errc::kConflict, "schedule of user moved (next_sync_at " +
                                        std::to_string(r->Int(0, 1)) + ", expected " +
                                        std::to_string(Ms(expected_next)) + ")");
}

Result<int64_t> PostgresStore::AssignScheduleShards(size_t limit) {
  auto ids = Exec("SELECT id FROM users WHERE shard = -1 ORDER BY id LIMIT $1",
                  {PgParam(static_cast<int64_t>(limit))});
  if (!ids) return ids.error();
  if (ids->rows() == 0) return int64_t{0};
  std::vector<std::string> names;
  std::vector<int64_t> shard_of;
  for (int i = 0; i < ids->rows(); ++i) {
    names.push_back(ids->Str(i, 0));
    shard_of.push_back(ScheduleShardOf(UserId(names.back())));
  }
  const std::string shards = IntArray(shard_of);
  // One statement; rows another process assigned meanwhile are left alone (shard = -1 guard).
  auto r = Exec(
      "UPDATE users u SET shard = v.shard FROM unnest($1::text[], $2::int[]) AS v(id, shard) "
      "WHERE u.id = v.id AND u.shard = -1",
      {PgParam(TextArray(names)), PgParam(shards)});
  if (!r) return r.error();
  return static_cast<int64_t>(r->affected());
}

}  // namespace syncwell::store
