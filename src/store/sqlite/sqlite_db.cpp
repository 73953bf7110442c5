#include "store/sqlite/sqlite_db.hpp"

#include <filesystem>
#include <memory>
#include <shared_mutex>
#include <unordered_map>
#include <utility>

#include "core/log.hpp"
#include "store/sqlite/page_cache.hpp"
#include "store/sqlite/wal_buffer_vfs.hpp"

namespace syncwell::store {
namespace {

// Ordered schema migrations; migration i (1-based) brings the schema to version i. Never edit a
// shipped entry: append a new one.
const std::vector<std::string>& Migrations() {
  static const std::vector<std::string> kMigrations = {
      // 1: store tables + queue tables.
      R"sql(
CREATE TABLE users(
  id TEXT PRIMARY KEY,
  tier TEXT NOT NULL,
  settings_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE connections(
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  provider TEXT NOT NULL,
  status TEXT NOT NULL,
  provider_user_id TEXT NOT NULL,
  access_token_sealed BLOB NOT NULL,
  refresh_token_sealed BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX connections_by_user ON connections(user_id);

CREATE TABLE sync_configs(
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  source_id TEXT NOT NULL,
  destination_id TEXT NOT NULL,
  data_type TEXT NOT NULL,
  conflict_strategy TEXT NOT NULL,
  enabled INTEGER NOT NULL,
  version INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sync_configs_by_user ON sync_configs(user_id);
CREATE INDEX sync_configs_by_source ON sync_configs(source_id);
CREATE INDEX sync_configs_by_destination ON sync_configs(destination_id);

CREATE TABLE jobs(
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  source_id TEXT NOT NULL,
  destination_id TEXT NOT NULL,
  data_type TEXT NOT NULL,
  mode TEXT NOT NULL,
  priority TEXT NOT NULL,
  start_date TEXT NOT NULL,
  end_date TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX jobs_by_user ON jobs(user_id);

CREATE TABLE idempotency(
  user_id TEXT NOT NULL,
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  status_code INTEGER NOT NULL,
  response_body TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY(user_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_created ON idempotency(created_at);

CREATE TABLE user_deletions(
  user_id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  requested_at INTEGER NOT NULL,
  completed_at INTEGER
) WITHOUT ROWID;
CREATE INDEX user_deletions_by_state ON user_deletions(state, requested_at);

CREATE TABLE control_events(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  value TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

-- Queue (SPEC S3). id is monotonic (AUTOINCREMENT, never reused) and gives FIFO order within a
-- group. state: 'ready' (visible when visible_at <= now, else delayed), 'inflight', 'dlq'.
CREATE TABLE queue_messages(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  group_id TEXT NOT NULL,
  dedup_id TEXT NOT NULL,
  priority INTEGER NOT NULL,
  body BLOB NOT NULL,
  enqueued_at INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT 'ready'
);
CREATE INDEX queue_messages_ready ON queue_messages(state, priority, visible_at);
CREATE INDEX queue_messages_by_group ON queue_messages(group_id, id);

CREATE TABLE queue_dedup(
  dedup_id TEXT PRIMARY KEY,
  message_id INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX queue_dedup_by_expiry ON queue_dedup(expires_at);

CREATE TABLE queue_counters(
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO queue_counters(name, value) VALUES ('enqueued_total', 0), ('deduplicated_total', 0);
)sql",
      // 2: the full queue (receive, visibility, DLQ; docs/adr/0002-job-queue.md).
      // due_at: order key within a group (with id); is_head: the one message per group that may
      // be delivered (maintained by sqlite_job_queue.cpp); deliveries: numbers receipts;
      // history: failures/expiries/deferrals (queue::EncodeHistory).
      R"sql(
ALTER TABLE queue_messages ADD COLUMN due_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_messages ADD COLUMN is_head INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_messages ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_messages ADD COLUMN history TEXT NOT NULL DEFAULT '';
ALTER TABLE queue_messages ADD COLUMN dead_lettered_at INTEGER;
UPDATE queue_messages SET due_at = visible_at;
UPDATE queue_messages SET is_head = 1 WHERE id IN (
  SELECT id FROM (
    SELECT id, ROW_NUMBER() OVER (PARTITION BY group_id ORDER BY due_at, id) AS rn
    FROM queue_messages WHERE state <> 'dlq')
  WHERE rn = 1);
DROP INDEX queue_messages_ready;
CREATE INDEX queue_messages_by_state ON queue_messages(state, visible_at);
CREATE INDEX queue_messages_group_order ON queue_messages(group_id, due_at, id)
  WHERE state <> 'dlq';
CREATE UNIQUE INDEX queue_messages_group_head ON queue_messages(group_id) WHERE is_head = 1;
CREATE INDEX queue_messages_heads ON queue_messages(priority, visible_at, id) WHERE is_head = 1;
CREATE INDEX queue_messages_dlq ON queue_messages(id) WHERE state = 'dlq';

CREATE TABLE queue_delivery_counters(
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO queue_delivery_counters(name, value) VALUES
  ('delivered_total', 0), ('redelivered_total', 0), ('dead_lettered_total', 0),
  ('deferred_total', 0), ('redriven_total', 0);
)sql",
      // 3: sync engine state (SPEC S4): token expiry/version on connections (refresh CAS), a
      // result summary on jobs, sync cursors and the sync ledger. Ids, times and fingerprints
      // only -- never health values.
      R"sql(
ALTER TABLE connections ADD COLUMN token_expires_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN summary TEXT NOT NULL DEFAULT '';
-- Webhooks map a provider's user id to our connections (SPEC S7).
CREATE INDEX connections_by_provider_user ON connections(provider, provider_user_id);

CREATE TABLE sync_cursors(
  user_id TEXT NOT NULL,
  source_id TEXT NOT NULL,
  destination_id TEXT NOT NULL,
  data_type TEXT NOT NULL,
  last_sync_ms INTEGER NOT NULL,
  version INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY(user_id, source_id, destination_id, data_type)
) WITHOUT ROWID;

CREATE TABLE sync_ledger(
  destination_id TEXT NOT NULL,
  source_id TEXT NOT NULL,
  source_record_id TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  dest_record_id TEXT NOT NULL,
  state TEXT NOT NULL,
  job_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  source_modified_ms INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY(destination_id, source_id, source_record_id, fingerprint)
) WITHOUT ROWID;
-- Loop suppression: "did we write record X at connection C?"
CREATE INDEX sync_ledger_by_dest_record ON sync_ledger(destination_id, dest_record_id);
-- Purges (DeleteConnection by source, PurgeUser).
CREATE INDEX sync_ledger_by_source ON sync_ledger(source_id);
CREATE INDEX sync_ledger_by_user ON sync_ledger(user_id);
)sql",
      // 4: the tiered schedule (SPEC S7). Shards need murmur3, so existing rows get -1 here and
      // SqliteStore::AssignScheduleShards fills them in; next_sync_at 0 = not placed yet.
      R"sql(
ALTER TABLE users ADD COLUMN shard INTEGER NOT NULL DEFAULT -1;
ALTER TABLE users ADD COLUMN next_sync_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN recent_slots TEXT NOT NULL DEFAULT '';
CREATE INDEX users_due ON users(shard, next_sync_at);
)sql",
      // 5: one index less to write per message. A user purge finds the group's live messages
      // through queue_messages_group_order and its dead-lettered ones through the state index.
      R"sql(
DROP INDEX queue_messages_by_group;
)sql",
      // 6: the ledger keyed like PostgreSQL's (postgres_store.cpp). Every read and purge is
      // user-scoped, so the key leads with user_id (one user's rows share pages) and the only
      // index is the covering loop-suppression one over done rows. A pending intent is one
      // B-tree entry instead of four; "did we write X at C?" one seek instead of two. Connection
      // ids are global, so the extra key column changes no uniqueness.
      R"sql(
CREATE TABLE sync_ledger_v6(
  user_id TEXT NOT NULL,
  destination_id TEXT NOT NULL,
  source_id TEXT NOT NULL,
  source_record_id TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  dest_record_id TEXT NOT NULL,
  state TEXT NOT NULL,
  job_id TEXT NOT NULL,
  source_modified_ms INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY(user_id, destination_id, source_id, source_record_id, fingerprint)
) WITHOUT ROWID;
INSERT INTO sync_ledger_v6(user_id, destination_id, source_id, source_record_id, fingerprint,
                           dest_record_id, state, job_id, source_modified_ms, updated_at)
  SELECT user_id, destination_id, source_id, source_record_id, fingerprint, dest_record_id, state,
         job_id, source_modified_ms, updated_at FROM sync_ledger;
DROP TABLE sync_ledger;
ALTER TABLE sync_ledger_v6 RENAME TO sync_ledger;
-- Loop suppression: "did we write record X at connection C?" (done rows: pending ones have no
-- destination record id yet). state is a column too, or SQLite 3.40 reads the row to check it.
CREATE INDEX sync_ledger_own_writes ON sync_ledger(user_id, destination_id, dest_record_id, state)
  WHERE state = 'done';
)sql",
  };
  return kMigrations;
}

// Per-connection statement caches. The registry map changes only when a SqliteDb opens or closes
// a connection; each cache is touched only by the thread currently using its connection.
using StmtCache = std::unordered_map<std::string, sqlite3_stmt*>;
struct Registry {
  std::shared_mutex mu;
  std::unordered_map<sqlite3*, std::unique_ptr<StmtCache>> caches;
};
Registry& Reg() {
  static Registry r;
  return r;
}
StmtCache* FindCache(sqlite3* db) {
  auto& r = Reg();
  std::shared_lock lock(r.mu);
  auto it = r.caches.find(db);
  return it == r.caches.end() ? nullptr : it->second.get();
}
void RegisterConn(sqlite3* db) {
  auto& r = Reg();
  std::unique_lock lock(r.mu);
  r.caches.emplace(db, std::make_unique<StmtCache>());
}
void CloseConn(sqlite3* db) {
  if (db == nullptr) return;
  std::unique_ptr<StmtCache> cache;
  {
    auto& r = Reg();
    std::unique_lock lock(r.mu);
    auto it = r.caches.find(db);
    if (it != r.caches.end()) {
      cache = std::move(it->second);
      r.caches.erase(it);
    }
  }
  if (cache) {
    for (auto& [sql, s] : *cache) sqlite3_finalize(s);
  }
  sqlite3_close_v2(db);
}

}  // namespace

Error SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += (db != nullptr && sqlite3_errcode(db) == rc) ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  Errc code = Errc::kInternal;
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = Errc::kRetryable;
      break;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
      code = Errc::kUnavailable;
      break;
    case SQLITE_CONSTRAINT:
      code = (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
                 ? Errc::kAlreadyExists
                 : Errc::kConflict;
      break;
    default:
      break;
  }
  return MakeError(code, std::move(msg));
}

Status ExecSql(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string what = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    Error e = SqliteError(nullptr, rc, "sqlite exec");
    e.message = "sqlite exec: " + what;
    return e;
  }
  return {};
}

// ---- Stmt ----

Stmt::Stmt(sqlite3* db, std::string_view sql) : db_(db) {
  StmtCache* cache = FindCache(db);
  if (cache != nullptr) {
    std::string key(sql);
    auto it = cache->find(key);
    if (it != cache->end()) {
      s_ = it->second;
      return;
    }
    prepare_rc_ = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                     SQLITE_PREPARE_PERSISTENT, &s_, nullptr);
    if (prepare_rc_ == SQLITE_OK) {
      cache->emplace(std::move(key), s_);
    } else {
      sql_ = std::string(sql);
      sqlite3_finalize(s_);
      s_ = nullptr;
    }
    return;
  }
  owned_ = true;
  prepare_rc_ = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &s_, nullptr);
  if (prepare_rc_ != SQLITE_OK) sql_ = std::string(sql);
}

Stmt::~Stmt() {
  if (s_ == nullptr) return;
  if (owned_) {
    sqlite3_finalize(s_);
  } else {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
}

Stmt& Stmt::Bind(int idx, std::string_view text) {
  if (s_ != nullptr) {
    sqlite3_bind_text(s_, idx, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  return *this;
}
Stmt& Stmt::Bind(int idx, int64_t v) {
  if (s_ != nullptr) sqlite3_bind_int64(s_, idx, v);
  return *this;
}
Stmt& Stmt::BindBlob(int idx, std::string_view bytes) {
  if (s_ != nullptr) {
    sqlite3_bind_blob(s_, idx, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  }
  return *this;
}
Stmt& Stmt::BindNull(int idx) {
  if (s_ != nullptr) sqlite3_bind_null(s_, idx);
  return *this;
}

Result<bool> Stmt::Step() {
  if (s_ == nullptr) return SqliteError(db_, prepare_rc_, "sqlite prepare (" + sql_ + ")");
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Error e = SqliteError(db_, rc, "sqlite step");
  sqlite3_reset(s_);
  return e;
}

Status Stmt::Exec() {
  for (;;) {
    auto r = Step();
    if (!r.ok()) return r.error();
    if (!*r) return {};
  }
}

int64_t Stmt::Int(int col) const { return sqlite3_column_int64(s_, col); }
std::string Stmt::Text(int col) const {
  const auto* p = sqlite3_column_text(s_, col);
  int n = sqlite3_column_bytes(s_, col);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
}
std::string Stmt::Blob(int col) const {
  const void* p = sqlite3_column_blob(s_, col);
  int n = sqlite3_column_bytes(s_, col);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
}
bool Stmt::IsNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

// ---- SqliteDb ----

SqliteDb::SqliteDb(SqliteSettings settings) : settings_(std::move(settings)) {}

SqliteDb::~SqliteDb() { Stop(); }

int64_t SqliteDb::KnownSchemaVersion() { return static_cast<int64_t>(Migrations().size()); }

std::string SqliteDb::path() const {
  return (std::filesystem::path(settings_.data_dir) / settings_.file_name).string();
}

namespace {
int64_t ElapsedNs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              since)
      .count();
}

// Process-wide SQLite settings, applied once before SQLite initialises. Memory statistics off:
// with them on, every sqlite3_malloc/free takes a global mutex (measured ~5% of the writer's
// time). Fails harmlessly (SQLITE_MISUSE) if something initialised SQLite first.
void ConfigureSqliteOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    (void)InstallSqlitePageCache();  // see page_cache.hpp
  });
}
}  // namespace

