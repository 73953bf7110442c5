// Strava connector: the wire mapping against the documentation fixtures (tests/fixtures/strava/,
// README there), and the connector against a scripted fake HttpClient: pagination, 401, 429 +
// retry_after, 5xx, rotating refresh, invalid grant, per-record push results, deadlines,
// webhook verification.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <deque>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "net/http_client.hpp"
#include "providers/provider.hpp"
#include "providers/strava/mapping.hpp"
#include "providers/strava/strava_provider.hpp"

namespace syncwell::providers {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

std::string Fixture(const std::string& name) {
  std::ifstream in(std::string(SW_FIXTURE_DIR) + "/strava/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A scripted upstream: each Send() must match the next expected (method, URL fragment) and gets
// its canned answer. Every call is recorded for assertions on URL, headers and body.
class ScriptedHttp final : public net::HttpClient {
 public:
  void Expect(std::string method, std::string url_part, int status, std::string body,
              net::Headers headers = {}) {
    net::HttpResult r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    steps_.push_back({std::move(method), std::move(url_part), r});
  }
  void ExpectError(std::string method, std::string url_part, Error e) {
    steps_.push_back({std::move(method), std::move(url_part), std::move(e)});
  }
  Result<net::HttpResult> Send(const net::HttpCall& call) override {
    calls.push_back(call);
    if (steps_.empty()) {
      ADD_FAILURE() << "unexpected call " << call.method << " " << call.url;
      return MakeError(Errc::kInternal, "unexpected call");
    }
    Step s = std::move(steps_.front());
    steps_.pop_front();
    EXPECT_EQ(call.method, s.method);
    EXPECT_NE(call.url.find(s.url_part), std::string::npos) << call.url << " vs " << s.url_part;
    return s.answer;
  }
  bool AllConsumed() const { return steps_.empty(); }
  std::vector<net::HttpCall> calls;

 private:
  struct Step {
    std::string method, url_part;
    Result<net::HttpResult> answer;
  };
  std::deque<Step> steps_;
};

std::string HeaderOf(const net::HttpCall& c, std::string_view name) {
  for (const auto& [k, v] : c.headers) {
    if (k == name) return v;
  }
  return {};
}

std::string FormField(const std::string& body, const std::string& key) {
  for (auto& [k, v] : strava::ParseForm(body)) {
    if (k == key) return v;
  }
  return "<absent>";
}

constexpr int64_t S = 1000;  // ms per second

// --- Mapping -----------------------------------------------------------------------------------

TEST(StravaMapping, ActivityListMapsEveryField) {
  auto list = strava::ParseActivityList(Fixture("activities_list.json"));
  ASSERT_TRUE(list.ok()) << list.error().message;
  ASSERT_EQ(list->size(), 5u);
  const auto& a = (*list)[0];
  EXPECT_EQ(a.id, "154504250376823");
  EXPECT_EQ(a.type, DataType::kWorkout);
  EXPECT_EQ(a.start_ms, 1525263309 * S);
  EXPECT_EQ(a.end_ms, (1525263309 + 4500) * S);
  EXPECT_EQ(a.utc_offset_min, -7 * 60);         // start_date_local - start_date
  EXPECT_EQ(a.activity, "mountain_bike_ride");  // sport_type wins over type "Ride"
  EXPECT_EQ(a.origin, "");                      // a Garmin external_id is not ours
  EXPECT_EQ(a.modified_ms, a.end_ms);           // Strava has no modification time
  const auto& treadmill = (*list)[2];
  EXPECT_EQ(treadmill.id, "1234567810");
  EXPECT_EQ(treadmill.activity, "treadmill_run");  // Run + trainer
  EXPECT_EQ(treadmill.utc_offset_min, 120);
  EXPECT_EQ(treadmill.start_ms, 1525327200 * S);
  EXPECT_EQ(treadmill.origin, "sw1:0123456789abcdef0123456789abcdef");
  const auto& legacy = (*list)[3];
  EXPECT_EQ(legacy.activity, "virtual_ride");  // legacy `type` when sport_type is absent
  EXPECT_EQ(legacy.utc_offset_min, 330);       // half-hour zones survive
  EXPECT_EQ(legacy.start_ms, 1525458600 * S);
  const auto& other = (*list)[4];
  EXPECT_EQ(other.activity, "other");
  EXPECT_EQ(other.utc_offset_min, 0);
  EXPECT_EQ(other.end_ms - other.start_ms, 2750 * S);  // elapsed, not moving time
}

TEST(StravaMapping, OffsetFallsBackToUtcOffsetWhenLocalTimeIsMissing) {
  auto list = strava::ParseActivityList(
      R"([{"id":1,"start_date":"2018-05-02T12:15:09Z","elapsed_time":60,"utc_offset":-25200.0,
           "sport_type":"Walk"}])");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ((*list)[0].utc_offset_min, -420);
  EXPECT_EQ((*list)[0].activity, "walk");
}

TEST(StravaMapping, DetailedActivityMapsPayload) {
  auto rec = strava::ParseActivityDetail(Fixture("activity_detail.json"));
  ASSERT_TRUE(rec.ok()) << rec.error().message;
  EXPECT_EQ(rec->meta.id, "12345678987654321");
  EXPECT_EQ(rec->meta.start_ms, 1518792774 * S);
  EXPECT_EQ(rec->meta.end_ms, (1518792774 + 4410) * S);
  EXPECT_EQ(rec->meta.utc_offset_min, -480);
  EXPECT_EQ(rec->meta.activity, "mountain_bike_ride");
  const auto* w = std::get_if<WorkoutData>(&rec->data);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->name, "Happy Friday");
  EXPECT_DOUBLE_EQ(w->distance_m, 28099);
  EXPECT_DOUBLE_EQ(w->energy_kcal, 870.2);
  EXPECT_EQ(w->avg_heart_rate_bpm, 0);  // has_heartrate false
}

