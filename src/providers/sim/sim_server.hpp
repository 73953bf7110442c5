#pragma once
// SimServer: the provider simulator behind `syncwell provider-sim` (README.md in this folder).
// One HTTP server that plays Strava, Withings, Garmin and Fitbit under "/<provider>/...", plus
// inspection/control endpoints under "/_sim/..." for tests and demos.
//
// Request path for a provider route: match "/<provider>/<pattern>" against the module's routes;
// for SimAuth::kBearer routes check "Authorization: Bearer" (World::Authorize -> 401), then
// World::Admit (latency sleep, 503, hang, 429 + Retry-After, fail_next_writes), then the
// module's handler.
//
// Threads: a provider request is routed, authorized and admitted on the HttpServer's I/O thread;
// its injected latency (or hang) is then a timer on one of `response_threads` Delayer lanes, which
// also build the answer when it is due: no thread is held while a request waits, so thousands can
// wait at once (a real provider's concurrency). "/_sim" and "/healthz" run on the blocking handler
// pool. Handle() (tests, no sockets) sleeps the wait in its caller's thread instead.
// Lifecycle: construct -> Start() -> Stop() (idempotent; also run by the destructor). Stop()
// answers every waiting request 503 at once, drains for at most `stop_grace`, then joins all
// threads, so it never hangs on timeout-injected requests. Thread-safe: Handle() may run on many
// threads at once.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_types.hpp"
#include "core/clock.hpp"
#include "core/result.hpp"
#include "obs/metrics.hpp"
#include "providers/sim/world.hpp"

namespace syncwell::sim {

struct SimServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0 = any free port (see SimServer::port())
  int io_threads = 1;
  int handler_threads = 32;  // "/_sim" and "/healthz" requests
  int response_threads = 4;  // Delayer lanes: provider requests' waits and answers
  bool access_log = false;
  // The four provider modules (StravaModule() ... FitbitModule()). Tests may switch them off.
  bool builtin_modules = true;
  // Added after the built-ins; a module whose provider name is already present replaces it.
  std::vector<ModuleSpec> modules;
  std::chrono::milliseconds webhook_timeout{5'000};
  std::chrono::milliseconds stop_grace{2'000};  // Stop(): wait for in-flight requests
};

class SimServer {
 public:
  SimServer(SimSettings settings, SimServerOptions options, const Clock& clock);
  ~SimServer();
  SimServer(const SimServer&) = delete;
  SimServer& operator=(const SimServer&) = delete;

  Status Start();  // binds host:port and starts the threads
  void Stop();
  uint16_t port() const;         // the bound port after Start()
  std::string base_url() const;  // "http://<host>:<port>", e.g. for [providers.strava] base_url
  World& world();
  obs::Registry& metrics();

  // Routes one request (what the HTTP server calls). Usable without Start() in tests.
  api::HttpResponse Handle(const api::HttpRequest& req);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Defaults: seed 42, 30 days of history and each provider's published rate limits (SPEC S6):
//   strava   600 requests / 15 min per app (the daily 30,000 is not simulated), token 6 h
//   fitbit   150 requests / hour per user, token 8 h
//   garmin   100 requests / minute per app, token 24 h
//   withings 120 requests / minute per app (Withings' documented partner limit), token 3 h
// rate_limits = false sets every limit to 0 (unlimited): what e2e tests and load tests want.
SimSettings DefaultSimSettings(bool rate_limits = true);
void DisableRateLimits(SimSettings* settings);

// JSON settings (README "Configuration"): starts from DefaultSimSettings() and overrides what the
// document names. Unknown fields are errors (kInvalidArgument naming the field).
Result<SimSettings> ParseSimSettingsJson(std::string_view json);
Result<SimSettings> LoadSimSettings(const std::string& json_path);
// Applies a JSON object of profile fields (README) to `profile`; only the named fields change.
// `defaults` is what "rate_limits": true restores.
Status ApplyProfileJson(std::string_view json_object, const ProviderProfile& defaults,
                        ProviderProfile* profile);
// The profile as JSON (secrets omitted).
std::string ProfileToJson(const ProviderProfile& profile);

}  // namespace syncwell::sim
