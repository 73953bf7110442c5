#include "providers/strava/mapping.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/civil_time.hpp"

namespace syncwell::providers::strava {

namespace json = boost::json;

namespace {

constexpr size_t kMaxWebhookBody = 64 * 1024;
constexpr size_t kMaxChallenge = 512;

// --- civil time (Howard Hinnant's algorithms) ------------------------------------------------

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// --- JSON helpers ----------------------------------------------------------------------------
const json::value* Get(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() || it->value().is_null() ? nullptr : &it->value();
}

std::optional<int64_t> AsInt(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) {
    auto u = v->get_uint64();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v->is_double()) {
    double d = v->get_double();
    if (!std::isfinite(d) || std::fabs(d) > 9.0e18) return std::nullopt;
    return static_cast<int64_t>(std::llround(d));
  }
  if (v->is_string()) {
    const auto& s = v->get_string();
    if (s.empty() || s.size() > 18) return std::nullopt;
    int64_t out = 0;
    for (char c : s) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      out = out * 10 + (c - '0');
    }
    return out;
  }
  return std::nullopt;
}

std::optional<double> AsNumber(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_double()) {
    double d = v->get_double();
    return std::isfinite(d) ? std::optional<double>(d) : std::nullopt;
  }
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  return std::nullopt;
}

std::string AsString(const json::value* v) {
  if (!v || !v->is_string()) return {};
  return std::string(v->get_string());
}

bool AsBool(const json::value* v) { return v && v->is_bool() && v->get_bool(); }

// Strava ids are 64-bit integers; accept their string form too.
std::optional<std::string> IdOf(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_string()) {
    std::string s(v->get_string());
    if (s.empty() || s.size() > 64) return std::nullopt;
    return s;
  }
  auto i = AsInt(v);
  if (!i) return std::nullopt;
  return std::to_string(*i);
}

Result<json::value> ParseJson(std::string_view body, std::string_view what) {
  json::error_code ec;
  json::parse_options opt;
  opt.max_depth = 32;
  // One arena for the whole tree (see the Fitbit connector's ParseObject).
  json::value v =
      json::parse(body, ec, json::make_shared_resource<json::monotonic_resource>(), opt);
  if (ec) return MakeError(Errc::kPermanent, "strava: malformed JSON in " + std::string(what));
  return v;
}

Result<RecordMeta> MetaFromActivity(const json::object& a) {
  RecordMeta m;
  m.type = DataType::kWorkout;
  auto id = IdOf(Get(a, "id"));
  if (!id) return MakeError(Errc::kPermanent, "strava: activity without id");
  m.id = *id;
  int32_t written_offset = 0;
  auto start = ParseIsoTime(AsString(Get(a, "start_date")), &written_offset);
  if (!start) return MakeError(Errc::kPermanent, "strava: activity start_date missing or invalid");
  m.start_ms = *start;
  auto elapsed = AsInt(Get(a, "elapsed_time"));
  if (!elapsed || *elapsed < 0 || *elapsed > 31LL * 86400)
    return MakeError(Errc::kPermanent, "strava: activity elapsed_time missing or invalid");
  m.end_ms = m.start_ms + *elapsed * 1000;
  // Offset: start_date_local is the local wall clock written with a "Z"; its difference to
  // start_date is the offset at that instant. utc_offset (seconds) is the fallback.
  auto local = ParseIsoTime(AsString(Get(a, "start_date_local")));
  if (local && std::llabs(*local - m.start_ms) <= 18LL * 3600 * 1000) {
    m.utc_offset_min = static_cast<int32_t>(std::llround((*local - m.start_ms) / 60000.0));
  } else if (auto off = AsNumber(Get(a, "utc_offset")); off && std::fabs(*off) <= 18 * 3600) {
    m.utc_offset_min = static_cast<int32_t>(std::lround(*off / 60.0));
  }
  // Strava exposes no modification time: the end of the activity is the earliest moment it
  // can have been recorded (README: "modified").
  m.modified_ms = m.end_ms;
  std::string sport = AsString(Get(a, "sport_type"));
  if (sport.empty()) sport = AsString(Get(a, "type"));
  m.activity = CanonicalActivity(sport, AsBool(Get(a, "trainer")));
  m.origin = OriginFrom(AsString(Get(a, "external_id")), AsString(Get(a, "description")));
  return m;
}

struct Usage {
  int64_t limit15 = 0, limit_day = 0, used15 = 0, used_day = 0;
};

