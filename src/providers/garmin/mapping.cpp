#include "providers/garmin/mapping.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <map>
#include <optional>
#include <tuple>

#include "core/civil_time.hpp"

namespace syncwell::garmin {

namespace json = boost::json;
using providers::DataType;
using providers::Record;

namespace {

constexpr int64_t kMsPerDay = 86'400'000;
constexpr int64_t kMaxOffsetS = 26 * 3600;

Error Bad(std::string_view summary, std::string_view field) {
  return MakeError(Errc::kPermanent, "garmin: " + std::string(summary) + "." + std::string(field) +
                                         ": missing or malformed");
}

std::optional<std::string_view> Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string_view(v->get_string());
}

std::optional<double> Num(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return std::nullopt;
  if (v->is_double())
    return std::isfinite(v->get_double()) ? std::optional(v->get_double()) : std::nullopt;
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  return std::nullopt;
}

std::optional<int64_t> Int(const json::object& o, std::string_view key) {
  auto d = Num(o, key);
  if (!d || std::abs(*d) > 1e15) return std::nullopt;
  return static_cast<int64_t>(std::llround(*d));
}

// summaryId is a string in every documented example; numbers are tolerated.
std::optional<std::string> SummaryId(const json::object& o) {
  const json::value* v = o.if_contains("summaryId");
  if (!v) return std::nullopt;
  if (v->is_string() && !v->get_string().empty()) return std::string(v->get_string());
  if (v->is_int64()) return std::to_string(v->get_int64());
  if (v->is_uint64()) return std::to_string(v->get_uint64());
  return std::nullopt;
}

std::optional<int64_t> ParseDate(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  int v[3] = {0, 0, 0};
  const size_t starts[3] = {0, 5, 8}, lens[3] = {4, 2, 2};
  for (int k = 0; k < 3; ++k) {
    for (size_t i = starts[k]; i < starts[k] + lens[k]; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v[k] = v[k] * 10 + (s[i] - '0');
    }
  }
  if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31) return std::nullopt;
  return DaysFromCivil(v[0], static_cast<unsigned>(v[1]), static_cast<unsigned>(v[2]));
}

// Common start/offset fields. Garmin offsets are seconds to add to UTC for device time.
struct Start {
  int64_t start_s = 0;
  int32_t offset_min = 0;
};

Result<Start> DecodeStart(const json::object& o, std::string_view summary,
                          std::string_view time_key, std::string_view offset_key) {
  auto t = Int(o, time_key);
  if (!t || *t < 0) return Bad(summary, time_key);
  Start s{*t, 0};
  if (o.contains(offset_key)) {
    auto off = Int(o, offset_key);
    if (!off || std::abs(*off) > kMaxOffsetS) return Bad(summary, offset_key);
    s.offset_min = static_cast<int32_t>(*off / 60);
  }
  return s;
}

Result<int64_t> NonNegative(const json::object& o, std::string_view summary, std::string_view key,
                            int64_t fallback = 0) {
  if (!o.contains(key)) return fallback;
  auto v = Int(o, key);
  if (!v || *v < 0) return Bad(summary, key);
  return *v;
}

int SecondsToMinutes(int64_t s) { return static_cast<int>((s + 30) / 60); }

