#include "providers/withings/withings_provider.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "providers/withings/mapping.hpp"
#include "providers/withings/timezones.hpp"

namespace syncwell::providers {
namespace {

using withings::Fields;

constexpr int kMaxPages = 500;  // a server that never stops paginating is a bug, not data
constexpr int64_t kDay = 86400;

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

bool IsStopError(Errc c) {
  return c == Errc::kRateLimited || c == Errc::kUnauthenticated || c == Errc::kAuthRevoked;
}

struct Endpoint {
  const char* path;
  const char* action;
  const char* what;
};

Endpoint ListEndpoint(DataType t) {
  switch (t) {
    case DataType::kWeight:
      return {"/measure", "getmeas", "measure getmeas"};
    case DataType::kSleepSession:
      return {"/v2/sleep", "getsummary", "sleep getsummary"};
    case DataType::kWorkout:
      return {"/v2/measure", "getworkouts", "measure getworkouts"};
    case DataType::kSteps:
      return {"/v2/measure", "getactivity", "measure getactivity"};
  }
  return {"/measure", "getmeas", "measure getmeas"};
}

// Type-specific parameters of the list calls (which values to return).
void AddTypeFields(DataType t, Fields* f) {
  switch (t) {
    case DataType::kWeight:
      f->emplace_back("meastypes", "1,6");
      f->emplace_back("category", "1");
      break;
    case DataType::kSleepSession:
      f->emplace_back("data_fields",
                      "deepsleepduration,lightsleepduration,remsleepduration,wakeupduration");
      break;
    case DataType::kWorkout:
      f->emplace_back("data_fields",
                      "calories,distance,hr_average,manual_distance,manual_calories");
      break;
    case DataType::kSteps:
      f->emplace_back("data_fields", "steps");
      break;
  }
}

class WithingsProvider final : public Provider {
 public:
  WithingsProvider(ConnectorSettings s, net::HttpClient& http, const Clock& clock)
      : settings_(std::move(s)), http_(http), clock_(clock) {
    while (!settings_.base_url.empty() && settings_.base_url.back() == '/')
      settings_.base_url.pop_back();
    token_url_ =
        settings_.token_url.empty() ? settings_.base_url + "/v2/oauth2" : settings_.token_url;
  }

  std::string_view name() const override { return "withings"; }
  bool supports_webhooks() const override { return true; }

  Result<TokenGrant> Authenticate(const std::string& code, const std::string& verifier,
                                  const std::string& redirect_uri) override {
    (void)verifier;  // Withings' authorization-code flow has no PKCE
    return TokenCall({{"action", "requesttoken"},
                      {"grant_type", "authorization_code"},
                      {"client_id", settings_.client_id},
                      {"client_secret", settings_.client_secret},
                      {"code", code},
                      {"redirect_uri", redirect_uri}},
                     "oauth2 requesttoken (authorization_code)");
  }

  Result<TokenGrant> Refresh(const std::string& refresh_token) override {
    return TokenCall({{"action", "requesttoken"},
                      {"grant_type", "refresh_token"},
                      {"client_id", settings_.client_id},
                      {"client_secret", settings_.client_secret},
                      {"refresh_token", refresh_token}},
                     "oauth2 requesttoken (refresh_token)");
  }

  // OAuth 2.0 - Revoke user access: signed with a nonce from Signature v2 - Getnonce.
  Status Revoke(const CallContext& ctx) override {
    if (ctx.provider_user_id.empty())
      return MakeError(Errc::kPermanent, "withings: revoke needs the provider user id");
    const std::string ts = std::to_string(ToUnixMillis(clock_.Now()) / 1000);
    auto n = Call(&ctx, settings_.base_url + "/v2/signature",
                  {{"action", "getnonce"},
                   {"client_id", settings_.client_id},
                   {"timestamp", ts},
                   {"signature", withings::Signature(settings_.client_secret, "getnonce",
                                                     settings_.client_id, ts)}},
                  "signature getnonce", false);
    if (!n.ok()) return n.error();
    auto nonce = withings::ParseNonce(n->body);
    if (!nonce.ok()) return nonce.error();
    auto r = Call(&ctx, token_url_,
                  {{"action", "revoke"},
                   {"client_id", settings_.client_id},
                   {"nonce", *nonce},
                   {"signature", withings::Signature(settings_.client_secret, "revoke",
                                                     settings_.client_id, *nonce)},
                   {"userid", ctx.provider_user_id}},
                  "oauth2 revoke", false);
    if (!r.ok()) return r.error();
    return withings::CheckStatus(r->body, "oauth2 revoke", false);
  }

