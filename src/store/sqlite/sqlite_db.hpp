#pragma once
// SqliteDb: one SQLite database file (WAL) shared by SqliteStore and SqliteJobQueue.
//
// Purpose: turn many small blocking writes into few fsyncs (MEASURED.md: 3-5.6k commits/s with
// synchronous=FULL, but 0.27M+ rows/s when 100 rows share a commit).
//
// Writes: one WRITER thread owns the only read-write connection. Callers submit a write closure
// and block on a future. The writer drains everything queued (up to `max_batch`), runs the batch
// in ONE `BEGIN IMMEDIATE` transaction with each closure inside its own SAVEPOINT (a failing
// closure rolls back only itself), COMMITs once, then hands the batch to a COMPLETER thread that
// completes every future while the writer starts the next batch: waking ~100 blocked callers is
// futex work (measured ~25% of the writer's time) that must not delay the next commit. If COMMIT
// fails, every closure of the batch fails with that error.
//
// Reads: a fixed pool of read connections (`query_only`), leased exclusively per call.
// Prepared statements are cached per connection (a connection is only used by one thread at a
// time, so its cache needs no lock).
//
// Lifecycle: construct -> Start() (opens, applies migrations, starts the writer) -> Stop()
// (stops intake, drains queued writes, joins the writer, closes connections). Stop() is
// idempotent and called by the destructor. Thread-safe between Start() and Stop().
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/result.hpp"

namespace syncwell::store {

// Settings of the embedded SQLite backend (store + queue share them).
struct SqliteSettings {
  std::string data_dir;              // created if missing; the file is <data_dir>/<file_name>
  std::string synchronous = "FULL";  // FULL: acked writes survive power loss; NORMAL: kill -9 only
  std::chrono::seconds dedup_window{300};  // queue dedup window (SPEC S3)
  size_t max_batch = 512;                  // closures per group commit
  // Added beyond the brief:
  std::string file_name = "syncwell.db";
  std::chrono::milliseconds busy_timeout{5000};
  size_t read_connections = 4;
  // The writer checkpoints (PASSIVE) once the WAL holds this many frames, right after a group
  // commit has answered its callers, instead of inside the commit (SQLite's autocheckpoint),
  // which stalled every request of that batch. It must be the writer: a checkpoint running beside
  // a writer that keeps committing never catches up, so the WAL never restarts and grows without
  // bound (measured: 250 MB for 20k jobs). 64,000 frames (~64 MiB of WAL with 1 KiB pages, at
  // most twice that): a hot page is copied back once per checkpoint, so fewer checkpoints copy
  // fewer pages in all (measured against 16,000: checkpointer CPU per job halved, intake
  // saturation +5-25%; BENCHMARKS.md, session 9).
  int64_t wal_checkpoint_frames = 64000;
  // The bulk of a checkpoint (copying WAL pages back, fsyncing the main file) runs on a
  // background CHECKPOINTER thread with its own connection; the writer then copies only the frames
  // committed since that pass, which lets the WAL restart. Measured: the writer spent ~30% of its
  // time in checkpoints at intake saturation. false = the writer does all of it (as before).
  bool background_checkpoints = true;
  // Page size of a NEW database (existing files keep theirs). Small pages: every job touches a
  // few random index leaves (uuid keys), and WAL writes whole pages, so 1 KiB pages write ~4x
  // fewer bytes per job than 4 KiB (measured +30% intake).
  int page_size = 1024;
  // Writer WAL appends coalesced into one write per commit (FULL only; wal_buffer_vfs.hpp).
  bool coalesce_wal_writes = true;
  int64_t writer_cache_kib = 32768;  // page cache of the writer connection
  // How often the writer asks SQLite whether ANOTHER connection (another process: `syncwell
  // admin`, a sqlite3 shell) committed since it last looked (`PRAGMA data_version` on the writer's
  // own connection, which its own commits never change); see SetExternalWriteListener.
  std::chrono::milliseconds external_write_check{100};
  std::chrono::hours idempotency_retention{24};  // older records are ignored (SPEC S2: >= 24 h)
};

// Maps a SQLite result code (and the connection's message) to an Error.
// BUSY/LOCKED -> kRetryable; IOERR/FULL/CANTOPEN/READONLY -> kUnavailable;
// UNIQUE/PRIMARYKEY constraint -> kAlreadyExists; other constraints -> kConflict; else kInternal.
Error SqliteError(sqlite3* db, int rc, std::string_view what);

// A prepared statement, cached per connection when the connection belongs to a SqliteDb
// (otherwise prepared and finalized here). Reset and unbound on destruction. Do not hold two
// Stmt objects with the same SQL on one connection at once.
class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int idx, std::string_view text);
  Stmt& Bind(int idx, const char* text) { return Bind(idx, std::string_view(text)); }
  Stmt& Bind(int idx, const std::string& text) { return Bind(idx, std::string_view(text)); }
  Stmt& Bind(int idx, int64_t v);
  Stmt& Bind(int idx, int v) { return Bind(idx, static_cast<int64_t>(v)); }
  Stmt& BindBlob(int idx, std::string_view bytes);
  Stmt& BindNull(int idx);

  // true: a row is available; false: done.
  Result<bool> Step();
  // Steps to completion (for statements without rows).
  Status Exec();

  int64_t Int(int col) const;
  std::string Text(int col) const;
  std::string Blob(int col) const;
  bool IsNull(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  bool owned_ = false;  // not from a cache: finalize on destruction
  int prepare_rc_ = SQLITE_OK;
  std::string sql_;
};

