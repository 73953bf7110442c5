// The simulated Garmin Connect Developer Program APIs: Health/Activity API summary pulls by
// upload time (/wellness-api/rest/{activities,dailies,sleeps,bodyComps}), the OAuth 2.0 PKCE
// token endpoint, user id and registration deletion, and Ping notifications. Paths are the real
// ones under "/garmin": the connector's base_url "http://host:port/garmin" stands in for
// https://apis.garmin.com and "/garmin/di-oauth2-service/oauth/token" for
// https://diauth.garmin.com/di-oauth2-service/oauth/token. Written independently of the
// connector (src/providers/garmin); src/providers/garmin/README.md lists the shapes and the
// simplifications made here. There is no write route: Garmin accepts no completed workouts.
//
// Upload time: a record's modified_ms is the moment it was "synced" (World sets it after the
// record ends, or to now for AppendNative), so a pull window selects by modified_ms exactly
// like Garmin selects by upload time.
#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "providers/sim/world.hpp"

namespace syncwell::sim {

namespace {

namespace json = boost::json;
using api::HttpRequest;
using api::HttpResponse;
using providers::DataType;
using providers::Record;

const std::string kGarmin = "garmin";
constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kWindowS = 86'400;
// Uploads happen at most ~26 h after a record starts (a day's steps, synced after midnight).
constexpr int64_t kUploadLagMs = 3 * kDayMs;
constexpr int64_t kAllTime = std::numeric_limits<int64_t>::max() / 4;

HttpResponse JsonReply(int status, const json::value& v) {
  HttpResponse r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

// Appendix E of the Health API: {"errorMessage": "..."}.
HttpResponse GarminError(int status, std::string_view message) {
  return JsonReply(status, json::object{{"errorMessage", message}});
}

std::string PercentDecode(std::string_view s) {
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

std::map<std::string, std::string> ParseForm(std::string_view s) {
  std::map<std::string, std::string> out;
  while (!s.empty()) {
    size_t amp = s.find('&');
    std::string_view kv = s.substr(0, amp);
    size_t eq = kv.find('=');
    if (!kv.empty())
      out[PercentDecode(kv.substr(0, eq))] =
          eq == std::string_view::npos ? std::string() : PercentDecode(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    s.remove_prefix(amp + 1);
  }
  return out;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

std::string LocalDate(int64_t utc_ms, int32_t offset_min) {
  int64_t z = FloorDiv(utc_ms + static_cast<int64_t>(offset_min) * 60'000, kDayMs) + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(y), m % 100u, d % 100u);
  return buf;
}

std::optional<DataType> SummaryTypeOf(std::string_view summary) {
  if (summary == "activities") return DataType::kWorkout;
  if (summary == "dailies") return DataType::kSteps;
  if (summary == "sleeps") return DataType::kSleepSession;
  if (summary == "bodyComps") return DataType::kWeight;
  return std::nullopt;
}

std::string_view SummaryOf(DataType t) {
  switch (t) {
    case DataType::kWorkout:
      return "activities";
    case DataType::kSteps:
      return "dailies";
    case DataType::kSleepSession:
      return "sleeps";
    case DataType::kWeight:
      return "bodyComps";
  }
  return "activities";
}

// Summary types Garmin has but the simulator does not model: answered with an empty list.
bool KnownUnmodelled(std::string_view summary) {
  static constexpr std::string_view kOthers[] = {"epochs",
                                                 "stressDetails",
                                                 "userMetrics",
                                                 "pulseox",
                                                 "allDayRespiration",
                                                 "healthSnapshot",
                                                 "hrv",
                                                 "bloodPressures",
                                                 "skinTemp",
                                                 "manuallyUpdatedActivities",
                                                 "moveiq",
                                                 "activityDetails"};
  return std::find(std::begin(kOthers), std::end(kOthers), summary) != std::end(kOthers);
}

std::string_view GarminActivityType(std::string_view activity) {
  static constexpr std::pair<std::string_view, std::string_view> kMap[] = {
      {"run", "RUNNING"},
      {"trail_run", "TRAIL_RUNNING"},
      {"treadmill_run", "TREADMILL_RUNNING"},
      {"virtual_run", "VIRTUAL_RUN"},
      {"ride", "CYCLING"},
      {"mountain_bike_ride", "MOUNTAIN_BIKING"},
      {"virtual_ride", "VIRTUAL_RIDE"},
      {"e_bike_ride", "E_BIKE_FITNESS"},
      {"walk", "WALKING"},
      {"hike", "HIKING"},
      {"swim", "LAP_SWIMMING"},
      {"open_water_swim", "OPEN_WATER_SWIMMING"},
      {"strength", "STRENGTH_TRAINING"},
      {"yoga", "YOGA"},
      {"rowing", "ROWING"},
      {"elliptical", "ELLIPTICAL"},
  };
  for (const auto& [c, g] : kMap) {
    if (c == activity) return g;
  }
  return "OTHER";
}

json::object EncodeSummary(const Record& r) {
  const int64_t start_s = FloorDiv(r.meta.start_ms, 1000);
  const int64_t offset_s = static_cast<int64_t>(r.meta.utc_offset_min) * 60;
  json::object o{{"summaryId", r.meta.id}};
  switch (r.meta.type) {
    case DataType::kWorkout: {
      const auto* w = std::get_if<providers::WorkoutData>(&r.data);
      o["activityId"] = r.meta.id;
      o["activityName"] = w ? w->name : std::string();
      o["activityType"] = GarminActivityType(r.meta.activity);
      o["startTimeInSeconds"] = start_s;
      o["startTimeOffsetInSeconds"] = offset_s;
      o["durationInSeconds"] = (r.meta.end_ms - r.meta.start_ms) / 1000;
      if (w) {
        if (w->distance_m > 0) o["distanceInMeters"] = w->distance_m;
        o["activeKilocalories"] = std::llround(w->energy_kcal);  // an integer at Garmin
        if (w->avg_heart_rate_bpm > 0)
          o["averageHeartRateInBeatsPerMinute"] = w->avg_heart_rate_bpm;
      }
      o["deviceName"] = "forerunner965";
      o["manual"] = false;
      break;
    }
    case DataType::kSteps: {
      const auto* s = std::get_if<providers::StepsData>(&r.data);
      o["calendarDate"] = LocalDate(r.meta.start_ms, r.meta.utc_offset_min);
      o["activityType"] = "GENERIC";
      o["steps"] = s ? s->count : 0;
      // Less than a day while the day is still being synced.
      o["durationInSeconds"] =
          std::clamp<int64_t>((r.meta.modified_ms - r.meta.start_ms) / 1000, 0, kWindowS);
      o["startTimeInSeconds"] = start_s;
      o["startTimeOffsetInSeconds"] = offset_s;
      break;
    }
    case DataType::kSleepSession: {
      const auto* s = std::get_if<providers::SleepData>(&r.data);
      providers::SleepData sd = s ? *s : providers::SleepData{};
      o["calendarDate"] = LocalDate(r.meta.end_ms, r.meta.utc_offset_min);
      o["durationInSeconds"] = (r.meta.end_ms - r.meta.start_ms) / 1000;
      o["startTimeInSeconds"] = start_s;
      o["startTimeOffsetInSeconds"] = offset_s;
      o["unmeasurableSleepInSeconds"] = 0;
      o["deepSleepDurationInSeconds"] = sd.deep_min * 60;
      o["lightSleepDurationInSeconds"] = sd.light_min * 60;
      o["remSleepInSeconds"] = sd.rem_min * 60;
      o["awakeDurationInSeconds"] = sd.awake_min * 60;
      o["validation"] = "ENHANCED_FINAL";
      break;
    }
    case DataType::kWeight: {
      const auto* w = std::get_if<providers::WeightData>(&r.data);
      o["measurementTimeInSeconds"] = start_s;
      o["measurementTimeOffsetInSeconds"] = offset_s;
      o["weightInGrams"] = w ? std::llround(w->kg * 1000.0) : 0;  // an integer at Garmin
      if (w && w->fat_ratio) o["bodyFatInPercent"] = *w->fat_ratio * 100.0;
      break;
    }
  }
  return o;
}

std::optional<int64_t> ParseSeconds(const std::string& s) {
  if (s.empty() || s.size() > 15 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(s);
}

// ---- handlers --------------------------------------------------------------------------------

HttpResponse Token(const SimRequest& req, World& world) {
  auto form = ParseForm(req.http.body);
  const ProviderProfile p = world.Profile(kGarmin);
  if (form["client_id"] != p.client_id || form["client_secret"] != p.client_secret)
    return JsonReply(401, json::object{{"error", "invalid_client"},
                                       {"error_description", "Bad client credentials"}});
  Result<providers::TokenGrant> g = MakeError(Errc::kInvalidArgument, "");
  if (form["grant_type"] == "authorization_code") {
    g = world.ExchangeCode(kGarmin, form["code"]);
  } else if (form["grant_type"] == "refresh_token") {
    g = world.Refresh(kGarmin, form["refresh_token"]);
  } else {
    return JsonReply(400, json::object{{"error", "unsupported_grant_type"}});
  }
  if (!g)
    return JsonReply(400, json::object{{"error", "invalid_grant"},
                                       {"error_description", "Invalid authorization grant"}});
  // Garmin issues a new refresh token with every refresh (World rotates them too).
  return JsonReply(200, json::object{{"access_token", g->access_token},
                                     {"expires_in", p.token_ttl.count()},
                                     {"token_type", "bearer"},
                                     {"refresh_token", g->refresh_token},
                                     {"refresh_token_expires_in", 7'775'998},
                                     {"scope", "PARTNER_READ CONNECT_READ"}});
}

HttpResponse UserId(const SimRequest& req, World& world) {
  return JsonReply(200, json::object{{"userId", world.ProviderUserId(kGarmin, req.sim_user)}});
}

HttpResponse Permissions(const SimRequest&, World&) {
  return JsonReply(200, json::array{"ACTIVITY_EXPORT", "HEALTH_EXPORT"});
}

HttpResponse DeleteRegistration(const SimRequest& req, World& world) {
  world.RevokeUser(kGarmin, req.sim_user);
  HttpResponse r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

HttpResponse Pull(const SimRequest& req, World& world) {
  const std::string& summary = req.params.at("summary");
  auto type = SummaryTypeOf(summary);
  if (!type && !KnownUnmodelled(summary)) return GarminError(404, "Unknown summary type");
  auto q = ParseForm(req.http.query);
  auto from = ParseSeconds(q["uploadStartTimeInSeconds"]);
  auto to = ParseSeconds(q["uploadEndTimeInSeconds"]);
  if (!from || !to)
    return GarminError(400, "uploadStartTimeInSeconds and uploadEndTimeInSeconds are required");
  if (*from > 100'000'000'000 || *to > 100'000'000'000)
    return GarminError(400,
                       "timestamp appears to be in milliseconds. Please provide unix "
                       "timestamps in seconds.");
  if (*to < *from || *to - *from > kWindowS)
    return GarminError(400, "The time range may not exceed 86400 seconds");
  json::array out;
  if (type) {
    const int64_t lo = *from * 1000, hi = *to * 1000;
    for (const auto& r : world.Records(kGarmin, req.sim_user, *type, lo - kUploadLagMs, hi)) {
      if (r.meta.modified_ms >= lo && r.meta.modified_ms < hi) out.push_back(EncodeSummary(r));
    }
  }
  return JsonReply(200, out);
}

// A Ping notification for the user's most recent upload of `type`.
HttpRequest MakeWebhook(const std::string& user, DataType type, World& world) {
  const ProviderProfile p = world.Profile(kGarmin);
  int64_t uploaded_ms = 0;
  for (const auto& r : world.Records(kGarmin, user, type, -kAllTime, kAllTime))
    uploaded_ms = std::max(uploaded_ms, r.meta.modified_ms);
  const int64_t up_s = FloorDiv(uploaded_ms, 1000);
  const std::string summary(SummaryOf(type));
  HttpRequest r;
  r.method = "POST";
  r.path = "/v1/webhooks/garmin";
  // The endpoint URL configured at Garmin carries SyncWell's shared secret.
  r.query = "token=" + p.webhook_secret;
  r.body = json::serialize(json::object{
      {summary,
       json::array{json::object{
           {"userId", world.ProviderUserId(kGarmin, user)},
           {"callbackURL",
            "https://apis.garmin.com/wellness-api/rest/" + summary + "?uploadStartTimeInSeconds=" +
                std::to_string(std::max<int64_t>(0, up_s - 60)) + "&uploadEndTimeInSeconds=" +
                std::to_string(up_s + 60) + "&token=sim-pull-token"}}}}});
  r.headers = {{"content-type", "application/json;charset=UTF-8"},
               {"user-agent", "Garmin Health API"},
               {"garmin-client-id", p.client_id}};
  return r;
}

}  // namespace

ModuleSpec GarminModule() {
  ModuleSpec spec;
  spec.provider = kGarmin;
  using R = ModuleSpec::Route;
  spec.routes = {
      R{"POST", "/di-oauth2-service/oauth/token", SimAuth::kNone, false, Token},
      R{"GET", "/wellness-api/rest/user/id", SimAuth::kBearer, false, UserId},
      R{"GET", "/wellness-api/rest/user/permissions", SimAuth::kBearer, false, Permissions},
      R{"DELETE", "/wellness-api/rest/user/registration", SimAuth::kBearer, false,
        DeleteRegistration},
      R{"GET", "/wellness-api/rest/{summary}", SimAuth::kBearer, false, Pull},
  };
  spec.unauthorized = [] { return GarminError(401, "Authorization failed: invalid access token"); };
  spec.rate_limited = [](const Admission& a) {
    HttpResponse r = GarminError(429, "Rate limit exceeded");
    r.headers.emplace_back("Retry-After",
                           std::to_string(std::max<int64_t>(1, a.retry_after.count())));
    return r;
  };
  spec.make_webhook = MakeWebhook;
  return spec;
}

}  // namespace syncwell::sim
