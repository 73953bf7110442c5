#include "api/api_service.hpp"

#include <openssl/evp.h>

#include <array>
#include <cmath>
#include <string_view>
#include <vector>

#include "api/json_util.hpp"
#include "api/problem.hpp"
#include "api/service_ctx.hpp"
#include "core/log.hpp"

namespace syncwell::api {

namespace json = boost::json;

namespace {

// A Prometheus metric name: [a-zA-Z_:][a-zA-Z0-9_:]*.
bool IsMetricName(std::string_view s) {
  if (s.empty() || s.size() > 200) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && (i == 0 || c < '0' || c > '9')) return false;
  }
  return true;
}

// GET /metrics?name=<family>[&name=...]: only those families (a poller that needs one counter
// does not pay for the process gauges that read /proc); no query: all. Nothing else is accepted.
Result<std::vector<std::string>> MetricFamilies(std::string_view q) {
  std::vector<std::string> only;
  const bool any = !q.empty();
  while (!q.empty()) {
    const size_t amp = q.find('&');
    const std::string_view part = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (part.empty()) continue;
    if (part.substr(0, 5) != "name=" || !IsMetricName(part.substr(5))) {
      return MakeError(Errc::kInvalidArgument,
                       "/metrics accepts only name=<metric family name> query parameters");
    }
    only.emplace_back(part.substr(5));
  }
  if (any && only.empty()) return MakeError(Errc::kInvalidArgument, "/metrics: empty query");
  return only;
}

enum Route {
  kHealthz,
  kReadyz,
  kMetrics,
  kOpenApi,
  kCreateJob,
  kGetJob,
  kListConnections,
  kDeleteConnection,
  kListConfigs,
  kCreateConfig,
  kGetConfig,
  kUpdateConfig,
  kDeleteConfig,
  kGetMe,
  kPutSettings,
  kDeleteMe,
  kGetDeletion,
  kCreateConnection,
  kReauthConnection,
  kDeviceUpload,
  kWebhookGet,
  kWebhookPost,
};

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

