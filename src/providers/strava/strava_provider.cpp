#include "providers/strava/strava_provider.hpp"

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "providers/strava/mapping.hpp"

namespace syncwell::providers {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

constexpr int kMaxPerPage = 200;  // Strava's documented per_page maximum
constexpr int kMaxPages = 500;    // a server that never stops paginating is a bug, not data
// Strava lists by start time only and has no modification time (modified = end). A workout
// uploaded after it ended started before an incremental window, so lists look this far back and
// keep what starts OR ends ("modified") inside the range, as the Provider contract asks.
constexpr int64_t kUploadLagMs = 24LL * 3600 * 1000;

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

class StravaProvider final : public Provider {
 public:
  StravaProvider(ConnectorSettings s, net::HttpClient& http, const Clock& clock)
      : settings_(std::move(s)), http_(http), clock_(clock) {
    while (!settings_.base_url.empty() && settings_.base_url.back() == '/')
      settings_.base_url.pop_back();
    token_url_ =
        settings_.token_url.empty() ? settings_.base_url + "/oauth/token" : settings_.token_url;
    api_ = settings_.base_url + "/api/v3";
  }

  std::string_view name() const override { return "strava"; }
  bool supports_webhooks() const override { return true; }

  Result<TokenGrant> Authenticate(const std::string& code, const std::string& verifier,
                                  const std::string& redirect_uri) override {
    // Strava's token exchange takes neither a PKCE verifier nor the redirect URI.
    (void)verifier;
    (void)redirect_uri;
    return TokenCall({{"client_id", settings_.client_id},
                      {"client_secret", settings_.client_secret},
                      {"code", code},
                      {"grant_type", "authorization_code"}},
                     "POST oauth/token (authorization_code)");
  }

  Result<TokenGrant> Refresh(const std::string& refresh_token) override {
    return TokenCall({{"client_id", settings_.client_id},
                      {"client_secret", settings_.client_secret},
                      {"grant_type", "refresh_token"},
                      {"refresh_token", refresh_token}},
                     "POST oauth/token (refresh_token)");
  }

  Status Revoke(const CallContext& ctx) override {
    auto r = Call(&ctx, "POST", settings_.base_url + "/oauth/deauthorize",
                  net::FormEncode({{"access_token", ctx.access_token}}), "POST oauth/deauthorize",
                  false);
    if (!r.ok()) return r.error();
    return {};
  }

  Result<std::vector<RecordMeta>> FetchMetadata(const CallContext& ctx, DataType type,
                                                TimeRange range) override {
    if (type != DataType::kWorkout) return Unsupported(type);
    std::vector<RecordMeta> out;
    if (range.end_ms <= range.start_ms) return out;
    const int per_page = std::clamp(settings_.page_size, 1, kMaxPerPage);
    std::set<std::string> seen;
    const TimeRange wide{range.start_ms - kUploadLagMs, range.end_ms};
    auto in = [&](int64_t t) { return t >= range.start_ms && t < range.end_ms; };
    for (int page = 1;; ++page) {
      if (page > kMaxPages)
        return MakeError(Errc::kPermanent, "strava: activity list did not end after max pages");
      auto r = Call(&ctx, "GET", ListUrl(wide, page, per_page), "", "GET athlete/activities");
      if (!r.ok()) return r.error();
      auto list = strava::ParseActivityList(r->body);
      if (!list.ok()) return list.error();
      for (auto& m : *list) {
        if (!in(m.start_ms) && !in(m.modified_ms)) continue;
        if (!seen.insert(m.id).second) continue;
        out.push_back(std::move(m));
      }
      if (static_cast<int>(list->size()) < per_page) break;
    }
    std::sort(out.begin(), out.end(), [](const RecordMeta& a, const RecordMeta& b) {
      return a.start_ms != b.start_ms ? a.start_ms < b.start_ms : a.id < b.id;
    });
    return out;
  }

  Result<std::vector<Record>> FetchPayloads(const CallContext& ctx, DataType type,
                                            const std::vector<std::string>& ids) override {
    if (type != DataType::kWorkout) return Unsupported(type);
    if (std::find(ids.begin(), ids.end(), std::string()) != ids.end())
      return MakeError(Errc::kPermanent, "strava: empty activity id");
    // One GET per activity, side by side when ctx allows.
    return FetchEach(ctx, ids, [&](const std::string& id) -> Result<std::optional<Record>> {
      auto r = Call(&ctx, "GET", api_ + "/activities/" + net::UrlEncode(id), "",
                    "GET activities/{id}", false, /*not_found_ok=*/true);
      if (!r.ok()) return r.error();
      if (r->status == 404) return std::optional<Record>{};  // deleted at Strava since the list
      auto rec = strava::ParseActivityDetail(r->body);
      if (!rec.ok()) return rec.error();
      return std::optional<Record>(std::move(*rec));
    });
  }

