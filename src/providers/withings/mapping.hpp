#pragma once
// Withings Public Health Data API wire format <-> canonical records, apart from HTTP so every
// field mapping is unit-tested against the documentation fixtures (tests/fixtures/withings/).
// Pure functions, thread-safe. README.md in this folder gives the source of each fact.
//
// Withings answers HTTP 200 with an envelope {"status": N, "body": {...}, "error": "..."}; a
// non-zero status is an error family (0 ok, 100-102/200/401 authentication failed, 601 too
// many requests, 2554 not implemented, ...). Error messages carry the status number only: the
// envelope's "error" text is never copied.
//
// Record ids: Withings has no get-by-id for measures, sleep or workouts, so our ids carry the
// start time: "<native id>@<start epoch seconds>" (grpid for weight, series id for sleep and
// workouts); daily steps use the local date "YYYY-MM-DD". FetchPayloads re-lists the window
// around those times and picks the ids.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "providers/provider.hpp"
#include "providers/records.hpp"

namespace syncwell::providers::withings {

using Fields = std::vector<std::pair<std::string, std::string>>;

// Measure types of getmeas (api-reference "meastype").
inline constexpr int kMeasWeight = 1;    // kg
inline constexpr int kMeasFatRatio = 6;  // %

// Withings allows 120 requests per minute per application; a 601 answer waits that window.
inline constexpr std::chrono::seconds kStatus601RetryAfter{60};

// Envelope status -> classified error (never called with 0). `token_endpoint`: on the OAuth
// endpoint an authentication or invalid-params failure means the grant is gone (kAuthRevoked).
Error StatusError(int64_t status, std::string_view what, bool token_endpoint);

// POST /v2/oauth2 action=requesttoken answer. expires_at = now + expires_in.
Result<TokenGrant> ParseTokenResponse(std::string_view body, TimePoint now);

// One page of a list answer: records with payloads, and the pagination cursor.
struct Page {
  std::vector<Record> records;
  bool more = false;
  int64_t offset = 0;
};
// getmeas (weight), sleep getsummary, getworkouts and getactivity (steps) by data type.
Result<Page> ParsePage(DataType type, std::string_view body);

// Canonical activity of a Withings workout category; unknown -> "other".
std::string CanonicalWorkout(int64_t category);

// Ids (see above).
std::string MakeId(std::string_view native, int64_t start_s);
// Start time (epoch seconds) an id was made from; steps ids give local midnight of the date as
// if it were UTC (a day's uncertainty is covered by the caller's window). nullopt = malformed.
std::optional<int64_t> IdStartSeconds(DataType type, std::string_view id);

// Weight write: our documented action=setmeas (README: Withings has no public write endpoint).
// Origin goes in `comment`, which getmeas returns on every measure group.
Fields SetMeasFields(const Record& r);
// The new group's id from the setmeas answer, as a record id.
Result<std::string> ParseSetMeasAnswer(std::string_view body, int64_t date_s);

// Signature v2 (getnonce, revoke): hex HMAC-SHA256(client_secret, values of action, client_id
// and nonce|timestamp, sorted by key, joined with ',').
std::string Signature(std::string_view client_secret, std::string_view action,
                      std::string_view client_id, std::string_view nonce_or_timestamp);
// action=getnonce answer -> nonce.
Result<std::string> ParseNonce(std::string_view body);
// Any answer whose body we do not need: status 0 or the classified error.
Status CheckStatus(std::string_view body, std::string_view what, bool token_endpoint);

// Notifications: HEAD/GET reachability checks are answered 200; a POST must carry the shared
// secret as the `token` query parameter of the callback URL we subscribed (Withings does not
// sign notifications) and a form body with userid and a known appli.
Result<WebhookOutcome> ParseWebhook(const WebhookRequest& req, std::string_view secret);

// application/x-www-form-urlencoded / query-string decoding ('+' = space, %XX).
Fields ParseForm(std::string_view s);

}  // namespace syncwell::providers::withings
