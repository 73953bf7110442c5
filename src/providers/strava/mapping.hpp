#pragma once
// Strava API v3 wire format <-> canonical records, kept apart from HTTP so every field mapping is
// unit-tested against the documentation fixtures (tests/fixtures/strava/). Pure functions, no I/O,
// thread-safe. See README.md in this folder for the sources of each fact.
//
// Health values pass through these functions but never reach an error message: errors name the
// field that failed, never its value.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "net/http_client.hpp"
#include "providers/provider.hpp"
#include "providers/records.hpp"

namespace syncwell::providers::strava {

// --- Activity types ------------------------------------------------------------------------
// Canonical activity (records.hpp) of a Strava sport_type (or the legacy `type`); `trainer`
// marks an indoor activity (a Run on a treadmill). Unknown -> "other".
std::string CanonicalActivity(std::string_view sport_type, bool trainer);
struct StravaType {
  std::string sport_type;
  bool trainer = false;
};
StravaType ToStravaType(std::string_view canonical_activity);

// --- Time ----------------------------------------------------------------------------------
// ISO 8601 "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)" -> UTC epoch ms; the written offset
// (minutes east) goes to *offset_min when given. No zone designator = UTC.
std::optional<int64_t> ParseIsoTime(std::string_view s, int32_t* offset_min = nullptr);
// Local wall-clock time with its offset, e.g. "2024-03-02T07:05:00+01:00".
std::string FormatLocalTime(int64_t utc_ms, int32_t offset_min);

// --- Origin round-trip ---------------------------------------------------------------------
// Our writes carry the origin tag ("sw1:<fingerprint>") twice: in `external_id` (the field
// Strava returns on every activity; set for uploads) and as a marker in `description` (which
// POST /activities stores on the real API). Reading prefers external_id.
std::string DescriptionWithOrigin(std::string_view origin);
std::string OriginFrom(std::string_view external_id, std::string_view description);

// --- Activities ----------------------------------------------------------------------------
// GET /api/v3/athlete/activities: a JSON array of SummaryActivity -> metadata (monostate data).
Result<std::vector<RecordMeta>> ParseActivityList(std::string_view body);
// GET /api/v3/activities/{id} (DetailedActivity) -> record with WorkoutData.
Result<Record> ParseActivityDetail(std::string_view body);
// POST /api/v3/activities form fields for a canonical workout (SPEC: origin set by the engine).
std::vector<std::pair<std::string, std::string>> CreateActivityFields(const Record& r);
// The id of the activity a create answered with (only the id is needed, and only the id must
// parse: the activity exists at Strava once this answer came).
Result<std::string> ParseCreatedId(std::string_view body);

// --- OAuth ---------------------------------------------------------------------------------
// POST /oauth/token answer (authorization_code carries athlete.id; refresh does not).
Result<TokenGrant> ParseTokenResponse(std::string_view body);

// --- Errors and rate limits ----------------------------------------------------------------
// Observations from X-RateLimit-Limit / X-RateLimit-Usage ("15min,daily"); empty when absent.
// Strava's windows reset at the natural quarter hours and at midnight UTC.
std::vector<RateLimitObservation> ParseRateLimits(const net::HttpResult& r, TimePoint now);
// How long a 429 asks us to wait: Retry-After when sent, else until the exhausted window
// (overall or read limit) resets: the next quarter hour or midnight UTC.
std::chrono::milliseconds RetryAfter(const net::HttpResult& r, TimePoint now);
// Classifies a non-2xx answer (provider.hpp contract). `what` names the call ("GET activity").
Error MapHttpError(const net::HttpResult& r, std::string_view what, bool token_endpoint,
                   TimePoint now);

// --- Webhooks ------------------------------------------------------------------------------
// GET: subscription validation (hub.mode/hub.verify_token/hub.challenge) -> {"hub.challenge"};
// POST: one event {object_type, object_id, aspect_type, owner_id, subscription_id, event_time,
// updates}. Wrong token or malformed input -> kInvalidArgument.
Result<WebhookOutcome> ParseWebhook(const WebhookRequest& req, std::string_view verify_token);

// application/x-www-form-urlencoded / query-string decoding ('+' = space, %XX).
std::vector<std::pair<std::string, std::string>> ParseForm(std::string_view s);

}  // namespace syncwell::providers::strava