  // lastupdate = range start returns everything modified since (Withings' documented sync
  // parameter); records modified since then started before or in the range, so one filter
  // keeps those that start in the range or were modified in it.
  Result<std::vector<RecordMeta>> FetchMetadata(const CallContext& ctx, DataType type,
                                                TimeRange range) override {
    std::vector<RecordMeta> out;
    if (range.end_ms <= range.start_ms) return out;
    Fields f{{"lastupdate", std::to_string(std::max<int64_t>(0, FloorDiv(range.start_ms, 1000)))}};
    auto all = ListAll(ctx, type, std::move(f));
    if (!all.ok()) return all.error();
    auto in = [&](int64_t t) { return t >= range.start_ms && t < range.end_ms; };
    std::set<std::string> seen;
    for (auto& r : *all) {
      if (!in(r.meta.start_ms) && !in(r.meta.modified_ms)) continue;
      if (!seen.insert(r.meta.id).second) continue;
      if (ctx.fetched) ctx.fetched->Keep(type, r);  // listed whole: FetchPayloads reuses it
      out.push_back(std::move(r.meta));
    }
    std::sort(out.begin(), out.end(), [](const RecordMeta& a, const RecordMeta& b) {
      return a.start_ms != b.start_ms ? a.start_ms < b.start_ms : a.id < b.id;
    });
    return out;
  }

  Result<std::vector<Record>> FetchPayloads(const CallContext& ctx, DataType type,
                                            const std::vector<std::string>& ids) override {
    std::vector<Record> out;
    if (ids.empty()) return out;
    // Listed by the same job's metadata step: no second listing.
    if (ctx.fetched) {
      if (auto kept = ctx.fetched->Take(type, ids)) return std::move(*kept);
    }
    int64_t lo = 0, hi = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      auto s = withings::IdStartSeconds(type, ids[i]);
      if (!s) return MakeError(Errc::kPermanent, "withings: malformed record id");
      lo = i == 0 ? *s : std::min(lo, *s);
      hi = i == 0 ? *s : std::max(hi, *s);
    }
    // A day of margin either side covers local dates vs UTC and Withings' own date filters.
    Fields f;
    if (type == DataType::kWeight) {
      f.emplace_back("startdate", std::to_string(lo - kDay));
      f.emplace_back("enddate", std::to_string(hi + kDay));
    } else {
      f.emplace_back("startdateymd", withings::FormatYmd(FloorDiv(lo, kDay) - 1));
      f.emplace_back("enddateymd", withings::FormatYmd(FloorDiv(hi, kDay) + 2));
    }
    auto all = ListAll(ctx, type, std::move(f));
    if (!all.ok()) return all.error();
    std::map<std::string, Record*> by_id;
    for (auto& r : *all) by_id.emplace(r.meta.id, &r);
    out.reserve(ids.size());
    for (const auto& id : ids) {
      auto it = by_id.find(id);
      if (it != by_id.end()) out.push_back(*it->second);  // else: no longer at Withings
    }
    return out;
  }

  Result<std::vector<PushResult>> PushData(const CallContext& ctx, DataType type,
                                           const std::vector<Record>& records) override {
    if (type != DataType::kWeight)
      return MakeError(Errc::kPermanent,
                       "withings: writes weight only, not " + std::string(DataTypeName(type)));
    std::vector<PushResult> out;
    out.reserve(records.size());
    std::optional<Error> stop;
    for (const auto& rec : records) {
      PushResult pr;
      pr.source_id = rec.meta.id;
      const auto* w = std::get_if<WeightData>(&rec.data);
      if (stop) {
        pr.error = *stop;
      } else if (rec.meta.type != DataType::kWeight || !w) {
        pr.error = MakeError(Errc::kPermanent, "withings: record is not a weight");
      } else if (!(w->kg > 0 && w->kg < 1000)) {
        pr.error = MakeError(Errc::kPermanent, "withings: weight out of range");
      } else {
        auto r = Call(&ctx, settings_.base_url + "/measure", withings::SetMeasFields(rec),
                      "measure setmeas", false);
        if (r.ok()) {
          auto id = withings::ParseSetMeasAnswer(r->body, rec.meta.start_ms / 1000);
          if (id.ok()) {
            pr.ok = true;
            pr.dest_id = std::move(*id);
          } else {
            pr.error = id.error();
          }
        } else {
          pr.error = r.error();
        }
        if (!pr.ok && IsStopError(pr.error.code)) stop = pr.error;
      }
      out.push_back(std::move(pr));
    }
    return out;
  }

