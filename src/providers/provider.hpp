#pragma once
// The Provider port (the brief's DataProvider) and the ProviderRegistry (SPEC S4, S7;
// ARCHITECTURE §5). One implementation per provider in src/providers/<name>/, each talking real
// HTTP to a configurable base URL (the real API or `syncwell provider-sim`).
//
// Contract for every connector:
//  * Thread-safe and stateless per call: tokens come in through CallContext; the caller (the sync
//    engine's connection session) owns refresh (single-flight per connection) and persistence.
//  * Blocking; every HTTP call carries a deadline (min(settings timeout, ctx.deadline)).
//  * Pagination is followed inside FetchMetadata until the range is exhausted.
//  * Errors are classified (Errc) so the worker knows what to do (SPEC S4):
//      kUnauthenticated  401 / expired access token: the caller refreshes once and retries;
//      kAuthRevoked      the grant is gone (invalid_grant on refresh, revoked, deauthorized):
//                        connection -> needs_reauth, job FAILED at once;
//      kRateLimited      429 (Error::retry_after from Retry-After or the provider's reset header);
//      kRetryable        5xx, timeouts, connection reset;
//      kPermanent        mapping error, 404 of a removed API, capability mismatch, other 4xx;
//      kInvalidArgument  VerifyWebhook: forged, replayed or malformed notification.
//    Error messages never contain tokens or health values.
//  * Rate-limit headers the provider sends (usage/limit/reset) are reported through
//    ctx.on_rate_limit on every response that has them, so the limiter can follow the provider.
//  * Requests of one method that do not depend on each other (day windows, per-record creates)
//    go through ForEachRequest, which runs them side by side when ctx allows (ctx.fan_out).
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "core/fan_out.hpp"
#include "core/result.hpp"
#include "providers/capabilities.hpp"
#include "providers/records.hpp"

namespace syncwell::providers {

// Configuration of one connector (config section [providers.<name>]).
struct ConnectorSettings {
  std::string
      base_url;  // API root, e.g. "https://www.strava.com" or "http://127.0.0.1:9100/strava"
  std::string token_url;  // OAuth token endpoint; empty = the connector's default under base_url
  std::string client_id;
  std::string client_secret;                  // never logged
  std::string webhook_secret;                 // verify token / signing secret for notifications
  std::chrono::milliseconds timeout{10'000};  // per HTTP call
  int page_size = 100;
};

struct TokenGrant {
  std::string access_token;   // never logged
  std::string refresh_token;  // may be empty; may rotate on every refresh
  TimePoint expires_at{};     // zero = unknown / does not expire
  std::string provider_user_id;
  std::string scope;
};

struct TimeRange {
  int64_t start_ms = 0;  // inclusive
  int64_t end_ms = 0;    // exclusive
};

struct RateLimitObservation {
  std::string scope;  // "app" or "user"
  int64_t limit = 0;
  int64_t used = 0;
  std::chrono::seconds window{0};
  std::chrono::seconds reset_in{0};  // 0 = unknown
};

// Full records that a connector's FetchMetadata received anyway (Garmin, Withings and Fitbit list
// whole records; the metadata step keeps only their metadata), kept for FetchPayloads of the same
// job, which then answers from them without a request. One per connection of a running job
// (sync::ConnectionSession); in memory only, dropped with the job (SPEC S13). Not thread-safe:
// a job calls its providers from one thread.
class FetchedRecords {
 public:
  static constexpr size_t kMaxRecords = 10'000;  // beyond this, FetchPayloads fetches as before

  void Keep(DataType type, const Record& r);
  // The record of every id, in the order of `ids`; nullopt when one is not kept (the caller then
  // fetches them all, as without this cache).
  std::optional<std::vector<Record>> Take(DataType type, const std::vector<std::string>& ids) const;
  size_t size() const { return by_id_.size(); }

