#include "store/postgres/pg.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <utility>

namespace syncwell::store::pg {
namespace {

bool IsUnavailableState(std::string_view state) {
  // Class 08: connection exceptions; 57P01..03: shutdown / cannot connect now; 53300: too many
  // connections; 25006: read-only transaction (a standby during failover).
  return state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03" ||
         state == "53300" || state == "25006";
}

std::string TrimMessage(const char* m) {
  std::string s = m != nullptr ? m : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

Error PgError(PGconn* c, const PGresult* r, std::string_view what) {
  std::string state;
  if (r != nullptr) {
    const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (s != nullptr) state = s;
  }
  std::string msg = std::string(what) + ": ";
  msg += r != nullptr ? TrimMessage(PQresultErrorMessage(r)) : TrimMessage(PQerrorMessage(c));
  if (msg.size() > 400) msg.resize(400);
  Error e = MakeError(Errc::kInternal, msg);
  if ((c != nullptr && PQstatus(c) == CONNECTION_BAD) || IsUnavailableState(state)) {
    e.code = Errc::kUnavailable;
    e.retry_after = std::chrono::seconds{1};
  } else if (state == "40001" || state == "40P01" || state == "57014" || state == "55P03") {
    e.code = Errc::kRetryable;  // serialization failure, deadlock, timeout, lock not available
  } else if (state == "23505") {
    e.code = Errc::kAlreadyExists;
  } else if (state.empty() && r == nullptr) {
    e.code = Errc::kUnavailable;  // no result at all: the connection is gone
    e.retry_after = std::chrono::seconds{1};
  }
  return e;
}

int64_t PgResult::affected() const {
  if (!r_) return 0;
  const char* s = PQcmdTuples(r_.get());
  int64_t v = 0;
  if (s != nullptr) std::from_chars(s, s + std::strlen(s), v);
  return v;
}

std::string_view PgResult::Text(int row, int col) const {
  if (!r_ || col < 0 || PQgetisnull(r_.get(), row, col) != 0) return {};
  return {PQgetvalue(r_.get(), row, col), static_cast<size_t>(PQgetlength(r_.get(), row, col))};
}

int64_t PgResult::Int(int row, int col) const {
  std::string_view t = Text(row, col);
  int64_t v = 0;
  std::from_chars(t.data(), t.data() + t.size(), v);
  return v;
}

PgConn::~PgConn() {
  if (c_ != nullptr) PQfinish(c_);
}

bool PgConn::broken() const { return broken_ || PQstatus(c_) != CONNECTION_OK; }

namespace {

std::vector<const char*> Values(const std::vector<PgParam>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.value() ? p.value()->c_str() : nullptr);
  return values;
}

bool Succeeded(const PGresult* r) {
  const ExecStatusType st = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

}  // namespace

Result<const std::string*> PgConn::PreparedName(const std::string& sql, int n_params) {
  if (auto it = prepared_.find(sql); it != prepared_.end()) return &it->second;
  if (prepared_.size() >= kMaxPreparedStatements) return static_cast<const std::string*>(nullptr);
  std::string name = "sw_s" + std::to_string(++next_statement_);
  PgResult prep(PQprepare(c_, name.c_str(), sql.c_str(), n_params, nullptr));
  if (!Succeeded(prep.raw())) {
    bool stale = false;
    return Failed(prep.raw(), &stale);
  }
  return &prepared_.emplace(sql, std::move(name)).first->second;
}

Error PgConn::Failed(const PGresult* r, bool* stale) {
  Error e = PgError(c_, r, "postgres");
  if (e.code == Errc::kUnavailable) broken_ = true;
  const char* s = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const std::string_view state = s != nullptr ? s : "";
  // 26000: the prepared statement is gone (DEALLOCATE ALL, a pooler's reset); 0A000 "cached plan
  // must not change result type": a schema change altered what a prepared statement returns.
  if (state == "26000" ||
      (state == "0A000" && e.message.find("cached plan") != std::string::npos)) {
    *stale = true;
    prepared_.clear();
    if (PQpipelineStatus(c_) == PQ_PIPELINE_OFF && PQtransactionStatus(c_) == PQTRANS_IDLE) {
      PQclear(PQexec(c_, "DEALLOCATE ALL"));  // the others are re-prepared under new names
    }
    e.code = Errc::kRetryable;
  }
  return e;
}

Result<PgResult> PgConn::Exec(std::string_view sql, const std::vector<PgParam>& params) {
  const std::vector<const char*> values = Values(params);
  const std::string text(sql);
  const int n = static_cast<int>(params.size());
  for (int attempt = 0;; ++attempt) {
    auto name = PreparedName(text, n);
    if (!name) return name.error();
    PgResult res(
        *name != nullptr
            ? PQexecPrepared(c_, (*name)->c_str(), n, values.data(), nullptr, nullptr, 0)
            : PQexecParams(c_, text.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0));
    if (Succeeded(res.raw())) return res;
    bool stale = false;
    Error e = Failed(res.raw(), &stale);
    // Outside a transaction nothing was changed: run it once more, freshly prepared.
    if (stale && attempt == 0 && PQtransactionStatus(c_) == PQTRANS_IDLE) continue;
    return e;
  }
}

Result<std::vector<PgResult>> PgConn::ExecTx(const std::vector<PgStatement>& statements) {
  std::vector<const std::string*> names;
  names.reserve(statements.size());
  for (const auto& st : statements) {  // prepared first, each once per connection
    auto name = PreparedName(st.sql, static_cast<int>(st.params.size()));
    if (!name) return name.error();
    names.push_back(*name);
  }
  auto lost = [this]() -> Error {
    broken_ = true;  // the pool discards it: no need to leave pipeline mode
    return PgError(c_, nullptr, "postgres pipeline");
  };
  if (PQenterPipelineMode(c_) != 1) return lost();
  for (size_t i = 0; i < statements.size(); ++i) {
    const std::vector<const char*> values = Values(statements[i].params);
    const int n = static_cast<int>(values.size());
    const int sent =
        names[i] != nullptr
            ? PQsendQueryPrepared(c_, names[i]->c_str(), n, values.data(), nullptr, nullptr, 0)
            : PQsendQueryParams(c_, statements[i].sql.c_str(), n, nullptr, values.data(), nullptr,
                                nullptr, 0);
    if (sent != 1) return lost();
  }
  if (PQpipelineSync(c_) != 1) return lost();
  // Each statement's result is followed by a NULL; a statement after a failed one reports
  // PGRES_PIPELINE_ABORTED; the sync point comes last.
  std::vector<PgResult> out;
  out.reserve(statements.size());
  std::optional<Error> failed;
  bool stale = false;
  for (size_t i = 0; i < statements.size(); ++i) {
    PgResult res(PQgetResult(c_));
    if (res.raw() == nullptr) return lost();
    if (Succeeded(res.raw())) {
      out.push_back(res);
    } else if (PQresultStatus(res.raw()) != PGRES_PIPELINE_ABORTED && !failed) {
      failed = Failed(res.raw(), &stale);
    }
    while (PGresult* extra = PQgetResult(c_)) PQclear(extra);  // up to the NULL
  }
  PgResult sync(PQgetResult(c_));
  if (sync.raw() == nullptr || PQresultStatus(sync.raw()) != PGRES_PIPELINE_SYNC) return lost();
  if (PQexitPipelineMode(c_) != 1) return lost();
  if (failed) {
    if (stale && PQtransactionStatus(c_) == PQTRANS_IDLE) {
      PQclear(PQexec(c_, "DEALLOCATE ALL"));  // the cache was dropped inside the pipeline
    }
    return *failed;
  }
  return out;
}

Status PgConn::ExecScript(std::string_view sql) {
  std::string text(sql);
  PGresult* r = PQexec(c_, text.c_str());
  PgResult res(r);
  ExecStatusType st = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) return {};
  Error e = PgError(c_, r, "postgres");
  if (e.code == Errc::kUnavailable) broken_ = true;
  return e;
}

Result<std::vector<std::string>> PgConn::DrainNotifications() {
  if (PQconsumeInput(c_) == 0) {
    broken_ = true;
    return PgError(c_, nullptr, "postgres listen");
  }
  std::vector<std::string> out;
  while (PGnotify* n = PQnotifies(c_)) {
    out.emplace_back(n->relname);
    PQfreemem(n);
  }
  return out;
}

PgLease::~PgLease() {
  if (pool_ != nullptr && conn_) pool_->Release(std::move(conn_));
}

PgPool::PgPool(PgPoolSettings settings) : settings_(std::move(settings)) {}

PgPool::~PgPool() = default;

size_t PgPool::open_connections() const {
  std::lock_guard lock(mu_);
  return open_;
}

Result<std::unique_ptr<PgConn>> PgPool::Connect() {
  const std::string timeout =
      std::to_string(std::max<int64_t>(1, settings_.connect_timeout.count()));
  const char* keys[] = {"dbname",          "connect_timeout",     "application_name", "keepalives",
                        "keepalives_idle", "keepalives_interval", "keepalives_count", nullptr};
  const char* vals[] = {
      settings_.url.c_str(), timeout.c_str(), "syncwell", "1", "10", "5", "3", nullptr};
  PGconn* raw = PQconnectdbParams(keys, vals, /*expand_dbname=*/1);
  auto conn = std::make_unique<PgConn>(raw);
  if (raw == nullptr || PQstatus(raw) != CONNECTION_OK) {
    Error e = MakeError(Errc::kUnavailable,
                        "postgres: cannot connect: " +
                            TrimMessage(raw != nullptr ? PQerrorMessage(raw) : "out of memory"));
    e.retry_after = std::chrono::seconds{1};
    return e;
  }
  std::string setup = "SET search_path TO " + QuoteIdent(settings_.schema) + ", public";
  setup += "; SET statement_timeout = " + std::to_string(settings_.statement_timeout.count());
  setup += "; SET lock_timeout = " + std::to_string(settings_.statement_timeout.count());
  setup += "; SET client_min_messages = warning";  // no NOTICE chatter on stderr
  if (auto st = conn->ExecScript(setup); !st) return st.error();
  return conn;
}

Result<PgLease> PgPool::Acquire() {
  const auto deadline = std::chrono::steady_clock::now() + settings_.acquire_timeout;
  std::unique_lock lock(mu_);
  for (;;) {
    while (!idle_.empty()) {
      std::unique_ptr<PgConn> c = std::move(idle_.back());
      idle_.pop_back();
      if (!c->broken()) return PgLease(this, std::move(c));
      --open_;  // a connection the server dropped while idle
    }
    if (open_ < std::max<size_t>(1, settings_.size)) {
      ++open_;
      lock.unlock();
      auto c = Connect();
      lock.lock();
      if (c) return PgLease(this, std::move(*c));
      --open_;
      cv_.notify_one();
      return c.error();
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= settings_.size) {
      Error e = MakeError(Errc::kUnavailable, "postgres: connection pool exhausted");
      e.retry_after = std::chrono::seconds{1};
      return e;
    }
  }
}

void PgPool::Release(std::unique_ptr<PgConn> conn) {
  const bool keep = !conn->broken() && PQtransactionStatus(conn->raw()) == PQTRANS_IDLE;
  std::lock_guard lock(mu_);
  if (keep) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
    conn.reset();
  }
  cv_.notify_one();
}

Status PgPool::WithRetries(const std::function<Status(PgConn&)>& attempt) {
  Error last = MakeError(Errc::kInternal, "postgres: no attempt");
  for (int n = 0; n < std::max(1, settings_.tx_retries); ++n) {
    auto lease = Acquire();
    if (!lease) return lease.error();
    Status st = attempt(**lease);
    if (st) return {};
    last = st.error();
    if (last.code != Errc::kRetryable) return last;
    // Conflicting transactions retry at different moments (full jitter, 1 ms .. 64 ms).
    const int64_t cap_us = int64_t{1000} << std::min(n, 6);
    thread_local std::minstd_rand rng{std::random_device{}()};
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % static_cast<uint64_t>(cap_us)));
  }
  return last;
}

