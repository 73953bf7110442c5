#include "providers/fitbit/fitbit_provider.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <map>
#include <set>

#include "providers/fitbit/mapping.hpp"

namespace syncwell::providers {

namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

constexpr int64_t kMsPerDay = 86'400'000;
constexpr int64_t kMaxZoneMs = 14 * 3'600'000;  // civil times are at most 14 h off UTC
constexpr int kMaxPages = 1000;                 // guards against a token that never ends

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

// A Google error body {"error": {"code", "message", "status"}} or an OAuth error body
// {"error": "invalid_grant", "error_description"}. Only the code word is kept: messages can
// echo request values.
std::string ErrorWord(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return {};
  const json::value* e = v.get_object().if_contains("error");
  if (!e) return {};
  std::string word;
  if (e->is_string()) {
    word = std::string(e->get_string());
  } else if (e->is_object()) {
    if (const json::value* s = e->get_object().if_contains("status"); s && s->is_string())
      word = std::string(s->get_string());
  }
  bool safe =
      !word.empty() && word.size() <= 64 && std::all_of(word.begin(), word.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
      });
  return safe ? word : std::string();
}

class FitbitProvider final : public Provider {
 public:
  FitbitProvider(ConnectorSettings s, net::HttpClient& http, const Clock& clock)
      : settings_(std::move(s)), http_(http), clock_(clock) {
    settings_.base_url = TrimTrailingSlash(settings_.base_url);
    token_url_ =
        settings_.token_url.empty() ? settings_.base_url + "/oauth2/token" : settings_.token_url;
    size_t slash = token_url_.rfind('/');
    revoke_url_ =
        (slash == std::string::npos ? token_url_ : token_url_.substr(0, slash)) + "/revoke";
    if (settings_.page_size <= 0) settings_.page_size = 100;
  }

  std::string_view name() const override { return "fitbit"; }
  bool supports_webhooks() const override { return true; }

  Result<TokenGrant> Authenticate(const std::string& code, const std::string& verifier,
                                  const std::string& redirect_uri) override {
    std::vector<std::pair<std::string, std::string>> form = {
        {"grant_type", "authorization_code"},
        {"code", code},
        {"redirect_uri", redirect_uri},
        {"client_id", settings_.client_id},
        {"client_secret", settings_.client_secret}};
    if (!verifier.empty()) form.emplace_back("code_verifier", verifier);
    auto grant = TokenRequest(form, "");
    if (!grant) return grant.error();
    // The Google Health user id (users/{healthUserId}/...) is what notifications carry.
    CallContext ctx;
    ctx.access_token = grant->access_token;
    auto r = Get(ctx, settings_.base_url + "/v4/users/me/identity", "identity");
    if (!r) return r.error();
    auto body = ParseObject(*r, "identity");
    if (!body) return body.error();
    const json::value* id = body->if_contains("healthUserId");
    if (!id || !id->is_string() || id->get_string().empty())
      return MakeError(Errc::kPermanent, "fitbit: identity: healthUserId missing");
    grant->provider_user_id = std::string(id->get_string());
    return grant;
  }

  Result<TokenGrant> Refresh(const std::string& refresh_token) override {
    return TokenRequest({{"grant_type", "refresh_token"},
                         {"refresh_token", refresh_token},
                         {"client_id", settings_.client_id},
                         {"client_secret", settings_.client_secret}},
                        refresh_token);
  }

  Status Revoke(const CallContext& ctx) override {
    net::HttpCall call;
    call.method = "POST";
    call.url = revoke_url_;
    call.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
    call.body = net::FormEncode({{"token", ctx.access_token}});
    auto r = Send(&ctx, std::move(call), false);
    if (!r) return r.error();
    // 400 invalid_token: already revoked or expired, which is the goal.
    if (r->status / 100 == 2 || r->status == 400) return {};
    return StatusError(*r, "revoke");
  }

  Result<std::vector<RecordMeta>> FetchMetadata(const CallContext& ctx, DataType type,
                                                TimeRange range) override {
    auto records = FetchRange(ctx, type, range);
    if (!records) return records.error();
    std::vector<RecordMeta> out;
    out.reserve(records->size());
    for (auto& r : *records) {
      // Data points are listed whole (steps are re-aggregated per day by FetchStepDays).
      if (ctx.fetched && type != DataType::kSteps) ctx.fetched->Keep(type, r);
      out.push_back(std::move(r.meta));
    }
    return out;
  }