// A whole non-negative decimal number (surrounding spaces allowed).
std::optional<int64_t> ParseCount(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

bool ParsePair(const std::string* s, int64_t* a, int64_t* b) {
  if (!s) return false;
  auto comma = s->find(',');
  if (comma == std::string::npos) return false;
  auto x = ParseCount(std::string_view(*s).substr(0, comma));
  auto y = ParseCount(std::string_view(*s).substr(comma + 1));
  if (!x || !y) return false;
  *a = *x;
  *b = *y;
  return true;
}

std::optional<Usage> ReadUsage(const net::HttpResult& r, std::string_view limit_header,
                               std::string_view usage_header) {
  Usage u;
  if (!ParsePair(r.Header(limit_header), &u.limit15, &u.limit_day)) return std::nullopt;
  if (!ParsePair(r.Header(usage_header), &u.used15, &u.used_day)) return std::nullopt;
  return u;
}

std::chrono::seconds ToNextQuarterHour(TimePoint now) {
  int64_t s = ToUnixMillis(now) / 1000;
  return std::chrono::seconds{900 - ((s % 900) + 900) % 900};
}

std::chrono::seconds ToMidnightUtc(TimePoint now) {
  int64_t s = ToUnixMillis(now) / 1000;
  return std::chrono::seconds{86400 - ((s % 86400) + 86400) % 86400};
}

// Strava error bodies: {"message": ..., "errors": [{"resource","field","code"}]}. Only these
// identifiers (never values) go into our messages, and only if they look like identifiers.
std::string ErrorDetail(std::string_view body, std::string* resource_out) {
  json::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return {};
  const auto* errs = Get(v.get_object(), "errors");
  if (!errs || !errs->is_array() || errs->get_array().empty()) return {};
  const auto& e0 = errs->get_array()[0];
  if (!e0.is_object()) return {};
  auto clean = [](std::string s) {
    if (s.size() > 48) s.resize(48);
    for (char c : s) {
      // Letters only (plus '_', ':', ' '): digits could be a value echoed back.
      if (!std::isalpha(static_cast<unsigned char>(c)) && c != '_' && c != ' ' && c != ':')
        return std::string("?");
    }
    return s;
  };
  std::string resource = clean(AsString(Get(e0.get_object(), "resource")));
  if (resource_out) *resource_out = resource;
  return resource + "/" + clean(AsString(Get(e0.get_object(), "field"))) + " " +
         clean(AsString(Get(e0.get_object(), "code")));
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && HexVal(s[i + 1]) >= 0 && HexVal(s[i + 2]) >= 0) {
      out += static_cast<char>(HexVal(s[i + 1]) * 16 + HexVal(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

const std::string* FormValue(const std::vector<std::pair<std::string, std::string>>& f,
                             std::string_view key) {
  for (const auto& [k, v] : f) {
    if (k == key) return &v;
  }
  return nullptr;
}

}  // namespace

// --- Activity types --------------------------------------------------------------------------

std::string CanonicalActivity(std::string_view s, bool trainer) {
  if (s == "Run") return trainer ? "treadmill_run" : "run";
  if (s == "TrailRun") return "trail_run";
  if (s == "VirtualRun") return "virtual_run";
  if (s == "Ride" || s == "GravelRide") return "ride";
  if (s == "VirtualRide") return "virtual_ride";
  if (s == "MountainBikeRide") return "mountain_bike_ride";
  if (s == "EBikeRide" || s == "EMountainBikeRide") return "e_bike_ride";
  if (s == "Walk") return "walk";
  if (s == "Hike") return "hike";
  if (s == "Swim") return "swim";
  if (s == "WeightTraining") return "strength";
  if (s == "Yoga") return "yoga";
  if (s == "Rowing" || s == "VirtualRow") return "rowing";
  if (s == "Elliptical") return "elliptical";
  return "other";
}

StravaType ToStravaType(std::string_view a) {
  if (a == "run") return {"Run", false};
  if (a == "trail_run") return {"TrailRun", false};
  if (a == "treadmill_run") return {"Run", true};
  if (a == "virtual_run") return {"VirtualRun", false};
  if (a == "ride") return {"Ride", false};
  if (a == "virtual_ride") return {"VirtualRide", false};
  if (a == "mountain_bike_ride") return {"MountainBikeRide", false};
  if (a == "e_bike_ride") return {"EBikeRide", false};
  if (a == "walk") return {"Walk", false};
  if (a == "hike") return {"Hike", false};
  if (a == "swim" || a == "open_water_swim") return {"Swim", false};
  if (a == "strength") return {"WeightTraining", false};
  if (a == "yoga") return {"Yoga", false};
  if (a == "rowing") return {"Rowing", false};
  if (a == "elliptical") return {"Elliptical", false};
  return {"Workout", false};
}

// --- Time ------------------------------------------------------------------------------------

std::optional<int64_t> ParseIsoTime(std::string_view s, int32_t* offset_min) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
  if (s.size() < 19 || !Digits(s, 0, 4, &y) || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != ' ') ||
      !Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' ||
      !Digits(s, 17, 2, &se))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t pos = 19;
  int64_t ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int scale = 100;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      ms += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
  }
  int32_t off = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' || s[pos] == 'z') {
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      int oh = 0, om = 0;
      int sign = s[pos] == '-' ? -1 : 1;
      if (!Digits(s, pos + 1, 2, &oh)) return std::nullopt;
      size_t p = pos + 3;
      if (p < s.size() && s[p] == ':') ++p;
      if (!Digits(s, p, 2, &om)) return std::nullopt;
      if (oh > 18 || om > 59) return std::nullopt;
      off = sign * (oh * 60 + om);
      pos = p + 2;
    } else {
      return std::nullopt;
    }
  }
  if (pos != s.size()) return std::nullopt;
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t local_ms = ((days * 24 + h) * 60 + mi) * 60000LL + se * 1000LL + ms;
  if (offset_min) *offset_min = off;
  return local_ms - off * 60000LL;
}