Result<Record> DecodeActivity(const json::object& o) {
  auto id = SummaryId(o);
  if (!id) return Bad("activities", "summaryId");
  auto st = DecodeStart(o, "activities", "startTimeInSeconds", "startTimeOffsetInSeconds");
  if (!st) return st.error();
  auto dur = NonNegative(o, "activities", "durationInSeconds");
  if (!dur) return dur.error();
  Record r;
  r.meta.id = std::move(*id);
  r.meta.type = DataType::kWorkout;
  r.meta.start_ms = st->start_s * 1000;
  r.meta.end_ms = (st->start_s + *dur) * 1000;
  r.meta.utc_offset_min = st->offset_min;
  r.meta.modified_ms = r.meta.end_ms;  // summaries carry no modification time
  r.meta.activity = std::string(ActivityFromGarminType(Str(o, "activityType").value_or("")));
  providers::WorkoutData w;
  w.name = std::string(Str(o, "activityName").value_or(""));
  if (o.contains("distanceInMeters")) {
    auto d = Num(o, "distanceInMeters");
    if (!d || *d < 0) return Bad("activities", "distanceInMeters");
    w.distance_m = *d;
  }
  if (o.contains("activeKilocalories")) {
    auto k = Num(o, "activeKilocalories");
    if (!k || *k < 0) return Bad("activities", "activeKilocalories");
    w.energy_kcal = *k;
  }
  if (o.contains("averageHeartRateInBeatsPerMinute")) {
    auto hr = Int(o, "averageHeartRateInBeatsPerMinute");
    if (!hr || *hr < 0 || *hr > 400) return Bad("activities", "averageHeartRateInBeatsPerMinute");
    w.avg_heart_rate_bpm = static_cast<int>(*hr);
  }
  r.data = std::move(w);
  return r;
}

Result<Record> DecodeDaily(const json::object& o) {
  auto id = SummaryId(o);
  if (!id) return Bad("dailies", "summaryId");
  auto st = DecodeStart(o, "dailies", "startTimeInSeconds", "startTimeOffsetInSeconds");
  if (!st) return st.error();
  auto steps = NonNegative(o, "dailies", "steps");
  if (!steps) return steps.error();
  auto dur = NonNegative(o, "dailies", "durationInSeconds", 86400);
  if (!dur) return dur.error();
  Record r;
  r.meta.id = std::move(*id);
  r.meta.type = DataType::kSteps;
  // calendarDate is the user's day; its local midnight is the canonical start (records.hpp).
  if (auto date = Str(o, "calendarDate")) {
    auto day = ParseDate(*date);
    if (!day) return Bad("dailies", "calendarDate");
    r.meta.start_ms = *day * kMsPerDay - static_cast<int64_t>(st->offset_min) * 60'000;
  } else {
    r.meta.start_ms = st->start_s * 1000;
  }
  r.meta.end_ms = r.meta.start_ms + kMsPerDay;
  r.meta.utc_offset_min = st->offset_min;
  // A daily summary grows through the day; its covered time is the best modification time.
  r.meta.modified_ms = (st->start_s + *dur) * 1000;
  r.data = providers::StepsData{*steps};
  return r;
}

Result<Record> DecodeSleep(const json::object& o) {
  auto id = SummaryId(o);
  if (!id) return Bad("sleeps", "summaryId");
  auto st = DecodeStart(o, "sleeps", "startTimeInSeconds", "startTimeOffsetInSeconds");
  if (!st) return st.error();
  auto dur = NonNegative(o, "sleeps", "durationInSeconds");
  if (!dur) return dur.error();
  int64_t secs[4] = {0, 0, 0, 0};
  const char* keys[4] = {"deepSleepDurationInSeconds", "lightSleepDurationInSeconds",
                         "remSleepInSeconds", "awakeDurationInSeconds"};
  for (int i = 0; i < 4; ++i) {
    auto v = NonNegative(o, "sleeps", keys[i]);
    if (!v) return v.error();
    secs[i] = *v;
  }
  auto unmeasurable = NonNegative(o, "sleeps", "unmeasurableSleepInSeconds");
  if (!unmeasurable) return unmeasurable.error();
  // The documentation says durationInSeconds excludes awake time while its examples include
  // it; the session ends at whichever is longer.
  const int64_t stages = secs[0] + secs[1] + secs[2] + secs[3] + *unmeasurable;
  Record r;
  r.meta.id = std::move(*id);
  r.meta.type = DataType::kSleepSession;
  r.meta.start_ms = st->start_s * 1000;
  r.meta.end_ms = (st->start_s + std::max(*dur, stages)) * 1000;
  r.meta.utc_offset_min = st->offset_min;
  r.meta.modified_ms = r.meta.end_ms;
  r.data = providers::SleepData{SecondsToMinutes(secs[0]), SecondsToMinutes(secs[1]),
                                SecondsToMinutes(secs[2]), SecondsToMinutes(secs[3])};
  return r;
}