  Result<WebhookOutcome> VerifyWebhook(const WebhookRequest& req) override {
    return withings::ParseWebhook(req, settings_.webhook_secret);
  }

 private:
  // Every page of one list call (offset/more pagination).
  Result<std::vector<Record>> ListAll(const CallContext& ctx, DataType type, Fields params) {
    const Endpoint ep = ListEndpoint(type);
    std::vector<Record> all;
    int64_t offset = 0;
    for (int page = 0;; ++page) {
      if (page >= kMaxPages)
        return MakeError(Errc::kPermanent, "withings: list did not end after max pages");
      Fields f{{"action", ep.action}};
      AddTypeFields(type, &f);
      f.insert(f.end(), params.begin(), params.end());
      if (offset > 0) f.emplace_back("offset", std::to_string(offset));
      auto r = Call(&ctx, settings_.base_url + ep.path, f, ep.what, false);
      if (!r.ok()) return r.error();
      auto p = withings::ParsePage(type, r->body);
      if (!p.ok()) return p.error();
      for (auto& rec : p->records) all.push_back(std::move(rec));
      if (!p->more) break;
      if (p->offset <= offset)
        return MakeError(Errc::kPermanent, "withings: pagination offset did not advance");
      offset = p->offset;
    }
    return all;
  }

  Result<TokenGrant> TokenCall(const Fields& fields, std::string_view what) {
    auto r = Call(nullptr, token_url_, fields, what, true);
    if (!r.ok()) return r.error();
    return withings::ParseTokenResponse(r->body, clock_.Now());
  }

  // One form POST: deadline, bearer token, HTTP status mapping (the envelope status is the
  // caller's: it knows what the body should contain).
  Result<net::HttpResult> Call(const CallContext* ctx, std::string url, const Fields& fields,
                               std::string_view what, bool token_endpoint) {
    net::HttpCall call;
    call.method = "POST";
    call.url = std::move(url);
    call.body = net::FormEncode(fields);
    call.timeout = settings_.timeout;
    if (ctx && ctx->deadline != std::chrono::steady_clock::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(ctx->deadline -
                                                               std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return MakeError(Errc::kRetryable,
                         "withings: deadline exceeded before " + std::string(what));
      call.timeout = std::min(call.timeout, left);
    }
    call.headers.emplace_back("Accept", "application/json");
    call.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    if (ctx && !ctx->access_token.empty())
      call.headers.emplace_back("Authorization", "Bearer " + ctx->access_token);
    const auto sent_at = std::chrono::steady_clock::now();
    auto r = http_.Send(call);
    ReportRequest(ctx, sent_at);
    if (!r.ok()) {
      Error e = r.error();
      if (e.code == Errc::kInvalidArgument) e.code = Errc::kPermanent;  // bad base URL: config
      e.message = "withings: " + std::string(what) + ": " + e.message;
      return e;
    }
    if (r->status >= 200 && r->status < 300) return r;
    std::string msg = "withings: HTTP " + std::to_string(r->status) + " on " + std::string(what);
    if (r->status == 429) {
      Error e = MakeError(Errc::kRateLimited, msg);
      e.retry_after = withings::kStatus601RetryAfter;
      if (const auto* ra = r->Header("retry-after")) {
        int64_t s = -1;
        auto [ptr, ec] = std::from_chars(ra->data(), ra->data() + ra->size(), s);
        if (ec == std::errc() && ptr == ra->data() + ra->size() && s >= 0 && s <= 86400)
          e.retry_after = std::chrono::seconds{s};
      }
      return e;
    }
    if (r->status >= 500 || r->status == 408) return MakeError(Errc::kRetryable, msg);
    if (r->status == 401)
      return MakeError(token_endpoint ? Errc::kAuthRevoked : Errc::kUnauthenticated, msg);
    return MakeError(Errc::kPermanent, msg);
  }

  ConnectorSettings settings_;
  net::HttpClient& http_;
  const Clock& clock_;
  std::string token_url_;
};

}  // namespace

std::unique_ptr<Provider> MakeWithingsProvider(ConnectorSettings settings, net::HttpClient& http,
                                               const Clock& clock) {
  return std::make_unique<WithingsProvider>(std::move(settings), http, clock);
}

}  // namespace syncwell::providers
