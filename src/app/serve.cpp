// `syncwell serve`: wires the embedded adapters, the API and the HTTP server, then waits for
// SIGTERM/SIGINT and drains.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "api/api_service.hpp"
#include "api/http_server.hpp"
#include "app/commands.hpp"
#include "app/openapi.hpp"
#include "app/wiring.hpp"
#include "auth/dev_issuer.hpp"
#include "auth/jwks.hpp"
#include "auth/jwt.hpp"
#include "core/log.hpp"
#include "store/sqlite/sqlite_job_queue.hpp"

namespace syncwell::app {
namespace {

class VerifierAuthenticator final : public api::Authenticator {
 public:
  explicit VerifierAuthenticator(auth::TokenVerifier& v) : v_(v) {}
  Result<api::Caller> Authenticate(std::string_view token) override {
    auto p = v_.Verify(token);
    if (!p) return p.error();
    return api::Caller{p->user, p->tier};
  }

 private:
  auth::TokenVerifier& v_;
};

// Background upkeep on one thread: admin control events (JWKS key drops), asynchronous user
// deletion, idempotency record expiry. Stops promptly on Stop().
class Housekeeper {
 public:
  Housekeeper(store::Store& store, auth::TokenVerifier& verifier, const Clock& clock,
              std::chrono::milliseconds idem_retention)
      : store_(store), verifier_(verifier), clock_(clock), idem_retention_(idem_retention) {}

  void Start() {
    // Control events written before this start are history: skip them.
    if (auto ev = store_.ControlEventsAfter(0); ev && !ev->empty()) last_seq_ = ev->back().seq;
    thread_ = std::thread([this] { Loop(); });
  }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    int tick = 0;
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      PollControl();
      PurgeDeletedUsers();
      if (tick++ % 600 == 0) {
        auto n = store_.PurgeIdempotencyBefore(clock_.Now() - idem_retention_);
        if (n && *n > 0)
          log::Info("expired idempotency records purged", {{"count", std::to_string(*n)}});
      }
      lock.lock();
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
    }
  }

  void PollControl() {
    auto ev = store_.ControlEventsAfter(last_seq_);
    if (!ev) return;
    for (const auto& e : *ev) {
      last_seq_ = e.seq;
      if (e.kind == "jwks_drop") {
        verifier_.ForgetKid(e.value);
        log::Info("signing key dropped", {{"kid", e.value}});
      }
    }
  }

  void PurgeDeletedUsers() {
    auto pending = store_.PendingDeletions(100);
    if (!pending) return;
    for (const auto& u : *pending) {
      // Provider grants are revoked here once connectors exist (SPEC S13); today the tokens are
      // deleted with everything else.
      if (auto st = store_.PurgeUser(u); !st) {
        log::Warn("user deletion failed; will retry",
                  {{"user", api::HashUserId(u)}, {"error", st.error().message}});
      } else {
        log::Info("user deleted", {{"user", api::HashUserId(u)}});
      }
    }
  }

