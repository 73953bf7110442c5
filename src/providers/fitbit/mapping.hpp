#pragma once
// Fitbit wire format <-> canonical records. Fitbit data is served by the Google Health API
// (https://health.googleapis.com/v4, successor of the Fitbit Web API); see README.md for the
// documented shapes and for every assumption made here. Pure functions without I/O: the
// connector (fitbit_provider.cpp) does the HTTP, these are unit-tested against the fixtures in
// tests/fixtures/fitbit/.
//
// Error messages name the field that failed, never a value (health data, SPEC S13).
#include <boost/json/fwd.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "providers/provider.hpp"
#include "providers/records.hpp"

namespace syncwell::fitbit {

// ---- Time ------------------------------------------------------------------------------------
// RFC 3339 date-time ("2026-03-04T07:25:28.123Z", "...+01:00") -> epoch milliseconds (UTC).
std::optional<int64_t> ParseRfc3339Ms(std::string_view s);
// Epoch milliseconds -> "2026-03-04T07:25:28.123Z".
std::string FormatRfc3339Ms(int64_t utc_ms);
// google.protobuf.Duration JSON ("3600s", "-18000s", "1.5s"; a plain number is accepted too)
// -> whole seconds.
std::optional<int64_t> ParseDurationSeconds(const boost::json::value& v);
std::string FormatDurationSeconds(int64_t seconds);  // "3600s"
// Local civil time of a UTC instant at a UTC offset: "2026-03-04T00:00:00" / "2026-03-04".
std::string CivilDateTime(int64_t utc_ms, int32_t offset_min);
std::string CivilDate(int64_t utc_ms, int32_t offset_min);
// "YYYY-MM-DD" -> days since 1970-01-01.
std::optional<int64_t> ParseCivilDate(std::string_view s);
std::string FormatCivilDate(int64_t days_since_epoch);

// ---- Types -----------------------------------------------------------------------------------
// The dataType path segment: "exercise", "sleep", "steps", "weight".
std::string_view DataTypeSegment(providers::DataType t);
// Exercise.exerciseType <-> canonical activity (records.hpp); unknown -> "other" / "OTHER".
std::string_view ActivityFromExerciseType(std::string_view exercise_type);
std::string_view ExerciseTypeFromActivity(std::string_view activity);

// The last segment of a resource name ("users/me/dataTypes/exercise/dataPoints/abc" -> "abc").
std::string DataPointId(std::string_view name);

// ---- Decoding (API -> canonical) --------------------------------------------------------------
// One DataPoint of the exercise / sleep / weight collections -> a full record (payload set).
// Missing or malformed required fields -> kPermanent naming the field.
Result<providers::Record> DecodeExercise(const boost::json::object& data_point);
Result<providers::Record> DecodeSleep(const boost::json::object& data_point);
Result<providers::Record> DecodeWeight(const boost::json::object& data_point);
Result<providers::Record> DecodeDataPoint(providers::DataType type,
                                          const boost::json::object& data_point);

// Steps arrive as interval data points (1-minute resolution at Google); SyncWell wants daily
// totals at local midnight, so points are summed per local civil date.
struct StepsInterval {
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  int32_t offset_min = 0;
  int64_t count = 0;
};
Result<StepsInterval> DecodeStepsPoint(const boost::json::object& data_point);
// Daily records (id "YYYY-MM-DD", start = local midnight, end = next local midnight, offset of
// the day's first interval); modified_ms = min(now_ms, end). Sorted by start.
std::vector<providers::Record> AggregateDailySteps(const std::vector<StepsInterval>& points,
                                                   int64_t now_ms);

// body-fat sample data points (joined to weight records by identical sample time).
struct BodyFatSample {
  int64_t time_ms = 0;
  double percentage = 0;
};
Result<BodyFatSample> DecodeBodyFat(const boost::json::object& data_point);

// ---- Encoding (canonical -> create request bodies) --------------------------------------------
// The DataPoint JSON to POST to users/me/dataTypes/{type}/dataPoints. meta.origin is carried in
// exercise.notes, weight.notes and sleep.metadata.externalId. Steps are not writable here
// (capabilities.cpp) -> kPermanent.
Result<boost::json::object> EncodeForCreate(providers::DataType type, const providers::Record& r);
// The body-fat data point accompanying a weight record (nullopt when it has no fat ratio).
std::optional<boost::json::object> EncodeBodyFat(const providers::Record& r);

// ---- Notifications ---------------------------------------------------------------------------
// base64(HMAC-SHA1(body, client_secret + "&")), the X-Fitbit-Signature of a notification.
std::string NotificationSignature(std::string_view body, std::string_view client_secret);
// Constant-time comparison of two byte strings.
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// A subscriber notification body: [{collectionType, date, ownerId, ownerType, subscriptionId}]
// -> events. Malformed -> kInvalidArgument.
Result<std::vector<providers::WebhookEvent>> ParseNotificationBody(std::string_view body);

}  // namespace syncwell::fitbit