  Result<std::vector<Record>> FetchPayloads(const CallContext& ctx, DataType type,
                                            const std::vector<std::string>& ids) override {
    if (ids.empty()) return std::vector<Record>{};
    if (type == DataType::kSteps) return FetchStepDays(ctx, ids);
    std::vector<Record> out;
    // Listed by the same job's metadata step: no GET per data point (weights still get their
    // body fat joined below).
    std::optional<std::vector<Record>> kept;
    if (ctx.fetched) kept = ctx.fetched->Take(type, ids);
    if (kept) {
      out = std::move(*kept);
    } else {
      const std::string seg(fitbit::DataTypeSegment(type));
      // One GET per data point, side by side when ctx allows.
      auto got = FetchEach(ctx, ids, [&](const std::string& id) -> Result<std::optional<Record>> {
        auto r = Get(ctx, DataPointsUrl(seg) + "/" + net::UrlEncode(id), seg + " get",
                     /*not_found_ok=*/true);
        if (!r) return r.error();
        if (r->status == 404) return std::optional<Record>{};  // deleted at Fitbit since the list
        auto obj = ParseObject(*r, seg);
        if (!obj) return obj.error();
        auto rec = fitbit::DecodeDataPoint(type, *obj);
        if (!rec) return rec.error();
        return std::optional<Record>(std::move(*rec));
      });
      if (!got) return got.error();
      out = std::move(*got);
    }
    if (type == DataType::kWeight) {
      if (auto st = JoinBodyFat(ctx, &out); !st) return st.error();
    }
    return out;
  }

  Result<std::vector<PushResult>> PushData(const CallContext& ctx, DataType type,
                                           const std::vector<Record>& records) override {
    const std::string seg(fitbit::DataTypeSegment(type));
    return PushEach(ctx, records, [&](const Record& rec) {
      PushResult pr;
      pr.source_id = rec.meta.id;
      auto body = fitbit::EncodeForCreate(type, rec);
      if (!body) {
        pr.error = body.error();
        return pr;
      }
      // Body fat is its own data type. It goes first, so that a failure leaves no weight
      // without its fat behind (a retried push writes both again).
      Result<std::string> dest = std::string();
      if (type == DataType::kWeight) {
        if (auto fat = fitbit::EncodeBodyFat(rec)) dest = Create(ctx, "body-fat", *fat);
      }
      if (dest) dest = Create(ctx, seg, *body);
      if (dest) {
        pr.ok = true;
        pr.dest_id = std::move(*dest);
      } else {
        pr.error = dest.error();
      }
      return pr;
    });
  }

  Result<std::optional<bool>> HasNewData(const CallContext& ctx, DataType type,
                                         TimeRange range) override {
    auto page = ListPage(ctx, type, Filter(type, range), 1, "");
    if (!page) return page.error();
    const json::value* pts = page->if_contains("dataPoints");
    bool any = pts && pts->is_array() && !pts->get_array().empty();
    return std::optional<bool>(any);
  }

  Result<WebhookOutcome> VerifyWebhook(const WebhookRequest& req) override {
    WebhookOutcome out;
    if (req.method == "GET") {
      // Subscriber verification: 204 when ?verify= matches our code, 404 otherwise.
      auto code = QueryParam(req.query, "verify");
      if (!code) return MakeError(Errc::kInvalidArgument, "fitbit webhook: verify code missing");
      bool match = !settings_.webhook_secret.empty() &&
                   fitbit::ConstantTimeEquals(*code, settings_.webhook_secret);
      out.challenge_response = std::make_pair(match ? 204 : 404, std::string());
      return out;
    }
    if (req.method != "POST")
      return MakeError(Errc::kInvalidArgument, "fitbit webhook: unsupported method");
    const std::string* sig = nullptr;
    for (const auto& [k, v] : req.headers) {
      if (k == "x-fitbit-signature") sig = &v;
    }
    if (!sig || sig->empty())
      return MakeError(Errc::kInvalidArgument, "fitbit webhook: signature missing");
    if (settings_.client_secret.empty() ||
        !fitbit::ConstantTimeEquals(
            *sig, fitbit::NotificationSignature(req.body, settings_.client_secret)))
      return MakeError(Errc::kInvalidArgument, "fitbit webhook: signature mismatch");
    auto events = fitbit::ParseNotificationBody(req.body);
    if (!events) return events.error();
    out.events = std::move(*events);
    return out;
  }

