// The simulated Strava API v3: OAuth token exchange/refresh and deauthorization, the athlete's
// activity list (before/after/page/per_page), activity detail, manual activity creation, the
// rate-limit headers, and the push-subscription event the real Strava POSTs. Paths are the real
// ones under "/strava": the connector's base_url "http://host:port/strava" stands in for
// https://www.strava.com. Written independently of the connector (src/providers/strava) from the
// public documentation; src/providers/strava/README.md lists the shapes and the simplifications.
//
// Origin round-trip: a created activity keeps the SyncWell origin tag from the `external_id`
// form field or from the "[sw1:...]" marker in `description`, and answers it in `external_id`
// and in the description marker (README "Origin").
#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "core/civil_time.hpp"
#include "providers/sim/synthetic.hpp"
#include "providers/sim/world.hpp"

namespace syncwell::sim {

namespace {

namespace json = boost::json;
using api::HttpRequest;
using api::HttpResponse;
using providers::DataType;
using providers::Record;

const std::string kStrava = "strava";
constexpr int64_t kAllTime = std::numeric_limits<int64_t>::max() / 4;
constexpr int kDefaultPerPage = 30;  // Strava's documented default
constexpr int kMaxPerPage = 200;
// Strava's default daily limit next to 600/15 min (SPEC S6); the simulator counts only the
// 15-minute window, so the daily usage shown is that window's.
constexpr int64_t kDailyLimitFactor = 50;

HttpResponse JsonReply(int status, const json::value& v) {
  HttpResponse r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

// Strava's error shape: {"message": ..., "errors": [{"resource", "field", "code"}]}.
HttpResponse StravaError(int status, std::string_view message, std::string_view resource,
                         std::string_view field, std::string_view code) {
  return JsonReply(
      status,
      json::object{{"message", message},
                   {"errors", json::array{json::object{
                                  {"resource", resource}, {"field", field}, {"code", code}}}}});
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
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

void ParseFormInto(std::string_view s, std::map<std::string, std::string>* out) {
  while (!s.empty()) {
    size_t amp = s.find('&');
    std::string_view kv = s.substr(0, amp);
    size_t eq = kv.find('=');
    if (!kv.empty())
      (*out)[PercentDecode(kv.substr(0, eq))] =
          eq == std::string_view::npos ? std::string() : PercentDecode(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    s.remove_prefix(amp + 1);
  }
}

// Strava takes parameters in the query string, a form body or a JSON body.
std::map<std::string, std::string> Params(const HttpRequest& req) {
  std::map<std::string, std::string> p;
  ParseFormInto(req.query, &p);
  const std::string* ct = req.Header("content-type");
  if (ct && ct->find("json") != std::string::npos) {
    json::error_code ec;
    json::value v = json::parse(req.body, ec);
    if (!ec && v.is_object()) {
      for (const auto& [k, val] : v.get_object()) {
        if (val.is_string()) {
          p[std::string(k)] = std::string(val.get_string());
        } else if (!val.is_null()) {
          p[std::string(k)] = json::serialize(val);
        }
      }
    }
  } else {
    ParseFormInto(req.body, &p);
  }
  return p;
}

std::optional<int64_t> ParseInt(const std::string& s) {
  if (s.empty() || s.size() > 15) return std::nullopt;
  int64_t v = 0;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return std::nullopt;
  for (; i < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return s[0] == '-' ? -v : v;
}

std::optional<double> ParseNumber(const std::string& s) {
  if (s.empty() || s.size() > 32) return std::nullopt;
  double d = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(d)) return std::nullopt;
  return d;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// "YYYY-MM-DDTHH:MM:SSZ" of a wall-clock time given as epoch-like milliseconds.
std::string IsoZ(int64_t ms) {
  int64_t secs = FloorDiv(ms, 1000);
  int64_t z = FloorDiv(secs, 86400) + 719468;
  int64_t sod = secs - FloorDiv(secs, 86400) * 86400;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ",
                static_cast<long long>(y), m % 100u, d % 100u, static_cast<long long>(sod / 3600),
                static_cast<long long>(sod / 60 % 60), static_cast<long long>(sod % 60));
  return buf;
}

// start_date_local as Strava accepts it: "YYYY-MM-DDTHH:MM:SS" with an optional fraction and an
// optional "Z" (read as local time, like Strava's own output) or "+HH:MM" offset.
struct LocalTime {
  int64_t wall_ms = 0;
  std::optional<int32_t> offset_min;
};
std::optional<LocalTime> ParseLocal(std::string_view s) {
  auto num = [&](size_t pos, size_t n, int* out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
  };
  int y, mo, d, h, mi, se;
  if (s.size() < 19 || !num(0, 4, &y) || s[4] != '-' || !num(5, 2, &mo) || s[7] != '-' ||
      !num(8, 2, &d) || s[10] != 'T' || !num(11, 2, &h) || s[13] != ':' || !num(14, 2, &mi) ||
      s[16] != ':' || !num(17, 2, &se) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
      mi > 59 || se > 59)
    return std::nullopt;
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
  }
  LocalTime t;
  t.wall_ms =
      ((DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 24 + h) * 60 + mi) *
          60000LL +
      se * 1000LL;
  if (pos == s.size()) return t;
  if (s[pos] == 'Z' && pos + 1 == s.size()) return t;
  int oh, om;
  if ((s[pos] == '+' || s[pos] == '-') && pos + 6 == s.size() && num(pos + 1, 2, &oh) &&
      s[pos + 3] == ':' && num(pos + 4, 2, &om) && oh <= 14 && om <= 59) {
    t.offset_min = (s[pos] == '-' ? -1 : 1) * (oh * 60 + om);
    return t;
  }
  return std::nullopt;
}

// Canonical activity <-> Strava sport_type / legacy type (SportType enum of the API reference).
struct StravaKind {
  const char* canonical;
  const char* sport_type;
  const char* legacy_type;
  bool trainer;
};
constexpr StravaKind kKinds[] = {
    {"run", "Run", "Run", false},
    {"treadmill_run", "Run", "Run", true},
    {"trail_run", "TrailRun", "Run", false},
    {"virtual_run", "VirtualRun", "VirtualRun", false},
    {"ride", "Ride", "Ride", false},
    {"virtual_ride", "VirtualRide", "VirtualRide", false},
    {"mountain_bike_ride", "MountainBikeRide", "Ride", false},
    {"e_bike_ride", "EBikeRide", "EBikeRide", false},
    {"walk", "Walk", "Walk", false},
    {"hike", "Hike", "Hike", false},
    {"swim", "Swim", "Swim", false},
    {"open_water_swim", "Swim", "Swim", false},
    {"strength", "WeightTraining", "WeightTraining", false},
    {"yoga", "Yoga", "Yoga", false},
    {"rowing", "Rowing", "Rowing", false},
    {"elliptical", "Elliptical", "Elliptical", false},
};

const StravaKind& KindOf(std::string_view canonical) {
  static constexpr StravaKind kOther{"other", "Workout", "Workout", false};
  for (const auto& k : kKinds) {
    if (canonical == k.canonical) return k;
  }
  return kOther;
}

std::string CanonicalOf(std::string_view sport_type, bool trainer) {
  if (sport_type == "Run" && trainer) return "treadmill_run";
  for (const auto& k : kKinds) {
    if (sport_type == k.sport_type && !k.trainer) return k.canonical;
  }
  if (sport_type == "GravelRide") return "ride";
  if (sport_type == "EMountainBikeRide") return "e_bike_ride";
  if (sport_type == "VirtualRow") return "rowing";
  return "other";
}

std::string OriginFromDescription(std::string_view d) {
  auto pos = d.find("[sw1:");
  if (pos == std::string_view::npos) return {};
  auto end = d.find(']', pos);
  if (end == std::string_view::npos || end - pos > 128) return {};
  return std::string(d.substr(pos + 1, end - pos - 1));
}

json::value IdValue(const std::string& id) {
  if (!id.empty() && id.size() <= 18 &&
      std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return json::value(std::stoll(id));
  return json::value(id);
}

std::string ZoneLabel(int32_t offset_min) {
  int32_t a = offset_min < 0 ? -offset_min : offset_min;
  char buf[64];
  if (offset_min % 60 == 0) {
    std::snprintf(buf, sizeof buf, "(GMT%c%02d:00) Etc/GMT%c%d", offset_min < 0 ? '-' : '+', a / 60,
                  offset_min > 0 ? '-' : '+', a / 60);
  } else {
    std::snprintf(buf, sizeof buf, "(GMT%c%02d:%02d) Etc/Unknown", offset_min < 0 ? '-' : '+',
                  a / 60, a % 60);
  }
  return buf;
}

json::object EncodeActivity(const Record& r, const std::string& athlete_id, bool detailed) {
  const auto* w = std::get_if<providers::WorkoutData>(&r.data);
  const StravaKind& k = KindOf(r.meta.activity);
  const int64_t elapsed = (r.meta.end_ms - r.meta.start_ms) / 1000;
  const bool written = !r.meta.origin.empty();
  json::object o{
      {"resource_state", detailed ? 3 : 2},
      {"athlete", json::object{{"id", IdValue(athlete_id)}, {"resource_state", 1}}},
      {"name", w ? w->name : std::string(k.sport_type)},
      {"distance", w ? w->distance_m : 0.0},
      {"moving_time", elapsed},
      {"elapsed_time", elapsed},
      {"total_elevation_gain", 0},
      {"type", k.legacy_type},
      {"sport_type", k.sport_type},
      {"id", IdValue(r.meta.id)},
      {"external_id", written ? json::value(r.meta.origin) : json::value(nullptr)},
      {"upload_id", nullptr},
      {"start_date", IsoZ(r.meta.start_ms)},
      {"start_date_local", IsoZ(r.meta.start_ms + r.meta.utc_offset_min * 60'000LL)},
      {"timezone", ZoneLabel(r.meta.utc_offset_min)},
      {"utc_offset", static_cast<double>(r.meta.utc_offset_min) * 60.0},
      {"trainer", k.trainer},
      {"commute", false},
      {"manual", written},
      {"private", false},
      {"flagged", false},
      {"has_heartrate", w && w->avg_heart_rate_bpm > 0},
  };
  if (w && w->avg_heart_rate_bpm > 0)
    o["average_heartrate"] = static_cast<double>(w->avg_heart_rate_bpm);
  if (detailed) {
    o["description"] = written ? "Synced by SyncWell [" + r.meta.origin + "]" : std::string();
    o["calories"] = w ? w->energy_kcal : 0.0;
    o["device_name"] = written ? "" : "Strava App";
  }
  return o;
}

// X-RateLimit-Limit / -Usage ("15min,daily") from the admission, on every answer.
void AddUsageHeaders(HttpResponse* r, const Admission* a) {
  if (!a || a->limit <= 0 || a->limit_scope != "app") return;
  r->headers.emplace_back("X-RateLimit-Limit", std::to_string(a->limit) + "," +
                                                   std::to_string(a->limit * kDailyLimitFactor));
  r->headers.emplace_back("X-RateLimit-Usage",
                          std::to_string(a->used) + "," + std::to_string(a->used));
}

// ---- handlers --------------------------------------------------------------------------------

HttpResponse Token(const SimRequest& req, World& world) {
  auto p = Params(req.http);
  const ProviderProfile prof = world.Profile(kStrava);
  if (p["client_id"] != prof.client_id)
    return StravaError(400, "Bad Request", "Application", "client_id", "invalid");
  if (p["client_secret"] != prof.client_secret)
    return StravaError(401, "Authorization Error", "Application", "client_secret", "invalid");
  Result<providers::TokenGrant> g = MakeError(Errc::kInvalidArgument, "");
  const std::string& grant = p["grant_type"];
  if (grant == "authorization_code") {
    g = world.ExchangeCode(kStrava, p["code"]);
    if (!g) return StravaError(400, "Bad Request", "AuthorizationCode", "code", "invalid");
  } else if (grant == "refresh_token") {
    g = world.Refresh(kStrava, p["refresh_token"]);
    if (!g) return StravaError(400, "Bad Request", "RefreshToken", "refresh_token", "invalid");
  } else {
    return StravaError(400, "Bad Request", "Application", "grant_type", "invalid");
  }
  const int64_t expires_at = FloorDiv(ToUnixMillis(g->expires_at), 1000);
  json::object o{{"token_type", "Bearer"},
                 {"expires_at", expires_at},
                 {"expires_in", prof.token_ttl.count()},
                 {"refresh_token", g->refresh_token},
                 {"access_token", g->access_token}};
  if (grant == "authorization_code") {
    // The summary athlete comes with the first exchange only.
    o["athlete"] = json::object{{"id", IdValue(g->provider_user_id)},
                                {"resource_state", 2},
                                {"firstname", "Sim"},
                                {"lastname", "Athlete"}};
  }
  return JsonReply(200, o);
}

HttpResponse Deauthorize(const SimRequest& req, World& world) {
  auto p = Params(req.http);
  std::string token = p["access_token"];
  if (token.empty()) {
    const std::string* h = req.http.Header("authorization");
    if (h && h->size() > 7) token = h->substr(7);
  }
  auto user = token.empty() ? Result<std::string>(MakeError(Errc::kUnauthenticated, ""))
                            : world.Authorize(kStrava, token);
  if (!user) return StravaError(401, "Authorization Error", "Athlete", "access_token", "invalid");
  world.RevokeUser(kStrava, *user);
  return JsonReply(200, json::object{{"access_token", token}});
}

HttpResponse ListActivities(const SimRequest& req, World& world) {
  std::map<std::string, std::string> q;
  ParseFormInto(req.http.query, &q);
  auto opt_int = [&](const char* name) -> std::optional<int64_t> {
    auto it = q.find(name);
    if (it == q.end() || it->second.empty()) return std::nullopt;
    return ParseInt(it->second);
  };
  for (const char* name : {"before", "after", "page", "per_page"}) {
    if (q.count(name) && !q[name].empty() && !ParseInt(q[name]))
      return StravaError(400, "Bad Request", "Activity", name, "invalid");
  }
  auto before = opt_int("before");
  auto after = opt_int("after");
  const int64_t page = opt_int("page").value_or(1);
  const int64_t per_page =
      std::clamp<int64_t>(opt_int("per_page").value_or(kDefaultPerPage), 1, kMaxPerPage);
  if (page < 1) return StravaError(400, "Bad Request", "Activity", "page", "invalid");
  // `after`/`before` are exclusive epoch seconds on the start time.
  const int64_t from = after ? (*after + 1) * 1000 : -kAllTime;
  const int64_t to = before ? *before * 1000 : kAllTime;
  auto recs = world.Records(kStrava, req.sim_user, DataType::kWorkout, from, to);
  // Newest first unless only `after` is given (Strava then pages forward in time).
  if (!(after && !before)) std::reverse(recs.begin(), recs.end());
  const std::string athlete = world.ProviderUserId(kStrava, req.sim_user);
  json::array out;
  const int64_t first = (page - 1) * per_page;
  for (int64_t i = first; i < static_cast<int64_t>(recs.size()) && i < first + per_page; ++i)
    out.push_back(EncodeActivity(recs[static_cast<size_t>(i)], athlete, false));
  HttpResponse r = JsonReply(200, out);
  AddUsageHeaders(&r, req.admission);
  return r;
}

HttpResponse GetActivity(const SimRequest& req, World& world) {
  const std::string& id = req.params.at("id");
  auto rec = world.Find(kStrava, req.sim_user, DataType::kWorkout, id);
  HttpResponse r =
      rec ? JsonReply(200, EncodeActivity(*rec, world.ProviderUserId(kStrava, req.sim_user), true))
          : StravaError(404, "Record Not Found", "Activity", "id", "not found");
  AddUsageHeaders(&r, req.admission);
  return r;
}

HttpResponse CreateActivity(const SimRequest& req, World& world) {
  auto p = Params(req.http);
  std::string sport = p["sport_type"].empty() ? p["type"] : p["sport_type"];
  for (const char* f : {"name", "start_date_local", "elapsed_time"}) {
    if (p[f].empty()) return StravaError(400, "Bad Request", "Activity", f, "missing");
  }
  if (sport.empty()) return StravaError(400, "Bad Request", "Activity", "sport_type", "missing");
  auto local = ParseLocal(p["start_date_local"]);
  if (!local) return StravaError(400, "Bad Request", "Activity", "start_date_local", "invalid");
  auto elapsed = ParseInt(p["elapsed_time"]);
  if (!elapsed || *elapsed <= 0 || *elapsed > 31 * 86400)
    return StravaError(400, "Bad Request", "Activity", "elapsed_time", "invalid");
  std::optional<double> distance = 0.0;
  if (!p["distance"].empty()) distance = ParseNumber(p["distance"]);
  if (!distance || *distance < 0)
    return StravaError(400, "Bad Request", "Activity", "distance", "invalid");
  // Without an explicit offset the wall clock is in the athlete's own time zone.
  const int32_t offset =
      local->offset_min.value_or(synth::UtcOffsetMin(world.settings().seed, req.sim_user));
  const bool trainer = p["trainer"] == "1" || p["trainer"] == "true";

  Record rec;
  rec.meta.type = DataType::kWorkout;
  rec.meta.start_ms = local->wall_ms - offset * 60'000LL;
  rec.meta.end_ms = rec.meta.start_ms + *elapsed * 1000;
  rec.meta.utc_offset_min = offset;
  rec.meta.activity = CanonicalOf(sport, trainer);
  const std::string& ext = p["external_id"];
  rec.meta.origin = providers::IsOurOrigin(ext) ? ext : OriginFromDescription(p["description"]);
  providers::WorkoutData w;
  w.name = p["name"];
  w.distance_m = *distance;
  rec.data = w;
  const std::string id = world.Write(kStrava, req.sim_user, rec);
  rec.meta.id = id;
  auto stored = world.Find(kStrava, req.sim_user, DataType::kWorkout, id);
  HttpResponse r = JsonReply(
      201,
      EncodeActivity(stored ? *stored : rec, world.ProviderUserId(kStrava, req.sim_user), true));
  AddUsageHeaders(&r, req.admission);
  return r;
}

// The push-subscription event for the user's most recent activity.
HttpRequest MakeWebhook(const std::string& user, DataType type, World& world) {
  (void)type;  // Strava only has activities (and athlete deauthorizations)
  std::string object_id = "0";
  int64_t event_ms = 0;
  int64_t latest_start = std::numeric_limits<int64_t>::min();
  for (const auto& r : world.Records(kStrava, user, DataType::kWorkout, -kAllTime, kAllTime)) {
    if (r.meta.start_ms >= latest_start) {
      latest_start = r.meta.start_ms;
      object_id = r.meta.id;
    }
    event_ms = std::max(event_ms, r.meta.modified_ms);
  }
  const ProviderProfile p = world.Profile(kStrava);
  HttpRequest h;
  h.method = "POST";
  h.path = "/v1/webhooks/strava";
  h.headers = {{"content-type", "application/json"}};
  h.body = json::serialize(json::object{
      {"aspect_type", "create"},
      {"event_time", FloorDiv(event_ms, 1000)},
      {"object_id", IdValue(object_id)},
      {"object_type", "activity"},
      {"owner_id", IdValue(world.ProviderUserId(kStrava, user))},
      {"subscription_id", static_cast<int64_t>(synth::HashString(p.client_id) % 1'000'000)},
      {"updates", json::object{}}});
  return h;
}

}  // namespace

ModuleSpec StravaModule() {
  ModuleSpec spec;
  spec.provider = kStrava;
  using R = ModuleSpec::Route;
  spec.routes = {
      R{"POST", "/oauth/token", SimAuth::kNone, false, Token},
      R{"POST", "/api/v3/oauth/token", SimAuth::kNone, false, Token},  // the older location
      R{"POST", "/oauth/deauthorize", SimAuth::kNone, false, Deauthorize},
      R{"GET", "/api/v3/athlete/activities", SimAuth::kBearer, false, ListActivities},
      R{"GET", "/api/v3/activities/{id}", SimAuth::kBearer, false, GetActivity},
      R{"POST", "/api/v3/activities", SimAuth::kBearer, true, CreateActivity},
  };
  spec.unauthorized = [] {
    return StravaError(401, "Authorization Error", "Athlete", "access_token", "invalid");
  };
  spec.rate_limited = [](const Admission& a) {
    HttpResponse r =
        StravaError(429, "Rate Limit Exceeded", "Application", "rate limit", "exceeded");
    // Strava sends no Retry-After: clients wait for the window (the server adds one anyway).
    r.headers.emplace_back("X-RateLimit-Limit", std::to_string(a.limit) + "," +
                                                    std::to_string(a.limit * kDailyLimitFactor));
    r.headers.emplace_back("X-RateLimit-Usage",
                           std::to_string(a.used) + "," + std::to_string(a.used));
    return r;
  };
  spec.make_webhook = MakeWebhook;
  return spec;
}

}  // namespace syncwell::sim