Status SqliteDb::OpenConnection(sqlite3** out, bool writer) {
  ConfigureSqliteOnce();
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
  // The writer's WAL appends go through the coalescing shim (one pwrite per commit), which is
  // only safe when every commit syncs the WAL (see wal_buffer_vfs.hpp).
  const char* vfs = writer && settings_.coalesce_wal_writes && settings_.synchronous == "FULL"
                        ? WalBufferVfsName()
                        : nullptr;
  int rc = sqlite3_open_v2(path().c_str(), &db, flags, vfs);
  if (rc != SQLITE_OK) {
    Error e = SqliteError(db, rc, "open " + path());
    sqlite3_close_v2(db);
    return e;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(settings_.busy_timeout.count()));
  std::string pragmas = "PRAGMA foreign_keys=ON;";
  if (writer) {
    // A larger WAL between checkpoints lets a hot page be copied to the main file once per
    // checkpoint rather than after nearly every group commit; a larger cache avoids re-reading
    // index pages that random keys (uuids) spread over the whole tree.
    pragmas += "PRAGMA page_size=" + std::to_string(settings_.page_size) +
               "; PRAGMA journal_mode=WAL; PRAGMA synchronous=" + settings_.synchronous +
               "; PRAGMA cache_size=-" + std::to_string(settings_.writer_cache_kib) + ";";
  } else {
    pragmas += "PRAGMA query_only=ON;";
  }
  if (Status st = ExecSql(db, pragmas.c_str()); !st.ok()) {
    sqlite3_close_v2(db);
    return st;
  }
  if (writer) {
    // journal_mode is persistent; verify it really is WAL (it is not on some file systems).
    Stmt q(db, "PRAGMA journal_mode");
    auto row = q.Step();
    bool wal = row.ok() && *row && q.Text(0) == "wal";
    if (!wal) {
      sqlite3_close_v2(db);
      return MakeError(Errc::kUnavailable, "sqlite: cannot enable WAL journal mode on " + path());
    }
  }
  RegisterConn(db);
  *out = db;
  return {};
}

