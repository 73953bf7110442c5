#include "providers/fitbit/mapping.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <map>

#include "core/civil_time.hpp"
#include "core/clock.hpp"

namespace syncwell::fitbit {

namespace json = boost::json;
using providers::DataType;
using providers::Record;
using providers::RecordMeta;

namespace {

constexpr int64_t kMsPerDay = 86'400'000;

Error Bad(std::string field, std::string what = "missing or malformed") {
  return MakeError(Errc::kPermanent, "fitbit: " + field + ": " + what);
}

const json::object* Obj(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v ? v->if_object() : nullptr;
}

std::optional<std::string_view> Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string_view(v->get_string());
}

// Numbers may come as JSON numbers or (int64 per proto3 JSON) as decimal strings.
std::optional<double> Num(const json::value& v) {
  if (v.is_double()) return v.get_double();
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_string()) {
    std::string s(v.get_string());
    if (s.empty()) return std::nullopt;
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || !std::isfinite(d)) return std::nullopt;
    return d;
  }
  return std::nullopt;
}

std::optional<double> Num(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v ? Num(*v) : std::nullopt;
}

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian).

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// start/end/offset of an ObservationTimeInterval or SessionTimeInterval.
struct Interval {
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  int32_t offset_min = 0;
};

Result<Interval> DecodeInterval(const json::object& parent, const std::string& path) {
  const json::object* iv = Obj(parent, "interval");
  if (!iv) return Bad(path + ".interval");
  Interval out;
  auto s = Str(*iv, "startTime");
  auto e = Str(*iv, "endTime");
  auto sm = s ? ParseRfc3339Ms(*s) : std::nullopt;
  auto em = e ? ParseRfc3339Ms(*e) : std::nullopt;
  if (!sm) return Bad(path + ".interval.startTime");
  if (!em || *em < *sm) return Bad(path + ".interval.endTime");
  out.start_ms = *sm;
  out.end_ms = *em;
  if (const json::value* off = iv->if_contains("startUtcOffset")) {
    auto secs = ParseDurationSeconds(*off);
    if (!secs || std::abs(*secs) > 26 * 3600) return Bad(path + ".interval.startUtcOffset");
    out.offset_min = static_cast<int32_t>(*secs / 60);
  }
  return out;
}

struct Sample {
  int64_t time_ms = 0;
  int32_t offset_min = 0;
};

Result<Sample> DecodeSampleTime(const json::object& parent, const std::string& path) {
  const json::object* st = Obj(parent, "sampleTime");
  if (!st) return Bad(path + ".sampleTime");
  auto t = Str(*st, "physicalTime");
  auto ms = t ? ParseRfc3339Ms(*t) : std::nullopt;
  if (!ms) return Bad(path + ".sampleTime.physicalTime");
  Sample out{*ms, 0};
  if (const json::value* off = st->if_contains("utcOffset")) {
    auto secs = ParseDurationSeconds(*off);
    if (!secs || std::abs(*secs) > 26 * 3600) return Bad(path + ".sampleTime.utcOffset");
    out.offset_min = static_cast<int32_t>(*secs / 60);
  }
  return out;
}

// The record id (last segment of DataPoint.name).
Result<std::string> DecodeId(const json::object& dp) {
  auto name = Str(dp, "name");
  if (!name || name->empty()) return Bad("name");
  std::string id = DataPointId(*name);
  if (id.empty()) return Bad("name");
  return id;
}

int64_t ModifiedMs(const json::object& o, int64_t fallback) {
  for (const char* key : {"updateTime", "createTime"}) {
    if (auto s = Str(o, key)) {
      if (auto ms = ParseRfc3339Ms(*s)) return *ms;
    }
  }
  return fallback;
}

std::string OriginFrom(std::optional<std::string_view> s) {
  if (!s) return {};
  std::string_view v = *s;
  if (!providers::IsOurOrigin(v)) return {};
  // The tag is one token; anything a user appended to the notes is not part of it.
  size_t ws = v.find_first_of(" \t\r\n");
  return std::string(v.substr(0, ws));
}

json::object IntervalJson(int64_t start_ms, int64_t end_ms, int32_t offset_min) {
  std::string off = FormatDurationSeconds(static_cast<int64_t>(offset_min) * 60);
  return json::object{{"startTime", FormatRfc3339Ms(start_ms)},
                      {"startUtcOffset", off},
                      {"endTime", FormatRfc3339Ms(end_ms)},
                      {"endUtcOffset", off}};
}