TEST(StravaMapping, DetailReadsHeartRateAndOriginFromDescription) {
  json::value v = json::parse(Fixture("activity_detail.json"));
  auto& o = v.as_object();
  o["average_heartrate"] = 142.6;
  o["external_id"] = nullptr;
  o["description"] = "Morning loop\nSynced by SyncWell [sw1:00ff00ff00ff00ff00ff00ff00ff00ff]";
  auto rec = strava::ParseActivityDetail(json::serialize(v));
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(std::get<WorkoutData>(rec->data).avg_heart_rate_bpm, 143);
  EXPECT_EQ(rec->meta.origin, "sw1:00ff00ff00ff00ff00ff00ff00ff00ff");
}

TEST(StravaMapping, MalformedActivitiesArePermanentAndNameTheFieldNotTheValue) {
  auto no_start = strava::ParseActivityList(R"([{"id":1,"elapsed_time":60}])");
  ASSERT_FALSE(no_start.ok());
  EXPECT_EQ(no_start.error().code, Errc::kPermanent);
  EXPECT_NE(no_start.error().message.find("start_date"), std::string::npos);
  auto bad_elapsed = strava::ParseActivityList(
      R"([{"id":1,"start_date":"2018-05-02T12:15:09Z","elapsed_time":-31337}])");
  ASSERT_FALSE(bad_elapsed.ok());
  EXPECT_EQ(bad_elapsed.error().message.find("31337"), std::string::npos);
  EXPECT_FALSE(strava::ParseActivityList("{not json").ok());
  EXPECT_FALSE(strava::ParseActivityList(R"({"id":1})").ok());
}

TEST(StravaMapping, ActivityTypesRoundTrip) {
  for (std::string a : {"run", "trail_run", "treadmill_run", "virtual_run", "ride", "virtual_ride",
                        "mountain_bike_ride", "e_bike_ride", "walk", "hike", "swim", "strength",
                        "yoga", "rowing", "elliptical", "other"}) {
    auto t = strava::ToStravaType(a);
    EXPECT_EQ(strava::CanonicalActivity(t.sport_type, t.trainer), a) << a;
  }
  EXPECT_EQ(strava::ToStravaType("open_water_swim").sport_type, "Swim");
  EXPECT_EQ(strava::ToStravaType("no_such_type").sport_type, "Workout");
  EXPECT_EQ(strava::CanonicalActivity("GravelRide", false), "ride");
  EXPECT_EQ(strava::CanonicalActivity("EMountainBikeRide", false), "e_bike_ride");
  EXPECT_EQ(strava::CanonicalActivity("VirtualRow", false), "rowing");
  EXPECT_EQ(strava::CanonicalActivity("Ride", true), "ride");
  EXPECT_EQ(strava::CanonicalActivity("Pickleball", false), "other");
  EXPECT_EQ(strava::CanonicalActivity("", false), "other");
}