Status SqliteDb::Migrate() {
  sqlite3* db = writer_conn_;
  if (Status st = ExecSql(db, "BEGIN IMMEDIATE"); !st.ok()) return st;
  auto fail = [&](Error e) -> Status {
    (void)ExecSql(db, "ROLLBACK");
    return e;
  };
  if (Status st = ExecSql(db,
                          "CREATE TABLE IF NOT EXISTS schema_migrations("
                          "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
      !st.ok()) {
    return fail(st.error());
  }
  int64_t current = 0;
  {
    Stmt q(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    auto row = q.Step();
    if (!row.ok()) return fail(row.error());
    current = q.Int(0);
  }
  const auto& migrations = Migrations();
  const auto known = static_cast<int64_t>(migrations.size());
  if (current > known) {
    return fail(MakeError(Errc::kPermanent,
                          "database " + path() + " has schema version " + std::to_string(current) +
                              ", newer than this binary supports (" + std::to_string(known) +
                              "); refusing to open it: upgrade syncwell"));
  }
  for (int64_t v = current + 1; v <= known; ++v) {
    if (Status st = ExecSql(db, migrations[static_cast<size_t>(v - 1)].c_str()); !st.ok()) {
      Error e = st.error();
      e.message = "migration " + std::to_string(v) + " failed: " + e.message;
      return fail(e);
    }
    Stmt ins(db, "INSERT INTO schema_migrations(version, applied_at) VALUES(?, ?)");
    ins.Bind(1, v).Bind(
        2, static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count()));
    if (Status st = ins.Exec(); !st.ok()) return fail(st.error());
    log::Info("sqlite migration applied", {{"version", std::to_string(v)}});
  }
  if (Status st = ExecSql(db, "COMMIT"); !st.ok()) return fail(st.error());
  schema_version_ = known;
  return {};
}

Status SqliteDb::Start() {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (writer_.joinable()) return MakeError(Errc::kInternal, "SqliteDb already started");
  if (settings_.synchronous != "FULL" && settings_.synchronous != "NORMAL") {
    return MakeError(Errc::kInvalidArgument, "sqlite synchronous must be FULL or NORMAL, got '" +
                                                 settings_.synchronous + "'");
  }
  if (settings_.data_dir.empty())
    return MakeError(Errc::kInvalidArgument, "sqlite data_dir is empty");
  if (settings_.max_batch == 0 || settings_.read_connections == 0) {
    return MakeError(Errc::kInvalidArgument, "sqlite max_batch and read_connections must be > 0");
  }
  std::error_code ec;
  std::filesystem::create_directories(settings_.data_dir, ec);
  if (ec) {
    return MakeError(Errc::kUnavailable,
                     "cannot create data dir " + settings_.data_dir + ": " + ec.message());
  }
  if (Status st = OpenConnection(&writer_conn_, true); !st.ok()) return st;
  if (Status st = Migrate(); !st.ok()) {
    CloseAll();
    return st;
  }
  for (size_t i = 0; i < settings_.read_connections; ++i) {
    sqlite3* c = nullptr;
    if (Status st = OpenConnection(&c, false); !st.ok()) {
      CloseAll();
      return st;
    }
    all_readers_.push_back(c);
  }
  {
    std::lock_guard lock(read_mu_);
    free_readers_ = all_readers_;
    readers_open_ = true;
  }
  {
    std::lock_guard lock(mu_);
    accepting_ = true;
  }
  // Replaces SQLite's automatic checkpoint on the writer connection (see wal_checkpoint_frames).
  sqlite3_wal_hook(writer_conn_, &SqliteDb::WalHook, this);
  {
    std::lock_guard lock(done_mu_);
    writer_running_ = true;
  }
  if (settings_.background_checkpoints) {
    if (Status st = OpenConnection(&ckpt_conn_, false); !st.ok()) {
      CloseAll();
      return st;
    }
    // A connection that never read the database treats checkpoints as no-ops (log = -1).
    if (Status st = ExecSql(ckpt_conn_, "SELECT count(*) FROM sqlite_master"); !st.ok()) {
      CloseAll();
      return st;
    }
    {
      std::lock_guard lock(ckpt_mu_);
      ckpt_stop_ = false;
    }
    checkpointer_ = std::thread([this] { CheckpointerLoop(); });
  }
  completer_ = std::thread([this] { CompleterLoop(); });
  writer_ = std::thread([this] { WriterLoop(); });
  return {};
}

void SqliteDb::CheckpointerLoop() {
  for (;;) {
    {
      std::unique_lock lock(ckpt_mu_);
      ckpt_cv_.wait(lock, [&] { return ckpt_wanted_ || ckpt_stop_; });
      if (ckpt_stop_) return;
      ckpt_wanted_ = false;
    }
    // Passes until what is left for the writer is small (at most 256 frames, so its share, done
    // while requests wait, stays short): each pass copies only the frames
    // committed since the previous one (a few thousand while a 16k-frame pass runs), then
    // flushes what it copied. SQLite syncs the main file only in a checkpoint that reaches the
    // end of the WAL, i.e. the writer's; without this flush the writer's fsync had to write back
    // every page these passes copied (measured: 136-185 ms with every request of the moment
    // waiting behind it).
    for (int pass = 0; pass < 8; ++pass) {
      const auto t0 = std::chrono::steady_clock::now();
      int log_frames = 0, done_frames = 0;
      const int rc = sqlite3_wal_checkpoint_v2(ckpt_conn_, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                               &log_frames, &done_frames);
      if (rc == SQLITE_OK) SyncMainFile(ckpt_conn_);
      bg_checkpoint_ns_.fetch_add(ElapsedNs(t0), std::memory_order_relaxed);
      if (rc != SQLITE_OK) {
        if (rc != SQLITE_BUSY) {
          log::Warn("sqlite background checkpoint failed", {{"error", sqlite3_errmsg(ckpt_conn_)}});
        }
        break;
      }
      bg_checkpoints_.fetch_add(1);
      const int64_t left = wal_frames_.load(std::memory_order_relaxed) - done_frames;
      if (left <= std::min<int64_t>(settings_.wal_checkpoint_frames / 64, 256)) break;
    }
    bg_state_.store(kBgDone);  // also after a failure: the writer's own checkpoint decides
  }
}

// fsync of the database file behind `db` (through its VFS), e.g. after a checkpoint pass that
// SQLite did not sync because it did not reach the end of the WAL.
void SqliteDb::SyncMainFile(sqlite3* db) {
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
      file == nullptr || file->pMethods == nullptr) {
    return;
  }
  if (int rc = file->pMethods->xSync(file, SQLITE_SYNC_NORMAL); rc != SQLITE_OK) {
    // Not fatal: the writer's own checkpoint syncs before the WAL can restart.
    log::Warn("sqlite database file sync failed", {{"rc", std::to_string(rc)}});
  }
}