json::object SampleTimeJson(int64_t t_ms, int32_t offset_min) {
  return json::object{{"physicalTime", FormatRfc3339Ms(t_ms)},
                      {"utcOffset", FormatDurationSeconds(static_cast<int64_t>(offset_min) * 60)}};
}

}  // namespace

// ---- Time ------------------------------------------------------------------------------------

std::optional<int64_t> ParseRfc3339Ms(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (!Digits(s, 0, 4, &y) || s.size() < 19 || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
      !Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' ||
      !Digits(s, 17, 2, &sec))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  size_t i = 19;
  int64_t frac_ms = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t digits = 0;
    int64_t scale = 100;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (digits < 3) frac_ms += (s[i] - '0') * scale;
      scale /= 10;
      ++digits;
      ++i;
    }
    if (digits == 0) return std::nullopt;
  }
  if (i >= s.size()) return std::nullopt;
  int64_t offset_s = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    int oh, om;
    if (!Digits(s, i + 1, 2, &oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
        !Digits(s, i + 4, 2, &om) || oh > 23 || om > 59)
      return std::nullopt;
    offset_s = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  const int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  const int64_t secs = days * 86400 + h * 3600 + mi * 60 + std::min(sec, 59) - offset_s;
  return secs * 1000 + frac_ms;
}

std::string FormatRfc3339Ms(int64_t utc_ms) { return FormatRfc3339(FromUnixMillis(utc_ms)); }

std::optional<int64_t> ParseDurationSeconds(const json::value& v) {
  if (v.is_string()) {
    std::string_view s = v.get_string();
    if (s.size() < 2 || s.back() != 's') return std::nullopt;
    std::string num(s.substr(0, s.size() - 1));
    char* end = nullptr;
    double d = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size() || !std::isfinite(d) || std::abs(d) > 1e12)
      return std::nullopt;
    return static_cast<int64_t>(std::llround(d));
  }
  auto n = Num(v);
  if (!n || std::abs(*n) > 1e12) return std::nullopt;
  return static_cast<int64_t>(std::llround(*n));
}

std::string FormatDurationSeconds(int64_t seconds) { return std::to_string(seconds) + "s"; }

std::string CivilDateTime(int64_t utc_ms, int32_t offset_min) {
  const int64_t local_ms = utc_ms + static_cast<int64_t>(offset_min) * 60'000;
  const int64_t days = FloorDiv(local_ms, kMsPerDay);
  const int64_t in_day = (local_ms - days * kMsPerDay) / 1000;
  char buf[16];
  std::snprintf(buf, sizeof buf, "T%02d:%02d:%02d", static_cast<int>(in_day / 3600 % 24),
                static_cast<int>(in_day / 60 % 60), static_cast<int>(in_day % 60));
  return FormatCivilDate(days) + buf;
}

