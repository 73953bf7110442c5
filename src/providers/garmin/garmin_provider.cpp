#include "providers/garmin/garmin_provider.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <map>
#include <set>

#include "providers/garmin/mapping.hpp"

namespace syncwell::providers {

namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

constexpr int64_t kWindowS = 86'400;  // the pull API's maximum upload-time range per call
// FetchPayloads has only ids; it walks upload windows back from now until it has found them.
// Older uploads are not reachable by pull (Garmin expects ping/push and Backfill for them).
constexpr int kPayloadLookbackWindows = 30;

std::string TrimTrailingSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

std::optional<int64_t> HeaderInt(const net::HttpResult& r, std::string_view name) {
  const std::string* v = r.Header(name);
  if (!v || v->empty()) return std::nullopt;
  char* end = nullptr;
  long long n = std::strtoll(v->c_str(), &end, 10);
  if (end == v->c_str()) return std::nullopt;
  return n;
}

std::string OAuthErrorWord(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return {};
  const json::value* e = v.get_object().if_contains("error");
  if (!e || !e->is_string()) return {};
  std::string w(e->get_string());
  bool safe = w.size() <= 64 && std::all_of(w.begin(), w.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
              });
  return safe ? w : std::string();
}

std::optional<std::string> QueryParam(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == key)
      return eq == std::string_view::npos ? std::string() : std::string(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

class GarminProvider final : public Provider {
 public:
  GarminProvider(ConnectorSettings s, net::HttpClient& http, const Clock& clock)
      : settings_(std::move(s)), http_(http), clock_(clock) {
    settings_.base_url = TrimTrailingSlash(settings_.base_url);
    token_url_ = settings_.token_url.empty() ? settings_.base_url + "/di-oauth2-service/oauth/token"
                                             : settings_.token_url;
  }

  std::string_view name() const override { return "garmin"; }
  bool supports_webhooks() const override { return true; }

  Result<TokenGrant> Authenticate(const std::string& code, const std::string& verifier,
                                  const std::string& redirect_uri) override {
    std::vector<std::pair<std::string, std::string>> form = {
        {"grant_type", "authorization_code"},
        {"client_id", settings_.client_id},
        {"client_secret", settings_.client_secret},
        {"code", code},
        {"redirect_uri", redirect_uri}};
    if (!verifier.empty()) form.emplace_back("code_verifier", verifier);
    auto grant = TokenRequest(form, "");
    if (!grant) return grant.error();
    // The user id is what notifications carry; it is stable across token regeneration.
    CallContext ctx;
    ctx.access_token = grant->access_token;
    auto r = Get(ctx, settings_.base_url + "/wellness-api/rest/user/id", "user id");
    if (!r) return r.error();
    boost::system::error_code ec;
    json::value v = json::parse(r->body, ec);
    const json::value* id = (!ec && v.is_object()) ? v.get_object().if_contains("userId") : nullptr;
    if (!id || !id->is_string() || id->get_string().empty())
      return MakeError(Errc::kPermanent, "garmin: user id: userId missing");
    grant->provider_user_id = std::string(id->get_string());
    return grant;
  }

  Result<TokenGrant> Refresh(const std::string& refresh_token) override {
    return TokenRequest({{"grant_type", "refresh_token"},
                         {"client_id", settings_.client_id},
                         {"client_secret", settings_.client_secret},
                         {"refresh_token", refresh_token}},
                        refresh_token);
  }

  // Deleting the user registration is Garmin's disconnect.
  Status Revoke(const CallContext& ctx) override {
    net::HttpCall call;
    call.method = "DELETE";
    call.url = settings_.base_url + "/wellness-api/rest/user/registration";
    auto r = Send(&ctx, std::move(call));
    if (!r) return r.error();
    // 403: the token is unknown (consent already removed), which is the goal.
    if (r->status / 100 == 2 || r->status == 403) return {};
    return StatusError(*r, "user registration delete");
  }

  Result<std::vector<RecordMeta>> FetchMetadata(const CallContext& ctx, DataType type,
                                                TimeRange range) override {
    // Summaries are pulled by upload time, i.e. the range selects what changed in it.
    // One pull per upload window (a first sync: 30), side by side when ctx allows.
    const int64_t from_s = FloorDiv(range.start_ms, 1000);
    const int64_t to_s = FloorDiv(range.end_ms + 999, 1000);
    const size_t windows =
        to_s > from_s ? static_cast<size_t>((to_s - from_s + kWindowS - 1) / kWindowS) : 0;
    std::vector<Result<std::vector<Record>>> pages(windows, std::vector<Record>{});
    ForEachRequest(ctx, windows, [&](size_t i) {
      const int64_t w = from_s + static_cast<int64_t>(i) * kWindowS;
      pages[i] = Pull(ctx, type, w, std::min(to_s, w + kWindowS));
    });
    std::map<std::string, Record> by_id;  // a re-uploaded summary: the later window wins
    for (auto& page : pages) {
      if (!page) return page.error();  // the earliest window's error
      for (auto& r : *page) by_id.insert_or_assign(r.meta.id, std::move(r));
    }
    std::vector<RecordMeta> out;
    out.reserve(by_id.size());
    for (auto& [id, r] : by_id) {
      if (ctx.fetched) ctx.fetched->Keep(type, r);  // summaries come whole: FetchPayloads reuses
      out.push_back(std::move(r.meta));
    }
    std::stable_sort(out.begin(), out.end(), [](const RecordMeta& a, const RecordMeta& b) {
      return a.start_ms < b.start_ms;
    });
    return out;
  }

  Result<std::vector<Record>> FetchPayloads(const CallContext& ctx, DataType type,
                                            const std::vector<std::string>& ids) override {
    // The same job's metadata step pulled these summaries already (the latest version in its
    // range); only ids it did not see walk the upload windows back from now.
    if (ctx.fetched) {
      if (auto kept = ctx.fetched->Take(type, ids)) return std::move(*kept);
    }
    std::set<std::string> wanted(ids.begin(), ids.end());
    std::map<std::string, Record> found;
    // Newest window first: the most recent upload of a summary is its latest version.
    int64_t end_s = FloorDiv(ToUnixMillis(clock_.Now()), 1000) + 1;
    for (int k = 0; k < kPayloadLookbackWindows && found.size() < wanted.size(); ++k) {
      auto page = Pull(ctx, type, end_s - kWindowS, end_s);
      if (!page) return page.error();
      for (auto& r : *page) {
        if (wanted.count(r.meta.id) && !found.count(r.meta.id))
          found.emplace(r.meta.id, std::move(r));
      }
      end_s -= kWindowS;
    }
    std::vector<Record> out;
    out.reserve(ids.size());
    for (const auto& id : ids) {
      auto it = found.find(id);
      if (it != found.end()) out.push_back(it->second);  // else: no longer at Garmin
    }
    return out;
  }

  // The Health/Activity APIs are read-only. Garmin's Training API (POST
  // /training-api/workout) creates *planned* structured workouts for devices, not completed
  // activities, so a canonical workout has nowhere to go: every record fails as a permanent
  // capability error (see README.md).
  Result<std::vector<PushResult>> PushData(const CallContext& ctx, DataType type,
                                           const std::vector<Record>& records) override {
    (void)ctx;
    std::vector<PushResult> out;
    out.reserve(records.size());
    for (const auto& r : records) {
      PushResult pr;
      pr.source_id = r.meta.id;
      pr.error = MakeError(Errc::kPermanent,
                           "garmin: capability: " + std::string(DataTypeName(type)) +
                               " cannot be written (Garmin accepts planned workouts only)");
      out.push_back(std::move(pr));
    }
    return out;
  }

  Result<WebhookOutcome> VerifyWebhook(const WebhookRequest& req) override {
    if (req.method != "POST")
      return MakeError(Errc::kInvalidArgument, "garmin webhook: unsupported method");
    // Garmin does not sign notifications. Authenticity: our own secret in the configured
    // endpoint URL (?token=) plus Garmin's garmin-client-id header; the server then maps the
    // userId to a known connection and drops unknown users.
    if (!settings_.webhook_secret.empty()) {
      auto token = QueryParam(req.query, "token");
      if (!token || !garmin::ConstantTimeEquals(*token, settings_.webhook_secret))
        return MakeError(Errc::kInvalidArgument, "garmin webhook: endpoint token mismatch");
    }
    if (!settings_.client_id.empty()) {
      const std::string* client = nullptr;
      for (const auto& [k, v] : req.headers) {
        if (k == "garmin-client-id") client = &v;
      }
      if (!client || !garmin::ConstantTimeEquals(*client, settings_.client_id))
        return MakeError(Errc::kInvalidArgument, "garmin webhook: garmin-client-id mismatch");
    }
    auto events = garmin::ParseNotificationBody(req.body, ToUnixMillis(clock_.Now()));
    if (!events) return events.error();
    WebhookOutcome out;
    out.events = std::move(*events);
    return out;
  }

 private:
  static int64_t FloorDiv(int64_t a, int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
  }

  Result<net::HttpResult> Send(const CallContext* ctx, net::HttpCall call) {
    call.timeout = settings_.timeout;
    if (ctx && ctx->deadline != std::chrono::steady_clock::time_point::max()) {
      auto left = std::chrono::duration_cast<milliseconds>(ctx->deadline -
                                                           std::chrono::steady_clock::now());
      if (left <= milliseconds(0))
        return MakeError(Errc::kRetryable, "garmin: deadline exceeded before the call");
      call.timeout = std::min(call.timeout, left);
    }
    call.headers.emplace_back("Accept", "application/json");
    if (ctx) call.headers.emplace_back("Authorization", "Bearer " + ctx->access_token);
    const auto sent_at = std::chrono::steady_clock::now();
    auto r = http_.Send(call);
    ReportRequest(ctx, sent_at);
    if (!r) {
      Error e = r.error();
      if (e.code == Errc::kInvalidArgument) e.code = Errc::kPermanent;  // bad base URL: config
      e.message = "garmin: " + e.message;
      return e;
    }
    return r;
  }

  // Appendix E of the Health API: 400 bad parameter, 401 authorization failed, 403 user access
  // token unknown (consent removed), 412 summary type not permitted by the user, 500.
  Error StatusError(const net::HttpResult& r, std::string_view what) const {
    std::string msg = "garmin: " + std::string(what) + ": HTTP " + std::to_string(r.status);
    if (r.status == 401) return MakeError(Errc::kUnauthenticated, msg);
    if (r.status == 403) return MakeError(Errc::kAuthRevoked, msg);
    if (r.status == 429) {
      Error e = MakeError(Errc::kRateLimited, msg);
      e.retry_after =
          std::chrono::seconds(std::max<int64_t>(1, HeaderInt(r, "retry-after").value_or(60)));
      return e;
    }
    if (r.status >= 500 || r.status == 408) return MakeError(Errc::kRetryable, msg);
    return MakeError(Errc::kPermanent, msg);
  }

  Result<net::HttpResult> Get(const CallContext& ctx, std::string url, std::string_view what) {
    net::HttpCall call;
    call.url = std::move(url);
    auto r = Send(&ctx, std::move(call));
    if (!r) return r;
    if (r->status != 200) return StatusError(*r, what);
    return r;
  }

  // One upload window [from_s, to_s) of one summary type, decoded.
  Result<std::vector<Record>> Pull(const CallContext& ctx, DataType type, int64_t from_s,
                                   int64_t to_s) {
    const std::string summary(garmin::SummaryType(type));
    auto r = Get(ctx,
                 settings_.base_url + "/wellness-api/rest/" + summary +
                     "?uploadStartTimeInSeconds=" + std::to_string(from_s) +
                     "&uploadEndTimeInSeconds=" + std::to_string(to_s),
                 summary);
    if (!r) return r.error();
    boost::system::error_code ec;
    json::monotonic_resource arena;  // the tree dies with this call: one arena, no malloc each
    json::value v = json::parse(r->body, ec, &arena);
    if (ec || !v.is_array())
      return MakeError(Errc::kPermanent, "garmin: " + summary + ": malformed JSON");
    std::vector<Record> out;
    out.reserve(v.get_array().size());
    for (const auto& e : v.get_array()) {
      if (!e.is_object())
        return MakeError(Errc::kPermanent, "garmin: " + summary + ": summary malformed");
      auto rec = garmin::DecodeSummary(type, e.get_object());
      if (!rec) return rec.error();
      out.push_back(std::move(*rec));
    }
    return out;
  }

  Result<TokenGrant> TokenRequest(const std::vector<std::pair<std::string, std::string>>& form,
                                  const std::string& old_refresh) {
    net::HttpCall call;
    call.method = "POST";
    call.url = token_url_;
    call.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
    call.body = net::FormEncode(form);
    auto r = Send(nullptr, std::move(call));
    if (!r) return r.error();
    if (r->status != 200) {
      std::string word = OAuthErrorWord(r->body);
      if ((r->status == 400 || r->status == 401) && word == "invalid_grant")
        return MakeError(Errc::kAuthRevoked, "garmin: token: invalid_grant");
      Error e = StatusError(*r, "token");
      // On the token endpoint 401/403 mean bad client credentials: configuration, not a user.
      if (r->status == 401 || r->status == 403) e.code = Errc::kPermanent;
      if (!word.empty()) e.message += " " + word;
      return e;
    }
    boost::system::error_code ec;
    json::value v = json::parse(r->body, ec);
    if (ec || !v.is_object()) return MakeError(Errc::kPermanent, "garmin: token: malformed JSON");
    const json::object& o = v.get_object();
    const json::value* at = o.if_contains("access_token");
    if (!at || !at->is_string() || at->get_string().empty())
      return MakeError(Errc::kPermanent, "garmin: token: access_token missing");
    TokenGrant g;
    g.access_token = std::string(at->get_string());
    // Garmin issues a new refresh token with every refresh (rotation).
    const json::value* rt = o.if_contains("refresh_token");
    g.refresh_token = rt && rt->is_string() ? std::string(rt->get_string()) : old_refresh;
    if (const json::value* exp = o.if_contains("expires_in"); exp && exp->is_number()) {
      auto secs = exp->to_number<int64_t>(ec);
      if (!ec && secs > 0) g.expires_at = clock_.Now() + std::chrono::seconds(secs);
    }
    if (const json::value* sc = o.if_contains("scope"); sc && sc->is_string())
      g.scope = std::string(sc->get_string());
    return g;
  }

  ConnectorSettings settings_;
  net::HttpClient& http_;
  const Clock& clock_;
  std::string token_url_;
};

}  // namespace

std::unique_ptr<Provider> MakeGarminProvider(ConnectorSettings settings, net::HttpClient& http,
                                             const Clock& clock) {
  return std::make_unique<GarminProvider>(std::move(settings), http, clock);
}

}  // namespace syncwell::providers