int SqliteDb::WalHook(void* self, sqlite3*, const char*, int frames) {
  static_cast<SqliteDb*>(self)->wal_frames_.store(frames, std::memory_order_relaxed);
  return SQLITE_OK;
}

void SqliteDb::MaybeCheckpoint() {
  const int64_t frames = wal_frames_.load(std::memory_order_relaxed);
  if (frames < settings_.wal_checkpoint_frames) return;
  // Background: ask the checkpointer for the bulk copy and go on writing; once it has finished
  // a pass, copy the rest here (no commit can interleave, so every frame gets copied and the
  // next write restarts the WAL). If the checkpointer falls far behind, the writer does it all,
  // so the WAL stays bounded whatever the scheduling.
  const int bg = bg_state_.load();
  if (ckpt_conn_ != nullptr && frames < 2 * settings_.wal_checkpoint_frames) {
    if (bg == kBgRunning) return;
    if (bg == kBgIdle) {
      bg_state_.store(kBgRunning);
      {
        std::lock_guard lock(ckpt_mu_);
        ckpt_wanted_ = true;
      }
      ckpt_cv_.notify_one();
      return;
    }
  }
  if (bg == kBgDone) bg_state_.store(kBgIdle);  // this checkpoint finishes that pass
  int log_frames = 0, done_frames = 0;
  int rc = sqlite3_wal_checkpoint_v2(writer_conn_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                     &done_frames);
  if (rc == SQLITE_OK) {
    checkpoints_.fetch_add(1);
    // When every frame was copied the next write restarts the WAL from its beginning.
    if (done_frames == log_frames) wal_frames_.store(0, std::memory_order_relaxed);
  } else if (rc != SQLITE_BUSY) {
    log::Warn("sqlite checkpoint failed", {{"error", sqlite3_errmsg(writer_conn_)}});
  }
}