Status PgPool::WithTx(const std::function<Status(PgConn&)>& fn) {
  return WithRetries([&](PgConn& c) -> Status {
    if (auto st = c.ExecScript("BEGIN"); !st) return st.error();
    Status st = fn(c);
    if (st) {
      st = c.ExecScript("COMMIT");
      if (st) return {};
    } else if (!c.broken()) {
      (void)c.ExecScript("ROLLBACK");
    }
    return st;
  });
}

Result<std::vector<PgResult>> PgPool::ExecTx(const std::vector<PgStatement>& statements) {
  std::vector<PgResult> out;
  Status st = WithRetries([&](PgConn& c) -> Status {
    auto r = c.ExecTx(statements);
    if (!r) return r.error();
    out = std::move(*r);
    return {};
  });
  if (!st) return st.error();
  return out;
}

Result<PgResult> PgPool::Exec(std::string_view sql, const std::vector<PgParam>& params) {
  auto lease = Acquire();
  if (!lease) return lease.error();
  return (*lease)->Exec(sql, params);
}

Result<std::unique_ptr<PgConn>> PgPool::OpenDedicated() { return Connect(); }

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

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char ch : bytes) {
    out += kDigits[ch >> 4];
    out += kDigits[ch & 0xf];
  }
  return out;
}