 private:
  std::map<std::pair<DataType, std::string>, Record> by_id_;
};

struct CallContext {
  std::string access_token;  // never logged
  std::string provider_user_id;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Both callbacks may be called from several threads at once (ForEachRequest): thread-safe.
  std::function<void(const RateLimitObservation&)> on_rate_limit;  // may be empty
  // Called after every HTTP request a connector makes with that request's duration (a method
  // may page through many): the circuit breaker judges slow *calls*, not slow methods.
  std::function<void(std::chrono::milliseconds)> on_http_request;  // may be empty
  FetchedRecords* fetched = nullptr;  // the job's kept records for this connection; may be null
  // Independent requests of one method run side by side on this pool, at most max_parallel at
  // once; null or max_parallel <= 1: one after another on the calling thread.
  FanOut* fan_out = nullptr;
  size_t max_parallel = 1;
};

// For connectors: fn(i) for every i in [0, n), side by side when ctx allows, else in order.
// fn may run on another thread: it writes only its own slot of the output and reads ctx.
inline void ForEachRequest(const CallContext& ctx, size_t n,
                           const std::function<void(size_t)>& fn) {
  if (ctx.fan_out != nullptr && ctx.max_parallel > 1) {
    ctx.fan_out->Run(n, ctx.max_parallel, fn);
  } else {
    for (size_t i = 0; i < n; ++i) fn(i);
  }
}

// For connectors: report one finished HTTP request that was sent at `sent_at`.
inline void ReportRequest(const CallContext* ctx, std::chrono::steady_clock::time_point sent_at) {
  if (ctx && ctx->on_http_request) {
    ctx->on_http_request(std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - sent_at));
  }
}

struct PushResult {
  std::string source_id;  // Record::meta.id of the pushed record
  bool ok = false;
  std::string dest_id;  // the destination's id of the written record when ok
  Error error;          // when !ok (classified like any call)
};

// For connectors' PushData: push(record) for every record, side by side when ctx allows, the
// results in the records' order. A call-level failure (401, a revoked grant, 429) stops the
// records not yet started: they get that error without a request. If nothing was written and
// such a failure happened, the whole call fails with it (the caller refreshes or backs off, and
// the ledger's intents make pushing them all again safe).
Result<std::vector<PushResult>> PushEach(const CallContext& ctx, const std::vector<Record>& records,
                                         const std::function<PushResult(const Record&)>& push);

// For connectors' per-id reads: fetch(id) for every id, side by side when ctx allows. The records
// come back in the ids' order; an id whose fetch gives nullopt (deleted since the list) is left
// out, and the first failing id (in the ids' order) fails the call.
Result<std::vector<Record>> FetchEach(
    const CallContext& ctx, const std::vector<std::string>& ids,
    const std::function<Result<std::optional<Record>>(const std::string&)>& fetch);

// A notification as received by the server, transport-neutral.
struct WebhookRequest {
  std::string method;  // "GET" (subscription verification) or "POST"
  std::string query;   // raw query string
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
};

struct WebhookEvent {
  std::string provider_user_id;  // the provider's id of the user (owner id, userId, ...)
  std::optional<DataType> type;  // empty = every type of this provider
  std::optional<TimeRange> range;
  std::string kind;  // "create", "update", "delete", "deauthorize", ...
};

struct WebhookOutcome {
  // For a subscription verification (GET): the exact response the provider expects.
  std::optional<std::pair<int, std::string>> challenge_response;  // status, JSON body
  std::vector<WebhookEvent> events;
};

class Provider {
 public:
  virtual ~Provider() = default;

  virtual std::string_view name() const = 0;  // "strava", the same as in capabilities.hpp
  virtual bool supports_webhooks() const = 0;

  // OAuth 2.0 authorization-code exchange (PKCE verifier may be empty) and refresh.
  virtual Result<TokenGrant> Authenticate(const std::string& code, const std::string& verifier,
                                          const std::string& redirect_uri) = 0;
  virtual Result<TokenGrant> Refresh(const std::string& refresh_token) = 0;
  virtual Status Revoke(const CallContext& ctx) = 0;

  // Metadata only (no heavy payload) of records that start in `range` OR were modified in it,
  // sorted by start_ms. Records with monostate data.
  virtual Result<std::vector<RecordMeta>> FetchMetadata(const CallContext& ctx, DataType type,
                                                        TimeRange range) = 0;
  // Full records for these ids (order not significant). An id the provider no longer has (the
  // user deleted the record between the metadata and this call, or it left the provider's
  // history) is left out of the result; the engine skips it ("gone_at_source"). Any other
  // failure fails the call.
  virtual Result<std::vector<Record>> FetchPayloads(const CallContext& ctx, DataType type,
                                                    const std::vector<std::string>& ids) = 0;
  // Writes records (meta.origin set by the engine); one result per record, in order. The call
  // fails as a whole only when nothing was attempted.
  virtual Result<std::vector<PushResult>> PushData(const CallContext& ctx, DataType type,
                                                   const std::vector<Record>& records) = 0;
  // Cheap pre-flight: true/false, or nullopt when the provider has no such check.
  virtual Result<std::optional<bool>> HasNewData(const CallContext& ctx, DataType type,
                                                 TimeRange range) {
    (void)ctx;
    (void)type;
    (void)range;
    return std::optional<bool>{};
  }
  // Authenticity check + parsing of a notification (SPEC S7, S13).
  virtual Result<WebhookOutcome> VerifyWebhook(const WebhookRequest& req) = 0;
};

class ProviderRegistry {
 public:
  void Add(std::unique_ptr<Provider> p) { by_name_[std::string(p->name())] = std::move(p); }
  Provider* Find(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second.get();
  }
  std::vector<std::string> Names() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : by_name_) out.push_back(k);
    return out;
  }

 private:
  std::map<std::string, std::unique_ptr<Provider>, std::less<>> by_name_;
};

}  // namespace syncwell::providers
