#pragma once
// ApiService: the HTTP API of SPEC S2 as a plain function from HttpRequest to HttpResponse.
//
// Handle runs on the blocking handler pool (never on an I/O thread) because it calls the Store,
// which blocks. TryInline is the exception: with `inline_intake` set (embedded store, local
// keys: nothing on the way blocks for long) it takes POST /v1/sync-jobs on the I/O thread and
// answers it with a DeferredResponse completed by the store's group commit, so no thread waits
// for the commit (docs/adr/0001); and GET /v1/sync-jobs/{id}, one read, answered at once.
// Thread-safe: any number of requests run concurrently. Owns the idempotency in-flight table (409
// while the first request with a key is running) and the per-user request limiter; everything
// durable lives in the Store. Lifecycle: constructed by src/app after the store and authenticator;
// must outlive the HTTP server.
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "api/authenticator.hpp"
#include "api/http_types.hpp"
#include "api/provider_gateway.hpp"
#include "api/router.hpp"
#include "core/clock.hpp"
#include "obs/metrics.hpp"
#include "store/store.hpp"

namespace syncwell::api {

struct ApiServiceSettings {
  std::chrono::milliseconds idempotency_retention{24 * 3'600'000};
  int user_rate_per_second = 50;  // 0 = unlimited
  int user_burst = 100;
  // TryInline takes job intake and job status reads. Only when the store SupportsAsyncWrites() and
  // its reads and the authenticator never wait on the network (src/app decides: embedded store, no
  // JWKS URL).
  bool inline_intake = false;
};

class ApiService {
 public:
  ApiService(ApiServiceSettings settings, store::Store& store, Authenticator& auth,
             const Clock& clock, obs::Registry& metrics, std::string openapi_json);
  ~ApiService();

  HttpResponse Handle(const HttpRequest& req);
  // For HttpServer::InlineHandler: false = "not here, use Handle on the pool".
  bool TryInline(const HttpRequest& req, HttpResponse& now, DeferredResponse& later);

  // The provider side (connections, webhooks, device uploads). Without it those routes answer
  // 503 PROVIDER_NOT_CONFIGURED. Set before serving; must outlive the service.
  void SetProviderGateway(ProviderGateway* gateway) { gateway_ = gateway; }

  // Readiness: the server is draining or a dependency is down -> /readyz answers 503.
  void SetDraining(bool draining) { draining_ = draining; }

  const Router& router() const { return router_; }

 private:
 public:
  struct Ctx;
  // A request whose store write was started without waiting for it (TryInline). The layers the
  // request went through (Run, Authenticated, Idempotent) add, innermost first, what they would
  // have done to the response after the write; `start` begins the write.
  struct Deferral {
    std::function<void(std::function<void(HttpResponse)>)> start;
    std::vector<std::function<void(HttpResponse&)>> finish;
    bool idem_collision = false;  // set by the write's completion, read by Idempotent's step
  };

 private:
  class UserLimiter;

  HttpResponse Run(const HttpRequest& req, const RouteMatch& m, Deferral* deferral);
  HttpResponse Dispatch(const HttpRequest& req, const RouteMatch& m, Deferral* deferral);
  HttpResponse Authenticated(const HttpRequest& req, const RouteMatch& m, Deferral* deferral);
  HttpResponse Replay(const store::IdempotencyRecord& rec, const std::string& request_hash);
  // When Idempotent reads the key's stored record: before the mutation, or (kLate, for a
  // mutation with no effect before its store write) only if the write is refused or never made.
  enum class RecordRead { kFirst, kLate };
  HttpResponse Idempotent(Ctx& ctx, const std::function<HttpResponse(Ctx&)>& mutate,
                          RecordRead read = RecordRead::kFirst);

  HttpResponse CreateJob(Ctx& ctx);
  HttpResponse GetJob(Ctx& ctx);
  HttpResponse ListConnections(Ctx& ctx);
  HttpResponse DeleteConnection(Ctx& ctx);
  HttpResponse CreateConnection(Ctx& ctx);
  HttpResponse ReauthConnection(Ctx& ctx);
  HttpResponse DeviceUpload(Ctx& ctx);
  HttpResponse Webhook(const HttpRequest& req, const RouteMatch& m);
  HttpResponse ListSyncConfigs(Ctx& ctx);
  HttpResponse CreateSyncConfig(Ctx& ctx);
  HttpResponse GetSyncConfig(Ctx& ctx);
  HttpResponse UpdateSyncConfig(Ctx& ctx);
  HttpResponse DeleteSyncConfig(Ctx& ctx);
  HttpResponse GetMe(Ctx& ctx);
  HttpResponse PutSettings(Ctx& ctx);
  HttpResponse DeleteMe(Ctx& ctx);
  HttpResponse GetDeletion(Ctx& ctx);

  ApiServiceSettings settings_;
  store::Store& store_;
  Authenticator& auth_;
  const Clock& clock_;
  obs::Registry& metrics_;
  std::string openapi_json_;
  Router router_;
  std::atomic<bool> draining_{false};

  std::mutex inflight_mu_;
  std::unordered_set<std::string> inflight_;  // user + '\n' + idempotency key
  std::unique_ptr<UserLimiter> limiter_;

  obs::Counter* idem_replays_;
  obs::Counter* idem_conflicts_;
  obs::Counter* jobs_accepted_;
  obs::Counter* rate_limited_;
  obs::Counter* webhooks_accepted_;
  obs::Counter* webhooks_rejected_;
  ProviderGateway* gateway_ = nullptr;
};

// Salted SHA-256 of the user id, truncated: what logs and metrics show instead of the id.
std::string HashUserId(const UserId& user);

}  // namespace syncwell::api
