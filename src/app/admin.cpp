// Operator commands: `syncwell token`, `syncwell admin ...`. They work directly on the backend:
// the data directory (the embedded database is safe to share with a running server: WAL + busy
// timeout) or, with storage.postgres_url, the PostgreSQL schema the fleet uses.
#include <boost/json.hpp>
#include <fstream>
#include <iomanip>
#include <iostream>

#include "api/api_service.hpp"
#include "app/commands.hpp"
#include "app/wiring.hpp"
#include "auth/dev_issuer.hpp"
#include "core/random.hpp"
#include "providers/capabilities.hpp"
#include "secrets/secret_box.hpp"

namespace syncwell::app {

namespace {
// Admin commands make single calls: no LISTEN thread, never migrate implicitly.
BackendOptions AdminBackend() {
  BackendOptions o;
  o.listen = false;
  return o;
}
}  // namespace

std::string SecretKeyPath(const config::Settings& s) { return s.storage.data_dir + "/secret.key"; }

int RunToken(const config::Settings& s, const TokenOptions& o) {
  if (!s.DevModeEnabled()) {
    std::cerr << "syncwell token: dev mode is off (an identity provider is configured); tokens "
                 "come from it\n";
    return 2;
  }
  if (auto st = EnsureDataDir(s.storage.data_dir); !st) {
    std::cerr << "syncwell token: " << st.error().message << "\n";
    return 1;
  }
  auto dev = auth::DevIssuer::LoadOrCreate(s.storage.data_dir);
  if (!dev) {
    std::cerr << "syncwell token: " << dev.error().message << "\n";
    return 1;
  }
  SystemClock clock;
  std::cout << dev->Mint(o.user, o.tier, o.ttl, clock.Now()) << "\n";
  return 0;
}

int RunAdminUserCreate(const config::Settings& s, const UserCreateOptions& o) {
  SystemClock clock;
  auto backend = OpenBackend(s, clock, AdminBackend());
  if (!backend) {
    std::cerr << "syncwell admin user create: " << backend.error().message << "\n";
    return 1;
  }
  store::User u;
  u.id = UserId(o.user);
  store::ParseTier(o.tier, &u.tier);
  u.created_at = u.updated_at = clock.Now();
  if (auto existing = (*backend)->store->GetUser(u.id)) {
    u.settings_json = existing->settings_json;
    u.created_at = existing->created_at;
  }
  if (auto st = (*backend)->store->UpsertUser(u); !st) {
    std::cerr << "syncwell admin user create: " << st.error().message << "\n";
    return 1;
  }
  std::cout << o.user << "\n";
  return 0;
}

namespace {

// Seals the provider tokens and stores one connection; the id is `o.connection_id` or random.
Result<ConnectionId> StoreConnection(store::Store& store, const secrets::SecretBox& box,
                                     Clock& clock, const ConnectionCreateOptions& o) {
  store::Connection c;
  c.id = ConnectionId(o.connection_id.empty() ? "conn_" + RandomToken(12) : o.connection_id);
  c.user = UserId(o.user);
  c.provider = o.provider;
  store::ParseConnectionStatus(o.status, &c.status);
  c.provider_user_id = o.provider_user_id;
  auto access = box.Seal(secrets::Secret(o.access_token));
  if (!access) return access.error();
  c.access_token_sealed = *access;
  if (!o.refresh_token.empty()) {
    auto refresh = box.Seal(secrets::Secret(o.refresh_token));
    if (!refresh) return refresh.error();
    c.refresh_token_sealed = *refresh;
  }
  c.created_at = c.updated_at = clock.Now();
  if (auto st = store.CreateConnection(c); !st) return st.error();
  return c.id;
}

bool KnownProvider(const std::string& name, const char* cmd) {
  if (providers::FindProvider(name)) return true;
  std::cerr << cmd << ": unknown provider '" << name << "' (known:";
  for (const auto& p : providers::AllProviders()) std::cerr << " " << p.name;
  std::cerr << ")\n";
  return false;
}

}  // namespace

int RunAdminConnectionCreate(const config::Settings& s, const ConnectionCreateOptions& o) {
  constexpr const char* kCmd = "syncwell admin connection create";
  if (!KnownProvider(o.provider, kCmd)) return 2;
  SystemClock clock;
  auto backend = OpenBackend(s, clock, AdminBackend());
  if (!backend) {
    std::cerr << kCmd << ": " << backend.error().message << "\n";
    return 1;
  }
  auto box = secrets::SecretBox::LoadOrCreate(SecretKeyPath(s));
  if (!box) {
    std::cerr << kCmd << ": secret key: " << box.error().message << "\n";
    return 1;
  }
  auto id = StoreConnection(*(*backend)->store, *box, clock, o);
  if (!id) {
    std::cerr << kCmd << ": " << id.error().message << "\n";
    return 1;
  }
  std::cout << id->str() << "\n";
  return 0;
}

int RunAdminPopulationCreate(const config::Settings& s, const PopulationOptions& o) {
  constexpr const char* kCmd = "syncwell admin population create";
  if (!KnownProvider(o.source, kCmd) || !KnownProvider(o.destination, kCmd)) return 2;
  if (o.users == 0 || o.tokens_out.empty()) {
    std::cerr << kCmd << ": --users must be positive and --tokens-out set\n";
    return 2;
  }
  if (!s.DevModeEnabled()) {
    std::cerr << kCmd
              << ": dev mode is off (an identity provider is configured): tokens come "
                 "from it, so this command cannot mint them\n";
    return 2;
  }
  if (auto st = EnsureDataDir(s.storage.data_dir); !st) {
    std::cerr << kCmd << ": " << st.error().message << "\n";
    return 1;
  }
  SystemClock clock;
  auto backend = OpenBackend(s, clock, AdminBackend());
  if (!backend) {
    std::cerr << kCmd << ": " << backend.error().message << "\n";
    return 1;
  }
  auto box = secrets::SecretBox::LoadOrCreate(SecretKeyPath(s));
  auto dev = auth::DevIssuer::LoadOrCreate(s.storage.data_dir);
  if (!box || !dev) {
    std::cerr << kCmd << ": " << (!box ? box.error().message : dev.error().message) << "\n";
    return 1;
  }
  std::ofstream out(o.tokens_out, std::ios::trunc);
  if (!out) {
    std::cerr << kCmd << ": cannot write --tokens-out " << o.tokens_out << "\n";
    return 1;
  }
  store::Store& store = *(*backend)->store;
  size_t created = 0;
  for (size_t i = 1; i <= o.users; ++i) {
    const std::string user = o.prefix + std::to_string(i);
    const bool pro = o.pro_every > 0 && i % o.pro_every == 0;
    store::User u;
    u.id = UserId(user);
    u.tier = pro ? store::Tier::kPro : store::Tier::kFree;
    u.created_at = u.updated_at = clock.Now();
    if (auto existing = store.GetUser(u.id)) {
      u.settings_json = existing->settings_json;
      u.created_at = existing->created_at;
    }
    if (auto st = store.UpsertUser(u); !st) {
      std::cerr << kCmd << ": user " << user << ": " << st.error().message << "\n";
      return 1;
    }
    std::string conns[2];
    const std::string* providers[2] = {&o.source, &o.destination};
    for (int k = 0; k < 2; ++k) {
      ConnectionCreateOptions c;
      c.user = user;
      c.provider = *providers[k];
      c.connection_id = "conn_" + user + "_" + (k == 0 ? "src" : "dst");
      c.access_token = "loadtest";
      conns[k] = c.connection_id;
      auto id = StoreConnection(store, *box, clock, c);
      if (!id && id.error().code != Errc::kAlreadyExists) {
        std::cerr << kCmd << ": connection " << c.connection_id << ": " << id.error().message
                  << "\n";
        return 1;
      }
    }
    out << dev->Mint(user, pro ? "PRO" : "FREE", o.ttl, clock.Now()) << ' ' << conns[0] << ' '
        << conns[1] << '\n';
    ++created;
    if (created % 1000 == 0) std::cerr << "  " << created << " users\n";
  }
  out.flush();
  if (!out) {
    std::cerr << kCmd << ": writing " << o.tokens_out << " failed\n";
    return 1;
  }
  std::cout << created << " users in " << o.tokens_out << "\n";
  return 0;
}

int RunAdminJwksDrop(const config::Settings& s, const std::string& kid) {
  SystemClock clock;
  auto backend = OpenBackend(s, clock, AdminBackend());
  if (!backend) {
    std::cerr << "syncwell admin jwks drop: " << backend.error().message << "\n";
    return 1;
  }
  if (auto st = (*backend)->store->AddControlEvent("jwks_drop", kid); !st) {
    std::cerr << "syncwell admin jwks drop: " << st.error().message << "\n";
    return 1;
  }
  std::cout << "dropped " << kid << " (running servers forget it within about a second)\n";
  return 0;
}

int RunAdminMigrate(const config::Settings& s) {
  SystemClock clock;
  if (s.storage.postgres_url.empty()) {
    auto store = OpenStore(s, clock);
    if (!store) {
      std::cerr << "syncwell admin migrate: " << store.error().message << "\n";
      return 1;
    }
    std::cout << "embedded database in " << s.storage.data_dir << " is up to date\n";
    return 0;
  }
  store::pg::PgPool pool(PgSettings(s));
  auto n = store::pg::Migrate(pool, store::pg::AllMigrations());
  if (!n) {
    std::cerr << "syncwell admin migrate: " << n.error().message << "\n";
    return 1;
  }
  std::cout << "postgres schema '" << s.storage.postgres_schema << "': " << *n
            << " migration(s) applied, schema is up to date\n";
  return 0;
}

int RunAdminQueueStats(const config::Settings& s) {
  SystemClock clock;
  auto backend = OpenBackend(s, clock, AdminBackend());
  if (!backend) {
    std::cerr << "syncwell admin queue stats: " << backend.error().message << "\n";
    return 1;
  }
  auto st = (*backend)->queue->Stats();
  if (!st) {
    std::cerr << "syncwell admin queue stats: " << st.error().message << "\n";
    return 1;
  }
  auto row = [](const char* k, const std::string& v) {
    std::cout << std::left << std::setw(24) << k << v << "\n";
  };
  row("visible", std::to_string(st->visible));
  row("delayed", std::to_string(st->delayed));
  row("in flight", std::to_string(st->in_flight));
  row("dead-lettered", std::to_string(st->dlq));
  row("groups in flight", std::to_string(st->groups_in_flight));
  row("oldest age (s)", std::to_string(st->oldest_age_seconds));
  row("enqueued (total)", std::to_string(st->enqueued_total));
  row("deduplicated (total)", std::to_string(st->deduplicated_total));
  row("delivered (total)", std::to_string(st->delivered_total));
  row("redelivered (total)", std::to_string(st->redelivered_total));
  row("deferred (total)", std::to_string(st->deferred_total));
  row("dead-lettered (total)", std::to_string(st->dead_lettered_total));
  row("redriven (total)", std::to_string(st->redriven_total));
  return 0;
}

namespace {

// The job id and the hashed user id of a job envelope {"jobId","userId"}; "-" when unreadable.
std::pair<std::string, std::string> EnvelopeIds(const std::optional<std::string>& body) {
  if (!body) return {"-", "-"};
  boost::system::error_code ec;
  auto v = boost::json::parse(*body, ec);
  if (ec || !v.is_object()) return {"-", "-"};
  const auto& o = v.as_object();
  std::string job = "-", user = "-";
  if (auto* j = o.if_contains("jobId"); j && j->is_string()) job = std::string(j->as_string());
  if (auto* u = o.if_contains("userId"); u && u->is_string())
    user = api::HashUserId(UserId(std::string(u->as_string())));
  return {job, user};
}

std::string LastError(const queue::DlqEntry& e) {
  for (auto it = e.history.rbegin(); it != e.history.rend(); ++it) {
    if (it->kind != queue::HistoryKind::kDeferred) return it->text;
  }
  return e.history.empty() ? "" : e.history.back().text;
}

std::string OneLine(std::string s, size_t max) {
  for (char& c : s)
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

// Opens the store and the queue for an admin command; prints the error and returns nullptr.
struct QueueHandle {
  std::unique_ptr<Backend> backend;
  store::Store* store = nullptr;
  queue::JobQueue* queue = nullptr;
};
std::optional<QueueHandle> OpenQueue(const config::Settings& s, const Clock& clock,
                                     const char* cmd) {
  auto backend = OpenBackend(s, clock, AdminBackend());
  if (!backend) {
    std::cerr << cmd << ": " << backend.error().message << "\n";
    return std::nullopt;
  }
  QueueHandle h;
  h.backend = std::move(*backend);
  h.store = h.backend->store;
  h.queue = h.backend->queue;
  return h;
}

// Job status back to QUEUED, then the message out of the DLQ (in that order, so a worker never
// receives a redriven message whose job still says FAILED and drops it). 0 ok, 1 error.
int RedriveOne(QueueHandle& h, const std::string& id, const char* cmd) {
  auto e = h.queue->DlqGet(id);
  if (!e) {
    std::cerr << cmd << ": " << id << ": " << e.error().message << "\n";
    return 1;
  }
  auto [job, user_hash] = EnvelopeIds(e->body);
  (void)user_hash;
  const bool has_job = job != "-";
  if (has_job) (void)h.store->UpdateJobStatus(JobId(job), store::JobStatus::kQueued, "");
  if (auto st = h.queue->DlqRedrive(id); !st) {
    if (has_job)
      (void)h.store->UpdateJobStatus(JobId(job), store::JobStatus::kFailed, LastError(*e));
    std::cerr << cmd << ": " << id << ": " << st.error().message << "\n";
    return 1;
  }
  std::cout << "redriven " << id << " (job " << job << ")\n";
  return 0;
}

}  // namespace

int RunAdminDlqList(const config::Settings& s, size_t limit) {
  SystemClock clock;
  auto h = OpenQueue(s, clock, "syncwell admin dlq list");
  if (!h) return 1;
  auto list = h->queue->DlqList(queue::DlqListOptions{limit, ""});
  if (!list) {
    std::cerr << "syncwell admin dlq list: " << list.error().message << "\n";
    return 1;
  }
  if (list->empty()) {
    std::cout << "dead-letter queue is empty\n";
    return 0;
  }
  std::cout << std::left << std::setw(10) << "ID" << std::setw(18) << "GROUP (hashed)"
            << std::setw(9) << "RECEIVES" << std::setw(8) << "PRIO" << std::setw(26)
            << "DEAD-LETTERED AT"
            << "LAST ERROR\n";
  for (const auto& e : *list) {
    std::cout << std::left << std::setw(10) << e.message_id << std::setw(18)
              << api::HashUserId(UserId(e.group_id)) << std::setw(9) << e.receive_count
              << std::setw(8) << queue::PriorityName(e.priority) << std::setw(26)
              << FormatRfc3339(e.dead_lettered_at) << OneLine(LastError(e), 60) << "\n";
  }
  if (list->size() == limit) std::cout << "(first " << limit << "; use --limit for more)\n";
  return 0;
}

int RunAdminDlqShow(const config::Settings& s, const std::string& id) {
  SystemClock clock;
  auto h = OpenQueue(s, clock, "syncwell admin dlq show");
  if (!h) return 1;
  auto e = h->queue->DlqGet(id);
  if (!e) {
    std::cerr << "syncwell admin dlq show: " << id << ": " << e.error().message << "\n";
    return e.error().code == Errc::kNotFound ? 2 : 1;
  }
  auto [job, user_hash] = EnvelopeIds(e->body);
  auto row = [](const char* k, const std::string& v) {
    std::cout << std::left << std::setw(18) << k << v << "\n";
  };
  row("message", e->message_id);
  row("job", job);
  row("user (hashed)", user_hash);
  row("group (hashed)", api::HashUserId(UserId(e->group_id)));
  row("priority", queue::PriorityName(e->priority));
  row("receive count", std::to_string(e->receive_count));
  row("enqueued at", FormatRfc3339(e->enqueued_at));
  row("dead-lettered at", FormatRfc3339(e->dead_lettered_at));
  std::cout << "history:\n";
  for (const auto& hist : e->history) {
    std::cout << "  " << std::left << std::setw(26) << FormatRfc3339(hist.at) << std::setw(10)
              << queue::HistoryKindName(hist.kind) << "receive " << std::setw(4)
              << hist.receive_count << OneLine(hist.text, 200) << "\n";
  }
  return 0;
}

int RunAdminDlqRedrive(const config::Settings& s, const std::string& id, bool all) {
  const char* cmd = "syncwell admin dlq redrive";
  if (all == !id.empty()) {
    std::cerr << cmd << ": give a message ID or --all\n";
    return 2;
  }
  SystemClock clock;
  auto h = OpenQueue(s, clock, cmd);
  if (!h) return 1;
  if (!all) return RedriveOne(*h, id, cmd);
  // One by one (not DlqRedriveAll) so each job's status is reset before its message moves.
  int64_t n = 0, errors = 0;
  std::string after;
  while (true) {
    auto list = h->queue->DlqList(queue::DlqListOptions{500, after});
    if (!list) {
      std::cerr << cmd << ": " << list.error().message << "\n";
      return 1;
    }
    if (list->empty()) break;
    for (const auto& e : *list) {
      if (RedriveOne(*h, e.message_id, cmd) == 0)
        ++n;
      else
        ++errors;
      after = e.message_id;
    }
  }
  std::cout << "redriven " << n << " message(s)"
            << (errors ? ", " + std::to_string(errors) + " failed" : "") << "\n";
  return errors ? 1 : 0;
}

int RunAdminDlqPurge(const config::Settings& s) {
  SystemClock clock;
  auto h = OpenQueue(s, clock, "syncwell admin dlq purge");
  if (!h) return 1;
  auto n = h->queue->DlqPurge();
  if (!n) {
    std::cerr << "syncwell admin dlq purge: " << n.error().message << "\n";
    return 1;
  }
  std::cout << "purged " << *n << " message(s)\n";
  return 0;
}

}  // namespace syncwell::app