std::string FormatLocalTime(int64_t utc_ms, int32_t offset_min) {
  int64_t local_s = FloorDiv(utc_ms, 1000) + offset_min * 60LL;
  int64_t days = FloorDiv(local_s, 86400);
  int64_t sod = local_s - days * 86400;
  int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(days, &y, &m, &d);
  int32_t a = offset_min < 0 ? -offset_min : offset_min;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld%c%02d:%02d",
                static_cast<long long>(y), m, d, static_cast<long long>(sod / 3600),
                static_cast<long long>(sod / 60 % 60), static_cast<long long>(sod % 60),
                offset_min < 0 ? '-' : '+', a / 60, a % 60);
  return buf;
}

// --- Origin ----------------------------------------------------------------------------------

std::string DescriptionWithOrigin(std::string_view origin) {
  if (origin.empty()) return "Synced by SyncWell";
  return "Synced by SyncWell [" + std::string(origin) + "]";
}

std::string OriginFrom(std::string_view external_id, std::string_view description) {
  if (IsOurOrigin(external_id) && external_id.size() <= 128) return std::string(external_id);
  auto pos = description.find("[sw1:");
  if (pos == std::string_view::npos) return {};
  auto end = description.find(']', pos);
  if (end == std::string_view::npos || end - pos > 128) return {};
  std::string tag(description.substr(pos + 1, end - pos - 1));
  for (size_t i = 4; i < tag.size(); ++i) {
    if (!std::isalnum(static_cast<unsigned char>(tag[i]))) return {};
  }
  return tag.size() > 4 ? tag : std::string();
}

// --- Activities ------------------------------------------------------------------------------

Result<std::vector<RecordMeta>> ParseActivityList(std::string_view body) {
  auto v = ParseJson(body, "activity list");
  if (!v.ok()) return v.error();
  if (!v->is_array()) return MakeError(Errc::kPermanent, "strava: activity list is not an array");
  std::vector<RecordMeta> out;
  out.reserve(v->get_array().size());
  for (const auto& item : v->get_array()) {
    if (!item.is_object()) return MakeError(Errc::kPermanent, "strava: activity is not an object");
    auto m = MetaFromActivity(item.get_object());
    if (!m.ok()) return m.error();
    out.push_back(std::move(*m));
  }
  return out;
}

Result<Record> ParseActivityDetail(std::string_view body) {
  auto v = ParseJson(body, "activity");
  if (!v.ok()) return v.error();
  if (!v->is_object()) return MakeError(Errc::kPermanent, "strava: activity is not an object");
  const auto& a = v->get_object();
  auto m = MetaFromActivity(a);
  if (!m.ok()) return m.error();
  WorkoutData w;
  w.name = AsString(Get(a, "name"));
  w.distance_m = std::max(0.0, AsNumber(Get(a, "distance")).value_or(0.0));
  w.energy_kcal = std::max(0.0, AsNumber(Get(a, "calories")).value_or(0.0));
  if (auto hr = AsNumber(Get(a, "average_heartrate")); hr && *hr > 0 && *hr < 400)
    w.avg_heart_rate_bpm = static_cast<int>(std::lround(*hr));
  return Record{std::move(*m), std::move(w)};
}