// Runs SQL without results (may hold several statements); maps errors.
Status ExecSql(sqlite3* db, const char* sql);

class SqliteDb {
 public:
  using WriteFn = std::function<Status(sqlite3*)>;

  explicit SqliteDb(SqliteSettings settings);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Opens (creating data_dir and the file if needed), sets pragmas, applies migrations, opens
  // the read pool and starts the writer. Fails with kPermanent on a schema newer than this
  // binary, kUnavailable on I/O problems, kInvalidArgument on bad settings.
  Status Start();
  // Stops intake (later writes fail with kUnavailable), drains queued writes, closes.
  void Stop();

  // Submits a write closure and blocks until its batch committed (or failed).
  Status Write(WriteFn fn);
  // Same without blocking; the future completes after the batch's COMMIT.
  std::future<Status> SubmitWrite(WriteFn fn);
  // Same with a callback instead of a future: `on_done` runs exactly once, on the completer
  // thread after the batch's COMMIT (or at once on the calling thread if the store is not
  // running). It must be short and must not block: it delays every later batch's answers.
  using DoneFn = std::function<void(Status)>;
  void SubmitWrite(WriteFn fn, DoneFn on_done);

  // Only from inside a write closure (the writer thread): `hook` runs on the writer thread once
  // the batch holding this closure COMMITTED, in commit order, before any caller of that batch is
  // answered; never if the closure failed (its savepoint rolled back) or the batch did not
  // commit. For in-memory copies of rows that must change exactly when the database does
  // (RowCache). It must be quick and must not call back into this SqliteDb.
  void OnCommit(std::function<void()> hook) { commit_hooks_.push_back(std::move(hook)); }

  // Runs `fn(sqlite3*)` on a leased read connection. `fn` must not keep the connection.
  template <class F>
  auto Read(F&& fn) -> std::invoke_result_t<F, sqlite3*> {
    using R = std::invoke_result_t<F, sqlite3*>;
    sqlite3* c = AcquireReader();
    if (c == nullptr) return R(MakeError(Errc::kUnavailable, "sqlite store is not started"));
    struct Release {
      SqliteDb* self;
      sqlite3* c;
      ~Release() { self->ReleaseReader(c); }
    } release{this, c};
    return fn(c);
  }

  const SqliteSettings& settings() const { return settings_; }
  std::string path() const;

  // `fn` runs on the writer thread, at most `external_write_check` after a commit by a connection
  // that is not this SqliteDb's writer (in practice another process, since this one's readers are
  // query_only). It must be quick and must not call back into this SqliteDb. What it is for: an
  // in-process cache in front of this database drops everything when someone else wrote.
  void SetExternalWriteListener(std::function<void()> fn);
  int64_t ExternalWritesSeen() const { return external_writes_.load(); }