std::string CivilDate(int64_t utc_ms, int32_t offset_min) {
  return FormatCivilDate(FloorDiv(utc_ms + static_cast<int64_t>(offset_min) * 60'000, kMsPerDay));
}

std::optional<int64_t> ParseCivilDate(std::string_view s) {
  int y, m, d;
  if (s.size() != 10 || !Digits(s, 0, 4, &y) || s[4] != '-' || !Digits(s, 5, 2, &m) ||
      s[7] != '-' || !Digits(s, 8, 2, &d) || m < 1 || m > 12 || d < 1 || d > 31)
    return std::nullopt;
  return DaysFromCivil(y, static_cast<unsigned>(m), static_cast<unsigned>(d));
}

std::string FormatCivilDate(int64_t days_since_epoch) {
  int64_t y;
  unsigned m, d;
  CivilFromDays(days_since_epoch, &y, &m, &d);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(y), m % 100u, d % 100u);
  return buf;
}

// ---- Types -----------------------------------------------------------------------------------

std::string_view DataTypeSegment(DataType t) {
  switch (t) {
    case DataType::kWorkout:
      return "exercise";
    case DataType::kSleepSession:
      return "sleep";
    case DataType::kSteps:
      return "steps";
    case DataType::kWeight:
      return "weight";
  }
  return "exercise";
}

std::string_view ActivityFromExerciseType(std::string_view t) {
  // Documented enum (Exercise.ExerciseType, health v4): RUNNING, WALKING, BIKING, SWIMMING,
  // HIKING, YOGA, PILATES, WORKOUT, HIIT, WEIGHTLIFTING, STRENGTH_TRAINING, OTHER. The extra
  // names below are accepted in case the enum grows (clients must tolerate new values).
  struct Entry {
    std::string_view google, canonical;
  };
  static constexpr Entry kMap[] = {
      {"RUNNING", "run"},
      {"TRAIL_RUNNING", "trail_run"},
      {"TREADMILL_RUNNING", "treadmill_run"},
      {"TREADMILL", "treadmill_run"},
      {"WALKING", "walk"},
      {"HIKING", "hike"},
      {"BIKING", "ride"},
      {"MOUNTAIN_BIKING", "mountain_bike_ride"},
      {"SWIMMING", "swim"},
      {"OPEN_WATER_SWIMMING", "open_water_swim"},
      {"YOGA", "yoga"},
      {"WEIGHTLIFTING", "strength"},
      {"STRENGTH_TRAINING", "strength"},
      {"ROWING", "rowing"},
      {"ROWING_MACHINE", "rowing"},
      {"ELLIPTICAL", "elliptical"},
  };
  for (const auto& e : kMap) {
    if (e.google == t) return e.canonical;
  }
  return "other";
}

std::string_view ExerciseTypeFromActivity(std::string_view activity) {
  std::string_view family = providers::ActivityFamily(activity);
  if (family == "run") return "RUNNING";
  if (family == "ride") return "BIKING";
  if (activity == "walk") return "WALKING";
  if (activity == "hike") return "HIKING";
  if (family == "swim") return "SWIMMING";
  if (activity == "yoga") return "YOGA";
  if (activity == "strength") return "STRENGTH_TRAINING";
  return "OTHER";  // rowing, elliptical, other: the display name keeps the user's title
}

std::string DataPointId(std::string_view name) {
  size_t slash = name.rfind('/');
  return std::string(slash == std::string_view::npos ? name : name.substr(slash + 1));
}

// ---- Decoding --------------------------------------------------------------------------------

Result<Record> DecodeExercise(const json::object& dp) {
  auto id = DecodeId(dp);
  if (!id) return id.error();
  const json::object* ex = Obj(dp, "exercise");
  if (!ex) return Bad("exercise");
  auto iv = DecodeInterval(*ex, "exercise");
  if (!iv) return iv.error();
  Record r;
  r.meta.id = std::move(*id);
  r.meta.type = DataType::kWorkout;
  r.meta.start_ms = iv->start_ms;
  r.meta.end_ms = iv->end_ms;
  r.meta.utc_offset_min = iv->offset_min;
  r.meta.modified_ms = ModifiedMs(*ex, iv->end_ms);
  r.meta.activity = std::string(ActivityFromExerciseType(Str(*ex, "exerciseType").value_or("")));
  r.meta.origin = OriginFrom(Str(*ex, "notes"));
  providers::WorkoutData w;
  w.name = std::string(Str(*ex, "displayName").value_or(""));
  if (const json::object* ms = Obj(*ex, "metricsSummary")) {
    if (ms->contains("distanceMillimeters")) {
      auto mm = Num(*ms, "distanceMillimeters");
      if (!mm || *mm < 0) return Bad("exercise.metricsSummary.distanceMillimeters");
      w.distance_m = *mm / 1000.0;
    }
    if (ms->contains("caloriesKcal")) {
      auto kcal = Num(*ms, "caloriesKcal");
      if (!kcal || *kcal < 0) return Bad("exercise.metricsSummary.caloriesKcal");
      w.energy_kcal = *kcal;
    }
    if (ms->contains("averageHeartRateBeatsPerMinute")) {
      auto hr = Num(*ms, "averageHeartRateBeatsPerMinute");
      if (!hr || *hr < 0 || *hr > 400)
        return Bad("exercise.metricsSummary.averageHeartRateBeatsPerMinute");
      w.avg_heart_rate_bpm = static_cast<int>(std::lround(*hr));
    }
  }
  r.data = std::move(w);
  return r;
}

Result<Record> DecodeSleep(const json::object& dp) {
  auto id = DecodeId(dp);
  if (!id) return id.error();
  const json::object* sl = Obj(dp, "sleep");
  if (!sl) return Bad("sleep");
  auto iv = DecodeInterval(*sl, "sleep");
  if (!iv) return iv.error();
  Record r;
  r.meta.id = std::move(*id);
  r.meta.type = DataType::kSleepSession;
  r.meta.start_ms = iv->start_ms;
  r.meta.end_ms = iv->end_ms;
  r.meta.utc_offset_min = iv->offset_min;
  r.meta.modified_ms = ModifiedMs(*sl, iv->end_ms);
  if (const json::object* md = Obj(*sl, "metadata"))
    r.meta.origin = OriginFrom(Str(*md, "externalId"));

  // Classic sleep has ASLEEP/RESTLESS stages; they count as light/awake.
  auto stage_slot = [](std::string_view type, int64_t* deep, int64_t* light, int64_t* rem,
                       int64_t* awake) -> int64_t* {
    if (type == "DEEP") return deep;
    if (type == "LIGHT" || type == "ASLEEP") return light;
    if (type == "REM") return rem;
    if (type == "AWAKE" || type == "RESTLESS") return awake;
    return nullptr;
  };
  int64_t deep = 0, light = 0, rem = 0, awake = 0;  // minutes (summary) or ms (stages)
  bool from_summary = false;
  if (const json::object* sum = Obj(*sl, "summary")) {
    if (const json::value* ss = sum->if_contains("stagesSummary"); ss && ss->is_array()) {
      for (const auto& e : ss->get_array()) {
        const json::object* o = e.if_object();
        if (!o) return Bad("sleep.summary.stagesSummary");
        auto minutes = Num(*o, "minutes");
        if (!minutes || *minutes < 0) return Bad("sleep.summary.stagesSummary.minutes");
        if (int64_t* slot = stage_slot(Str(*o, "type").value_or(""), &deep, &light, &rem, &awake))
          *slot += static_cast<int64_t>(std::llround(*minutes));
      }
      from_summary = true;
    }
  }
  if (!from_summary) {
    if (const json::value* st = sl->if_contains("stages"); st && st->is_array()) {
      for (const auto& e : st->get_array()) {
        const json::object* o = e.if_object();
        if (!o) return Bad("sleep.stages");
        auto s = Str(*o, "startTime");
        auto en = Str(*o, "endTime");
        auto sm = s ? ParseRfc3339Ms(*s) : std::nullopt;
        auto em = en ? ParseRfc3339Ms(*en) : std::nullopt;
        if (!sm || !em || *em < *sm) return Bad("sleep.stages.startTime/endTime");
        if (int64_t* slot = stage_slot(Str(*o, "type").value_or(""), &deep, &light, &rem, &awake))
          *slot += em.value_or(0) - sm.value_or(0);  // both checked above
      }
    }
    for (int64_t* v : {&deep, &light, &rem, &awake}) *v = (*v + 30'000) / 60'000;
  }
  r.data = providers::SleepData{static_cast<int>(deep), static_cast<int>(light),
                                static_cast<int>(rem), static_cast<int>(awake)};
  return r;
}

Result<Record> DecodeWeight(const json::object& dp) {
  auto id = DecodeId(dp);
  if (!id) return id.error();
  const json::object* w = Obj(dp, "weight");
  if (!w) return Bad("weight");
  auto st = DecodeSampleTime(*w, "weight");
  if (!st) return st.error();
  auto grams = Num(*w, "weightGrams");
  if (!grams || *grams <= 0 || *grams > 1e6) return Bad("weight.weightGrams");
  Record r;
  r.meta.id = std::move(*id);
  r.meta.type = DataType::kWeight;
  r.meta.start_ms = r.meta.end_ms = st->time_ms;
  r.meta.utc_offset_min = st->offset_min;
  r.meta.modified_ms = st->time_ms;  // weight samples carry no update time
  r.meta.origin = OriginFrom(Str(*w, "notes"));
  r.data = providers::WeightData{*grams / 1000.0, std::nullopt};
  return r;
}

Result<Record> DecodeDataPoint(DataType type, const json::object& dp) {
  switch (type) {
    case DataType::kWorkout:
      return DecodeExercise(dp);
    case DataType::kSleepSession:
      return DecodeSleep(dp);
    case DataType::kWeight:
      return DecodeWeight(dp);
    case DataType::kSteps:
      break;
  }
  return MakeError(Errc::kPermanent, "fitbit: steps are aggregated per day, not decoded alone");
}

Result<StepsInterval> DecodeStepsPoint(const json::object& dp) {
  const json::object* st = Obj(dp, "steps");
  if (!st) return Bad("steps");
  auto iv = DecodeInterval(*st, "steps");
  if (!iv) return iv.error();
  auto count = Num(*st, "count");
  if (!count || *count < 0) return Bad("steps.count");
  return StepsInterval{iv->start_ms, iv->end_ms, iv->offset_min,
                       static_cast<int64_t>(std::llround(*count))};
}

std::vector<Record> AggregateDailySteps(const std::vector<StepsInterval>& points, int64_t now_ms) {
  struct Day {
    int64_t first_start = 0;
    int32_t offset_min = 0;
    int64_t count = 0;
  };
  std::map<int64_t, Day> days;  // local civil day -> totals
  for (const auto& p : points) {
    const int64_t day =
        FloorDiv(p.start_ms + static_cast<int64_t>(p.offset_min) * 60'000, kMsPerDay);
    auto [it, inserted] = days.try_emplace(day, Day{p.start_ms, p.offset_min, 0});
    if (!inserted && p.start_ms < it->second.first_start) {
      it->second.first_start = p.start_ms;
      it->second.offset_min = p.offset_min;
    }
    it->second.count += p.count;
  }
  std::vector<Record> out;
  out.reserve(days.size());
  for (const auto& [day, d] : days) {
    Record r;
    r.meta.id = FormatCivilDate(day);
    r.meta.type = DataType::kSteps;
    r.meta.start_ms = day * kMsPerDay - static_cast<int64_t>(d.offset_min) * 60'000;
    r.meta.end_ms = r.meta.start_ms + kMsPerDay;
    r.meta.utc_offset_min = d.offset_min;
    r.meta.modified_ms = std::min(now_ms, r.meta.end_ms);
    r.data = providers::StepsData{d.count};
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(),
            [](const Record& a, const Record& b) { return a.meta.start_ms < b.meta.start_ms; });
  return out;
}

Result<BodyFatSample> DecodeBodyFat(const json::object& dp) {
  const json::object* bf = Obj(dp, "bodyFat");
  if (!bf) return Bad("bodyFat");
  auto st = DecodeSampleTime(*bf, "bodyFat");
  if (!st) return st.error();
  auto pct = Num(*bf, "percentage");
  if (!pct || *pct < 0 || *pct > 100) return Bad("bodyFat.percentage");
  return BodyFatSample{st->time_ms, *pct};
}

// ---- Encoding --------------------------------------------------------------------------------

Result<json::object> EncodeForCreate(DataType type, const Record& r) {
  const RecordMeta& m = r.meta;
  switch (type) {
    case DataType::kWorkout: {
      const auto* w = std::get_if<providers::WorkoutData>(&r.data);
      if (!w) return MakeError(Errc::kPermanent, "fitbit: workout record without workout data");
      json::object ex{{"interval", IntervalJson(m.start_ms, m.end_ms, m.utc_offset_min)},
                      {"exerciseType", ExerciseTypeFromActivity(m.activity)},
                      {"displayName", w->name.empty() ? std::string("Workout") : w->name}};
      json::object summary;
      if (w->distance_m > 0) summary["distanceMillimeters"] = w->distance_m * 1000.0;
      if (w->energy_kcal > 0) summary["caloriesKcal"] = w->energy_kcal;
      if (w->avg_heart_rate_bpm > 0)
        summary["averageHeartRateBeatsPerMinute"] = std::to_string(w->avg_heart_rate_bpm);
      if (!summary.empty()) ex["metricsSummary"] = std::move(summary);
      if (!m.origin.empty()) ex["notes"] = m.origin;
      return json::object{{"exercise", std::move(ex)}};
    }
    case DataType::kSleepSession: {
      const auto* s = std::get_if<providers::SleepData>(&r.data);
      if (!s) return MakeError(Errc::kPermanent, "fitbit: sleep record without sleep data");
      // Only stages are writable (the summary is output-only): lay the stage totals out as
      // contiguous segments from the start, clipped to the session.
      json::array stages;
      int64_t t = m.start_ms;
      std::string off = FormatDurationSeconds(static_cast<int64_t>(m.utc_offset_min) * 60);
      const std::pair<const char*, int> kStages[] = {{"DEEP", s->deep_min},
                                                     {"LIGHT", s->light_min},
                                                     {"REM", s->rem_min},
                                                     {"AWAKE", s->awake_min}};
      for (const auto& [name, minutes] : kStages) {
        if (minutes <= 0 || t >= m.end_ms) continue;
        const int64_t e = std::min(m.end_ms, t + static_cast<int64_t>(minutes) * 60'000);
        stages.push_back(json::object{{"startTime", FormatRfc3339Ms(t)},
                                      {"startUtcOffset", off},
                                      {"endTime", FormatRfc3339Ms(e)},
                                      {"endUtcOffset", off},
                                      {"type", name}});
        t = e;
      }
      json::object sl{{"interval", IntervalJson(m.start_ms, m.end_ms, m.utc_offset_min)},
                      {"type", "STAGES"},
                      {"stages", std::move(stages)}};
      if (!m.origin.empty()) sl["metadata"] = json::object{{"externalId", m.origin}};
      return json::object{{"sleep", std::move(sl)}};
    }
    case DataType::kWeight: {
      const auto* w = std::get_if<providers::WeightData>(&r.data);
      if (!w || w->kg <= 0)
        return MakeError(Errc::kPermanent, "fitbit: weight record without weight");
      json::object wj{{"sampleTime", SampleTimeJson(m.start_ms, m.utc_offset_min)},
                      {"weightGrams", w->kg * 1000.0}};
      if (!m.origin.empty()) wj["notes"] = m.origin;
      return json::object{{"weight", std::move(wj)}};
    }
    case DataType::kSteps:
      break;
  }
  return MakeError(Errc::kPermanent, "fitbit: capability: steps cannot be written");
}

std::optional<json::object> EncodeBodyFat(const Record& r) {
  const auto* w = std::get_if<providers::WeightData>(&r.data);
  if (!w || !w->fat_ratio) return std::nullopt;
  return json::object{
      {"bodyFat",
       json::object{{"sampleTime", SampleTimeJson(r.meta.start_ms, r.meta.utc_offset_min)},
                    {"percentage", *w->fat_ratio * 100.0}}}};
}

// ---- Notifications ---------------------------------------------------------------------------

std::string NotificationSignature(std::string_view body, std::string_view client_secret) {
  const std::string key = std::string(client_secret) + "&";
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &mac_len);
  std::string out(4 * ((mac_len + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), mac, static_cast<int>(mac_len));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<std::vector<providers::WebhookEvent>> ParseNotificationBody(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_array())
    return MakeError(Errc::kInvalidArgument, "fitbit notification: body is not a JSON array");
  std::vector<providers::WebhookEvent> out;
  for (const auto& e : v.get_array()) {
    const json::object* o = e.if_object();
    if (!o) return MakeError(Errc::kInvalidArgument, "fitbit notification: entry is not an object");
    auto owner = Str(*o, "ownerId");
    auto collection = Str(*o, "collectionType");
    if (!owner || owner->empty() || !collection)
      return MakeError(Errc::kInvalidArgument,
                       "fitbit notification: ownerId/collectionType missing");
    providers::WebhookEvent base;
    base.provider_user_id = std::string(*owner);
    if (*collection == "userRevokedAccess" || *collection == "deleteUser") {
      base.kind = "deauthorize";
      out.push_back(std::move(base));
      continue;
    }
    std::vector<DataType> types;
    if (*collection == "activities") {
      types = {DataType::kWorkout, DataType::kSteps};
    } else if (*collection == "exercise") {
      types = {DataType::kWorkout};
    } else if (*collection == "steps") {
      types = {DataType::kSteps};
    } else if (*collection == "sleep") {
      types = {DataType::kSleepSession};
    } else if (*collection == "body" || *collection == "weight" || *collection == "body-fat") {
      types = {DataType::kWeight};
    } else {
      continue;  // foods, ... : nothing SyncWell syncs
    }
    auto date = Str(*o, "date");
    auto day = date ? ParseCivilDate(*date) : std::nullopt;
    if (!day) return MakeError(Errc::kInvalidArgument, "fitbit notification: date malformed");
    // The date is the user's local date; the offset is not in the notification, so the range
    // covers that date in every time zone (UTC-14 .. UTC+14).
    providers::TimeRange range{*day * kMsPerDay - 14 * 3'600'000,
                               (*day + 1) * kMsPerDay + 14 * 3'600'000};
    for (DataType t : types) {
      providers::WebhookEvent ev = base;
      ev.type = t;
      ev.range = range;
      ev.kind = "update";
      out.push_back(std::move(ev));
    }
  }
  return out;
}

}  // namespace syncwell::fitbit
