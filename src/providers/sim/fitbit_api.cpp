// The simulated Fitbit API: Google Health API v4 shapes (Fitbit data is served by the Google
// Health API since the Fitbit Web API was retired), plus the legacy Fitbit subscriber
// notifications (X-Fitbit-Signature) and Fitbit-Rate-Limit-* headers that the connector
// expects. Paths are the real ones under "/fitbit": the connector's base_url
// "http://host:port/fitbit" stands in for https://health.googleapis.com, and
// "/fitbit/oauth2/token" for https://oauth2.googleapis.com/token. Written independently of the
// connector (src/providers/fitbit) so that each checks the other's reading of the documents;
// see src/providers/fitbit/README.md for the shapes and the simplifications made here.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>

#include "core/civil_time.hpp"
#include "core/clock.hpp"
#include "providers/sim/world.hpp"

namespace syncwell::sim {

namespace {

namespace json = boost::json;
using api::HttpRequest;
using api::HttpResponse;
using providers::DataType;
using providers::Record;

const std::string kFitbit = "fitbit";
constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kZoneMs = 14 * 3'600'000;
constexpr int64_t kAllTime = std::numeric_limits<int64_t>::max() / 4;

// ---- small helpers ---------------------------------------------------------------------------

HttpResponse JsonReply(int status, const json::value& v) {
  HttpResponse r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

// google.rpc.Status error body.
HttpResponse GoogleError(int status, std::string_view word, std::string_view message) {
  return JsonReply(
      status,
      json::object{
          {"error", json::object{{"code", status}, {"message", message}, {"status", word}}}});
}

HttpResponse OAuthError(int status, std::string_view error, std::string_view description) {
  return JsonReply(status, json::object{{"error", error}, {"error_description", description}});
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

// application/x-www-form-urlencoded (query strings and form bodies).
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

// "YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm)" -> epoch ms; the civil form (no zone) reads as UTC.
std::optional<int64_t> ParseTime(std::string_view s, bool civil) {
  int y, mo, d, h = 0, mi = 0, se = 0;
  if (s.size() < 19 ||
      std::sscanf(std::string(s.substr(0, 19)).c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h,
                  &mi, &se) != 6 ||
      mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59)
    return std::nullopt;
  size_t i = 19;
  int64_t frac = 0;
  if (i < s.size() && s[i] == '.') {
    int64_t scale = 100;
    for (++i; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
      frac += (s[i] - '0') * scale;
      scale /= 10;
    }
  }
  int64_t off_s = 0;
  if (civil) {
    if (i != s.size()) return std::nullopt;
  } else if (i < s.size() && s[i] == 'Z' && i + 1 == s.size()) {
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (std::sscanf(std::string(s.substr(i + 1)).c_str(), "%2d:%2d", &oh, &om) != 2)
      return std::nullopt;
    off_s = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  const int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return (days * 86400 + h * 3600 + mi * 60 + se - off_s) * 1000 + frac;
}

std::string Rfc3339(int64_t ms) { return FormatRfc3339(FromUnixMillis(ms)); }

// "YYYY-MM-DDTHH:MM:SS" of the local time at `offset_min`.
std::string CivilString(int64_t utc_ms, int32_t offset_min) {
  const int64_t local = utc_ms + static_cast<int64_t>(offset_min) * 60'000;
  const int64_t day = FloorDiv(local, kDayMs);
  const int64_t sec = (local - day * kDayMs) / 1000;
  int64_t y;
  unsigned m, d;
  CivilFromDays(day, &y, &m, &d);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d", static_cast<long long>(y),
                m % 100u, d % 100u, static_cast<int>(sec / 3600 % 24),
                static_cast<int>(sec / 60 % 60), static_cast<int>(sec % 60));
  return buf;
}

json::object CivilJson(int64_t utc_ms, int32_t offset_min) {
  const int64_t local = utc_ms + static_cast<int64_t>(offset_min) * 60'000;
  const int64_t day = FloorDiv(local, kDayMs);
  const int64_t sec = (local - day * kDayMs) / 1000;
  int64_t y;
  unsigned m, d;
  CivilFromDays(day, &y, &m, &d);
  return json::object{
      {"date", json::object{{"year", y}, {"month", m}, {"day", d}}},
      {"time",
       json::object{{"hours", sec / 3600}, {"minutes", sec / 60 % 60}, {"seconds", sec % 60}}}};
}

std::string Offset(int32_t offset_min) { return std::to_string(offset_min * 60) + "s"; }

std::optional<int32_t> ParseOffsetMin(const json::value* v) {
  if (!v) return 0;
  if (v->is_string()) {
    std::string s(v->get_string());
    if (s.size() < 2 || s.back() != 's') return std::nullopt;
    char* end = nullptr;
    double secs = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() - 1 || std::abs(secs) > 26 * 3600) return std::nullopt;
    return static_cast<int32_t>(std::llround(secs) / 60);
  }
  return std::nullopt;
}

std::optional<double> Number(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return std::nullopt;
  if (v->is_number()) return v->to_number<double>();
  if (v->is_string()) {
    std::string s(v->get_string());
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size()) return std::nullopt;
    return d;
  }
  return std::nullopt;
}

std::string StrOr(const json::object& o, std::string_view key, std::string fallback = {}) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : fallback;
}

std::string OriginOf(const std::string& s) { return providers::IsOurOrigin(s) ? s : std::string(); }

// ---- types -----------------------------------------------------------------------------------

// The collections the simulator serves. "body-fat" is derived from weight records.
enum class Coll { kExercise, kSleep, kSteps, kWeight, kBodyFat };

std::optional<Coll> CollectionOf(std::string_view seg) {
  if (seg == "exercise") return Coll::kExercise;
  if (seg == "sleep") return Coll::kSleep;
  if (seg == "steps") return Coll::kSteps;
  if (seg == "weight") return Coll::kWeight;
  if (seg == "body-fat") return Coll::kBodyFat;
  return std::nullopt;
}

DataType TypeOf(Coll c) {
  switch (c) {
    case Coll::kExercise:
      return DataType::kWorkout;
    case Coll::kSleep:
      return DataType::kSleepSession;
    case Coll::kSteps:
      return DataType::kSteps;
    case Coll::kWeight:
    case Coll::kBodyFat:
      return DataType::kWeight;
  }
  return DataType::kWorkout;
}

std::string_view ExerciseType(std::string_view activity) {
  std::string_view family = providers::ActivityFamily(activity);
  if (family == "run") return "RUNNING";
  if (family == "ride") return "BIKING";
  if (activity == "walk") return "WALKING";
  if (activity == "hike") return "HIKING";
  if (family == "swim") return "SWIMMING";
  if (activity == "yoga") return "YOGA";
  if (activity == "strength") return "STRENGTH_TRAINING";
  return "OTHER";
}

std::optional<std::string_view> ActivityOf(std::string_view exercise_type) {
  static constexpr std::pair<std::string_view, std::string_view> kMap[] = {
      {"RUNNING", "run"},
      {"WALKING", "walk"},
      {"BIKING", "ride"},
      {"SWIMMING", "swim"},
      {"HIKING", "hike"},
      {"YOGA", "yoga"},
      {"PILATES", "other"},
      {"WORKOUT", "other"},
      {"HIIT", "other"},
      {"WEIGHTLIFTING", "strength"},
      {"STRENGTH_TRAINING", "strength"},
      {"OTHER", "other"}};
  for (const auto& [g, c] : kMap) {
    if (g == exercise_type) return c;
  }
  return std::nullopt;
}

// ---- encoding (state -> wire) ----------------------------------------------------------------

json::object IntervalJson(const Record& r) {
  return json::object{{"startTime", Rfc3339(r.meta.start_ms)},
                      {"startUtcOffset", Offset(r.meta.utc_offset_min)},
                      {"endTime", Rfc3339(r.meta.end_ms)},
                      {"endUtcOffset", Offset(r.meta.utc_offset_min)},
                      {"civilStartTime", CivilJson(r.meta.start_ms, r.meta.utc_offset_min)},
                      {"civilEndTime", CivilJson(r.meta.end_ms, r.meta.utc_offset_min)}};
}

json::object SampleJson(const Record& r) {
  return json::object{{"physicalTime", Rfc3339(r.meta.start_ms)},
                      {"utcOffset", Offset(r.meta.utc_offset_min)},
                      {"civilTime", CivilJson(r.meta.start_ms, r.meta.utc_offset_min)}};
}

std::string PointName(const std::string& pid, std::string_view seg, const std::string& id) {
  return "users/" + pid + "/dataTypes/" + std::string(seg) + "/dataPoints/" + id;
}

json::object EncodePoint(Coll c, const Record& r, const std::string& pid) {
  json::object dp;
  switch (c) {
    case Coll::kExercise: {
      const auto* w = std::get_if<providers::WorkoutData>(&r.data);
      json::object ex{
          {"interval", IntervalJson(r)},
          {"exerciseType", ExerciseType(r.meta.activity)},
          {"displayName", w ? w->name : std::string()},
          {"activeDuration", std::to_string((r.meta.end_ms - r.meta.start_ms) / 1000) + "s"},
          {"createTime", Rfc3339(r.meta.modified_ms)},
          {"updateTime", Rfc3339(r.meta.modified_ms)}};
      if (w) {
        json::object ms{{"caloriesKcal", w->energy_kcal},
                        {"distanceMillimeters", w->distance_m * 1000.0}};
        if (w->avg_heart_rate_bpm > 0)
          ms["averageHeartRateBeatsPerMinute"] = std::to_string(w->avg_heart_rate_bpm);
        ex["metricsSummary"] = std::move(ms);
      }
      if (!r.meta.origin.empty()) ex["notes"] = r.meta.origin;
      dp["name"] = PointName(pid, "exercise", r.meta.id);
      dp["exercise"] = std::move(ex);
      break;
    }
    case Coll::kSleep: {
      const auto* s = std::get_if<providers::SleepData>(&r.data);
      providers::SleepData sd = s ? *s : providers::SleepData{};
      json::array stages, summary;
      int64_t t = r.meta.start_ms;
      for (auto [type, minutes] :
           {std::pair{"DEEP", sd.deep_min}, std::pair{"LIGHT", sd.light_min},
            std::pair{"REM", sd.rem_min}, std::pair{"AWAKE", sd.awake_min}}) {
        summary.push_back(json::object{{"type", type},
                                       {"minutes", std::to_string(minutes)},
                                       {"count", minutes > 0 ? "1" : "0"}});
        if (minutes <= 0) continue;
        const int64_t e = std::min<int64_t>(r.meta.end_ms, t + int64_t{minutes} * 60'000);
        stages.push_back(json::object{{"startTime", Rfc3339(t)},
                                      {"startUtcOffset", Offset(r.meta.utc_offset_min)},
                                      {"endTime", Rfc3339(e)},
                                      {"endUtcOffset", Offset(r.meta.utc_offset_min)},
                                      {"type", type}});
        t = e;
      }
      const int asleep = sd.deep_min + sd.light_min + sd.rem_min;
      json::object md{{"processed", true}, {"manuallyEdited", false}, {"nap", false}};
      if (!r.meta.origin.empty()) md["externalId"] = r.meta.origin;
      dp["name"] = PointName(pid, "sleep", r.meta.id);
      dp["sleep"] = json::object{
          {"interval", IntervalJson(r)},
          {"type", "STAGES"},
          {"stages", std::move(stages)},
          {"metadata", std::move(md)},
          {"summary", json::object{{"minutesAsleep", std::to_string(asleep)},
                                   {"minutesAwake", std::to_string(sd.awake_min)},
                                   {"minutesInSleepPeriod",
                                    std::to_string((r.meta.end_ms - r.meta.start_ms) / 60'000)},
                                   {"stagesSummary", std::move(summary)}}},
          {"createTime", Rfc3339(r.meta.modified_ms)},
          {"updateTime", Rfc3339(r.meta.modified_ms)}};
      break;
    }
    case Coll::kSteps: {
      const auto* s = std::get_if<providers::StepsData>(&r.data);
      // One interval per day (the real API has 1-minute intervals; the connector sums them).
      dp["steps"] =
          json::object{{"interval", IntervalJson(r)}, {"count", std::to_string(s ? s->count : 0)}};
      break;
    }
    case Coll::kWeight: {
      const auto* w = std::get_if<providers::WeightData>(&r.data);
      json::object wj{{"sampleTime", SampleJson(r)}, {"weightGrams", w ? w->kg * 1000.0 : 0.0}};
      if (!r.meta.origin.empty()) wj["notes"] = r.meta.origin;
      dp["name"] = PointName(pid, "weight", r.meta.id);
      dp["weight"] = std::move(wj);
      break;
    }
    case Coll::kBodyFat: {
      const auto* w = std::get_if<providers::WeightData>(&r.data);
      dp["name"] = PointName(pid, "body-fat", r.meta.id + "-bf");
      dp["bodyFat"] = json::object{{"sampleTime", SampleJson(r)},
                                   {"percentage", w && w->fat_ratio ? *w->fat_ratio * 100.0 : 0.0}};
      break;
    }
  }
  dp["dataSource"] =
      json::object{{"recordingMethod", r.meta.origin.empty() ? "ACTIVELY_MEASURED" : "UNKNOWN"},
                   {"platform", r.meta.origin.empty() ? "FITBIT" : "GOOGLE_WEB_API"}};
  return dp;
}

// ---- filters (AIP-160 subset: clauses joined by AND, only >= and <)
// ------------------------------

struct Clause {
  std::string field;
  bool lower = true;  // >= (else <)
  std::string value;
};

std::optional<std::vector<Clause>> ParseFilter(std::string_view f) {
  std::vector<Clause> out;
  while (!f.empty()) {
    size_t and_pos = f.find(" AND ");
    std::string_view part = f.substr(0, and_pos);
    f = and_pos == std::string_view::npos ? std::string_view() : f.substr(and_pos + 5);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    Clause c;
    size_t op = part.find(">=");
    size_t op_len = 2;
    if (op == std::string_view::npos) {
      op = part.find('<');
      op_len = 1;
      c.lower = false;
      if (op == std::string_view::npos || (op + 1 < part.size() && part[op + 1] == '='))
        return std::nullopt;  // only >= and < are supported
    }
    std::string_view field = part.substr(0, op), value = part.substr(op + op_len);
    while (!field.empty() && field.back() == ' ') field.remove_suffix(1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field.empty() || value.size() < 2 || value.front() != '"' || value.back() != '"')
      return std::nullopt;
    c.field = std::string(field);
    c.value = std::string(value.substr(1, value.size() - 2));
    out.push_back(std::move(c));
  }
  return out;
}

// The filterable fields of each collection (Google Health API "Filter data" guide).
struct FieldRef {
  bool civil = false;
  bool on_end = false;  // compares the end time (sleep)
};
std::optional<FieldRef> FieldOf(Coll c, std::string_view field) {
  switch (c) {
    case Coll::kExercise:
      if (field == "exercise.interval.civil_start_time") return FieldRef{true, false};
      return std::nullopt;
    case Coll::kSleep:
      if (field == "sleep.interval.end_time") return FieldRef{false, true};
      if (field == "sleep.interval.civil_end_time") return FieldRef{true, true};
      return std::nullopt;
    case Coll::kSteps:
      if (field == "steps.interval.start_time") return FieldRef{false, false};
      if (field == "steps.interval.civil_start_time") return FieldRef{true, false};
      return std::nullopt;
    case Coll::kWeight:
      if (field == "weight.sample_time.physical_time") return FieldRef{false, false};
      if (field == "weight.sample_time.civil_time") return FieldRef{true, false};
      return std::nullopt;
    case Coll::kBodyFat:
      if (field == "body_fat.sample_time.physical_time") return FieldRef{false, false};
      if (field == "body_fat.sample_time.civil_time") return FieldRef{true, false};
      return std::nullopt;
  }
  return std::nullopt;
}

// Records of collection `c` matching `filter` (already validated), sorted by start.
std::vector<Record> Select(World& world, const std::string& user, Coll c,
                           const std::vector<std::pair<FieldRef, Clause>>& clauses) {
  int64_t lo = -kAllTime, hi = kAllTime;  // candidate start range
  for (const auto& [ref, cl] : clauses) {
    auto t = ParseTime(cl.value, ref.civil);
    if (!t) continue;
    const int64_t slack = (ref.civil ? kZoneMs : 0) + (ref.on_end ? kDayMs : 0);
    if (cl.lower) lo = std::max(lo, *t - slack);
    if (!cl.lower) hi = std::min(hi, *t + (ref.civil ? kZoneMs : 0));
  }
  std::vector<Record> out;
  for (auto& r : world.Records(kFitbit, user, TypeOf(c), lo, hi)) {
    if (c == Coll::kBodyFat) {
      const auto* w = std::get_if<providers::WeightData>(&r.data);
      if (!w || !w->fat_ratio) continue;
    }
    bool ok = true;
    for (const auto& [ref, cl] : clauses) {
      const int64_t t = ref.on_end ? r.meta.end_ms : r.meta.start_ms;
      if (ref.civil) {
        const std::string civil = CivilString(t, r.meta.utc_offset_min);
        ok = ok && (cl.lower ? civil >= cl.value : civil < cl.value);
      } else {
        const int64_t bound = *ParseTime(cl.value, false);
        ok = ok && (cl.lower ? t >= bound : t < bound);
      }
    }
    if (ok) out.push_back(std::move(r));
  }
  return out;
}

// ---- module state ----------------------------------------------------------------------------

// Body fat written before its weight (the connector's order) waits here and is merged into the
// weight record written at the same instant. Bounded; oldest entries go first.
struct PendingFat {
  std::mutex mu;
  std::map<std::pair<std::string, int64_t>, double> by_user_time;  // -> ratio
  uint64_t seq = 0;                                                // body-fat point ids
  static constexpr size_t kMax = 10'000;
};

// The Fitbit-Rate-Limit-* headers of the legacy Fitbit Web API (150 requests/user/hour).
void AddRateHeaders(const SimRequest& req, HttpResponse* r) {
  const Admission* a = req.admission;
  if (!a || a->limit <= 0 || a->limit_scope == "app") return;
  r->headers.emplace_back("Fitbit-Rate-Limit-Limit", std::to_string(a->limit));
  r->headers.emplace_back("Fitbit-Rate-Limit-Remaining",
                          std::to_string(std::max<int64_t>(0, a->limit - a->used)));
  if (a->retry_after.count() > 0)
    r->headers.emplace_back("Fitbit-Rate-Limit-Reset", std::to_string(a->retry_after.count()));
}

// {user} is "me" or the user's own Google Health user id.
bool UserMatches(const SimRequest& req, World& world) {
  auto it = req.params.find("user");
  return it != req.params.end() &&
         (it->second == "me" || it->second == world.ProviderUserId(kFitbit, req.sim_user));
}

std::string Signature(const std::string& body, const std::string& client_secret) {
  const std::string key = client_secret + "&";
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  out.resize(static_cast<size_t>(
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), mac, static_cast<int>(len))));
  return out;
}

// ---- handlers --------------------------------------------------------------------------------

HttpResponse Token(const SimRequest& req, World& world) {
  auto form = ParseForm(req.http.body);
  const ProviderProfile p = world.Profile(kFitbit);
  if (form["client_id"] != p.client_id || form["client_secret"] != p.client_secret)
    return OAuthError(401, "invalid_client", "The OAuth client was not found.");
  Result<providers::TokenGrant> g = MakeError(Errc::kInvalidArgument, "");
  const std::string& grant_type = form["grant_type"];
  if (grant_type == "authorization_code") {
    g = world.ExchangeCode(kFitbit, form["code"]);
  } else if (grant_type == "refresh_token") {
    g = world.Refresh(kFitbit, form["refresh_token"]);
  } else {
    return OAuthError(400, "unsupported_grant_type", "Invalid grant_type");
  }
  if (!g) return OAuthError(400, "invalid_grant", "Bad Request");
  // World rotates refresh tokens, so the new one is always returned (Google usually keeps it).
  return JsonReply(200, json::object{{"access_token", g->access_token},
                                     {"expires_in", p.token_ttl.count()},
                                     {"refresh_token", g->refresh_token},
                                     {"scope", g->scope},
                                     {"token_type", "Bearer"}});
}

HttpResponse Revoke(const SimRequest& req, World& world) {
  auto form = ParseForm(req.http.body);
  if (form["token"].empty()) form = ParseForm(req.http.query);
  if (form["token"].empty()) return OAuthError(400, "invalid_request", "Missing token");
  world.RevokeToken(kFitbit, form["token"]);
  return JsonReply(200, json::object{});
}

HttpResponse Identity(const SimRequest& req, World& world) {
  if (!UserMatches(req, world)) return GoogleError(403, "PERMISSION_DENIED", "Forbidden");
  const std::string pid = world.ProviderUserId(kFitbit, req.sim_user);
  HttpResponse r = JsonReply(
      200,
      json::object{{"name", "users/me/identity"}, {"healthUserId", pid}, {"legacyUserId", pid}});
  AddRateHeaders(req, &r);
  return r;
}

HttpResponse List(const SimRequest& req, World& world, bool reconcile) {
  if (!UserMatches(req, world)) return GoogleError(403, "PERMISSION_DENIED", "Forbidden");
  auto coll = CollectionOf(req.params.at("type"));
  if (!coll) return GoogleError(404, "NOT_FOUND", "Unknown data type.");
  auto q = ParseForm(req.http.query);
  std::vector<std::pair<FieldRef, Clause>> clauses;
  if (!q["filter"].empty()) {
    auto parsed = ParseFilter(q["filter"]);
    if (!parsed) return GoogleError(400, "INVALID_ARGUMENT", "INVALID_DATA_POINT_FILTER");
    for (auto& c : *parsed) {
      auto ref = FieldOf(*coll, c.field);
      if (!ref || !ParseTime(c.value, ref->civil))
        return GoogleError(400, "INVALID_ARGUMENT", "INVALID_DATA_POINT_FILTER");
      clauses.emplace_back(*ref, std::move(c));
    }
  }
  int64_t page_size = 100;
  if (!q["pageSize"].empty()) {
    char* end = nullptr;
    page_size = std::strtoll(q["pageSize"].c_str(), &end, 10);
    if (*end != '\0' || page_size < 0)
      return GoogleError(400, "INVALID_ARGUMENT", "Invalid page size.");
    page_size = page_size == 0 ? 100 : std::min<int64_t>(page_size, 10'000);
  }
  size_t offset = 0;
  if (!q["pageToken"].empty()) {
    const std::string& t = q["pageToken"];
    if (t.size() < 2 || t[0] != 'o' ||
        !std::all_of(t.begin() + 1, t.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      return GoogleError(400, "INVALID_ARGUMENT", "Invalid page token.");
    offset = std::stoul(t.substr(1));
  }
  const std::string pid = world.ProviderUserId(kFitbit, req.sim_user);
  std::vector<Record> recs = Select(world, req.sim_user, *coll, clauses);
  json::array points;
  for (size_t i = offset; i < recs.size() && points.size() < static_cast<size_t>(page_size); ++i) {
    json::object dp = EncodePoint(*coll, recs[i], pid);
    if (reconcile) dp.erase("name");  // reconciled points are not identifiable
    points.push_back(std::move(dp));
  }
  json::object body{{"dataPoints", std::move(points)}};
  const size_t next = offset + static_cast<size_t>(page_size);
  if (next < recs.size()) body["nextPageToken"] = "o" + std::to_string(next);
  HttpResponse r = JsonReply(200, body);
  AddRateHeaders(req, &r);
  return r;
}

HttpResponse GetPoint(const SimRequest& req, World& world) {
  if (!UserMatches(req, world)) return GoogleError(403, "PERMISSION_DENIED", "Forbidden");
  auto coll = CollectionOf(req.params.at("type"));
  if (!coll || *coll == Coll::kSteps || *coll == Coll::kBodyFat)
    return GoogleError(404, "NOT_FOUND", "Data point not found.");
  auto rec = world.Find(kFitbit, req.sim_user, TypeOf(*coll), req.params.at("id"));
  if (!rec) return GoogleError(404, "NOT_FOUND", "Data point not found.");
  HttpResponse r =
      JsonReply(200, EncodePoint(*coll, *rec, world.ProviderUserId(kFitbit, req.sim_user)));
  AddRateHeaders(req, &r);
  return r;
}

// Parses a create body into a record; nullopt + message on a validation failure.
std::optional<Record> DecodeCreate(Coll c, const json::object& dp, std::string* why) {
  auto interval = [&](const json::object& o, Record* r) {
    const json::value* iv = o.if_contains("interval");
    if (!iv || !iv->is_object()) return false;
    const json::object& i = iv->get_object();
    auto s = ParseTime(StrOr(i, "startTime"), false);
    auto e = ParseTime(StrOr(i, "endTime"), false);
    auto off = ParseOffsetMin(i.if_contains("startUtcOffset"));
    if (!s || !e || *e < *s || !off) return false;
    r->meta.start_ms = *s;
    r->meta.end_ms = *e;
    r->meta.utc_offset_min = *off;
    return true;
  };
  auto sample = [&](const json::object& o, Record* r) {
    const json::value* st = o.if_contains("sampleTime");
    if (!st || !st->is_object()) return false;
    auto t = ParseTime(StrOr(st->get_object(), "physicalTime"), false);
    auto off = ParseOffsetMin(st->get_object().if_contains("utcOffset"));
    if (!t || !off) return false;
    r->meta.start_ms = r->meta.end_ms = *t;
    r->meta.utc_offset_min = *off;
    return true;
  };
  static constexpr std::string_view kKeys[] = {"exercise", "sleep", "steps", "weight", "bodyFat"};
  const json::value* body = dp.if_contains(kKeys[static_cast<int>(c)]);
  if (!body || !body->is_object()) {
    *why = "data point value missing";
    return std::nullopt;
  }
  const json::object& o = body->get_object();
  Record r;
  r.meta.type = TypeOf(c);
  switch (c) {
    case Coll::kExercise: {
      auto activity = ActivityOf(StrOr(o, "exerciseType"));
      if (!interval(o, &r) || !activity || StrOr(o, "displayName").empty()) {
        *why = "exercise: interval, exerciseType and displayName are required";
        return std::nullopt;
      }
      r.meta.activity = std::string(*activity);
      providers::WorkoutData w;
      w.name = StrOr(o, "displayName");
      if (const json::value* ms = o.if_contains("metricsSummary"); ms && ms->is_object()) {
        w.distance_m = Number(ms->get_object(), "distanceMillimeters").value_or(0) / 1000.0;
        w.energy_kcal = Number(ms->get_object(), "caloriesKcal").value_or(0);
        w.avg_heart_rate_bpm = static_cast<int>(
            Number(ms->get_object(), "averageHeartRateBeatsPerMinute").value_or(0));
      }
      r.meta.origin = OriginOf(StrOr(o, "notes"));
      r.data = w;
      return r;
    }
    case Coll::kSleep: {
      if (!interval(o, &r)) {
        *why = "sleep: interval is required";
        return std::nullopt;
      }
      int64_t ms[4] = {0, 0, 0, 0};  // deep light rem awake
      if (const json::value* st = o.if_contains("stages"); st && st->is_array()) {
        for (const auto& e : st->get_array()) {
          if (!e.is_object()) continue;
          auto s = ParseTime(StrOr(e.get_object(), "startTime"), false);
          auto en = ParseTime(StrOr(e.get_object(), "endTime"), false);
          const std::string type = StrOr(e.get_object(), "type");
          if (!s || !en || *en < *s) {
            *why = "sleep: stage times are required";
            return std::nullopt;
          }
          int idx = type == "DEEP"                        ? 0
                    : type == "LIGHT" || type == "ASLEEP" ? 1
                    : type == "REM"                       ? 2
                                                          : 3;
          ms[idx] += *en - *s;
        }
      }
      r.data =
          providers::SleepData{static_cast<int>(ms[0] / 60'000), static_cast<int>(ms[1] / 60'000),
                               static_cast<int>(ms[2] / 60'000), static_cast<int>(ms[3] / 60'000)};
      if (const json::value* md = o.if_contains("metadata"); md && md->is_object())
        r.meta.origin = OriginOf(StrOr(md->get_object(), "externalId"));
      return r;
    }
    case Coll::kWeight: {
      auto grams = Number(o, "weightGrams");
      if (!sample(o, &r) || !grams || *grams <= 0 || *grams > 1e6) {
        *why = "weight: sampleTime and weightGrams in (0, 1000000] are required";
        return std::nullopt;
      }
      r.meta.origin = OriginOf(StrOr(o, "notes"));
      r.data = providers::WeightData{*grams / 1000.0, std::nullopt};
      return r;
    }
    case Coll::kBodyFat: {
      auto pct = Number(o, "percentage");
      if (!sample(o, &r) || !pct || *pct < 0 || *pct > 100) {
        *why = "bodyFat: sampleTime and percentage in [0, 100] are required";
        return std::nullopt;
      }
      r.data = providers::WeightData{0, *pct / 100.0};
      return r;
    }
    case Coll::kSteps:
      break;
  }
  *why = "steps are not writable in the simulator";
  return std::nullopt;
}

HttpResponse Create(const SimRequest& req, World& world, PendingFat& pending) {
  if (!UserMatches(req, world)) return GoogleError(403, "PERMISSION_DENIED", "Forbidden");
  auto coll = CollectionOf(req.params.at("type"));
  if (!coll) return GoogleError(404, "NOT_FOUND", "Unknown data type.");
  boost::system::error_code ec;
  json::value v = json::parse(req.http.body, ec);
  if (ec || !v.is_object()) return GoogleError(400, "INVALID_ARGUMENT", "Invalid JSON payload.");
  std::string why;
  auto rec = DecodeCreate(*coll, v.get_object(), &why);
  if (!rec) return GoogleError(400, "INVALID_ARGUMENT", why);
  const std::string pid = world.ProviderUserId(kFitbit, req.sim_user);
  json::object point;
  if (*coll == Coll::kBodyFat) {
    std::lock_guard lock(pending.mu);
    if (pending.by_user_time.size() >= PendingFat::kMax)
      pending.by_user_time.erase(pending.by_user_time.begin());
    pending.by_user_time[{req.sim_user, rec->meta.start_ms}] =
        *std::get<providers::WeightData>(rec->data).fat_ratio;
    rec->meta.id = "w" + std::to_string(++pending.seq);
    point = EncodePoint(*coll, *rec, pid);
  } else {
    if (*coll == Coll::kWeight) {
      std::lock_guard lock(pending.mu);
      auto it = pending.by_user_time.find({req.sim_user, rec->meta.start_ms});
      if (it != pending.by_user_time.end()) {
        std::get<providers::WeightData>(rec->data).fat_ratio = it->second;
        pending.by_user_time.erase(it);
      }
    }
    rec->meta.id = world.Write(kFitbit, req.sim_user, *rec);
    auto stored = world.Find(kFitbit, req.sim_user, rec->meta.type, rec->meta.id);
    point = EncodePoint(*coll, stored ? *stored : *rec, pid);
  }
  point["@type"] = "type.googleapis.com/google.devicesandservices.health.v4.DataPoint";
  HttpResponse r = JsonReply(
      200, json::object{
               {"name", "operations/create-" + rec->meta.id}, {"done", true}, {"response", point}});
  AddRateHeaders(req, &r);
  return r;
}

// A legacy Fitbit subscriber notification for the user's newest record of `type`.
HttpRequest MakeWebhook(const std::string& user, DataType type, World& world) {
  const ProviderProfile p = world.Profile(kFitbit);
  std::string date = "1970-01-01";
  auto recs = world.Records(kFitbit, user, type, -kAllTime, kAllTime);
  if (!recs.empty()) {
    const Record& last = recs.back();
    date = CivilString(last.meta.start_ms, last.meta.utc_offset_min).substr(0, 10);
  }
  std::string_view collection = type == DataType::kSleepSession ? "sleep"
                                : type == DataType::kWeight     ? "body"
                                                                : "activities";
  HttpRequest r;
  r.method = "POST";
  r.path = "/v1/webhooks/fitbit";
  r.body = json::serialize(
      json::array{json::object{{"collectionType", collection},
                               {"date", date},
                               {"ownerId", world.ProviderUserId(kFitbit, user)},
                               {"ownerType", "user"},
                               {"subscriptionId", "syncwell-" + std::string(collection)}}});
  r.headers = {{"content-type", "application/json"},
               {"x-fitbit-signature", Signature(r.body, p.client_secret)}};
  return r;
}

}  // namespace

ModuleSpec FitbitModule() {
  ModuleSpec spec;
  spec.provider = kFitbit;
  auto pending = std::make_shared<PendingFat>();
  using R = ModuleSpec::Route;
  const std::string points = "/v4/users/{user}/dataTypes/{type}/dataPoints";
  spec.routes = {
      R{"POST", "/oauth2/token", SimAuth::kNone, false, Token},
      R{"POST", "/oauth2/revoke", SimAuth::kNone, false, Revoke},
      R{"GET", "/v4/users/{user}/identity", SimAuth::kBearer, false, Identity},
      R{"GET", points, SimAuth::kBearer, false,
        [](const SimRequest& q, World& w) { return List(q, w, false); }},
      R{"GET", points + ":reconcile", SimAuth::kBearer, false,
        [](const SimRequest& q, World& w) { return List(q, w, true); }},
      R{"GET", points + "/{id}", SimAuth::kBearer, false, GetPoint},
      R{"POST", points, SimAuth::kBearer, true,
        [pending](const SimRequest& q, World& w) { return Create(q, w, *pending); }},
  };
  spec.unauthorized = [] {
    HttpResponse r =
        GoogleError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
    r.headers.emplace_back(
        "WWW-Authenticate",
        "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"");
    return r;
  };
  spec.rate_limited = [](const Admission& a) {
    HttpResponse r = GoogleError(429, "RESOURCE_EXHAUSTED", "Too Many Requests");
    const int64_t secs = std::max<int64_t>(1, a.retry_after.count());
    r.headers.emplace_back("Retry-After", std::to_string(secs));
    if (a.limit > 0) {
      r.headers.emplace_back("Fitbit-Rate-Limit-Limit", std::to_string(a.limit));
      r.headers.emplace_back("Fitbit-Rate-Limit-Remaining", "0");
      r.headers.emplace_back("Fitbit-Rate-Limit-Reset", std::to_string(secs));
    }
    return r;
  };
  spec.make_webhook = MakeWebhook;
  return spec;
}

}  // namespace syncwell::sim