TEST(StravaMapping, IsoTimes) {
  int32_t off = 99;
  EXPECT_EQ(strava::ParseIsoTime("2018-05-02T12:15:09Z", &off), 1525263309 * S);
  EXPECT_EQ(off, 0);
  EXPECT_EQ(strava::ParseIsoTime("2018-05-03T08:00:00+02:00", &off), 1525327200 * S);
  EXPECT_EQ(off, 120);
  EXPECT_EQ(strava::ParseIsoTime("2018-05-04T13:00:00-05:30", &off), 1525458600 * S);
  EXPECT_EQ(off, -330);
  EXPECT_EQ(strava::ParseIsoTime("2018-05-02T12:15:09.250Z"), 1525263309 * S + 250);
  EXPECT_EQ(strava::ParseIsoTime("2018-05-02T12:15:09"), 1525263309 * S);
  EXPECT_EQ(strava::ParseIsoTime("1969-12-31T23:59:59Z"), -1000);
  for (const char* bad : {"", "2018-05-02", "2018-13-02T12:15:09Z", "2018-05-02T12:15:09X",
                          "2018-05-02T12:15:09+2", "2018-05-02T12:15:09Zjunk", "2018/05/02 12"})
    EXPECT_FALSE(strava::ParseIsoTime(bad).has_value()) << bad;
  EXPECT_EQ(strava::FormatLocalTime(1525327200 * S, 120), "2018-05-03T08:00:00+02:00");
  EXPECT_EQ(strava::FormatLocalTime(1525458600 * S, -330), "2018-05-04T13:00:00-05:30");
  EXPECT_EQ(strava::FormatLocalTime(-1000, 0), "1969-12-31T23:59:59+00:00");
}

Record Workout(std::string id, int64_t start_s, int64_t secs, std::string activity,
               std::string origin = "") {
  Record r;
  r.meta.id = std::move(id);
  r.meta.type = DataType::kWorkout;
  r.meta.start_ms = start_s * S;
  r.meta.end_ms = (start_s + secs) * S;
  r.meta.utc_offset_min = 60;
  r.meta.activity = std::move(activity);
  r.meta.origin = std::move(origin);
  r.data = WorkoutData{"Lunch run", 10123.45, 700, 150};
  return r;
}

TEST(StravaMapping, CreateFieldsCarryTypeTimesAndOrigin) {
  auto r =
      Workout("src-1", 1525327200, 1800, "treadmill_run", "sw1:0123456789abcdef0123456789abcdef");
  auto f = strava::CreateActivityFields(r);
  auto get = [&](const std::string& k) {
    for (auto& [key, v] : f)
      if (key == k) return v;
    return std::string("<absent>");
  };
  EXPECT_EQ(get("name"), "Lunch run");
  EXPECT_EQ(get("sport_type"), "Run");
  EXPECT_EQ(get("trainer"), "1");
  EXPECT_EQ(get("commute"), "0");
  EXPECT_EQ(get("start_date_local"), "2018-05-03T07:00:00+01:00");
  EXPECT_EQ(get("elapsed_time"), "1800");
  EXPECT_EQ(get("distance"), "10123.5");
  EXPECT_EQ(get("external_id"), "sw1:0123456789abcdef0123456789abcdef");
  EXPECT_EQ(strava::OriginFrom("", get("description")), "sw1:0123456789abcdef0123456789abcdef");

  auto plain = Workout("src-2", 1525327200, 60, "swim");
  std::get<WorkoutData>(plain.data).name.clear();
  auto g = strava::CreateActivityFields(plain);
  EXPECT_EQ(g[0], (std::pair<std::string, std::string>{"name", "Swim"}));
  for (auto& [k, v] : g) EXPECT_NE(k, "external_id");
}

TEST(StravaMapping, OriginOnlyFromOurTags) {
  EXPECT_EQ(strava::OriginFrom("sw1:abc", ""), "sw1:abc");
  EXPECT_EQ(strava::OriginFrom("garmin_push_1", "Synced by SyncWell [sw1:def]"), "sw1:def");
  EXPECT_EQ(strava::OriginFrom("", "no tag here"), "");
  EXPECT_EQ(strava::OriginFrom("", "[sw1:<script>]"), "");
  EXPECT_EQ(strava::OriginFrom("", "[sw1:]"), "");
}

TEST(StravaMapping, TokenResponses) {
  auto code = strava::ParseTokenResponse(Fixture("token_authorization_code.json"));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(code->access_token, "a4b945687g");
  EXPECT_EQ(code->refresh_token, "e5n567567");
  EXPECT_EQ(code->provider_user_id, "134815");
  EXPECT_EQ(ToUnixMillis(code->expires_at), 1568775134 * S);
  auto refresh = strava::ParseTokenResponse(Fixture("token_refresh.json"));
  ASSERT_TRUE(refresh.ok());
  EXPECT_EQ(refresh->access_token, "a9b723");
  EXPECT_EQ(refresh->refresh_token, "b5c569");
  EXPECT_EQ(refresh->provider_user_id, "");
  EXPECT_FALSE(strava::ParseTokenResponse(R"({"token_type":"Bearer"})").ok());
}