void SqliteDb::Stop() {
  std::lock_guard lifecycle(lifecycle_mu_);
  {
    std::lock_guard lock(mu_);
    accepting_ = false;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lock(done_mu_);
    writer_running_ = false;
  }
  done_cv_.notify_all();
  if (completer_.joinable()) completer_.join();  // every future is set before the close
  {
    std::lock_guard lock(ckpt_mu_);
    ckpt_stop_ = true;
  }
  ckpt_cv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
  {
    std::unique_lock lock(read_mu_);
    readers_open_ = false;
    read_cv_.notify_all();
    read_cv_.wait(lock, [&] { return readers_leased_ == 0; });
  }
  CloseAll();
}

void SqliteDb::CloseAll() {
  for (sqlite3* c : all_readers_) CloseConn(c);
  all_readers_.clear();
  {
    std::lock_guard lock(read_mu_);
    free_readers_.clear();
  }
  CloseConn(ckpt_conn_);
  ckpt_conn_ = nullptr;
  CloseConn(writer_conn_);
  writer_conn_ = nullptr;
}

void SqliteDb::Op::Finish(Status st) {
  try {
    on_done(std::move(st));
  } catch (const std::exception& e) {
    log::Error("sqlite write callback threw", {{"what", e.what()}});
  } catch (...) {
    log::Error("sqlite write callback threw");
  }
}