  // Observability / tests.
  int64_t CommittedTransactions() const { return commits_.load(); }  // group commits that succeeded
  int64_t CompletedWrites() const { return writes_.load(); }         // closures completed
  int64_t SchemaVersion() const { return schema_version_; }
  // Writer thread time by phase, nanoseconds since Start(): running the closures of a batch
  // (BEGIN .. last RELEASE), COMMIT (WAL write + fsync), checkpoints. Their sum against wall time
  // says how busy the single writer is; exported as syncwell_sqlite_writer_seconds_total.
  struct WriterTime {
    int64_t closures_ns = 0;
    int64_t commit_ns = 0;
    int64_t checkpoint_ns = 0;
  };
  WriterTime WriterBusy() const {
    return {closures_ns_.load(std::memory_order_relaxed),
            commit_ns_.load(std::memory_order_relaxed),
            checkpoint_ns_.load(std::memory_order_relaxed)};
  }
  static int64_t KnownSchemaVersion();

 private:
  struct Op {
    WriteFn fn;
    DoneFn on_done;  // every form of write completes through it (Write: a stack waiter)
    void Finish(Status st);
  };
  void Enqueue(Op op);

  Status OpenConnection(sqlite3** out, bool writer);
  Status Migrate();
  void WriterLoop();
  void RunBatch(std::vector<Op>& batch);
  // Hands a finished batch to the completer thread (it runs every on_done).
  void Complete(std::vector<Op> ops, std::vector<Status> results);
  void CompleterLoop();
  sqlite3* AcquireReader();
  void ReleaseReader(sqlite3* c);
  void CloseAll();

  const SqliteSettings settings_;
  int64_t schema_version_ = 0;
  std::vector<std::function<void()>> commit_hooks_;  // writer thread only (OnCommit)
  sqlite3* writer_conn_ = nullptr;

  std::mutex mu_;  // guards queue_, accepting_
  std::condition_variable cv_;
  std::deque<Op> queue_;
  bool accepting_ = false;
  std::thread writer_;
  std::mutex lifecycle_mu_;  // serialises Start/Stop

  struct Finished {
    std::vector<Op> ops;
    std::vector<Status> results;
  };
  std::mutex done_mu_;  // guards finished_, writer_running_
  std::condition_variable done_cv_;
  std::deque<Finished> finished_;
  bool writer_running_ = false;
  std::thread completer_;

  std::mutex read_mu_;  // guards free_readers_, readers_open_
  std::condition_variable read_cv_;
  std::vector<sqlite3*> all_readers_;
  std::vector<sqlite3*> free_readers_;
  bool readers_open_ = false;
  size_t readers_leased_ = 0;

  void MaybeCheckpoint();
  // Writer thread: PRAGMA data_version; calls the listener when it changed.
  void CheckExternalWrites();
  std::mutex listener_mu_;
  std::function<void()> external_listener_;
  int64_t data_version_ = -1;                                    // writer thread only
  std::chrono::steady_clock::time_point next_external_check_{};  // writer thread only
  std::atomic<int64_t> external_writes_{0};
  void CheckpointerLoop();
  sqlite3* ckpt_conn_ = nullptr;  // the checkpointer's connection (background_checkpoints)
  std::thread checkpointer_;
  std::mutex ckpt_mu_;  // guards ckpt_wanted_, ckpt_stop_
  std::condition_variable ckpt_cv_;
  bool ckpt_wanted_ = false;
  bool ckpt_stop_ = false;
  // kIdle -> (writer asks) kRunning -> (pass ends) kDone -> (writer copied the rest) kIdle.
  enum BgState : int { kBgIdle, kBgRunning, kBgDone };
  std::atomic<int> bg_state_{kBgIdle};
  std::atomic<int64_t> bg_checkpoint_ns_{0};
  std::atomic<int64_t> bg_checkpoints_{0};
  static int WalHook(void* self, sqlite3* db, const char* name, int frames);
  static void SyncMainFile(sqlite3* db);
  std::atomic<int64_t> wal_frames_{0};  // frames in the WAL after the last commit (wal hook)
  std::atomic<int64_t> checkpoints_{0};

 public:
  // Checkpoints run by the writer (the whole copy, or the rest after a background pass).
  int64_t Checkpoints() const { return checkpoints_.load(); }
  // Background passes (background_checkpoints) and the checkpointer thread's time in them.
  int64_t BackgroundCheckpoints() const { return bg_checkpoints_.load(); }
  int64_t BackgroundCheckpointNs() const { return bg_checkpoint_ns_.load(); }

 private:
  std::atomic<int64_t> commits_{0};
  std::atomic<int64_t> writes_{0};
  std::atomic<int64_t> closures_ns_{0};
  std::atomic<int64_t> commit_ns_{0};
  std::atomic<int64_t> checkpoint_ns_{0};
};

}  // namespace syncwell::store