net::HttpResult Answer(int status, std::string body, net::Headers h = {}) {
  net::HttpResult r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(h);
  return r;
}

// 2018-05-02T12:07:30Z: 450 s to the next quarter hour, 42,750 s to midnight UTC.
const TimePoint kNow = FromUnixMillis(1525262850 * S);

TEST(StravaMapping, RateLimitHeadersBecomeObservations) {
  auto obs = strava::ParseRateLimits(
      Answer(200, "", {{"x-ratelimit-limit", "600,30000"}, {"x-ratelimit-usage", "314,27536"}}),
      kNow);
  ASSERT_EQ(obs.size(), 2u);
  EXPECT_EQ(obs[0].scope, "app");
  EXPECT_EQ(obs[0].limit, 600);
  EXPECT_EQ(obs[0].used, 314);
  EXPECT_EQ(obs[0].window, 900s);
  EXPECT_EQ(obs[0].reset_in, 450s);
  EXPECT_EQ(obs[1].limit, 30000);
  EXPECT_EQ(obs[1].used, 27536);
  EXPECT_EQ(obs[1].window, 86400s);
  EXPECT_EQ(obs[1].reset_in, 42750s);
  EXPECT_TRUE(strava::ParseRateLimits(Answer(200, ""), kNow).empty());
  EXPECT_TRUE(
      strava::ParseRateLimits(
          Answer(200, "", {{"x-ratelimit-limit", "600"}, {"x-ratelimit-usage", "x,y"}}), kNow)
          .empty());
}

TEST(StravaMapping, RetryAfterFollowsTheExhaustedWindow) {
  EXPECT_EQ(strava::RetryAfter(Answer(429, "", {{"retry-after", "17"}}), kNow), 17s);
  EXPECT_EQ(
      strava::RetryAfter(
          Answer(429, "", {{"x-ratelimit-limit", "600,30000"}, {"x-ratelimit-usage", "601,1000"}}),
          kNow),
      450s);
  EXPECT_EQ(
      strava::RetryAfter(
          Answer(429, "", {{"x-ratelimit-limit", "600,30000"}, {"x-ratelimit-usage", "12,30000"}}),
          kNow),
      42750s);
  // The read limit can be exhausted while the overall one is not.
  EXPECT_EQ(strava::RetryAfter(Answer(429, "",
                                      {{"x-ratelimit-limit", "600,30000"},
                                       {"x-ratelimit-usage", "100,1000"},
                                       {"x-readratelimit-limit", "100,1000"},
                                       {"x-readratelimit-usage", "100,500"}}),
                               kNow),
            450s);
  EXPECT_EQ(strava::RetryAfter(Answer(429, ""), kNow), 450s);  // no headers: the 15-min window
}

TEST(StravaMapping, HttpErrorsAreClassified) {
  auto code = [](int status, const std::string& body, bool token) {
    return strava::MapHttpError(Answer(status, body), "X", token, kNow).code;
  };
  EXPECT_EQ(code(401, Fixture("error_unauthorized.json"), false), Errc::kUnauthenticated);
  EXPECT_EQ(code(429, Fixture("error_rate_limited.json"), false), Errc::kRateLimited);
  EXPECT_EQ(code(500, "", false), Errc::kRetryable);
  EXPECT_EQ(code(503, "<html>", false), Errc::kRetryable);
  EXPECT_EQ(code(404, Fixture("error_not_found.json"), false), Errc::kPermanent);
  EXPECT_EQ(code(400, "{}", false), Errc::kPermanent);
  EXPECT_EQ(code(400, Fixture("error_invalid_refresh_token.json"), true), Errc::kAuthRevoked);
  EXPECT_EQ(code(401, R"({"errors":[{"resource":"Application","field":"client_secret",
                               "code":"invalid"}]})",
                 true),
            Errc::kPermanent);
  auto e = strava::MapHttpError(Answer(400, Fixture("error_invalid_refresh_token.json")),
                                "POST oauth/token", true, kNow);
  EXPECT_NE(e.message.find("RefreshToken/refresh_token invalid"), std::string::npos) << e.message;
  auto odd = strava::MapHttpError(
      Answer(400, R"({"errors":[{"resource":"72.5kg","field":"x","code":"y"}]})"), "X", false,
      kNow);
  EXPECT_EQ(odd.message.find("72.5kg"), std::string::npos) << odd.message;
}

