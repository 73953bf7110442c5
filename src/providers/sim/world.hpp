#pragma once
// The simulator's shared state (`syncwell provider-sim`): simulated users' deterministic
// synthetic data, OAuth grants, the records written by SyncWell (kept in memory, inspectable),
// and the per-provider fault/latency/rate-limit profile. Provider API modules
// (sim/<provider>_api.cpp) translate between their wire format and this state; the SimServer
// applies latency, faults and rate limits before a module's handler runs.
//
// Thread-safe: every method may be called from any handler thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_types.hpp"
#include "core/result.hpp"
#include "providers/provider.hpp"
#include "providers/records.hpp"

namespace syncwell::sim {

// Sentinels (README "Sentinels"): every synthetic record carries recognisable values so a test can
// scan SyncWell's store, logs and metrics for leaked health data.
//  * workout names end in " SWSENT" (kSentinelTag);
//  * workout distance_m and energy_kcal have the fraction .4242 (SentinelValue);
//  * weight kg has the digits 42 in the 4th/5th decimal (e.g. 72.35042), fat_ratio 42 in the
//    6th/7th (e.g. 0.2310042);
//  * step counts end in the digits 42 (weak: only for spotting, 42 is common elsewhere).
// Sleep stage minutes and heart rates are small integers and carry no sentinel.
inline constexpr std::string_view kSentinelTag = "SWSENT";
inline constexpr std::string_view kSentinelDigits = "4242";
// floor(whole) + 0.4242 (whole >= 0).
double SentinelValue(double whole);
// True when v's fraction is .4242 (to 1e-6).
bool HasSentinelFraction(double v);
// True when the record's payload carries the sentinel of its type (see above).
bool HasSentinel(const providers::Record& r);

// Per-provider behaviour, configurable from the command line / a JSON file (--config) / POST
// /_sim/config.
struct ProviderProfile {
  std::chrono::milliseconds latency_min{0};  // uniform in [min, max] per request
  std::chrono::milliseconds latency_max{0};
  double error_rate = 0;    // fraction of data requests answered 503
  double timeout_rate = 0;  // fraction of data requests that hang for timeout_hang then close
  std::chrono::milliseconds timeout_hang{15'000};
  // The provider's real rate limits (SPEC S6 defaults), answered with 429 + Retry-After.
  int64_t app_limit = 0;  // requests per app_window (0 = unlimited)
  std::chrono::seconds app_window{900};
  int64_t user_limit = 0;  // requests per user per user_window (0 = unlimited)
  std::chrono::seconds user_window{3600};
  std::chrono::seconds token_ttl{21'600};  // access token lifetime
  // Fail the next N write requests (after applying them or not, see fail_after_apply) - used by
  // tests to interrupt a push in the middle.
  int fail_next_writes = 0;
  bool fail_after_apply = false;  // true: the write is stored, then 503 is answered
  // Credentials the simulated provider expects from SyncWell (match [providers.<name>]).
  std::string client_id = "syncwell";
  std::string client_secret = "sim-client-secret";
  std::string webhook_secret = "sim-webhook-secret";
};

struct SimSettings {
  uint64_t seed = 42;
  int days_of_history = 30;  // synthetic data spans [now - days, now]
  // The SyncWell server to send webhooks to ("" = none), e.g. "http://127.0.0.1:8080".
  std::string webhook_target;
  std::map<std::string, ProviderProfile> profiles;  // by provider name
};

// What the SimServer decided for one request before the module handler runs.
struct Admission {
  enum class Kind { kOk, kError5xx, kTimeout, kRateLimited } kind = Kind::kOk;
  std::chrono::milliseconds latency{0};
  std::chrono::seconds retry_after{0};
  std::string limit_scope;  // "app" / "user" when rate limited
  int64_t limit = 0, used = 0;
  // The three fields above (and retry_after = seconds until that window resets) are also filled
  // for the other kinds with the scope that has the least quota left ("" when unlimited), so
  // modules can send usage headers (X-RateLimit-Usage, Fitbit-Rate-Limit-Remaining) on every
  // response.
  // kOk write admitted under fail_next_writes with fail_after_apply: the server runs the handler
  // (the write is stored) and then answers 503 instead of the handler's response.
  bool fail_after_apply = false;
};

struct WrittenRecord {
  providers::Record record;  // as stored by the simulated provider (record.meta.id = dest id)
  int write_count = 1;       // how often a record with this origin / source id was written
  int64_t written_at_ms = 0;
};

class World {
 public:
  World(SimSettings settings, const Clock& clock);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  const SimSettings& settings() const;
  ProviderProfile Profile(const std::string& provider) const;
  void SetProfile(const std::string& provider, const ProviderProfile& p);

  // --- OAuth -----------------------------------------------------------------------------
  // A one-time authorization code for `sim_user` at `provider` (the "consent screen": tests and
  // the demo get codes from GET /_sim/authorize?provider=&user=).
  std::string IssueAuthCode(const std::string& provider, const std::string& sim_user);
  // code -> grant (the code is consumed). Unknown/used code -> kAuthRevoked ("invalid_grant").
  Result<providers::TokenGrant> ExchangeCode(const std::string& provider, const std::string& code);
  // Rotating refresh tokens: the old refresh token stays valid for a 60 s grace period after
  // use (so two racing refreshes both succeed), then is invalid; an invalid one -> kAuthRevoked.
  Result<providers::TokenGrant> Refresh(const std::string& provider,
                                        const std::string& refresh_token);
  void RevokeUser(const std::string& provider, const std::string& sim_user);  // all grants
  void RevokeToken(const std::string& provider, const std::string& access_token);
  // Bearer token -> sim user. Unknown, expired or revoked -> kUnauthenticated.
  Result<std::string> Authorize(const std::string& provider, const std::string& access_token);
  // Expire every access token of this user now (tests: forces a refresh).
  void ExpireTokens(const std::string& provider, const std::string& sim_user);

  // The provider's id of a sim user (e.g. Strava athlete id "9001234") and back.
  std::string ProviderUserId(const std::string& provider, const std::string& sim_user) const;
  std::optional<std::string> SimUserFor(const std::string& provider,
                                        const std::string& provider_user_id) const;

  // --- Data ------------------------------------------------------------------------------
  // The user's records at this provider whose start is in [from_ms, to_ms): the deterministic
  // synthetic ("native") records plus those written through the API, sorted by start_ms.
  // Synthetic values carry sentinel digits (see SentinelValue) so tests can scan for leaks.
  std::vector<providers::Record> Records(const std::string& provider, const std::string& sim_user,
                                         providers::DataType type, int64_t from_ms,
                                         int64_t to_ms) const;
  std::optional<providers::Record> Find(const std::string& provider, const std::string& sim_user,
                                        providers::DataType type, const std::string& id) const;
  // Stores a record written by a client; returns its new provider id. Counts writes per origin
  // (or per content fingerprint when origin is empty) so duplicates are visible.
  std::string Write(const std::string& provider, const std::string& sim_user,
                    providers::Record record);
  std::vector<WrittenRecord> Written(const std::string& provider,
                                     const std::string& sim_user) const;
  // Totals over everything written: records, and records written more than once (duplicates).
  struct WriteTotals {
    int64_t records = 0;
    int64_t writes = 0;
    int64_t duplicates = 0;
  };
  WriteTotals Totals() const;
  // Appends a fresh native record of `type` that ends now (modified now), as if the user had
  // just recorded it on the device (POST /_sim/users/{user}/{provider}/new-data). Sentinels as
  // for synthetic records. kInvalidArgument when this provider holds no data of `type`.
  Result<providers::Record> AppendNative(const std::string& provider, const std::string& sim_user,
                                         providers::DataType type);

  // --- Admission (latency, faults, limits) ------------------------------------------------
  // Called by the SimServer for each provider request. `is_write` selects fail_next_writes.
  Admission Admit(const std::string& provider, const std::string& sim_user, bool is_write);
  // Request counters for /_sim/stats: by provider and outcome.
  std::map<std::string, int64_t> Counters() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// A request already matched to a provider route. params: path template parameters.
struct SimRequest {
  const api::HttpRequest& http;
  std::map<std::string, std::string> params;
  std::string sim_user;                  // set for routes registered with kBearer auth, else empty
  const Admission* admission = nullptr;  // kBearer routes: the admission (usage for headers)
};
using SimHandler = std::function<api::HttpResponse(const SimRequest&, World&)>;

enum class SimAuth {
  kNone,    // token endpoint, webhook verification, ...: module checks what it needs
  kBearer,  // "Authorization: Bearer <token>" checked by the server via World::Authorize
            // (401 in the provider's format via ModuleSpec::unauthorized) before admission
};

// What a provider module contributes to the simulator.
struct ModuleSpec {
  std::string provider;  // "strava"; routes live under "/<provider>/..."
  struct Route {
    std::string method;
    std::string pattern;  // relative to "/<provider>", e.g. "/api/v3/athlete/activities"
    SimAuth auth = SimAuth::kBearer;
    bool is_write = false;
    SimHandler handler;
  };
  std::vector<Route> routes;
  // The provider's own shapes for 401 / 429 / 5xx answers (status already set by the caller);
  // e.g. Strava's X-RateLimit-Limit/-Usage headers on every response.
  std::function<api::HttpResponse(const Admission&)> rate_limited;
  std::function<api::HttpResponse()> unauthorized;
  // Builds the webhook the simulator POSTs to the SyncWell server for new data of a user
  // (target path under the server, e.g. "/v1/webhooks/strava", headers incl. signature, body).
  // Empty = the provider has no webhooks.
  std::function<api::HttpRequest(const std::string& sim_user, providers::DataType type,
                                 World& world)>
      make_webhook;
};

// Module registration functions (one per provider, in sim/<provider>_api.cpp).
ModuleSpec StravaModule();
ModuleSpec WithingsModule();
ModuleSpec GarminModule();
ModuleSpec FitbitModule();

}  // namespace syncwell::sim