Result<Record> DecodeBodyComp(const json::object& o) {
  auto id = SummaryId(o);
  if (!id) return Bad("bodyComps", "summaryId");
  auto st =
      DecodeStart(o, "bodyComps", "measurementTimeInSeconds", "measurementTimeOffsetInSeconds");
  if (!st) return st.error();
  auto grams = Num(o, "weightInGrams");
  if (!grams || *grams <= 0 || *grams > 1e6) return Bad("bodyComps", "weightInGrams");
  providers::WeightData w{*grams / 1000.0, std::nullopt};
  if (o.contains("bodyFatInPercent")) {
    auto pct = Num(o, "bodyFatInPercent");
    if (!pct || *pct < 0 || *pct > 100) return Bad("bodyComps", "bodyFatInPercent");
    w.fat_ratio = *pct / 100.0;
  }
  Record r;
  r.meta.id = std::move(*id);
  r.meta.type = DataType::kWeight;
  r.meta.start_ms = r.meta.end_ms = st->start_s * 1000;
  r.meta.utc_offset_min = st->offset_min;
  r.meta.modified_ms = r.meta.start_ms;
  r.data = w;
  return r;
}

std::optional<int64_t> QueryInt(std::string_view url, std::string_view key) {
  size_t q = url.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = url.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos && kv.substr(0, eq) == key) {
      std::string_view v = kv.substr(eq + 1);
      if (v.empty() || v.size() > 15) return std::nullopt;
      int64_t n = 0;
      for (char c : v) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + (c - '0');
      }
      return n;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

}  // namespace

std::string_view SummaryType(DataType t) {
  switch (t) {
    case DataType::kWorkout:
      return "activities";
    case DataType::kSleepSession:
      return "sleeps";
    case DataType::kSteps:
      return "dailies";
    case DataType::kWeight:
      return "bodyComps";
  }
  return "activities";
}

std::string_view ActivityFromGarminType(std::string_view t) {
  struct Entry {
    std::string_view garmin, canonical;
  };
  static constexpr Entry kMap[] = {
      {"RUNNING", "run"},
      {"STREET_RUNNING", "run"},
      {"TRACK_RUNNING", "run"},
      {"ULTRA_RUN", "run"},
      {"OBSTACLE_RUN", "run"},
      {"TRAIL_RUNNING", "trail_run"},
      {"TREADMILL_RUNNING", "treadmill_run"},
      {"INDOOR_RUNNING", "treadmill_run"},
      {"VIRTUAL_RUN", "virtual_run"},
      {"CYCLING", "ride"},
      {"ROAD_BIKING", "ride"},
      {"GRAVEL_CYCLING", "ride"},
      {"CYCLOCROSS", "ride"},
      {"RECUMBENT_CYCLING", "ride"},
      {"TRACK_CYCLING", "ride"},
      {"BMX", "ride"},
      {"INDOOR_CYCLING", "ride"},
      {"MOUNTAIN_BIKING", "mountain_bike_ride"},
      {"DOWNHILL_BIKING", "mountain_bike_ride"},
      {"VIRTUAL_RIDE", "virtual_ride"},
      {"E_BIKE_FITNESS", "e_bike_ride"},
      {"E_BIKE_MOUNTAIN", "e_bike_ride"},
      {"E_ENDURO_MTB", "e_bike_ride"},
      {"WALKING", "walk"},
      {"CASUAL_WALKING", "walk"},
      {"SPEED_WALKING", "walk"},
      {"HIKING", "hike"},
      {"LAP_SWIMMING", "swim"},
      {"SWIMMING", "swim"},
      {"OPEN_WATER_SWIMMING", "open_water_swim"},
      {"STRENGTH_TRAINING", "strength"},
      {"YOGA", "yoga"},
      {"ROWING", "rowing"},
      {"INDOOR_ROWING", "rowing"},
      {"ELLIPTICAL", "elliptical"},
  };
  for (const auto& e : kMap) {
    if (e.garmin == t) return e.canonical;
  }
  return "other";
}