// --- Webhooks ------------------------------------------------------------------------------------

WebhookRequest Get(std::string query) { return {"GET", std::move(query), {}, ""}; }
WebhookRequest Post(std::string body) {
  return {"POST", "", {{"content-type", "application/json"}}, std::move(body)};
}

TEST(StravaWebhook, ChallengeIsEchoedWithTheRightToken) {
  auto out = strava::ParseWebhook(
      Get("hub.verify_token=STRAVA&hub.challenge=15f7d1a91c1f40f8a748fd134752feb3"
          "&hub.mode=subscribe"),
      "STRAVA");
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_TRUE(out->challenge_response.has_value());
  EXPECT_EQ(out->challenge_response->first, 200);
  EXPECT_EQ(out->challenge_response->second,
            R"({"hub.challenge":"15f7d1a91c1f40f8a748fd134752feb3"})");
  EXPECT_TRUE(out->events.empty());
  // Percent-encoding and JSON escaping of the echo.
  auto enc = strava::ParseWebhook(
      Get("hub.mode=subscribe&hub.verify_token=S%26T&hub.challenge=a%22b"), "S&T");
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(enc->challenge_response->second, R"({"hub.challenge":"a\"b"})");
}

TEST(StravaWebhook, WrongOrMissingTokenIsRejected) {
  for (const char* q : {"hub.mode=subscribe&hub.verify_token=WRONG&hub.challenge=x",
                        "hub.mode=subscribe&hub.challenge=x",
                        "hub.mode=unsubscribe&hub.verify_token=STRAVA&hub.challenge=x",
                        "hub.mode=subscribe&hub.verify_token=STRAVA", ""}) {
    auto out = strava::ParseWebhook(Get(q), "STRAVA");
    ASSERT_FALSE(out.ok()) << q;
    EXPECT_EQ(out.error().code, Errc::kInvalidArgument);
    EXPECT_EQ(out.error().message.find("STRAVA"), std::string::npos);
  }
  // Not configured: nothing verifies (fail closed).
  EXPECT_FALSE(
      strava::ParseWebhook(Get("hub.mode=subscribe&hub.verify_token=&hub.challenge=x"), "").ok());
}

TEST(StravaWebhook, ActivityEventIsParsed) {
  auto out = strava::ParseWebhook(Post(Fixture("webhook_activity_update.json")), "STRAVA");
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_FALSE(out->challenge_response.has_value());
  ASSERT_EQ(out->events.size(), 1u);
  EXPECT_EQ(out->events[0].provider_user_id, "134815");
  EXPECT_EQ(out->events[0].type, DataType::kWorkout);
  EXPECT_EQ(out->events[0].kind, "update");
  EXPECT_FALSE(out->events[0].range.has_value());
}

TEST(StravaWebhook, AthleteDeauthorizationIsParsed) {
  auto out = strava::ParseWebhook(Post(Fixture("webhook_athlete_deauthorize.json")), "STRAVA");
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->events.size(), 1u);
  EXPECT_EQ(out->events[0].kind, "deauthorize");
  EXPECT_FALSE(out->events[0].type.has_value());
  EXPECT_EQ(out->events[0].provider_user_id, "134815");
}

TEST(StravaWebhook, MalformedEventsAreRejected) {
  for (const char* body :
       {"", "not json", "[]",
        R"({"aspect_type":"create","event_time":1,"object_id":2,"object_type":"activity",
            "subscription_id":3})",
        R"({"aspect_type":"create","event_time":1,"object_id":2,"object_type":"club",
            "owner_id":4,"subscription_id":3})",
        R"({"aspect_type":"poke","event_time":1,"object_id":2,"object_type":"activity",
            "owner_id":4,"subscription_id":3})",
        R"({"aspect_type":"create","event_time":1,"object_id":2,"object_type":"activity",
            "owner_id":-4,"subscription_id":3})"}) {
    auto out = strava::ParseWebhook(Post(body), "STRAVA");
    ASSERT_FALSE(out.ok()) << body;
    EXPECT_EQ(out.error().code, Errc::kInvalidArgument);
  }
  EXPECT_FALSE(strava::ParseWebhook({"PUT", "", {}, ""}, "STRAVA").ok());
}

// --- Connector against a scripted upstream ------------------------------------------------------