 private:
  // ---- HTTP plumbing -------------------------------------------------------------------------

  Result<net::HttpResult> Send(const CallContext* ctx, net::HttpCall call, bool bearer = true) {
    call.timeout = settings_.timeout;
    if (ctx && ctx->deadline != std::chrono::steady_clock::time_point::max()) {
      auto left = std::chrono::duration_cast<milliseconds>(ctx->deadline -
                                                           std::chrono::steady_clock::now());
      if (left <= milliseconds(0))
        return MakeError(Errc::kRetryable, "fitbit: deadline exceeded before the call");
      call.timeout = std::min(call.timeout, left);
    }
    call.headers.emplace_back("Accept", "application/json");
    if (ctx && bearer) call.headers.emplace_back("Authorization", "Bearer " + ctx->access_token);
    const auto sent_at = std::chrono::steady_clock::now();
    auto r = http_.Send(call);
    ReportRequest(ctx, sent_at);
    if (!r) {
      Error e = r.error();
      if (e.code == Errc::kInvalidArgument) e.code = Errc::kPermanent;  // bad base URL: config
      e.message = "fitbit: " + e.message;
      return e;
    }
    if (ctx) ReportRateLimit(*ctx, *r);
    return r;
  }

  // Fitbit-Rate-Limit-Limit / -Remaining / -Reset (seconds), 150 requests per user per hour.
  void ReportRateLimit(const CallContext& ctx, const net::HttpResult& r) const {
    if (!ctx.on_rate_limit) return;
    auto limit = HeaderInt(r, "fitbit-rate-limit-limit");
    auto remaining = HeaderInt(r, "fitbit-rate-limit-remaining");
    if (!limit || !remaining) return;
    RateLimitObservation o;
    o.scope = "user";
    o.limit = *limit;
    o.used = std::max<int64_t>(0, *limit - *remaining);
    o.window = std::chrono::seconds(3600);
    o.reset_in = std::chrono::seconds(HeaderInt(r, "fitbit-rate-limit-reset").value_or(0));
    ctx.on_rate_limit(o);
  }

  Error StatusError(const net::HttpResult& r, std::string_view what) const {
    std::string word = ErrorWord(r.body);
    std::string msg = "fitbit: " + std::string(what) + ": HTTP " + std::to_string(r.status) +
                      (word.empty() ? "" : " " + word);
    if (r.status == 401) return MakeError(Errc::kUnauthenticated, msg);
    if (r.status == 429) {
      Error e = MakeError(Errc::kRateLimited, msg);
      auto secs = HeaderInt(r, "retry-after");
      if (!secs) secs = HeaderInt(r, "fitbit-rate-limit-reset");
      e.retry_after = std::chrono::seconds(std::max<int64_t>(1, secs.value_or(60)));
      return e;
    }
    if (r.status >= 500 || r.status == 408) return MakeError(Errc::kRetryable, msg);
    return MakeError(Errc::kPermanent, msg);
  }

  Result<net::HttpResult> Get(const CallContext& ctx, std::string url, std::string_view what,
                              bool not_found_ok = false) {
    net::HttpCall call;
    call.url = std::move(url);
    auto r = Send(&ctx, std::move(call));
    if (!r) return r;
    if (not_found_ok && r->status == 404) return r;
    if (r->status != 200) return StatusError(*r, what);
    return r;
  }