bool ValidIdempotencyKey(const std::string& k) {
  if (k.empty() || k.size() > 255) return false;
  return std::all_of(k.begin(), k.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

std::string HashUserId(const UserId& user) {
  return Sha256Hex("syncwell-user:" + user.str()).substr(0, 16);
}

// Per-user token bucket (SPEC S2 "per-user request rate limit"). Sharded to keep the hot path
// uncontended; bounded by pruning buckets that are full again.
class ApiService::UserLimiter {
 public:
  UserLimiter(double rate, double burst) : rate_(rate), burst_(burst) {}

  // Returns 0 when allowed, else the seconds to wait.
  double Take(const std::string& user, TimePoint now) {
    auto& shard = shards_[std::hash<std::string>{}(user) % shards_.size()];
    std::lock_guard lock(shard.mu);
    const double t = std::chrono::duration<double>(now.time_since_epoch()).count();
    auto it = shard.buckets.find(user);
    if (it == shard.buckets.end()) {
      if (shard.buckets.size() >= kMaxPerShard) Prune(shard, t);
      it = shard.buckets.emplace(user, Bucket{burst_, t}).first;
    }
    Bucket& b = it->second;
    b.tokens = std::min(burst_, b.tokens + (t - b.last) * rate_);
    b.last = t;
    if (b.tokens >= 1.0) {
      b.tokens -= 1.0;
      return 0;
    }
    return (1.0 - b.tokens) / rate_;
  }

 private:
  struct Bucket {
    double tokens;
    double last;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Bucket> buckets;
  };
  static constexpr size_t kMaxPerShard = 65536;
  void Prune(Shard& s, double t) {
    for (auto it = s.buckets.begin(); it != s.buckets.end();) {
      if (it->second.tokens + (t - it->second.last) * rate_ >= burst_)
        it = s.buckets.erase(it);
      else
        ++it;
    }
  }
  double rate_;
  double burst_;
  std::array<Shard, 32> shards_;
};

ApiService::ApiService(ApiServiceSettings settings, store::Store& store, Authenticator& auth,
                       const Clock& clock, obs::Registry& metrics, std::string openapi_json)
    : settings_(settings),
      store_(store),
      auth_(auth),
      clock_(clock),
      metrics_(metrics),
      openapi_json_(std::move(openapi_json)) {
  router_.Add(kHealthz, "GET", "/healthz");
  router_.Add(kReadyz, "GET", "/readyz");
  router_.Add(kMetrics, "GET", "/metrics");
  router_.Add(kOpenApi, "GET", "/v1/openapi.json");
  router_.Add(kCreateJob, "POST", "/v1/sync-jobs");
  router_.Add(kGetJob, "GET", "/v1/sync-jobs/{jobId}");
  router_.Add(kListConnections, "GET", "/v1/connections");
  router_.Add(kDeleteConnection, "DELETE", "/v1/connections/{connectionId}");
  router_.Add(kListConfigs, "GET", "/v1/sync-configs");
  router_.Add(kCreateConfig, "POST", "/v1/sync-configs");
  router_.Add(kGetConfig, "GET", "/v1/sync-configs/{configId}");
  router_.Add(kUpdateConfig, "PUT", "/v1/sync-configs/{configId}");
  router_.Add(kDeleteConfig, "DELETE", "/v1/sync-configs/{configId}");
  router_.Add(kGetMe, "GET", "/v1/users/me");
  router_.Add(kPutSettings, "PUT", "/v1/users/me/settings");
  router_.Add(kDeleteMe, "DELETE", "/v1/users/me");
  router_.Add(kGetDeletion, "GET", "/v1/users/me/deletion");
  router_.Add(kCreateConnection, "POST", "/v1/connections");
  router_.Add(kReauthConnection, "POST", "/v1/connections/{connectionId}/reauth");
  router_.Add(kDeviceUpload, "POST", "/v1/device-upload");
  router_.Add(kWebhookGet, "GET", "/v1/webhooks/{provider}");
  router_.Add(kWebhookGet, "HEAD", "/v1/webhooks/{provider}");  // Withings probes with HEAD
  router_.Add(kWebhookPost, "POST", "/v1/webhooks/{provider}");
  if (settings_.user_rate_per_second > 0) {
    limiter_ = std::make_unique<UserLimiter>(settings_.user_rate_per_second, settings_.user_burst);
  }
  idem_replays_ = &metrics_.GetCounter("syncwell_idempotency_replays_total",
                                       "Requests answered from a stored idempotent response");
  idem_conflicts_ = &metrics_.GetCounter(
      "syncwell_idempotency_conflicts_total",
      "Idempotency-Key reuse with another body (422) or while in progress (409)");
  jobs_accepted_ =
      &metrics_.GetCounter("syncwell_sync_jobs_accepted_total", "Sync jobs accepted (202)");
  rate_limited_ = &metrics_.GetCounter("syncwell_user_rate_limited_total",
                                       "Requests refused by the per-user limit");
  webhooks_accepted_ = &metrics_.GetCounter("syncwell_webhooks_accepted_total",
                                            "Provider notifications verified and handled");
  webhooks_rejected_ = &metrics_.GetCounter("syncwell_webhooks_rejected_total",
                                            "Provider notifications refused (forged, malformed)");
}

ApiService::~ApiService() = default;

HttpResponse ApiService::Handle(const HttpRequest& req) {
  return Run(req, router_.Match(req.method, req.path), nullptr);
}

namespace {

// Every 503 (storage down or restarting, draining, keys unavailable) tells clients when to come
// back, whichever path produced it.
void AddRetryAfterTo503(HttpResponse& resp) {
  if (resp.status != 503) return;
  for (const auto& [k, v] : resp.headers) {
    if (k == "Retry-After") return;
  }
  resp.headers.emplace_back("Retry-After", "1");
}

// The shared tail of a deferred response: the layers' steps, then the server's callback.
void FinishDeferred(ApiService::Deferral& d, HttpResponse resp,
                    const std::function<void(HttpResponse)>& done) {
  for (auto& step : d.finish) {
    try {
      step(resp);
    } catch (const std::exception& e) {
      log::Error("deferred response step threw", {{"what", e.what()}});
      resp = Problem(500, code::kInternal, "internal error");
    }
  }
  done(std::move(resp));
}

}  // namespace

bool ApiService::TryInline(const HttpRequest& req, HttpResponse& now, DeferredResponse& later) {
  if (!settings_.inline_intake || !store_.SupportsAsyncWrites()) return false;
  const bool get = req.method == "GET";
  if (!get && req.method != "POST") return false;
  RouteMatch m = router_.Match(req.method, req.path);
  if (m.kind != RouteMatch::Kind::kFound) return false;
  if (get) {
    // A job's status, the route clients poll: one primary-key read, answered here rather than
    // handed to the pool and back (two thread wake-ups for a read of a few microseconds).
    if (m.route_id != kGetJob) return false;
    now = Run(req, m, nullptr);
    return true;
  }
  if (m.route_id != kCreateJob) return false;
  auto d = std::make_shared<Deferral>();
  now = Run(req, m, d.get());
  if (d->start) {
    later = [d](std::function<void(HttpResponse)> done) {
      auto start = std::move(d->start);
      start([d, done = std::move(done)](HttpResponse resp) {
        FinishDeferred(*d, std::move(resp), done);
      });
    };
  }
  return true;
}

HttpResponse ApiService::Run(const HttpRequest& req, const RouteMatch& m, Deferral* deferral) {
  HttpResponse resp;
  if (m.kind == RouteMatch::Kind::kNoPath) {
    resp = Problem(404, code::kNotFound, "no such resource: " + req.path.substr(0, 200));
  } else if (m.kind == RouteMatch::Kind::kWrongMethod) {
    resp = Problem(405, code::kMethodNotAllowed, req.method.substr(0, 16) + " is not allowed here");
    resp.headers.emplace_back("Allow", m.allow);
  } else {
    try {
      resp = Dispatch(req, m, deferral);
    } catch (const std::exception& e) {
      // A bug, never input: log it and answer 500 without leaking internals.
      log::Error("handler threw",
                 {{"request_id", req.request_id}, {"route", m.name}, {"what", e.what()}});
      resp = Problem(500, code::kInternal, "internal error; request id " + req.request_id);
    }
    resp.route = m.name;
  }
  if (deferral != nullptr && deferral->start) {
    deferral->finish.emplace_back([route = m.name](HttpResponse& r) {
      r.route = route;
      AddRetryAfterTo503(r);
    });
  }
  AddRetryAfterTo503(resp);
  return resp;
}

HttpResponse ApiService::Dispatch(const HttpRequest& req, const RouteMatch& m, Deferral* deferral) {
  switch (m.route_id) {
    case kHealthz:
      return JsonResponse(200, json::object{{"status", "ok"}});
    case kReadyz: {
      if (draining_) return Problem(503, code::kUnavailable, "draining");
      if (auto st = store_.Ping(); !st)
        return Problem(503, code::kUnavailable, "store: " + st.error().message);
      return JsonResponse(200, json::object{{"status", "ready"}});
    }
    case kMetrics: {
      auto only = MetricFamilies(req.query);
      if (!only) return Problem(400, code::kBadRequest, only.error().message);
      HttpResponse r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = metrics_.Render(*only);
      return r;
    }
    case kOpenApi: {
      HttpResponse r;
      r.body = openapi_json_;
      return r;
    }
    case kWebhookGet:
    case kWebhookPost:
      // Authenticated by the provider's own scheme (signature / verify token), not a JWT.
      return Webhook(req, m);
    default:
      return Authenticated(req, m, deferral);
  }
}

HttpResponse ApiService::Authenticated(const HttpRequest& req, const RouteMatch& m,
                                       Deferral* deferral) {
  const std::string* authz = req.Header("authorization");
  if (!authz || authz->size() < 8 ||
      !std::equal(authz->begin(), authz->begin() + 7, "Bearer ",
                  [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    auto r = Problem(401, code::kUnauthenticated, "missing bearer token");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  auto caller = auth_.Authenticate(std::string_view(*authz).substr(7));
  if (!caller) {
    if (caller.error().code == Errc::kUnavailable) {
      auto r =
          Problem(503, code::kUnavailable, "token keys unavailable: " + caller.error().message);
      r.headers.emplace_back("Retry-After", "5");
      return r;
    }
    auto r = Problem(401, code::kUnauthenticated, caller.error().message);
    r.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return r;
  }
  if (limiter_) {
    double wait = limiter_->Take(caller->user.str(), clock_.Now());
    if (wait > 0) {
      rate_limited_->Inc();
      auto r = Problem(429, code::kRateLimited, "too many requests for this user");
      r.headers.emplace_back("Retry-After", std::to_string(static_cast<int>(std::ceil(wait))));
      return r;
    }
  }
  Ctx ctx{req, m, *caller, {}, {}, false, false, deferral};
  HttpResponse resp;
  switch (m.route_id) {
    case kCreateJob:
      resp = Idempotent(
          ctx, [this](Ctx& c) { return CreateJob(c); }, RecordRead::kLate);
      break;
    case kGetJob:
      resp = GetJob(ctx);
      break;
    case kListConnections:
      resp = ListConnections(ctx);
      break;
    case kDeleteConnection:
      resp = Idempotent(ctx, [this](Ctx& c) { return DeleteConnection(c); });
      break;
    case kListConfigs:
      resp = ListSyncConfigs(ctx);
      break;
    case kCreateConfig:
      resp = Idempotent(ctx, [this](Ctx& c) { return CreateSyncConfig(c); });
      break;
    case kGetConfig:
      resp = GetSyncConfig(ctx);
      break;
    case kUpdateConfig:
      resp = Idempotent(ctx, [this](Ctx& c) { return UpdateSyncConfig(c); });
      break;
    case kDeleteConfig:
      resp = Idempotent(ctx, [this](Ctx& c) { return DeleteSyncConfig(c); });
      break;
    case kGetMe:
      resp = GetMe(ctx);
      break;
    case kPutSettings:
      resp = Idempotent(ctx, [this](Ctx& c) { return PutSettings(c); });
      break;
    case kDeleteMe:
      resp = Idempotent(ctx, [this](Ctx& c) { return DeleteMe(c); });
      break;
    case kGetDeletion:
      resp = GetDeletion(ctx);
      break;
    case kCreateConnection:
      resp = Idempotent(ctx, [this](Ctx& c) { return CreateConnection(c); });
      break;
    case kReauthConnection:
      resp = Idempotent(ctx, [this](Ctx& c) { return ReauthConnection(c); });
      break;
    case kDeviceUpload:
      // Idempotency-Key required like every POST; the ledger makes a re-run write nothing twice,
      // so the outcome is not stored for replay (it would hold no health data anyway).
      resp = Idempotent(ctx, [this](Ctx& c) { return DeviceUpload(c); });
      break;
    default:
      resp = Problem(404, code::kNotFound, "no such resource");
  }
  resp.user_hash = HashUserId(caller->user);
  if (deferral != nullptr && deferral->start) {
    deferral->finish.emplace_back([hash = resp.user_hash](HttpResponse& r) { r.user_hash = hash; });
  }
  return resp;
}

HttpResponse ApiService::Replay(const store::IdempotencyRecord& rec,
                                const std::string& request_hash) {
  if (rec.request_hash != request_hash) {
    idem_conflicts_->Inc();
    return Problem(422, code::kIdempotencyKeyReused,
                   "this Idempotency-Key was used for a different request");
  }
  idem_replays_->Inc();
  HttpResponse r;
  r.status = rec.status_code;
  r.body = rec.response_body;
  if (r.body.empty()) r.content_type.clear();
  r.headers.emplace_back("Idempotent-Replayed", "true");
  return r;
}

// SPEC S2 idempotency: key required; same key + same request -> the stored response; same key +
// other request -> 422; same key while the first is running -> 409. The stored record commits in
// the same transaction as the change (see Store), so a replay never disagrees with the data.
// Only successful (2xx) outcomes are stored: a failed request changed nothing and may be retried.
HttpResponse ApiService::Idempotent(Ctx& ctx, const std::function<HttpResponse(Ctx&)>& mutate,
                                    RecordRead read) {
  const std::string* key = ctx.req.Header("idempotency-key");
  if (!key) return Problem(400, code::kIdempotencyKeyMissing, "Idempotency-Key header is required");
  if (!ValidIdempotencyKey(*key)) {
    return Problem(400, code::kIdempotencyKeyInvalid,
                   "Idempotency-Key must be 1-255 visible ASCII characters");
  }
  const std::string hash = Sha256Hex(ctx.req.method + " " + ctx.req.path + "\n" + ctx.req.body);
  const std::string slot = ctx.caller.user.str() + '\n' + *key;
  {
    std::lock_guard lock(inflight_mu_);
    if (!inflight_.insert(slot).second) {
      idem_conflicts_->Inc();
      auto r = Problem(409, code::kIdempotencyInProgress,
                       "a request with this Idempotency-Key is still in progress");
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
  }
  struct Release {
    ApiService* self;
    const std::string& slot;
    bool armed = true;  // false once a deferred write owns the slot
    ~Release() {
      if (!armed) return;
      std::lock_guard lock(self->inflight_mu_);
      self->inflight_.erase(slot);
    }
  } release{this, slot};

  const TimePoint now = clock_.Now();
  // Record read late (`read`): the mutation only reads until its write, and the write refuses a
  // key already stored (the collision replay below), so a fresh key — nearly every request —
  // needs no read of its record. It is read after all when the mutation answers without writing
  // (a request now invalid may be the replay of one that was valid), and first when the user's
  // deletion is pending (a replay answers before that 409).
  bool read_first = read == RecordRead::kFirst;
  if (!read_first) {
    auto deletion = store_.GetUserDeletion(ctx.caller.user);
    if (!deletion) return Problem(503, code::kUnavailable, "store unavailable");
    read_first = deletion->state == store::DeletionState::kPending;
  }
  if (read_first) {
    // The stored record and the deletion state in one read (one round trip on PostgreSQL).
    auto guard = store_.GetWriteGuard(ctx.caller.user, *key);
    if (!guard) return Problem(503, code::kUnavailable, "store unavailable");
    if (const auto& existing = guard->idempotency;
        existing && existing->created_at + settings_.idempotency_retention > now) {
      return Replay(*existing, hash);
    }
    if (ctx.match.route_id != kDeleteMe &&
        guard->deletion.state == store::DeletionState::kPending) {
      return Problem(409, code::kUserDeletionPending, "this account is being deleted");
    }
  }
  ctx.has_idem = true;
  ctx.idem.user = ctx.caller.user;
  ctx.idem.key = *key;
  ctx.idem.request_hash = hash;
  ctx.idem.created_at = now;
  HttpResponse resp = mutate(ctx);
  // The store refused our record: another process stored this key first. Replay its answer.
  const auto replay_collision = [this, user = ctx.caller.user, key = *key, hash](HttpResponse& r) {
    auto again = store_.GetIdempotency(user, key);
    if (again && again->has_value()) r = Replay(**again, hash);
  };
  if (ctx.deferral != nullptr && ctx.deferral->start) {
    // The write is still to come: the slot stays taken until it has completed.
    release.armed = false;
    ctx.deferral->finish.emplace_back(
        [this, slot, d = ctx.deferral, replay_collision](HttpResponse& r) {
          {
            std::lock_guard lock(inflight_mu_);
            inflight_.erase(slot);
          }
          if (d->idem_collision) replay_collision(r);
        });
    return resp;
  }
  // A refused write, or (late read, see above) an answer without a write: replay a stored record.
  if (ctx.idem_collision || (!read_first && (resp.status < 200 || resp.status > 299))) {
    replay_collision(resp);
  }
  return resp;
}

}  // namespace syncwell::api