class StravaConnector : public ::testing::Test {
 protected:
  StravaConnector() : clock_(kNow) {
    settings_.base_url = "http://sim.test:9100/strava/";
    settings_.client_id = "syncwell";
    settings_.client_secret = "client-secret-xyz";
    settings_.webhook_secret = "STRAVA";
    settings_.page_size = 2;
    settings_.timeout = 10s;
  }
  std::unique_ptr<Provider> Make() { return MakeStravaProvider(settings_, http_, clock_); }
  CallContext Ctx() {
    CallContext c;
    c.access_token = "tok-123";
    c.provider_user_id = "134815";
    c.on_rate_limit = [this](const RateLimitObservation& o) { observed_.push_back(o); };
    return c;
  }
  static std::string Activity(int64_t id, const std::string& start_utc, int secs = 600) {
    return R"({"id":)" + std::to_string(id) + R"(,"start_date":")" + start_utc +
           R"(","start_date_local":")" + start_utc + R"(","elapsed_time":)" + std::to_string(secs) +
           R"(,"sport_type":"Run"})";
  }

  ManualClock clock_;
  ConnectorSettings settings_;
  ScriptedHttp http_;
  std::vector<RateLimitObservation> observed_;
};

TEST_F(StravaConnector, FetchMetadataFollowsPagesFiltersAndSorts) {
  const net::Headers rl = {{"x-ratelimit-limit", "600,30000"}, {"x-ratelimit-usage", "10,20"}};
  http_.Expect(
      "GET",
      // after = range start - 24 h (uploads of workouts that started before the window) - 1 s.
      "/strava/api/v3/athlete/activities?after=1525132799&before=1525305601&page=1&per_page=2", 200,
      "[" + Activity(3, "2018-05-02T10:00:00Z") + "," + Activity(1, "2018-05-02T08:00:00Z") + "]",
      rl);
  http_.Expect("GET", "page=2&per_page=2", 200,
               "[" + Activity(2, "2018-05-02T09:00:00Z") + "," +
                   Activity(1, "2018-05-02T08:00:00Z") + "]",  // a duplicate across pages
               rl);
  http_.Expect("GET", "page=3&per_page=2", 200,
               "[" + Activity(9, "2018-05-03T00:00:00Z") + "]");  // at range end: excluded
  auto p = Make();
  TimeRange range{1525219200 * S, 1525305600 * S};  // 2018-05-02T00:00Z .. 05-03T00:00Z
  auto out = p->FetchMetadata(Ctx(), DataType::kWorkout, range);
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ((*out)[0].id, "1");
  EXPECT_EQ((*out)[1].id, "2");
  EXPECT_EQ((*out)[2].id, "3");
  for (const auto& m : *out) EXPECT_EQ(m.activity, "run");
  EXPECT_TRUE(http_.AllConsumed());
  ASSERT_EQ(http_.calls.size(), 3u);
  EXPECT_EQ(HeaderOf(http_.calls[0], "Authorization"), "Bearer tok-123");
  EXPECT_LE(http_.calls[0].timeout, 10000ms);
  ASSERT_EQ(observed_.size(), 4u);  // two observations per answer that had the headers
  EXPECT_EQ(observed_[0].used, 10);
  EXPECT_EQ(observed_[1].used, 20);
}

TEST_F(StravaConnector, UnauthorizedIsUnauthenticated) {
  http_.Expect("GET", "/athlete/activities", 401, Fixture("error_unauthorized.json"));
  auto out = Make()->FetchMetadata(Ctx(), DataType::kWorkout, {0, 1000 * S});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kUnauthenticated);
  EXPECT_EQ(out.error().message.find("tok-123"), std::string::npos);
}

TEST_F(StravaConnector, RateLimitedCarriesRetryAfterAndReportsUsage) {
  http_.Expect("GET", "/athlete/activities", 429, Fixture("error_rate_limited.json"),
               {{"x-ratelimit-limit", "600,30000"}, {"x-ratelimit-usage", "600,9000"}});
  auto out = Make()->FetchMetadata(Ctx(), DataType::kWorkout, {0, 1000 * S});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kRateLimited);
  EXPECT_EQ(out.error().retry_after, 450s);
  ASSERT_EQ(observed_.size(), 2u);
  EXPECT_EQ(observed_[0].used, 600);
  EXPECT_EQ(observed_[0].limit, 600);
}

TEST_F(StravaConnector, ServerErrorsAndTransportFailuresAreRetryable) {
  http_.Expect("GET", "/athlete/activities", 502, "<html>bad gateway</html>");
  http_.ExpectError("GET", "/athlete/activities", MakeError(Errc::kRetryable, "connection reset"));
  auto p = Make();
  auto a = p->FetchMetadata(Ctx(), DataType::kWorkout, {0, 1000 * S});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code, Errc::kRetryable);
  auto b = p->FetchMetadata(Ctx(), DataType::kWorkout, {0, 1000 * S});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, Errc::kRetryable);
}