  Result<std::vector<PushResult>> PushData(const CallContext& ctx, DataType type,
                                           const std::vector<Record>& records) override {
    if (type != DataType::kWorkout) return Unsupported(type);
    return PushEach(ctx, records, [&](const Record& rec) {
      PushResult pr;
      pr.source_id = rec.meta.id;
      if (rec.meta.type != DataType::kWorkout || !std::holds_alternative<WorkoutData>(rec.data)) {
        pr.error = MakeError(Errc::kPermanent, "strava: record is not a workout");
      } else if (rec.meta.end_ms <= rec.meta.start_ms) {
        pr.error = MakeError(Errc::kPermanent, "strava: workout without duration");
      } else {
        auto r = Call(&ctx, "POST", api_ + "/activities",
                      net::FormEncode(strava::CreateActivityFields(rec)), "POST activities");
        if (r.ok()) {
          auto id = strava::ParseCreatedId(r->body);
          if (id.ok()) {
            pr.ok = true;
            pr.dest_id = std::move(*id);
          } else {
            pr.error = id.error();
          }
        } else {
          pr.error = r.error();
        }
      }
      return pr;
    });
  }

  Result<std::optional<bool>> HasNewData(const CallContext& ctx, DataType type,
                                         TimeRange range) override {
    if (type != DataType::kWorkout) return Unsupported(type);
    if (range.end_ms <= range.start_ms) return std::optional<bool>(false);
    auto r = Call(&ctx, "GET", ListUrl(range, 1, 1), "", "GET athlete/activities");
    if (!r.ok()) return r.error();
    auto list = strava::ParseActivityList(r->body);
    if (!list.ok()) return list.error();
    return std::optional<bool>(!list->empty());
  }

  Result<WebhookOutcome> VerifyWebhook(const WebhookRequest& req) override {
    return strava::ParseWebhook(req, settings_.webhook_secret);
  }

 private:
  static Error Unsupported(DataType t) {
    return MakeError(Errc::kPermanent,
                     "strava: data type not supported: " + std::string(DataTypeName(t)));
  }

  std::string ListUrl(TimeRange range, int page, int per_page) const {
    // after/before are epoch seconds and exclusive; widen by a second and filter exactly.
    int64_t after = FloorDiv(range.start_ms, 1000) - 1;
    int64_t before = FloorDiv(range.end_ms + 999, 1000) + 1;
    return api_ + "/athlete/activities?after=" + std::to_string(after) +
           "&before=" + std::to_string(before) + "&page=" + std::to_string(page) +
           "&per_page=" + std::to_string(per_page);
  }

  Result<TokenGrant> TokenCall(const Fields& fields, std::string_view what) {
    auto r = Call(nullptr, "POST", token_url_, net::FormEncode(fields), what, true);
    if (!r.ok()) return r.error();
    return strava::ParseTokenResponse(r->body);
  }

  // One HTTP exchange: deadline, bearer token, rate-limit observations, status mapping.
  Result<net::HttpResult> Call(const CallContext* ctx, std::string method, std::string url,
                               std::string body, std::string_view what, bool token_endpoint = false,
                               bool not_found_ok = false) {
    net::HttpCall call;
    call.method = std::move(method);
    call.url = std::move(url);
    call.body = std::move(body);
    call.timeout = settings_.timeout;
    if (ctx && ctx->deadline != std::chrono::steady_clock::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(ctx->deadline -
                                                               std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return MakeError(Errc::kRetryable, "strava: deadline exceeded before " + std::string(what));
      call.timeout = std::min(call.timeout, left);
    }
    call.headers.emplace_back("Accept", "application/json");
    if (ctx && !ctx->access_token.empty())
      call.headers.emplace_back("Authorization", "Bearer " + ctx->access_token);
    if (!call.body.empty())
      call.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");

    const auto sent_at = std::chrono::steady_clock::now();
    auto r = http_.Send(call);
    ReportRequest(ctx, sent_at);
    if (!r.ok()) {
      Error e = r.error();
      // A bad base URL is configuration: retrying will not fix it.
      if (e.code == Errc::kInvalidArgument) e.code = Errc::kPermanent;
      e.message = "strava: " + std::string(what) + ": " + e.message;
      return e;
    }
    const TimePoint now = clock_.Now();
    if (ctx && ctx->on_rate_limit) {
      for (const auto& obs : strava::ParseRateLimits(*r, now)) ctx->on_rate_limit(obs);
    }
    if ((r->status >= 200 && r->status < 300) || (not_found_ok && r->status == 404)) return r;
    return strava::MapHttpError(*r, what, token_endpoint, now);
  }

  ConnectorSettings settings_;
  net::HttpClient& http_;
  const Clock& clock_;
  std::string token_url_;
  std::string api_;
};

}  // namespace

std::unique_ptr<Provider> MakeStravaProvider(ConnectorSettings settings, net::HttpClient& http,
                                             const Clock& clock) {
  return std::make_unique<StravaProvider>(std::move(settings), http, clock);
}

}  // namespace syncwell::providers