std::vector<std::pair<std::string, std::string>> CreateActivityFields(const Record& r) {
  const auto* w = std::get_if<WorkoutData>(&r.data);
  StravaType t = ToStravaType(r.meta.activity);
  std::string name = w && !w->name.empty() ? w->name : t.sport_type;
  int64_t elapsed = std::max<int64_t>(1, (r.meta.end_ms - r.meta.start_ms + 999) / 1000);
  std::vector<std::pair<std::string, std::string>> f;
  f.emplace_back("name", name);
  f.emplace_back("sport_type", t.sport_type);
  f.emplace_back("start_date_local", FormatLocalTime(r.meta.start_ms, r.meta.utc_offset_min));
  f.emplace_back("elapsed_time", std::to_string(elapsed));
  if (w && w->distance_m > 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", w->distance_m);
    f.emplace_back("distance", buf);
  }
  f.emplace_back("description", DescriptionWithOrigin(r.meta.origin));
  f.emplace_back("trainer", t.trainer ? "1" : "0");
  f.emplace_back("commute", "0");
  if (!r.meta.origin.empty()) f.emplace_back("external_id", r.meta.origin);
  return f;
}

Result<std::string> ParseCreatedId(std::string_view body) {
  auto v = ParseJson(body, "create answer");
  if (!v.ok()) return v.error();
  if (!v->is_object()) return MakeError(Errc::kPermanent, "strava: create answer not an object");
  auto id = IdOf(Get(v->get_object(), "id"));
  if (!id) return MakeError(Errc::kPermanent, "strava: create answer without id");
  return *id;
}

// --- OAuth -----------------------------------------------------------------------------------

Result<TokenGrant> ParseTokenResponse(std::string_view body) {
  auto v = ParseJson(body, "token response");
  if (!v.ok()) return v.error();
  if (!v->is_object()) return MakeError(Errc::kPermanent, "strava: token response not an object");
  const auto& o = v->get_object();
  TokenGrant g;
  g.access_token = AsString(Get(o, "access_token"));
  g.refresh_token = AsString(Get(o, "refresh_token"));
  if (g.access_token.empty()) return MakeError(Errc::kPermanent, "strava: no access_token");
  if (auto exp = AsInt(Get(o, "expires_at")); exp && *exp > 0)
    g.expires_at = FromUnixMillis(*exp * 1000);
  if (const auto* athlete = Get(o, "athlete"); athlete && athlete->is_object()) {
    if (auto id = IdOf(Get(athlete->get_object(), "id"))) g.provider_user_id = *id;
  }
  g.scope = AsString(Get(o, "scope"));
  return g;
}

// --- Errors and rate limits ------------------------------------------------------------------

std::vector<RateLimitObservation> ParseRateLimits(const net::HttpResult& r, TimePoint now) {
  std::vector<RateLimitObservation> out;
  auto u = ReadUsage(r, "x-ratelimit-limit", "x-ratelimit-usage");
  if (!u) return out;
  out.push_back({"app", u->limit15, u->used15, std::chrono::seconds{900}, ToNextQuarterHour(now)});
  out.push_back(
      {"app", u->limit_day, u->used_day, std::chrono::seconds{86400}, ToMidnightUtc(now)});
  return out;
}

std::chrono::milliseconds RetryAfter(const net::HttpResult& r, TimePoint now) {
  if (const auto* ra = r.Header("retry-after")) {
    if (auto s = ParseCount(*ra); s && *s <= 86400) return std::chrono::seconds{*s};
  }
  std::chrono::seconds wait{0};
  for (auto hdrs :
       {std::pair<std::string_view, std::string_view>{"x-ratelimit-limit", "x-ratelimit-usage"},
        std::pair<std::string_view, std::string_view>{"x-readratelimit-limit",
                                                      "x-readratelimit-usage"}}) {
    auto u = ReadUsage(r, hdrs.first, hdrs.second);
    if (!u) continue;
    if (u->limit_day > 0 && u->used_day >= u->limit_day) wait = std::max(wait, ToMidnightUtc(now));
    if (u->limit15 > 0 && u->used15 >= u->limit15) wait = std::max(wait, ToNextQuarterHour(now));
  }
  if (wait.count() == 0) wait = ToNextQuarterHour(now);
  return wait;
}