TEST_F(StravaConnector, UnsupportedTypesFailWithoutCalling) {
  auto p = Make();
  auto m = p->FetchMetadata(Ctx(), DataType::kSteps, {0, 1000 * S});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, Errc::kPermanent);
  auto push = p->PushData(Ctx(), DataType::kWeight, {});
  ASSERT_FALSE(push.ok());
  EXPECT_EQ(push.error().code, Errc::kPermanent);
  EXPECT_TRUE(http_.calls.empty());
}

TEST_F(StravaConnector, AuthenticateExchangesTheCode) {
  http_.Expect("POST", "http://sim.test:9100/strava/oauth/token", 200,
               Fixture("token_authorization_code.json"));
  auto g = Make()->Authenticate("code-abc", "", "https://app.example/cb");
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->provider_user_id, "134815");
  EXPECT_EQ(g->access_token, "a4b945687g");
  const auto& body = http_.calls[0].body;
  EXPECT_EQ(FormField(body, "grant_type"), "authorization_code");
  EXPECT_EQ(FormField(body, "code"), "code-abc");
  EXPECT_EQ(FormField(body, "client_id"), "syncwell");
  EXPECT_EQ(FormField(body, "client_secret"), "client-secret-xyz");
  EXPECT_EQ(HeaderOf(http_.calls[0], "Content-Type"), "application/x-www-form-urlencoded");
}

TEST_F(StravaConnector, RefreshRotatesTokens) {
  http_.Expect("POST", "/oauth/token", 200, Fixture("token_refresh.json"));
  http_.Expect("POST", "/oauth/token", 200,
               R"({"token_type":"Bearer","access_token":"a2","expires_at":1568800000,
                   "expires_in":21600,"refresh_token":"r3"})");
  auto p = Make();
  auto first = p->Refresh("r1");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->refresh_token, "b5c569");
  auto second = p->Refresh(first->refresh_token);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->access_token, "a2");
  EXPECT_EQ(second->refresh_token, "r3");
  EXPECT_EQ(ToUnixMillis(second->expires_at), 1568800000 * S);
  EXPECT_EQ(FormField(http_.calls[0].body, "refresh_token"), "r1");
  EXPECT_EQ(FormField(http_.calls[1].body, "refresh_token"), "b5c569");
  EXPECT_EQ(FormField(http_.calls[1].body, "grant_type"), "refresh_token");
}

TEST_F(StravaConnector, TokenUrlOverrideIsUsed) {
  settings_.token_url = "https://auth.example/oauth/token";
  http_.Expect("POST", "https://auth.example/oauth/token", 200, Fixture("token_refresh.json"));
  EXPECT_TRUE(Make()->Refresh("r1").ok());
}

TEST_F(StravaConnector, InvalidRefreshTokenIsAuthRevoked) {
  http_.Expect("POST", "/oauth/token", 400, Fixture("error_invalid_refresh_token.json"));
  auto g = Make()->Refresh("secret-refresh-token");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code, Errc::kAuthRevoked);
  EXPECT_EQ(g.error().message.find("secret-refresh-token"), std::string::npos);
  EXPECT_EQ(g.error().message.find("client-secret-xyz"), std::string::npos);
}

TEST_F(StravaConnector, RevokeDeauthorizes) {
  http_.Expect("POST", "/strava/oauth/deauthorize", 200, R"({"access_token":"tok-123"})");
  EXPECT_TRUE(Make()->Revoke(Ctx()).ok());
  EXPECT_EQ(FormField(http_.calls[0].body, "access_token"), "tok-123");
}

TEST_F(StravaConnector, FetchPayloadsGetsEachActivityAndLeavesOutDeletedOnes) {
  http_.Expect("GET", "/strava/api/v3/activities/12345678987654321", 200,
               Fixture("activity_detail.json"));
  http_.Expect("GET", "/api/v3/activities/42", 404, Fixture("error_not_found.json"));
  auto p = Make();
  auto one = p->FetchPayloads(Ctx(), DataType::kWorkout, {"12345678987654321"});
  ASSERT_TRUE(one.ok()) << one.error().message;
  ASSERT_EQ(one->size(), 1u);
  EXPECT_DOUBLE_EQ(std::get<WorkoutData>((*one)[0].data).energy_kcal, 870.2);
  // 404: deleted at Strava since the list; left out (the engine skips it), not an error.
  auto missing = p->FetchPayloads(Ctx(), DataType::kWorkout, {"42"});
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_TRUE(missing->empty());
  http_.Expect("GET", "/api/v3/activities/43", 500, "{}");
  auto failed = p->FetchPayloads(Ctx(), DataType::kWorkout, {"43"});
  ASSERT_FALSE(failed.ok());  // any other failure still fails the call
  EXPECT_EQ(failed.error().code, Errc::kRetryable);
}