  store::Store& store_;
  auth::TokenVerifier& verifier_;
  const Clock& clock_;
  std::chrono::milliseconds idem_retention_;
  int64_t last_seq_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

int RunServe(const config::Settings& s) {
  log::Level level;
  if (log::ParseLevel(s.log.level, &level)) log::SetLevel(level);
  if (s.server.role != "all" && s.server.role != "api") {
    std::cerr << "syncwell serve: role '" << s.server.role
              << "' has nothing to run yet (workers and the scheduler arrive with the queue "
                 "issue); use --role all or api\n";
    return 2;
  }
  auto hp = api::ParseHostPort(s.server.listen);
  if (!hp) {
    std::cerr << "syncwell serve: --listen " << hp.error().message << "\n";
    return 2;
  }

  // Block the signals in every thread; this thread waits for them with sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  SystemClock clock;
  auto store = OpenStore(s, clock);
  if (!store) {
    std::cerr << "syncwell serve: " << store.error().message << "\n";
    return 1;
  }

  // Token verification: the dev issuer in dev mode, else the configured identity provider.
  std::unique_ptr<auth::JwksSource> jwks_source;
  auth::VerifierSettings vs;
  vs.algorithms = s.auth.algorithms;
  vs.leeway = std::chrono::duration_cast<std::chrono::seconds>(s.auth.leeway);
  vs.decision_ttl = std::chrono::duration_cast<std::chrono::seconds>(s.auth.decision_ttl);
  if (s.DevModeEnabled()) {
    auto dev = auth::DevIssuer::LoadOrCreate(s.storage.data_dir);
    if (!dev) {
      std::cerr << "syncwell serve: dev issuer: " << dev.error().message << "\n";
      return 1;
    }
    jwks_source = std::make_unique<auth::FileJwksSource>(dev->jwks_path());
    vs.issuer = auth::DevIssuer::kDevIssuer;
    vs.audience = auth::DevIssuer::kDevAudience;
    log::Warn(
        "dev mode: trusting tokens minted by `syncwell token` (set auth.issuer to use an identity "
        "provider)");
  } else {
    const bool url = s.auth.jwks.rfind("http://", 0) == 0 || s.auth.jwks.rfind("https://", 0) == 0;
    if (url)
      jwks_source = std::make_unique<auth::HttpJwksSource>(s.auth.jwks);
    else
      jwks_source = std::make_unique<auth::FileJwksSource>(s.auth.jwks);
    vs.issuer = s.auth.issuer;
    vs.audience = s.auth.audience;
  }
  auth::JwksCache jwks(*jwks_source, clock,
                       std::chrono::duration_cast<std::chrono::seconds>(s.auth.jwks_ttl));
  if (auto st = jwks.Refresh(); !st) {
    log::Warn("signing keys not loaded at start-up; will retry on demand",
              {{"error", st.error().message}});
  }
  std::unique_ptr<auth::TokenVerifier> verifier;
  try {
    verifier = std::make_unique<auth::TokenVerifier>(vs, jwks, clock);
  } catch (const std::exception& e) {
    std::cerr << "syncwell serve: auth configuration: " << e.what() << "\n";
    return 2;
  }
  VerifierAuthenticator authenticator(*verifier);

  obs::Registry metrics;
  metrics.AddCounterFn("syncwell_auth_decision_cache_hits_total",
                       "Token decisions answered from the cache",
                       [&] { return static_cast<double>(verifier->cache_hits()); });
  metrics.AddCounterFn("syncwell_auth_decision_cache_misses_total",
                       "Token decisions that needed a signature check",
                       [&] { return static_cast<double>(verifier->cache_misses()); });
  metrics.AddGauge("syncwell_auth_decision_cache_hit_ratio",
                   "Hit ratio of the token decision cache", [&] {
                     double h = static_cast<double>(verifier->cache_hits()),
                            m = static_cast<double>(verifier->cache_misses());
                     return h + m > 0 ? h / (h + m) : 0.0;
                   });
  store::SqliteJobQueue queue(**store);
  metrics.AddGauge("syncwell_queue_visible_messages", "Messages ready to be received", [&] {
    auto st = queue.Stats();
    return st ? static_cast<double>(st->visible) : -1.0;
  });
  metrics.AddGauge("syncwell_queue_delayed_messages", "Messages not yet visible (delay)", [&] {
    auto st = queue.Stats();
    return st ? static_cast<double>(st->delayed) : -1.0;
  });
  metrics.AddGauge("syncwell_queue_oldest_message_age_seconds", "Age of the oldest visible message",
                   [&] {
                     auto st = queue.Stats();
                     return st ? st->oldest_age_seconds : -1.0;
                   });

  api::ApiServiceSettings as;
  as.idempotency_retention = s.api.idempotency_retention;
  as.user_rate_per_second = s.api.user_rate_per_second;
  as.user_burst = s.api.user_burst;
  api::ApiService service(as, **store, authenticator, clock, metrics, OpenApiDocument());

  api::HttpServerSettings hs;
  hs.host = hp->first;
  hs.port = hp->second;
  hs.io_threads = s.server.io_threads > 0
                      ? s.server.io_threads
                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  hs.handler_threads = s.server.handler_threads;
  hs.max_body_bytes = s.server.max_body_bytes;
  hs.max_upload_bytes = s.server.max_upload_bytes;
  hs.max_header_bytes = s.server.max_header_bytes;
  hs.read_timeout = s.server.read_timeout;
  hs.idle_timeout = s.server.idle_timeout;
  hs.access_log = s.server.access_log;
  hs.max_connections = s.server.max_connections;
  api::HttpServer server(
      hs, [&service](const api::HttpRequest& r) { return service.Handle(r); }, metrics);
  if (auto st = server.Start(); !st) {
    std::cerr << "syncwell serve: " << st.error().message << "\n";
    return 1;
  }
  Housekeeper housekeeper(**store, *verifier, clock, s.api.idempotency_retention);
  housekeeper.Start();
  log::Info("listening", {{"address", hp->first + ":" + std::to_string(server.port())},
                          {"data_dir", s.storage.data_dir},
                          {"role", s.server.role}});
  // A machine-readable line on stdout for scripts and tests that start the server on port 0.
  std::cout << "listening " << hp->first << ":" << server.port() << std::endl;

  int sig = 0;
  sigwait(&signals, &sig);
  log::Info("draining", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  service.SetDraining(true);
  server.Drain(s.server.drain_timeout);
  server.Stop();
  housekeeper.Stop();
  (*store)->Stop();
  log::Info("stopped");
  return 0;
}

}  // namespace syncwell::app
