#pragma once
// The PostgreSQL connection layer shared by every PostgreSQL adapter (store, queue, leases):
// a bounded pool of blocking libpq connections, parameterised statements, transactions with
// retry on serialization failures, error mapping to Errc, and the schema migration runner.
//
// Why blocking connections in a bounded pool (ARCHITECTURE §5): every Store/JobQueue method is
// already called from a blocking pool (API handler threads, worker threads), never from an I/O
// thread, so a blocking libpq call never stalls the event loop; the pool bounds how many
// connections one process opens (`size`) and how long a caller waits for one (`acquire_timeout`,
// then kUnavailable -> 503 + Retry-After at the API).
//
// Error mapping (PgError): connection loss, "cannot connect", admin shutdown, too many
// connections, read-only standby -> kUnavailable (the server is down or restarting); serialization
// failure / deadlock -> kRetryable (WithTx retries these itself); unique violation ->
// kAlreadyExists; anything else -> kInternal with the server's message. A connection that saw a
// connection-level error is discarded, not returned to the pool.
//
// Usage:
//   PgPool pool(PgPoolSettings{.url = "postgresql://127.0.0.1:5432/syncwell"});
//   auto st = pool.WithTx([&](PgConn& c) -> Status {
//     auto r = c.Exec("UPDATE t SET v = $1 WHERE id = $2", {PgParam(v), PgParam(id)});
//     if (!r) return r.error();
//     if (r->affected() != 1) return MakeError(Errc::kNotFound, "no row");
//     return {};
//   });
//
// Thread-safety: PgPool is thread-safe; a PgConn lease is used by one thread at a time.
#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.hpp"

namespace syncwell::store::pg {

struct PgPoolSettings {
  // libpq connection string: a URL (postgresql://user@host:port/db) or "key=value ..." pairs.
  std::string url;
  // Schema every connection uses (SET search_path); created by migrations. Lets many
  // independent SyncWell installations (or test cases) share one database.
  std::string schema = "syncwell";
  size_t size = 8;  // at most this many open connections
  std::chrono::milliseconds acquire_timeout{5000};
  std::chrono::seconds connect_timeout{3};
  // Statement timeout set on every connection (0 = none): a hung query becomes an error.
  std::chrono::milliseconds statement_timeout{30000};
  int tx_retries = 12;  // WithTx attempts on serialization failure / deadlock (with backoff)
};

// One statement parameter, sent as text (NULL when absent). Integers and bools are formatted.
class PgParam {
 public:
  PgParam() = default;                                     // NULL
  PgParam(std::string v) : value_(std::move(v)) {}         // NOLINT(google-explicit-constructor)
  PgParam(std::string_view v) : value_(std::string(v)) {}  // NOLINT(google-explicit-constructor)
  PgParam(const char* v) : value_(std::string(v)) {}       // NOLINT(google-explicit-constructor)
  PgParam(int64_t v) : value_(std::to_string(v)) {}        // NOLINT(google-explicit-constructor)
  PgParam(int v) : value_(std::to_string(v)) {}            // NOLINT(google-explicit-constructor)
  PgParam(bool v) : value_(v ? "t" : "f") {}               // NOLINT(google-explicit-constructor)
  static PgParam Null() { return {}; }
  const std::optional<std::string>& value() const { return value_; }

 private:
  std::optional<std::string> value_;
};

// A statement's result (owns the PGresult).
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* r) : r_(r, &PQclear) {}
  int rows() const { return r_ ? PQntuples(r_.get()) : 0; }
  int64_t affected() const;  // rows changed by INSERT/UPDATE/DELETE
  bool IsNull(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string_view Text(int row, int col) const;  // "" for NULL
  std::string Str(int row, int col) const { return std::string(Text(row, col)); }
  int64_t Int(int row, int col) const;  // 0 for NULL
  bool Bool(int row, int col) const { return Text(row, col) == "t"; }
  int Column(const char* name) const { return PQfnumber(r_.get(), name); }
  const PGresult* raw() const { return r_.get(); }

 private:
  std::shared_ptr<PGresult> r_;
};

// One statement of a pipelined transaction (PgConn::ExecTx).
struct PgStatement {
  std::string sql;
  std::vector<PgParam> params;
};

class PgConn {
 public:
  explicit PgConn(PGconn* c) : c_(c) {}
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // Runs one statement with text parameters ($1..$n). Errors are mapped (see above).
  //
  // Statement cache: the first time a statement text runs on this connection it is prepared
  // (PQprepare: parsed and analysed once), and every later call executes the prepared
  // statement, so PostgreSQL does not parse the same text again for every request (perf showed
  // the parser among the server's top functions under intake load). At most
  // kMaxPreparedStatements texts per connection are kept; others run unnamed. When the server
  // has lost a statement (DEALLOCATE ALL, a pooler's reset) or a schema change altered its result
  // type, the cache is dropped and the call is repeated once outside a transaction; inside one the
  // error becomes kRetryable, so PgPool::WithTx runs the transaction again with fresh statements.
  Result<PgResult> Exec(std::string_view sql, const std::vector<PgParam>& params = {});

  // Runs `statements` as one implicit transaction in one round trip (libpq pipeline mode):
  // either all of them commit, at the end, or -- at the first error, which is returned --
  // none does. For write paths whose steps do not depend on each other's results in the client
  // (a step that must fail the whole transaction raises an error in SQL). Must be called
  // outside a transaction.
  Result<std::vector<PgResult>> ExecTx(const std::vector<PgStatement>& statements);
  // Runs several ';'-separated statements without parameters (migrations, SET ...).
  Status ExecScript(std::string_view sql);

  // True after a connection-level error: the pool discards this connection.
  bool broken() const;
  PGconn* raw() { return c_; }