Error MapHttpError(const net::HttpResult& r, std::string_view what, bool token_endpoint,
                   TimePoint now) {
  std::string resource;
  std::string detail = ErrorDetail(r.body, &resource);
  std::string msg = "strava: HTTP " + std::to_string(r.status) + " on " + std::string(what);
  if (!detail.empty()) msg += " (" + detail + ")";
  if (r.status == 429) {
    Error e = MakeError(Errc::kRateLimited, msg);
    e.retry_after = RetryAfter(r, now);
    return e;
  }
  if (r.status >= 500 || r.status == 408) return MakeError(Errc::kRetryable, msg);
  if (token_endpoint && (r.status == 400 || r.status == 401)) {
    // The app's own credentials being wrong is configuration, not the user's grant.
    if (resource == "Application") return MakeError(Errc::kPermanent, msg);
    return MakeError(Errc::kAuthRevoked, msg);
  }
  if (r.status == 401) return MakeError(Errc::kUnauthenticated, msg);
  return MakeError(Errc::kPermanent, msg);
}

// --- Webhooks --------------------------------------------------------------------------------

std::vector<std::pair<std::string, std::string>> ParseForm(std::string_view s) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  while (i <= s.size() && !s.empty()) {
    size_t amp = s.find('&', i);
    if (amp == std::string_view::npos) amp = s.size();
    std::string_view part = s.substr(i, amp - i);
    if (!part.empty()) {
      size_t eq = part.find('=');
      if (eq == std::string_view::npos) {
        out.emplace_back(PercentDecode(part), "");
      } else {
        out.emplace_back(PercentDecode(part.substr(0, eq)), PercentDecode(part.substr(eq + 1)));
      }
    }
    if (amp == s.size()) break;
    i = amp + 1;
  }
  return out;
}

Result<WebhookOutcome> ParseWebhook(const WebhookRequest& req, std::string_view verify_token) {
  auto bad = [](std::string m) {
    return MakeError(Errc::kInvalidArgument, "strava webhook: " + m);
  };
  if (req.method == "GET") {
    auto q = ParseForm(req.query);
    const auto* mode = FormValue(q, "hub.mode");
    const auto* token = FormValue(q, "hub.verify_token");
    const auto* challenge = FormValue(q, "hub.challenge");
    if (!mode || *mode != "subscribe") return bad("hub.mode is not subscribe");
    if (!challenge || challenge->empty() || challenge->size() > kMaxChallenge)
      return bad("hub.challenge missing or too long");
    if (verify_token.empty() || !token || !ConstantTimeEquals(*token, verify_token))
      return bad("verify token mismatch");
    json::object o;
    o["hub.challenge"] = *challenge;
    WebhookOutcome out;
    out.challenge_response = std::make_pair(200, json::serialize(o));
    return out;
  }
  if (req.method != "POST") return bad("unexpected method");
  if (req.body.size() > kMaxWebhookBody) return bad("body too large");
  json::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec || !v.is_object()) return bad("body is not a JSON object");
  const auto& o = v.get_object();
  std::string object_type = AsString(Get(o, "object_type"));
  std::string aspect = AsString(Get(o, "aspect_type"));
  auto owner = AsInt(Get(o, "owner_id"));
  auto object_id = AsInt(Get(o, "object_id"));
  auto subscription = AsInt(Get(o, "subscription_id"));
  auto event_time = AsInt(Get(o, "event_time"));
  if (object_type != "activity" && object_type != "athlete") return bad("unknown object_type");
  if (aspect != "create" && aspect != "update" && aspect != "delete")
    return bad("unknown aspect_type");
  if (!owner || *owner <= 0) return bad("owner_id missing");
  if (!object_id || !subscription || !event_time) return bad("required field missing");
  const auto* updates = Get(o, "updates");
  if (updates && !updates->is_object()) return bad("updates is not an object");

  WebhookEvent e;
  e.provider_user_id = std::to_string(*owner);
  e.kind = aspect;
  if (object_type == "activity") {
    e.type = DataType::kWorkout;
  } else {
    // Athlete events: only a revocation ("authorized": "false") matters to us.
    const auto* auth = updates ? Get(updates->get_object(), "authorized") : nullptr;
    bool revoked = auth && ((auth->is_string() && auth->get_string() == "false") ||
                            (auth->is_bool() && !auth->get_bool()));
    if (revoked) e.kind = "deauthorize";
  }
  WebhookOutcome out;
  out.events.push_back(std::move(e));
  return out;
}

}  // namespace syncwell::providers::strava