void SqliteDb::Enqueue(Op op) {
  {
    std::unique_lock lock(mu_);
    if (!accepting_) {
      lock.unlock();
      op.Finish(MakeError(Errc::kUnavailable, "sqlite store is not running"));
      return;
    }
    queue_.push_back(std::move(op));
  }
  cv_.notify_one();
}

std::future<Status> SqliteDb::SubmitWrite(WriteFn fn) {
  auto done = std::make_shared<std::promise<Status>>();
  auto fut = done->get_future();
  SubmitWrite(std::move(fn), [done](Status st) { done->set_value(std::move(st)); });
  return fut;
}

void SqliteDb::SubmitWrite(WriteFn fn, DoneFn on_done) {
  Enqueue(Op{std::move(fn), std::move(on_done)});
}

// Not SubmitWrite(fn).get(): setting a std::promise costs the completer thread an unconditional
// futex wake inside its call_once besides the waiter's wake-up (measured ~2.5% of the server's
// CPU in the end-to-end bench, on the one thread that answers every write). A mutex and condition
// variable on the caller's stack make only the wake-up a system call, and only if it sleeps.
Status SqliteDb::Write(WriteFn fn) {
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    Status st;
  } w;
  SubmitWrite(std::move(fn), [&w](Status st) {
    std::lock_guard lock(w.mu);  // held while notifying: `w` lives on the waiter's stack
    w.st = std::move(st);
    w.done = true;
    w.cv.notify_one();
  });
  std::unique_lock lock(w.mu);
  w.cv.wait(lock, [&] { return w.done; });
  return std::move(w.st);
}