Result<Record> DecodeSummary(DataType type, const json::object& summary) {
  switch (type) {
    case DataType::kWorkout:
      return DecodeActivity(summary);
    case DataType::kSleepSession:
      return DecodeSleep(summary);
    case DataType::kSteps:
      return DecodeDaily(summary);
    case DataType::kWeight:
      return DecodeBodyComp(summary);
  }
  return MakeError(Errc::kPermanent, "garmin: unknown data type");
}

Result<std::vector<providers::WebhookEvent>> ParseNotificationBody(std::string_view body,
                                                                   int64_t now_ms) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object())
    return MakeError(Errc::kInvalidArgument, "garmin notification: body is not a JSON object");
  struct Key {
    std::string user;
    std::optional<DataType> type;
    std::string kind;
    bool operator<(const Key& o) const {
      return std::tie(user, type, kind) < std::tie(o.user, o.type, o.kind);
    }
  };
  std::map<Key, std::optional<providers::TimeRange>> merged;
  static constexpr std::pair<std::string_view, DataType> kLists[] = {
      {"activities", DataType::kWorkout}, {"manuallyUpdatedActivities", DataType::kWorkout},
      {"dailies", DataType::kSteps},      {"sleeps", DataType::kSleepSession},
      {"bodyComps", DataType::kWeight},
  };
  for (const auto& [list_key, list] : v.get_object()) {
    std::optional<DataType> type;
    std::string kind = "update";
    if (list_key == "deregistrations") {
      kind = "deauthorize";
    } else if (list_key == "userPermissionsChange") {
      kind = "permissions";
    } else {
      for (const auto& [k, t] : kLists) {
        if (k == list_key) type = t;
      }
      if (!type) continue;  // epochs, stressDetails, ...: not synced
    }
    if (!list.is_array())
      return MakeError(Errc::kInvalidArgument, "garmin notification: list is not an array");
    for (const auto& e : list.get_array()) {
      const json::object* o = e.if_object();
      if (!o) return MakeError(Errc::kInvalidArgument, "garmin notification: entry malformed");
      auto user = Str(*o, "userId");
      if (!user || user->empty())
        return MakeError(Errc::kInvalidArgument, "garmin notification: userId missing");
      std::optional<providers::TimeRange> range;
      if (type) {
        if (auto cb = Str(*o, "callbackURL")) {
          // Ping: the callback is never fetched (it may point anywhere); only its upload window
          // is used, and the connector pulls that window from its own base URL.
          auto from = QueryInt(*cb, "uploadStartTimeInSeconds");
          auto to = QueryInt(*cb, "uploadEndTimeInSeconds");
          if (!from || !to || *to < *from)
            return MakeError(Errc::kInvalidArgument,
                             "garmin notification: callbackURL without an upload window");
          range = providers::TimeRange{*from * 1000, (*to + 1) * 1000};
        } else {
          // Push: uploaded between the summary's start and now.
          std::optional<int64_t> start = Int(*o, "startTimeInSeconds");
          if (!start) start = Int(*o, "measurementTimeInSeconds");
          int64_t from = start ? *start * 1000 : now_ms - kMsPerDay;
          from = std::clamp<int64_t>(from, now_ms - 7 * kMsPerDay, now_ms);
          range = providers::TimeRange{from, now_ms + 60'000};
        }
      }
      auto [it, inserted] = merged.try_emplace(Key{std::string(*user), type, kind}, range);
      if (!inserted && range && it->second) {
        it->second->start_ms = std::min(it->second->start_ms, range->start_ms);
        it->second->end_ms = std::max(it->second->end_ms, range->end_ms);
      }
    }
  }
  std::vector<providers::WebhookEvent> out;
  out.reserve(merged.size());
  for (auto& [k, range] : merged) {
    providers::WebhookEvent ev;
    ev.provider_user_id = k.user;
    ev.type = k.type;
    ev.range = range;
    ev.kind = k.kind;
    out.push_back(std::move(ev));
  }
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace syncwell::garmin