TEST_F(StravaConnector, PushReportsEachRecordAndStopsAfterRateLimit) {
  http_.Expect("POST", "/strava/api/v3/activities", 201, Fixture("activity_created.json"));
  http_.Expect("POST", "/api/v3/activities", 503, "");
  http_.Expect("POST", "/api/v3/activities", 429, Fixture("error_rate_limited.json"),
               {{"x-ratelimit-limit", "600,30000"}, {"x-ratelimit-usage", "600,900"}});
  Record not_workout;
  not_workout.meta.id = "w-1";
  not_workout.meta.type = DataType::kWeight;
  not_workout.data = WeightData{72.0, {}};
  std::vector<Record> recs = {Workout("a", 1525327200, 1800, "run", "sw1:aaaa"), not_workout,
                              Workout("b", 1525330000, 600, "ride"),
                              Workout("c", 1525340000, 600, "walk"),
                              Workout("d", 1525350000, 600, "hike")};
  auto out = Make()->PushData(Ctx(), DataType::kWorkout, recs);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->size(), 5u);
  EXPECT_TRUE((*out)[0].ok);
  EXPECT_EQ((*out)[0].source_id, "a");
  EXPECT_EQ((*out)[0].dest_id, "123456778928065");
  EXPECT_FALSE((*out)[1].ok);
  EXPECT_EQ((*out)[1].error.code, Errc::kPermanent);
  EXPECT_EQ((*out)[2].error.code, Errc::kRetryable);
  EXPECT_EQ((*out)[3].error.code, Errc::kRateLimited);
  EXPECT_EQ((*out)[4].error.code, Errc::kRateLimited);  // not attempted
  EXPECT_EQ((*out)[4].source_id, "d");
  EXPECT_TRUE(http_.AllConsumed());
  ASSERT_EQ(http_.calls.size(), 3u);
  const auto& body = http_.calls[0].body;
  EXPECT_EQ(FormField(body, "sport_type"), "Run");
  EXPECT_EQ(FormField(body, "external_id"), "sw1:aaaa");
  EXPECT_EQ(FormField(body, "start_date_local"), "2018-05-03T07:00:00+01:00");
  EXPECT_EQ(FormField(body, "elapsed_time"), "1800");
}

TEST_F(StravaConnector, HasNewDataAsksForOneActivity) {
  http_.Expect("GET", "page=1&per_page=1", 200, "[]");
  http_.Expect("GET", "page=1&per_page=1", 200, "[" + Activity(5, "2018-05-02T10:00:00Z") + "]");
  auto p = Make();
  auto none = p->HasNewData(Ctx(), DataType::kWorkout, {1525219200 * S, 1525305600 * S});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, std::optional<bool>(false));
  auto some = p->HasNewData(Ctx(), DataType::kWorkout, {1525219200 * S, 1525305600 * S});
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(*some, std::optional<bool>(true));
}

TEST_F(StravaConnector, DeadlineBoundsTheCall) {
  auto p = Make();
  CallContext past = Ctx();
  past.deadline = std::chrono::steady_clock::now() - 1ms;
  auto late = p->FetchMetadata(past, DataType::kWorkout, {0, 1000 * S});
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, Errc::kRetryable);
  EXPECT_TRUE(http_.calls.empty());

  http_.Expect("GET", "/athlete/activities", 200, "[]");
  CallContext soon = Ctx();
  soon.deadline = std::chrono::steady_clock::now() + 2s;
  ASSERT_TRUE(p->FetchMetadata(soon, DataType::kWorkout, {0, 1000 * S}).ok());
  ASSERT_EQ(http_.calls.size(), 1u);
  EXPECT_LE(http_.calls[0].timeout, 2000ms);
  EXPECT_GT(http_.calls[0].timeout, 0ms);
}

TEST_F(StravaConnector, VerifyWebhookUsesTheConfiguredSecret) {
  auto p = Make();
  EXPECT_EQ(p->name(), "strava");
  EXPECT_TRUE(p->supports_webhooks());
  EXPECT_TRUE(
      p->VerifyWebhook(Get("hub.mode=subscribe&hub.verify_token=STRAVA&hub.challenge=c")).ok());
  auto wrong = p->VerifyWebhook(Get("hub.mode=subscribe&hub.verify_token=strava&hub.challenge=c"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace syncwell::providers