  // The parsed tree lives in one arena (a shared monotonic resource, freed with the last value
  // that uses it): a list page is hundreds of small strings and objects, and a malloc each was
  // ~4% of the server's CPU in the end-to-end benchmark. Values moved out keep the arena.
  static Result<json::object> ParseObject(const net::HttpResult& r, std::string_view what) {
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec, json::make_shared_resource<json::monotonic_resource>());
    if (ec || !v.is_object())
      return MakeError(Errc::kPermanent, "fitbit: " + std::string(what) + ": malformed JSON");
    return std::move(v.get_object());
  }

  static std::optional<std::string> QueryParam(std::string_view query, std::string_view key) {
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view kv = query.substr(0, amp);
      size_t eq = kv.find('=');
      if (kv.substr(0, eq) == key)
        return eq == std::string_view::npos ? std::string() : PercentDecode(kv.substr(eq + 1));
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
    return std::nullopt;
  }

  static std::string PercentDecode(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        out += ' ';
      } else if (s[i] == '%' && i + 2 < s.size() &&
                 std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
        out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += s[i];
      }
    }
    return out;
  }

  // ---- OAuth ---------------------------------------------------------------------------------

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
      std::string word = ErrorWord(r->body);
      if ((r->status == 400 || r->status == 401) && word == "invalid_grant")
        return MakeError(Errc::kAuthRevoked, "fitbit: token: invalid_grant");
      Error e = StatusError(*r, "token");
      // On the token endpoint 401/403 mean bad client credentials: configuration, not a user.
      if (r->status == 401 || r->status == 403) e.code = Errc::kPermanent;
      return e;
    }
    auto body = ParseObject(*r, "token");
    if (!body) return body.error();
    TokenGrant g;
    const json::value* at = body->if_contains("access_token");
    if (!at || !at->is_string() || at->get_string().empty())
      return MakeError(Errc::kPermanent, "fitbit: token: access_token missing");
    g.access_token = std::string(at->get_string());
    // Google keeps the refresh token unless it rotates one; an absent one stays valid.
    const json::value* rt = body->if_contains("refresh_token");
    g.refresh_token = rt && rt->is_string() ? std::string(rt->get_string()) : old_refresh;
    if (const json::value* exp = body->if_contains("expires_in"); exp && exp->is_number()) {
      boost::system::error_code ec;
      auto secs = exp->to_number<int64_t>(ec);
      if (!ec && secs > 0) g.expires_at = clock_.Now() + std::chrono::seconds(secs);
    }
    if (const json::value* sc = body->if_contains("scope"); sc && sc->is_string())
      g.scope = std::string(sc->get_string());
    return g;
  }

  // ---- Data ----------------------------------------------------------------------------------

  std::string DataPointsUrl(std::string_view seg) const {
    return settings_.base_url + "/v4/users/me/dataTypes/" + std::string(seg) + "/dataPoints";
  }

  static std::string Clause(std::string_view field, int64_t from_ms, int64_t to_ms, bool civil) {
    auto fmt = [&](int64_t ms) {
      return civil ? fitbit::CivilDateTime(ms, 0) : fitbit::FormatRfc3339Ms(ms);
    };
    std::string f(field);
    return f + " >= \"" + fmt(from_ms) + "\" AND " + f + " < \"" + fmt(to_ms) + "\"";
  }

  // The list filter (AIP-160, only >= and <) covering records that start in `range`. Exercise
  // is filterable by civil start time only and sleep by end time only, so those ranges are
  // widened and the caller filters exactly on the decoded start.
  static std::string Filter(DataType type, TimeRange range) {
    switch (type) {
      case DataType::kWorkout:
        return Clause("exercise.interval.civil_start_time", range.start_ms - kMaxZoneMs,
                      range.end_ms + kMaxZoneMs, true);
      case DataType::kSleepSession:
        return Clause("sleep.interval.end_time", range.start_ms, range.end_ms + kMsPerDay, false);
      case DataType::kWeight:
        return Clause("weight.sample_time.physical_time", range.start_ms, range.end_ms, false);
      case DataType::kSteps: {
        // Whole local days that can start inside the range.
        const int64_t first = (range.start_ms - kMaxZoneMs) / kMsPerDay * kMsPerDay;
        const int64_t last = (range.end_ms + kMaxZoneMs) / kMsPerDay * kMsPerDay + kMsPerDay;
        return Clause("steps.interval.civil_start_time", first, last, true);
      }
    }
    return {};
  }

  Result<json::object> ListPage(const CallContext& ctx, DataType type, const std::string& filter,
                                int page_size, const std::string& page_token,
                                std::string_view seg_override = {}) {
    std::string seg(seg_override.empty() ? fitbit::DataTypeSegment(type) : seg_override);
    // Steps come from the reconciled stream so several devices are not counted twice.
    std::string url =
        DataPointsUrl(seg) + (type == DataType::kSteps && seg_override.empty() ? ":reconcile" : "");
    url += "?pageSize=" + std::to_string(page_size) + "&filter=" + net::UrlEncode(filter);
    if (!page_token.empty()) url += "&pageToken=" + net::UrlEncode(page_token);
    auto r = Get(ctx, std::move(url), seg + " list");
    if (!r) return r.error();
    return ParseObject(*r, seg + " list");
  }

  // Every data point matching `filter`, following nextPageToken.
  Result<std::vector<json::object>> ListAll(const CallContext& ctx, DataType type,
                                            const std::string& filter,
                                            std::string_view seg_override = {}) {
    std::vector<json::object> out;
    std::string token;
    std::set<std::string> seen;
    for (int page = 0; page < kMaxPages; ++page) {
      auto body = ListPage(ctx, type, filter, settings_.page_size, token, seg_override);
      if (!body) return body.error();
      if (json::value* pts = body->if_contains("dataPoints")) {
        if (!pts->is_array())
          return MakeError(Errc::kPermanent, "fitbit: list: dataPoints malformed");
        for (auto& p : pts->get_array()) {
          if (!p.is_object())
            return MakeError(Errc::kPermanent, "fitbit: list: data point malformed");
          out.push_back(std::move(p.get_object()));  // same storage: moved, not copied
        }
      }
      const json::value* next = body->if_contains("nextPageToken");
      if (!next || !next->is_string() || next->get_string().empty()) return out;
      token = std::string(next->get_string());
      if (!seen.insert(token).second)
        return MakeError(Errc::kPermanent, "fitbit: list: page token repeated");
    }
    return MakeError(Errc::kPermanent, "fitbit: list: too many pages");
  }

  // Records of `type` starting in `range`, sorted by start (payloads included).
  Result<std::vector<Record>> FetchRange(const CallContext& ctx, DataType type, TimeRange range) {
    std::vector<Record> out;
    auto points = ListAll(ctx, type, Filter(type, range));
    if (!points) return points.error();
    if (type == DataType::kSteps) {
      std::vector<fitbit::StepsInterval> ivs;
      ivs.reserve(points->size());
      for (const auto& p : *points) {
        auto iv = fitbit::DecodeStepsPoint(p);
        if (!iv) return iv.error();
        ivs.push_back(*iv);
      }
      for (auto& r : fitbit::AggregateDailySteps(ivs, ToUnixMillis(clock_.Now()))) {
        if (r.meta.start_ms >= range.start_ms && r.meta.start_ms < range.end_ms)
          out.push_back(std::move(r));
      }
      return out;
    }
    for (const auto& p : *points) {
      auto r = fitbit::DecodeDataPoint(type, p);
      if (!r) return r.error();
      if (r->meta.start_ms >= range.start_ms && r->meta.start_ms < range.end_ms)
        out.push_back(std::move(*r));
    }
    std::stable_sort(out.begin(), out.end(), [](const Record& a, const Record& b) {
      return a.meta.start_ms < b.meta.start_ms;
    });
    return out;
  }

  // Body fat is its own data type; a sample at the same instant as a weight belongs to it.
  Status JoinBodyFat(const CallContext& ctx, std::vector<Record>* weights) {
    if (weights->empty()) return {};
    int64_t lo = weights->front().meta.start_ms, hi = lo;
    for (const auto& w : *weights) {
      lo = std::min(lo, w.meta.start_ms);
      hi = std::max(hi, w.meta.start_ms);
    }
    auto points =
        ListAll(ctx, DataType::kWeight,
                Clause("body_fat.sample_time.physical_time", lo, hi + 1, false), "body-fat");
    if (!points) return points.error();
    std::map<int64_t, double> fat;
    for (const auto& p : *points) {
      auto s = fitbit::DecodeBodyFat(p);
      if (!s) return s.error();
      fat[s->time_ms] = s->percentage;
    }
    for (auto& w : *weights) {
      auto it = fat.find(w.meta.start_ms);
      if (it == fat.end()) continue;
      if (auto* wd = std::get_if<WeightData>(&w.data)) wd->fat_ratio = it->second / 100.0;
    }
    return {};
  }

  Result<std::vector<Record>> FetchStepDays(const CallContext& ctx,
                                            const std::vector<std::string>& ids) {
    int64_t lo = 0, hi = 0;
    bool first = true;
    for (const auto& id : ids) {
      auto day = fitbit::ParseCivilDate(id);
      if (!day) return MakeError(Errc::kPermanent, "fitbit: steps: record id is not a date");
      lo = first ? *day : std::min(lo, *day);
      hi = first ? *day : std::max(hi, *day);
      first = false;
    }
    auto points = ListAll(
        ctx, DataType::kSteps,
        Clause("steps.interval.civil_start_time", lo * kMsPerDay, (hi + 1) * kMsPerDay, true));
    if (!points) return points.error();
    std::vector<fitbit::StepsInterval> ivs;
    for (const auto& p : *points) {
      auto iv = fitbit::DecodeStepsPoint(p);
      if (!iv) return iv.error();
      ivs.push_back(*iv);
    }
    std::map<std::string, Record> by_id;
    for (auto& r : fitbit::AggregateDailySteps(ivs, ToUnixMillis(clock_.Now())))
      by_id.emplace(r.meta.id, std::move(r));
    std::vector<Record> out;
    for (const auto& id : ids) {
      auto it = by_id.find(id);
      if (it == by_id.end())
        return MakeError(Errc::kPermanent, "fitbit: steps: no data for a requested day");
      out.push_back(it->second);
    }
    return out;
  }

  // POSTs one data point; returns the new data point's id. The create method answers with a
  // long-running Operation; an unfinished one is polled once.
  Result<std::string> Create(const CallContext& ctx, std::string_view seg,
                             const json::object& data_point) {
    net::HttpCall call;
    call.method = "POST";
    call.url = DataPointsUrl(seg);
    call.headers = {{"Content-Type", "application/json"}};
    call.body = json::serialize(data_point);
    auto r = Send(&ctx, std::move(call));
    if (!r) return r.error();
    if (r->status != 200 && r->status != 201) return StatusError(*r, std::string(seg) + " create");
    auto body = ParseObject(*r, std::string(seg) + " create");
    if (!body) return body.error();
    auto id = IdFromOperation(*body);
    if (id || id.error().code != Errc::kRetryable) return id;
    // Not done yet: poll the operation once.
    const json::value* op_name = body->if_contains("name");
    if (!op_name || !op_name->is_string()) return id;
    auto polled =
        Get(ctx, settings_.base_url + "/v4/" + std::string(op_name->get_string()), "operation get");
    if (!polled) return polled.error();
    auto pbody = ParseObject(*polled, "operation get");
    if (!pbody) return pbody.error();
    return IdFromOperation(*pbody);
  }

  static Result<std::string> IdFromOperation(const json::object& op) {
    if (!op.contains("done") && !op.contains("response")) {
      // A plain DataPoint (an immediate answer).
      const json::value* n = op.if_contains("name");
      if (n && n->is_string() && !n->get_string().empty())
        return fitbit::DataPointId(n->get_string());
      return MakeError(Errc::kPermanent, "fitbit: create: response without a name");
    }
    if (const json::value* err = op.if_contains("error"); err && err->is_object()) {
      const json::value* code = err->get_object().if_contains("code");
      int64_t c = code && code->is_int64() ? code->get_int64() : 0;
      std::string msg = "fitbit: create: operation failed with code " + std::to_string(c);
      // google.rpc.Code: 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE, 4 DEADLINE_EXCEEDED,
      // 16 UNAUTHENTICATED, 10 ABORTED.
      if (c == 8) {
        Error e = MakeError(Errc::kRateLimited, msg);
        e.retry_after = std::chrono::seconds(60);
        return e;
      }
      if (c == 14 || c == 4 || c == 10) return MakeError(Errc::kRetryable, msg);
      if (c == 16) return MakeError(Errc::kUnauthenticated, msg);
      return MakeError(Errc::kPermanent, msg);
    }
    const json::value* done = op.if_contains("done");
    const json::value* resp = op.if_contains("response");
    if (resp && resp->is_object()) {
      const json::value* n = resp->get_object().if_contains("name");
      if (n && n->is_string() && !n->get_string().empty())
        return fitbit::DataPointId(n->get_string());
      return MakeError(Errc::kPermanent, "fitbit: create: response without a name");
    }
    if (done && done->is_bool() && done->get_bool())
      return MakeError(Errc::kPermanent, "fitbit: create: done without a response");
    return MakeError(Errc::kRetryable, "fitbit: create: operation still running");
  }

  ConnectorSettings settings_;
  net::HttpClient& http_;
  const Clock& clock_;
  std::string token_url_;
  std::string revoke_url_;
};

}  // namespace

std::unique_ptr<Provider> MakeFitbitProvider(ConnectorSettings settings, net::HttpClient& http,
                                             const Clock& clock) {
  return std::make_unique<FitbitProvider>(std::move(settings), http, clock);
}

}  // namespace syncwell::providers
