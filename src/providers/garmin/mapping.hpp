#pragma once
// Garmin Health/Activity API summaries <-> canonical records, and the ping/push notification
// parser. Pure functions without I/O (unit-tested against tests/fixtures/garmin/); the HTTP
// lives in garmin_provider.cpp. Sources and assumptions: README.md.
//
// Error messages name the field that failed, never a value (health data, SPEC S13).
#include <boost/json/fwd.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "providers/provider.hpp"
#include "providers/records.hpp"

namespace syncwell::garmin {

// The summary type of a canonical data type: the pull path segment under /wellness-api/rest/
// and the notification list key: "activities", "sleeps", "dailies", "bodyComps".
std::string_view SummaryType(providers::DataType t);

// Activity API activityType -> canonical activity (records.hpp); unknown -> "other".
std::string_view ActivityFromGarminType(std::string_view activity_type);

// One summary object -> a full record (payload set); record id = summaryId.
//  * activities: start/duration/offset, activityName, distanceInMeters, activeKilocalories,
//    averageHeartRateInBeatsPerMinute.
//  * dailies: steps as a daily total from local midnight of calendarDate to the next.
//  * sleeps: deep/light/rem/awake seconds -> minutes.
//  * bodyComps: weightInGrams, bodyFatInPercent.
Result<providers::Record> DecodeSummary(providers::DataType type,
                                        const boost::json::object& summary);

// A ping or push notification body ({"<summaryType>": [{userId, callbackURL | summary...}],
// "deregistrations": [...], "userPermissionsChange": [...]}) -> events, one per (user, type).
// Ping ranges are the upload window of the callback URL; push ranges run from the earliest
// summary start (at most 7 days back) to now_ms. Malformed -> kInvalidArgument.
Result<std::vector<providers::WebhookEvent>> ParseNotificationBody(std::string_view body,
                                                                   int64_t now_ms);

// Constant-time comparison of two byte strings.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace syncwell::garmin