void SqliteDb::WriterLoop() {
  std::vector<Op> batch;
  batch.reserve(settings_.max_batch);
  for (;;) {
    {
      std::unique_lock lock(mu_);
      while (queue_.empty() && accepting_) {
        if (std::chrono::steady_clock::now() >= next_external_check_) {
          lock.unlock();
          CheckExternalWrites();
          lock.lock();
          continue;
        }
        cv_.wait_until(lock, next_external_check_);
      }
      if (queue_.empty()) return;  // stopped and drained
      while (!queue_.empty() && batch.size() < settings_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    // Before the batch: its BEGIN would notice the same change, so a listener runs before
    // anything this process writes next.
    if (std::chrono::steady_clock::now() >= next_external_check_) CheckExternalWrites();
    RunBatch(batch);  // moves the ops out
    batch.clear();    // moved-from: make it empty again
    batch.reserve(settings_.max_batch);
    const auto t0 = std::chrono::steady_clock::now();
    MaybeCheckpoint();
    checkpoint_ns_.fetch_add(ElapsedNs(t0), std::memory_order_relaxed);
  }
}

void SqliteDb::SetExternalWriteListener(std::function<void()> fn) {
  std::lock_guard lock(listener_mu_);
  external_listener_ = std::move(fn);
}

void SqliteDb::CheckExternalWrites() {
  next_external_check_ = std::chrono::steady_clock::now() + settings_.external_write_check;
  int64_t version = -1;
  {
    Stmt q(writer_conn_, "PRAGMA data_version");
    auto row = q.Step();
    if (!row.ok() || !*row) return;  // busy or failing: the next check looks again
    version = q.Int(0);
  }
  const bool changed = data_version_ >= 0 && version != data_version_;
  data_version_ = version;
  if (!changed) return;
  external_writes_.fetch_add(1);
  std::function<void()> fn;
  {
    std::lock_guard lock(listener_mu_);
    fn = external_listener_;
  }
  if (fn) fn();
}

void SqliteDb::Complete(std::vector<Op> ops, std::vector<Status> results) {
  writes_ += static_cast<int64_t>(ops.size());
  {
    std::lock_guard lock(done_mu_);
    finished_.push_back(Finished{std::move(ops), std::move(results)});
  }
  done_cv_.notify_one();
}

void SqliteDb::CompleterLoop() {
  for (;;) {
    Finished f;
    {
      std::unique_lock lock(done_mu_);
      done_cv_.wait(lock, [&] { return !finished_.empty() || !writer_running_; });
      if (finished_.empty()) return;  // the writer has stopped and everything is answered
      f = std::move(finished_.front());
      finished_.pop_front();
    }
    for (size_t i = 0; i < f.ops.size(); ++i) f.ops[i].Finish(std::move(f.results[i]));
  }
}

void SqliteDb::RunBatch(std::vector<Op>& batch) {
  sqlite3* db = writer_conn_;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Status> results(batch.size());
  commit_hooks_.clear();
  auto fail_all = [&](const Error& e) {
    commit_hooks_.clear();  // nothing was committed
    for (auto& r : results) r = e;
    Complete(std::move(batch), std::move(results));
  };
  {
    Stmt begin(db, "BEGIN IMMEDIATE");
    if (Status st = begin.Exec(); !st.ok()) {
      fail_all(st.error());
      return;
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    Status st = [&]() -> Status {
      Stmt sp(db, "SAVEPOINT op");
      return sp.Exec();
    }();
    if (!st.ok()) {
      results[i] = st;
      continue;
    }
    const size_t hooks_before = commit_hooks_.size();
    try {
      results[i] = batch[i].fn(db);
    } catch (const std::exception& ex) {
      results[i] = MakeError(Errc::kInternal, std::string("write closure threw: ") + ex.what());
    } catch (...) {
      results[i] = MakeError(Errc::kInternal, "write closure threw");
    }
    if (!results[i].ok()) {
      Stmt rb(db, "ROLLBACK TO op");
      (void)rb.Exec();
      commit_hooks_.resize(hooks_before);  // its changes are gone: so are its hooks
    }
    Stmt rel(db, "RELEASE op");
    if (Status r = rel.Exec(); !r.ok() && results[i].ok()) results[i] = r;
    if (sqlite3_get_autocommit(db) != 0) {
      // A severe error (e.g. I/O) rolled back the whole transaction: the batch is lost.
      fail_all(MakeError(Errc::kUnavailable,
                         "sqlite transaction aborted: " + std::string(sqlite3_errmsg(db))));
      return;
    }
  }
  closures_ns_.fetch_add(ElapsedNs(t0), std::memory_order_relaxed);
  t0 = std::chrono::steady_clock::now();
  Stmt commit(db, "COMMIT");
  const Status committed = commit.Exec();
  commit_ns_.fetch_add(ElapsedNs(t0), std::memory_order_relaxed);
  if (!committed.ok()) {
    if (sqlite3_get_autocommit(db) == 0) (void)ExecSql(db, "ROLLBACK");
    Error e = committed.error();
    e.message = "group commit failed: " + e.message;
    fail_all(e);
    return;
  }
  commits_.fetch_add(1);
  for (auto& hook : commit_hooks_) hook();
  commit_hooks_.clear();
  Complete(std::move(batch), std::move(results));
}

sqlite3* SqliteDb::AcquireReader() {
  std::unique_lock lock(read_mu_);
  read_cv_.wait(lock, [&] { return !readers_open_ || !free_readers_.empty(); });
  if (!readers_open_) return nullptr;
  sqlite3* c = free_readers_.back();
  free_readers_.pop_back();
  ++readers_leased_;
  return c;
}

void SqliteDb::ReleaseReader(sqlite3* c) {
  bool open;
  {
    std::lock_guard lock(read_mu_);
    free_readers_.push_back(c);
    --readers_leased_;
    open = readers_open_;
  }
  // One connection came back: wake one waiter (waking all of them is a futex storm with many
  // handler threads). While stopping, Stop() waits for leased == 0 and must be woken too.
  if (open)
    read_cv_.notify_one();
  else
    read_cv_.notify_all();
}

}  // namespace syncwell::store