namespace {
int HexDigit(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return 0;
}
}  // namespace

std::string HexDecode(std::string_view hex) {
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(HexDigit(hex[i]) * 16 + HexDigit(hex[i + 1]));
  }
  return out;
}

std::string QuoteIdent(std::string_view ident) {
  std::string out = "\"";
  for (char ch : ident) {
    if (ch == '"') out += '"';
    out += ch;
  }
  out += '"';
  return out;
}

Result<int> Migrate(PgPool& pool, const std::vector<Migration>& migrations) {
  auto lease = pool.Acquire();
  if (!lease) return lease.error();
  PgConn& c = **lease;
  const std::string schema = QuoteIdent(pool.settings().schema);
  // One migrator at a time per schema; the lock is released at the end of the session or below.
  const std::vector<PgParam> key{PgParam("syncwell_migrate:" + pool.settings().schema)};
  if (auto r = c.Exec("SELECT pg_advisory_lock(hashtext($1))", key); !r) return r.error();
  auto unlock = [&] { (void)c.Exec("SELECT pg_advisory_unlock(hashtext($1))", key); };
  auto fail = [&](Error e) -> Result<int> {
    if (!c.broken() && PQtransactionStatus(c.raw()) != PQTRANS_IDLE) (void)c.ExecScript("ROLLBACK");
    unlock();
    return e;
  };
  if (auto st = c.ExecScript("CREATE SCHEMA IF NOT EXISTS " + schema +
                             "; CREATE TABLE IF NOT EXISTS " + schema +
                             ".schema_migrations (component text NOT NULL, version int NOT NULL, "
                             "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), "
                             "PRIMARY KEY (component, version))");
      !st) {
    return fail(st.error());
  }
  auto applied = c.Exec("SELECT component, max(version) FROM " + schema +
                        ".schema_migrations GROUP BY component");
  if (!applied) return fail(applied.error());
  std::map<std::string, int64_t> have;
  for (int i = 0; i < applied->rows(); ++i) have[applied->Str(i, 0)] = applied->Int(i, 1);
  std::map<std::string, int64_t> known;
  for (const auto& m : migrations)
    known[m.component] = std::max<int64_t>(known[m.component], m.version);
  for (const auto& [component, version] : have) {
    if (version > known[component]) {
      return fail(MakeError(Errc::kPermanent,
                            "postgres schema '" + pool.settings().schema + "' has " + component +
                                " migration " + std::to_string(version) +
                                ", newer than this binary knows (" +
                                std::to_string(known[component]) + "): upgrade syncwell"));
    }
  }
  int count = 0;
  for (const auto& m : migrations) {
    if (have.count(m.component) != 0 && m.version <= have[m.component]) continue;
    if (auto st = c.ExecScript("BEGIN"); !st) return fail(st.error());
    if (auto st = c.ExecScript(m.sql); !st) {
      Error e = st.error();
      e.message = "migration " + m.component + "/" + std::to_string(m.version) + " (" + m.name +
                  "): " + e.message;
      return fail(e);
    }
    auto ins = c.Exec("INSERT INTO " + schema +
                          ".schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                      {PgParam(m.component), PgParam(m.version), PgParam(m.name)});
    if (!ins) return fail(ins.error());
    if (auto st = c.ExecScript("COMMIT"); !st) return fail(st.error());
    ++count;
  }
  unlock();
  return count;
}

Result<int> PendingMigrations(PgPool& pool, const std::vector<Migration>& migrations) {
  auto exists = pool.Exec("SELECT to_regclass($1) IS NOT NULL",
                          {PgParam(QuoteIdent(pool.settings().schema) + ".schema_migrations")});
  if (!exists) return exists.error();
  std::map<std::string, int64_t> have;
  if (exists->Bool(0, 0)) {
    auto applied =
        pool.Exec("SELECT component, max(version) FROM " + QuoteIdent(pool.settings().schema) +
                  ".schema_migrations GROUP BY component");
    if (!applied) return applied.error();
    for (int i = 0; i < applied->rows(); ++i) have[applied->Str(i, 0)] = applied->Int(i, 1);
  }
  std::map<std::string, int64_t> known;
  int pending = 0;
  for (const auto& m : migrations) {
    known[m.component] = std::max<int64_t>(known[m.component], m.version);
    if (have.count(m.component) == 0 || m.version > have[m.component]) ++pending;
  }
  for (const auto& [component, version] : have) {
    if (version > known[component]) {
      return MakeError(Errc::kPermanent, "postgres schema '" + pool.settings().schema + "' has " +
                                             component + " migration " + std::to_string(version) +
                                             ", newer than this binary knows: upgrade syncwell");
    }
  }
  return pending;
}

std::vector<Migration> AllMigrations() {
  std::vector<Migration> all = StoreMigrations();
  for (auto& m : QueueMigrations()) all.push_back(std::move(m));
  for (auto& m : FleetMigrations()) all.push_back(std::move(m));
  return all;
}

}  // namespace syncwell::store::pg
