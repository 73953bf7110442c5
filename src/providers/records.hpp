#pragma once
// Canonical health records: the one shape every connector maps to and from (SPEC S4, S5).
//
// Units and time:
//  * Times are UTC instants in epoch milliseconds. start_ms is inclusive, end_ms exclusive; an
//    instantaneous record (weight) has end_ms == start_ms.
//  * utc_offset_min is the local time-zone offset at start, in minutes east of UTC (+60 = CET),
//    as reported by the provider (used for timezone-shift tolerance and daily step buckets).
//  * Steps are daily totals: start = local midnight, end = next local midnight.
//  * Distances in metres, energy in kilocalories, heart rate in beats per minute, body mass in
//    kilograms, fat as a ratio 0..1, sleep stages in whole minutes.
//
// These values are health data: they live only in memory during a job and are never stored,
// logged or put in an error message (SPEC S4, S13). Only RecordMeta (ids, times, type,
// modification time, activity) and Fingerprint() (a one-way hash) may reach the store.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace syncwell::providers {

enum class DataType { kWorkout, kSleepSession, kSteps, kWeight };
std::string_view DataTypeName(DataType t);  // "workout", "sleep_session", "steps", "weight"
bool ParseDataType(std::string_view s, DataType* out);

// Canonical workout activity types. Connectors map provider types onto these; anything else is
// "other". Families group types that describe the same activity (SPEC S5).
// run, trail_run, treadmill_run, virtual_run          -> family "run"
// ride, virtual_ride, mountain_bike_ride, e_bike_ride -> family "ride"
// walk, hike                                          -> family "walk"
// swim, open_water_swim                               -> family "swim"
// strength, yoga, rowing, elliptical, other           -> their own name
std::string_view ActivityFamily(std::string_view activity);

struct RecordMeta {
  std::string id;  // the provider's id of this record (unique per provider user and type)
  DataType type = DataType::kWorkout;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  int32_t utc_offset_min = 0;
  int64_t modified_ms = 0;  // last modification at the provider
  std::string activity;     // workouts: canonical activity type; empty for other types
  // Set when SyncWell wrote this record: the provider's external/client id field carries
  // "sw1:<source fingerprint>". Lets a reverse sync recognise our own writes (loop suppression)
  // and a retried push find what an interrupted one already wrote.
  std::string origin;
};

struct WorkoutData {
  std::string name;  // user-given title
  double distance_m = 0;
  double energy_kcal = 0;
  int avg_heart_rate_bpm = 0;  // 0 = unknown
};
struct StepsData {
  int64_t count = 0;
};
struct SleepData {
  int deep_min = 0;
  int light_min = 0;
  int rem_min = 0;
  int awake_min = 0;
};
struct WeightData {
  double kg = 0;
  std::optional<double> fat_ratio;
};

using Payload = std::variant<std::monostate, WorkoutData, StepsData, SleepData, WeightData>;

struct Record {
  RecordMeta meta;
  Payload data;  // std::monostate only for metadata-only records
};

// A stable one-way hash (hex, 32 chars) of the record's canonical content: type, times, offset,
// activity and payload values -- not the provider id, modification time or origin. Equal content
// from two providers gives the same fingerprint.
std::string Fingerprint(const Record& r);

// "sw1:<fingerprint>" for the origin field of a record we push.
std::string OriginTag(std::string_view fingerprint);
// True when origin is one of our tags.
bool IsOurOrigin(std::string_view origin);

}  // namespace syncwell::providers