  // LISTEN support: the socket to wait on and the pending notifications (channel names).
  int Socket() const { return PQsocket(c_); }
  // Reads input and returns the notifications received so far (channel names). A dead
  // connection -> kUnavailable.
  Result<std::vector<std::string>> DrainNotifications();

  static constexpr size_t kMaxPreparedStatements = 256;

 private:
  // The prepared statement's name for `sql` (preparing it now if needed); empty when it should
  // run unnamed (the cache is full). An error when preparing failed.
  Result<const std::string*> PreparedName(const std::string& sql, int n_params);
  // Maps a failed result; drops the statement cache when the server lost or invalidated one of
  // its statements (sets *stale).
  Error Failed(const PGresult* r, bool* stale);

  PGconn* c_;
  bool broken_ = false;
  std::unordered_map<std::string, std::string> prepared_;  // statement text -> name
  uint64_t next_statement_ = 0;
};

// Maps a failed result / connection state to an Error. `what` names the operation.
Error PgError(PGconn* c, const PGresult* r, std::string_view what);

class PgPool;

// An exclusive lease of one pooled connection; returned to the pool on destruction.
class PgLease {
 public:
  PgLease(PgPool* pool, std::unique_ptr<PgConn> conn) : pool_(pool), conn_(std::move(conn)) {}
  PgLease(PgLease&&) = default;
  PgLease& operator=(PgLease&&) = default;
  ~PgLease();
  PgConn& operator*() { return *conn_; }
  PgConn* operator->() { return conn_.get(); }

 private:
  PgPool* pool_ = nullptr;
  std::unique_ptr<PgConn> conn_;
};

class PgPool {
 public:
  explicit PgPool(PgPoolSettings settings);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  const PgPoolSettings& settings() const { return settings_; }

  // Waits up to acquire_timeout for a connection (opening one if fewer than `size` are open).
  // kUnavailable when the server cannot be reached or the pool stays exhausted.
  Result<PgLease> Acquire();

  // Runs `fn` inside BEGIN ... COMMIT on one leased connection; rolls back when fn fails.
  // Retries the whole transaction on kRetryable (serialization failure, deadlock) up to
  // tx_retries times. fn must be safe to re-run (no side effects outside the transaction).
  Status WithTx(const std::function<Status(PgConn&)>& fn);
  // The same for a transaction that returns a value.
  template <class T>
  Result<T> WithTxValue(const std::function<Result<T>(PgConn&)>& fn) {
    std::optional<Result<T>> out;
    Status st = WithTx([&](PgConn& c) -> Status {
      out.emplace(fn(c));
      if (!*out) return out->error();
      return {};
    });
    if (!st) return st.error();
    return std::move(*out);
  }
  // One statement outside an explicit transaction (autocommit).
  Result<PgResult> Exec(std::string_view sql, const std::vector<PgParam>& params = {});
  // PgConn::ExecTx on a leased connection, retried like WithTx on kRetryable.
  Result<std::vector<PgResult>> ExecTx(const std::vector<PgStatement>& statements);

  // Opens a dedicated (non-pooled) connection with the same settings, e.g. for LISTEN.
  Result<std::unique_ptr<PgConn>> OpenDedicated();

  // Connections open now (leased + idle).
  size_t open_connections() const;

 private:
  friend class PgLease;
  void Release(std::unique_ptr<PgConn> conn);
  Result<std::unique_ptr<PgConn>> Connect();
  // Runs `attempt` on leased connections until it succeeds or fails with something other than
  // kRetryable (at most tx_retries times, with jittered backoff between attempts).
  Status WithRetries(const std::function<Status(PgConn&)>& attempt);

  const PgPoolSettings settings_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConn>> idle_;
  size_t open_ = 0;
};

// One schema migration of one component ("store", "queue", "fleet"): applied in version order,
// each in its own transaction, recorded in <schema>.schema_migrations(component, version).
struct Migration {
  std::string component;
  int version = 0;
  std::string name;
  std::string sql;  // ';'-separated statements, run with search_path = the schema
};

// Creates the schema if missing and applies every migration not yet recorded, under an advisory
// lock so that several processes starting together migrate once. A database that has a
// migration of a component newer than this binary knows -> kPermanent (refuse to run).
// Returns the number applied.
Result<int> Migrate(PgPool& pool, const std::vector<Migration>& migrations);

// The migrations not yet applied (0 = the schema is current); a schema newer than this binary ->
// kPermanent. Read-only: `syncwell serve` refuses to start on a schema that needs migrating.
Result<int> PendingMigrations(PgPool& pool, const std::vector<Migration>& migrations);

// Every migration of the PostgreSQL adapters, in order: StoreMigrations() (postgres_store.cpp),
// QueueMigrations() (postgres_job_queue_sql.cpp), FleetMigrations() (shard leases, pg_leases.cpp).
std::vector<Migration> AllMigrations();
std::vector<Migration> StoreMigrations();
std::vector<Migration> QueueMigrations();
std::vector<Migration> FleetMigrations();

// bytea as hex text (no "\\x" prefix), both ways: binary values (sealed tokens, bodies) survive
// the text protocol whatever the server's bytea_output. HexDecode ignores a trailing odd digit.
std::string HexEncode(std::string_view bytes);
std::string HexDecode(std::string_view hex);

// Array literals for $n::text[] / $n::bigint[] parameters (every text element quoted and
// escaped, so empty strings, quotes and the word NULL stay strings).
std::string TextArray(const std::vector<std::string>& values);
std::string IntArray(const std::vector<int64_t>& values);

// Quotes an identifier for SQL ("my schema" -> "\"my schema\"").
std::string QuoteIdent(std::string_view ident);

}  // namespace syncwell::store::pg
