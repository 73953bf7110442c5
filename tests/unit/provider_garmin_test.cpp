// The Garmin connector: summary mapping against the Health API documentation examples, the
// ping/push notification parser, the connector against a scripted HttpClient, and (with the
// simulator library) the connector against sim/garmin_api.cpp in process.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>

#include "providers/garmin/garmin_provider.hpp"
#include "providers/garmin/mapping.hpp"

#ifdef SYNCWELL_HAVE_SIM
#include "providers/sim/sim_server.hpp"
#include "providers/sim/world.hpp"
#include "support/meeting_http.hpp"
#endif

namespace syncwell::providers {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

std::string Fixture(const std::string& name) {
  std::ifstream f(std::string(SYNCWELL_FIXTURE_DIR) + "/" + name, std::ios::binary);
  EXPECT_TRUE(f.good()) << name;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<Record> DecodeAll(DataType type, const std::string& fixture) {
  std::vector<Record> out;
  const json::value v = json::parse(Fixture(fixture));
  for (const auto& e : v.as_array()) {
    auto r = garmin::DecodeSummary(type, e.as_object());
    EXPECT_TRUE(r.ok()) << fixture << ": " << (r.ok() ? "" : r.error().message);
    if (r.ok()) out.push_back(std::move(*r));
  }
  return out;
}

std::map<std::string, std::string> Form(std::string_view s) {
  std::map<std::string, std::string> out;
  size_t q = s.find('?');
  if (q != std::string_view::npos) s = s.substr(q + 1);
  while (!s.empty()) {
    size_t amp = s.find('&');
    std::string_view kv = s.substr(0, amp);
    size_t eq = kv.find('=');
    std::string v = eq == std::string_view::npos ? "" : std::string(kv.substr(eq + 1));
    std::string dec;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '%' && i + 2 < v.size()) {
        dec += static_cast<char>(std::stoi(v.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        dec += v[i] == '+' ? ' ' : v[i];
      }
    }
    out[std::string(kv.substr(0, eq))] = dec;
    if (amp == std::string_view::npos) break;
    s.remove_prefix(amp + 1);
  }
  return out;
}

const std::string* CallHeader(const net::HttpCall& c, std::string_view name) {
  for (const auto& [k, v] : c.headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

// A scripted upstream: each Send pops the next expected step (method + URL fragment).
class ScriptedHttp : public net::HttpClient {
 public:
  struct Step {
    std::string method;
    std::string url_part;
    int status = 200;
    std::string body;
    net::Headers headers;
  };
  void Expect(std::string method, std::string url_part, int status, std::string body = "[]",
              net::Headers headers = {}) {
    steps_.push_back(
        Step{std::move(method), std::move(url_part), status, std::move(body), std::move(headers)});
  }
  Result<net::HttpResult> Send(const net::HttpCall& call) override {
    calls.push_back(call);
    if (steps_.empty()) {
      ADD_FAILURE() << "unexpected call " << call.method << " " << call.url;
      return MakeError(Errc::kInternal, "unexpected call");
    }
    Step s = std::move(steps_.front());
    steps_.pop_front();
    EXPECT_EQ(call.method, s.method) << call.url;
    EXPECT_NE(call.url.find(s.url_part), std::string::npos) << call.url << " lacks " << s.url_part;
    return net::HttpResult{s.status, std::move(s.headers), std::move(s.body)};
  }
  bool Done() const { return steps_.empty(); }
  std::vector<net::HttpCall> calls;

 private:
  std::deque<Step> steps_;
};

ConnectorSettings Settings() {
  ConnectorSettings s;
  s.base_url = "https://apis.example";
  s.token_url = "https://diauth.example/di-oauth2-service/oauth/token";
  s.client_id = "cid";
  s.client_secret = "csecret";
  s.webhook_secret = "hook-secret";
  s.timeout = 4000ms;
  return s;
}

CallContext Ctx() {
  CallContext c;
  c.access_token = "tok";
  return c;
}

constexpr int64_t kDay = 86'400'000;

// ---- mapping -----------------------------------------------------------------------------------

TEST(GarminMapping, DailiesAreStepTotalsFromLocalMidnight) {
  auto recs = DecodeAll(DataType::kSteps, "dailies.json");
  ASSERT_EQ(recs.size(), 2u);
  const Record& a = recs[0];
  EXPECT_EQ(a.meta.id, "EXAMPLE_67891");
  EXPECT_EQ(a.meta.type, DataType::kSteps);
  // calendarDate 2016-01-11 at UTC+1: local midnight is 2016-01-10T23:00Z.
  EXPECT_EQ(a.meta.start_ms, 1452466800000);
  EXPECT_EQ(a.meta.end_ms, 1452466800000 + kDay);
  EXPECT_EQ(a.meta.utc_offset_min, 60);
  EXPECT_EQ(a.meta.modified_ms, (1452470400LL + 86400) * 1000);
  EXPECT_EQ(std::get<StepsData>(a.data).count, 4210);
  // Without calendarDate the summary's own start is used.
  EXPECT_EQ(recs[1].meta.start_ms, 1452556800000);
  EXPECT_EQ(std::get<StepsData>(recs[1].data).count, 3305);
}

TEST(GarminMapping, SleepsHaveStageMinutes) {
  auto recs = DecodeAll(DataType::kSleepSession, "sleeps.json");
  ASSERT_EQ(recs.size(), 3u);
  const Record& a = recs[0];
  EXPECT_EQ(a.meta.id, "EXAMPLE_567890");
  EXPECT_EQ(a.meta.start_ms, 1452419581000);
  EXPECT_EQ(a.meta.end_ms, 1452419581000 + 15264 * 1000LL);
  EXPECT_EQ(a.meta.utc_offset_min, 120);
  const auto& s = std::get<SleepData>(a.data);
  EXPECT_EQ(s.deep_min, 187);  // 11231 s
  EXPECT_EQ(s.light_min, 59);  // 3541 s
  EXPECT_EQ(s.rem_min, 0);
  EXPECT_EQ(s.awake_min, 8);  // 492 s
  const auto& b = std::get<SleepData>(recs[1].data);
  EXPECT_EQ(b.deep_min, 157);
  EXPECT_EQ(b.rem_min, 36);
  EXPECT_EQ(recs[2].meta.utc_offset_min, 540);
  EXPECT_EQ(recs[2].meta.end_ms - recs[2].meta.start_ms, 28260 * 1000LL);
}

TEST(GarminMapping, SleepEndsAfterItsStagesWhenDurationExcludesAwake) {
  json::object o = json::parse(Fixture("sleeps.json")).as_array()[0].as_object();
  o["durationInSeconds"] = 11231 + 3541;  // "does not include awake time"
  auto r = garmin::DecodeSummary(DataType::kSleepSession, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->meta.end_ms - r->meta.start_ms, 15264 * 1000LL);
}

TEST(GarminMapping, BodyCompositionsAreWeights) {
  auto recs = DecodeAll(DataType::kWeight, "body_comps.json");
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].meta.start_ms, 1439741130000);
  EXPECT_EQ(recs[0].meta.end_ms, recs[0].meta.start_ms);
  EXPECT_DOUBLE_EQ(std::get<WeightData>(recs[0].data).kg, 75.45);
  EXPECT_DOUBLE_EQ(*std::get<WeightData>(recs[0].data).fat_ratio, 0.171);
  EXPECT_EQ(recs[1].meta.utc_offset_min, -420);
  EXPECT_FALSE(std::get<WeightData>(recs[1].data).fat_ratio);
}

TEST(GarminMapping, ActivitiesWithTypesAndUnits) {
  auto recs = DecodeAll(DataType::kWorkout, "activities.json");
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].meta.activity, "ride");  // INDOOR_CYCLING
  EXPECT_EQ(recs[0].meta.end_ms - recs[0].meta.start_ms, 3'600'000);
  const auto& w0 = std::get<WorkoutData>(recs[0].data);
  EXPECT_EQ(w0.name, "Indoor Cycling");
  EXPECT_DOUBLE_EQ(w0.energy_kcal, 286);
  EXPECT_EQ(w0.avg_heart_rate_bpm, 113);
  EXPECT_EQ(w0.distance_m, 0);
  EXPECT_EQ(recs[1].meta.activity, "trail_run");
  EXPECT_EQ(recs[1].meta.utc_offset_min, -300);
  EXPECT_DOUBLE_EQ(std::get<WorkoutData>(recs[1].data).distance_m, 7512.3);
  EXPECT_EQ(recs[2].meta.activity, "other");  // STAND_UP_PADDLEBOARDING
  EXPECT_EQ(recs[2].meta.origin, "");
  EXPECT_EQ(garmin::ActivityFromGarminType("OPEN_WATER_SWIMMING"), "open_water_swim");
  EXPECT_EQ(garmin::ActivityFromGarminType("VIRTUAL_RIDE"), "virtual_ride");
  EXPECT_EQ(garmin::ActivityFromGarminType("E_BIKE_MOUNTAIN"), "e_bike_ride");
  EXPECT_EQ(garmin::ActivityFromGarminType("TREADMILL_RUNNING"), "treadmill_run");
}

TEST(GarminMapping, MalformedSummariesNameTheFieldButNoValue) {
  json::object o = json::parse(Fixture("dailies.json")).as_array()[0].as_object();
  o["steps"] = -987654;
  auto r = garmin::DecodeSummary(DataType::kSteps, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kPermanent);
  EXPECT_NE(r.error().message.find("steps"), std::string::npos);
  EXPECT_EQ(r.error().message.find("987654"), std::string::npos);
  o = json::parse(Fixture("body_comps.json")).as_array()[0].as_object();
  o.erase("summaryId");
  EXPECT_FALSE(garmin::DecodeSummary(DataType::kWeight, o).ok());
  o = json::parse(Fixture("body_comps.json")).as_array()[0].as_object();
  o["bodyFatInPercent"] = 140.5;
  EXPECT_FALSE(garmin::DecodeSummary(DataType::kWeight, o).ok());
}

// ---- notifications -----------------------------------------------------------------------------

TEST(GarminNotifications, PingUsesTheCallbackUploadWindow) {
  auto events = garmin::ParseNotificationBody(Fixture("ping.json"), 1'500'000'000'000);
  ASSERT_TRUE(events.ok()) << events.error().message;
  ASSERT_EQ(events->size(), 3u);  // epochs are not synced; two activity pings merge
  EXPECT_EQ((*events)[0].provider_user_id, "0c2af7d2-5b1c-4b1e-9d1e-2f6f5a7b8c9d");
  EXPECT_EQ((*events)[0].kind, "deauthorize");
  EXPECT_FALSE((*events)[0].type);
  EXPECT_EQ((*events)[1].type, DataType::kWorkout);
  EXPECT_EQ((*events)[1].provider_user_id, "4aacafe82427c251df9c9592d0c06768");
  ASSERT_TRUE((*events)[1].range);
  EXPECT_EQ((*events)[1].range->start_ms, 1444937651000);
  EXPECT_EQ((*events)[1].range->end_ms, 1444937903000);
  EXPECT_EQ((*events)[2].type, DataType::kSteps);
  EXPECT_EQ((*events)[2].kind, "update");
}

TEST(GarminNotifications, PushRangeRunsFromTheSummaryToNow) {
  const int64_t now = 1452420600000;
  auto events = garmin::ParseNotificationBody(Fixture("push_sleeps.json"), now);
  ASSERT_TRUE(events.ok()) << events.error().message;
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].kind, "permissions");
  EXPECT_EQ((*events)[1].type, DataType::kSleepSession);
  EXPECT_EQ((*events)[1].range->start_ms, 1452419581000);
  EXPECT_EQ((*events)[1].range->end_ms, now + 60'000);
  // An old summary pushed now (backfill): at most a week back.
  auto late = garmin::ParseNotificationBody(Fixture("push_sleeps.json"), now + 30 * kDay);
  EXPECT_EQ((*late)[1].range->start_ms, now + 23 * kDay);
}

TEST(GarminNotifications, MalformedBodiesAreRejected) {
  for (const char* body :
       {"[]", "not json", R"({"dailies":{}})", R"({"dailies":[{"callbackURL":"x"}]})",
        R"({"dailies":[{"userId":"u","callbackURL":"https://x/y?token=1"}]})"}) {
    auto r = garmin::ParseNotificationBody(body, 0);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument) << body;
  }
  EXPECT_TRUE(garmin::ParseNotificationBody(R"({"stressDetails":[{"userId":"u"}]})", 0)->empty());
}

TEST(GarminWebhook, ChecksTheEndpointTokenAndClientId) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeGarminProvider(Settings(), http, clock);
  EXPECT_EQ(p->name(), "garmin");
  EXPECT_TRUE(p->supports_webhooks());
  const std::string body = Fixture("ping.json");
  WebhookRequest ok{"POST", "token=hook-secret", {{"garmin-client-id", "cid"}}, body};
  auto out = p->VerifyWebhook(ok);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->events.size(), 3u);
  WebhookRequest bad = ok;
  bad.query = "token=guess";
  EXPECT_EQ(p->VerifyWebhook(bad).error().code, Errc::kInvalidArgument);
  bad = ok;
  bad.query = "";
  EXPECT_EQ(p->VerifyWebhook(bad).error().code, Errc::kInvalidArgument);
  bad = ok;
  bad.headers = {{"garmin-client-id", "someone-else"}};
  EXPECT_EQ(p->VerifyWebhook(bad).error().code, Errc::kInvalidArgument);
  bad = ok;
  bad.headers.clear();
  EXPECT_EQ(p->VerifyWebhook(bad).error().code, Errc::kInvalidArgument);
  bad = ok;
  bad.method = "GET";
  EXPECT_EQ(p->VerifyWebhook(bad).error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(http.calls.empty());  // the callback URL is never fetched
}

// ---- connector against a scripted upstream ------------------------------------------------------

TEST(GarminConnector, FetchMetadataPullsUploadWindowsOfAtMostADay) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeGarminProvider(Settings(), http, clock);
  const int64_t t0 = 1452384000000;  // 2016-01-10T00:00Z
  json::array updated = json::parse(Fixture("dailies.json")).as_array();
  updated[1].as_object()["steps"] = 5000;  // EXAMPLE_67892 synced again the next day
  updated.erase(updated.begin());
  http.Expect("GET", "https://apis.example/wellness-api/rest/dailies?", 200,
              Fixture("dailies.json"));
  http.Expect("GET", "/wellness-api/rest/dailies?", 200, json::serialize(updated));
  http.Expect("GET", "/wellness-api/rest/dailies?", 200, "[]");
  auto metas = p->FetchMetadata(Ctx(), DataType::kSteps, {t0, t0 + 2 * kDay + kDay / 2});
  ASSERT_TRUE(metas.ok()) << metas.error().message;
  EXPECT_TRUE(http.Done());
  ASSERT_EQ(metas->size(), 2u);
  EXPECT_EQ((*metas)[0].id, "EXAMPLE_67891");
  EXPECT_EQ((*metas)[1].id, "EXAMPLE_67892");
  const int64_t s0 = t0 / 1000;
  auto w0 = Form(http.calls[0].url), w1 = Form(http.calls[1].url), w2 = Form(http.calls[2].url);
  EXPECT_EQ(w0["uploadStartTimeInSeconds"], std::to_string(s0));
  EXPECT_EQ(w0["uploadEndTimeInSeconds"], std::to_string(s0 + 86400));
  EXPECT_EQ(w1["uploadStartTimeInSeconds"], std::to_string(s0 + 86400));
  EXPECT_EQ(w2["uploadStartTimeInSeconds"], std::to_string(s0 + 2 * 86400));
  EXPECT_EQ(w2["uploadEndTimeInSeconds"], std::to_string(s0 + 2 * 86400 + 43200));
  EXPECT_EQ(*CallHeader(http.calls[0], "Authorization"), "Bearer tok");
  EXPECT_EQ(http.calls[0].timeout, 4000ms);
}

TEST(GarminConnector, StatusesAreClassified) {
  struct Case {
    int status;
    Errc code;
  } cases[] = {{401, Errc::kUnauthenticated}, {403, Errc::kAuthRevoked}, {412, Errc::kPermanent},
               {400, Errc::kPermanent},       {500, Errc::kRetryable},   {502, Errc::kRetryable}};
  for (const auto& c : cases) {
    ScriptedHttp http;
    ManualClock clock;
    auto p = MakeGarminProvider(Settings(), http, clock);
    http.Expect("GET", "/wellness-api/rest/sleeps?", c.status,
                R"({"errorMessage":"steps 12345 look odd"})");
    auto r = p->FetchMetadata(Ctx(), DataType::kSleepSession, {0, 1000});
    ASSERT_FALSE(r.ok()) << c.status;
    EXPECT_EQ(r.error().code, c.code) << c.status;
    EXPECT_EQ(r.error().message.find("12345"), std::string::npos);
  }
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeGarminProvider(Settings(), http, clock);
  http.Expect("GET", "/activities?", 429, R"({"errorMessage":"Rate limit exceeded"})",
              {{"retry-after", "45"}});
  auto r = p->FetchMetadata(Ctx(), DataType::kWorkout, {0, 1000});
  EXPECT_EQ(r.error().code, Errc::kRateLimited);
  EXPECT_EQ(r.error().retry_after, 45s);
  http.Expect("GET", "/activities?", 429, "{}");
  EXPECT_EQ(p->FetchMetadata(Ctx(), DataType::kWorkout, {0, 1000}).error().retry_after, 60s);
  http.Expect("GET", "/activities?", 200, "{\"not\":\"a list\"}");
  EXPECT_EQ(p->FetchMetadata(Ctx(), DataType::kWorkout, {0, 1000}).error().code, Errc::kPermanent);
}

// Within one job (CallContext::fetched), the summaries the metadata step pulled answer the payload
// step without a request -- the latest version of each -- and an id it never saw still walks the
// upload windows back from now.
TEST(GarminConnector, FetchPayloadsReusesTheSummariesTheJobsMetadataStepPulled) {
  ScriptedHttp http;
  ManualClock clock{FromUnixMillis(1452600000000)};
  auto p = MakeGarminProvider(Settings(), http, clock);
  const int64_t t0 = 1452384000000;
  json::array updated = json::parse(Fixture("dailies.json")).as_array();
  updated[1].as_object()["steps"] = 5000;
  updated.erase(updated.begin());
  http.Expect("GET", "/wellness-api/rest/dailies?", 200, Fixture("dailies.json"));
  http.Expect("GET", "/wellness-api/rest/dailies?", 200, json::serialize(updated));
  FetchedRecords fetched;
  CallContext ctx = Ctx();
  ctx.fetched = &fetched;
  auto metas = p->FetchMetadata(ctx, DataType::kSteps, {t0, t0 + 2 * kDay});
  ASSERT_TRUE(metas.ok()) << metas.error().message;
  ASSERT_EQ(metas->size(), 2u);
  EXPECT_EQ(fetched.size(), 2u);
  const size_t calls = http.calls.size();

  auto recs = p->FetchPayloads(ctx, DataType::kSteps, {"EXAMPLE_67892", "EXAMPLE_67891"});
  ASSERT_TRUE(recs.ok()) << recs.error().message;
  EXPECT_EQ(http.calls.size(), calls);  // no request
  ASSERT_EQ(recs->size(), 2u);
  EXPECT_EQ((*recs)[0].meta.id, "EXAMPLE_67892");
  EXPECT_EQ(std::get<StepsData>((*recs)[0].data).count, 5000);  // the later upload
  EXPECT_EQ((*recs)[1].meta.id, "EXAMPLE_67891");
  // Another data type, or an id the metadata step did not see: fetched as without the cache.
  http.Expect("GET", "/wellness-api/rest/activities?", 200, Fixture("activities.json"));
  auto other = p->FetchPayloads(ctx, DataType::kWorkout, {"EXAMPLE_12345"});
  ASSERT_TRUE(other.ok()) << other.error().message;
  ASSERT_EQ(other->size(), 1u);
  EXPECT_EQ(http.calls.size(), calls + 1);
  EXPECT_TRUE(http.Done());
}

TEST(GarminConnector, FetchPayloadsWalksBackFromNowUntilFound) {
  ScriptedHttp http;
  ManualClock clock{FromUnixMillis(1452600000000)};
  auto p = MakeGarminProvider(Settings(), http, clock);
  http.Expect("GET", "/wellness-api/rest/activities?", 200, "[]");
  http.Expect("GET", "/wellness-api/rest/activities?", 200, Fixture("activities.json"));
  auto recs = p->FetchPayloads(Ctx(), DataType::kWorkout, {"EXAMPLE_12346", "EXAMPLE_12345"});
  ASSERT_TRUE(recs.ok()) << recs.error().message;
  EXPECT_TRUE(http.Done());
  ASSERT_EQ(recs->size(), 2u);
  EXPECT_EQ((*recs)[0].meta.id, "EXAMPLE_12346");
  EXPECT_EQ((*recs)[1].meta.id, "EXAMPLE_12345");
  EXPECT_EQ(std::get<WorkoutData>((*recs)[0].data).avg_heart_rate_bpm, 149);
  auto w0 = Form(http.calls[0].url), w1 = Form(http.calls[1].url);
  EXPECT_EQ(w0["uploadEndTimeInSeconds"], "1452600001");
  EXPECT_EQ(w0["uploadStartTimeInSeconds"], std::to_string(1452600001 - 86400));
  EXPECT_EQ(w1["uploadEndTimeInSeconds"], std::to_string(1452600001 - 86400));
  // A record in no window of the lookback is no longer at Garmin: left out, not an error.
  for (int i = 0; i < 30; ++i) http.Expect("GET", "/wellness-api/rest/activities?", 200, "[]");
  auto missing = p->FetchPayloads(Ctx(), DataType::kWorkout, {"EXAMPLE_404"});
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_TRUE(missing->empty());
  EXPECT_TRUE(http.Done());
}

TEST(GarminConnector, AuthenticateUsesPkceAndReadsTheUserId) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeGarminProvider(Settings(), http, clock);
  http.Expect("POST", "https://diauth.example/di-oauth2-service/oauth/token", 200,
              Fixture("token.json"));
  http.Expect("GET", "https://apis.example/wellness-api/rest/user/id", 200,
              Fixture("user_id.json"));
  auto g = p->Authenticate("the-code", "the-verifier", "https://app.example/garmin/cb");
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->provider_user_id, "d3315b1072421d0dd7c8f6b8e1de4df8");
  EXPECT_EQ(g->refresh_token, "example-refresh-token-rotated");
  EXPECT_EQ(g->expires_at, clock.Now() + 86400s);
  auto form = Form(http.calls[0].body);
  EXPECT_EQ(form["grant_type"], "authorization_code");
  EXPECT_EQ(form["code"], "the-code");
  EXPECT_EQ(form["code_verifier"], "the-verifier");
  EXPECT_EQ(form["redirect_uri"], "https://app.example/garmin/cb");
  EXPECT_EQ(form["client_id"], "cid");
  EXPECT_EQ(form["client_secret"], "csecret");
  EXPECT_EQ(*CallHeader(http.calls[0], "Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(CallHeader(http.calls[0], "Authorization"), nullptr);
}

TEST(GarminConnector, RefreshRotatesAndInvalidGrantRevokes) {
  ScriptedHttp http;
  ManualClock clock;
  ConnectorSettings s = Settings();
  s.token_url.clear();  // the simulator's path under the base URL
  auto p = MakeGarminProvider(s, http, clock);
  http.Expect("POST", "https://apis.example/di-oauth2-service/oauth/token", 200,
              R"({"access_token":"a2","expires_in":86400,"refresh_token":"r2"})");
  auto g = p->Refresh("r1");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->access_token, "a2");
  EXPECT_EQ(g->refresh_token, "r2");
  EXPECT_EQ(Form(http.calls[0].body)["refresh_token"], "r1");
  http.Expect("POST", "/oauth/token", 400, R"({"error":"invalid_grant"})");
  EXPECT_EQ(p->Refresh("r1").error().code, Errc::kAuthRevoked);
  http.Expect("POST", "/oauth/token", 401, R"({"error":"invalid_client"})");
  EXPECT_EQ(p->Refresh("r2").error().code, Errc::kPermanent);
  http.Expect("POST", "/oauth/token", 503, "");
  EXPECT_EQ(p->Refresh("r2").error().code, Errc::kRetryable);
}

TEST(GarminConnector, RevokeDeletesTheRegistration) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeGarminProvider(Settings(), http, clock);
  http.Expect("DELETE", "https://apis.example/wellness-api/rest/user/registration", 204, "");
  EXPECT_TRUE(p->Revoke(Ctx()).ok());
  http.Expect("DELETE", "/user/registration", 403, "");
  EXPECT_TRUE(p->Revoke(Ctx()).ok());  // already gone
  http.Expect("DELETE", "/user/registration", 500, "");
  EXPECT_EQ(p->Revoke(Ctx()).error().code, Errc::kRetryable);
}

TEST(GarminConnector, PushIsACapabilityErrorPerRecord) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeGarminProvider(Settings(), http, clock);
  Record a, b;
  a.meta.id = "s1";
  b.meta.id = "s2";
  auto res = p->PushData(Ctx(), DataType::kWorkout, {a, b});
  ASSERT_TRUE(res.ok());
  ASSERT_EQ(res->size(), 2u);
  for (const auto& r : *res) {
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error.code, Errc::kPermanent);
    EXPECT_NE(r.error.message.find("capability"), std::string::npos);
  }
  EXPECT_EQ((*res)[1].source_id, "s2");
  EXPECT_TRUE(http.calls.empty());
  auto none = p->HasNewData(Ctx(), DataType::kWorkout, {0, 1});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);
}

TEST(GarminConnector, DeadlineBoundsTheCall) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeGarminProvider(Settings(), http, clock);
  CallContext ctx = Ctx();
  ctx.deadline = std::chrono::steady_clock::now() - 1ms;
  EXPECT_EQ(p->FetchMetadata(ctx, DataType::kWeight, {0, 1000}).error().code, Errc::kRetryable);
  EXPECT_TRUE(http.calls.empty());
  ctx.deadline = std::chrono::steady_clock::now() + 800ms;
  http.Expect("GET", "/bodyComps?", 200, "[]");
  ASSERT_TRUE(p->FetchMetadata(ctx, DataType::kWeight, {0, 1000}).ok());
  EXPECT_LE(http.calls.back().timeout, 800ms);
}

#ifdef SYNCWELL_HAVE_SIM
// ---- connector against the simulator module (in process)
// -----------------------------------------

// Hands HttpCalls to SimServer::Handle -- the real routing, bearer check and admission in front
// of the module -- without sockets.
class SimLoopback : public net::HttpClient {
 public:
  explicit SimLoopback(sim::SimServer& server) : server_(server) {}

  Result<net::HttpResult> Send(const net::HttpCall& call) override {
    const std::string base = "http://sim.test";
    EXPECT_EQ(call.url.rfind(base, 0), 0u) << call.url;
    const std::string rest = call.url.substr(base.size());
    api::HttpRequest req;
    req.method = call.method;
    const size_t q = rest.find('?');
    req.path = rest.substr(0, q);
    req.query = q == std::string::npos ? "" : rest.substr(q + 1);
    for (const auto& [k, v] : call.headers) req.headers.emplace_back(Lower(k), v);
    req.body = call.body;
    const api::HttpResponse resp = server_.Handle(req);
    net::HttpResult out{resp.status, {}, resp.body};
    for (const auto& [k, v] : resp.headers) out.headers.emplace_back(Lower(k), v);
    return out;
  }

 private:
  static std::string Lower(std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  }
  sim::SimServer& server_;
};

sim::SimServerOptions SmallServer() {
  sim::SimServerOptions o;
  o.handler_threads = 4;
  return o;
}

struct SimFixture {
  ManualClock clock{FromUnixMillis(1'772'600'000'000)};
  sim::SimServer server{sim::SimSettings{}, SmallServer(), clock};
  sim::World& world = server.world();
  SimLoopback http{server};
  std::unique_ptr<Provider> provider;
  CallContext ctx;
  ConnectorSettings settings;
  SimFixture() {
    const sim::ProviderProfile prof = world.Profile("garmin");
    settings.base_url = "http://sim.test/garmin";
    settings.client_id = prof.client_id;
    settings.client_secret = prof.client_secret;
    settings.webhook_secret = prof.webhook_secret;
    provider = MakeGarminProvider(settings, http, clock);
    auto g = provider->Authenticate(world.IssueAuthCode("garmin", "bob"), "v", "https://cb");
    EXPECT_TRUE(g.ok()) << g.error().message;
    EXPECT_EQ(g->provider_user_id, world.ProviderUserId("garmin", "bob"));
    ctx.access_token = g->access_token;
  }
  int64_t Now() const { return ToUnixMillis(clock.Now()); }
};

TEST(GarminSim, PullsWhatWasUploadedInTheRange) {
  SimFixture f;
  const TimeRange range{f.Now() - 10 * kDay, f.Now()};
  for (DataType t :
       {DataType::kWorkout, DataType::kSleepSession, DataType::kSteps, DataType::kWeight}) {
    std::vector<Record> truth;
    for (auto& r : f.world.Records("garmin", "bob", t, range.start_ms - 3 * kDay, range.end_ms)) {
      if (r.meta.modified_ms >= range.start_ms && r.meta.modified_ms < range.end_ms)
        truth.push_back(std::move(r));
    }
    ASSERT_FALSE(truth.empty()) << DataTypeName(t);
    auto metas = f.provider->FetchMetadata(f.ctx, t, range);
    ASSERT_TRUE(metas.ok()) << DataTypeName(t) << ": " << metas.error().message;
    ASSERT_EQ(metas->size(), truth.size()) << DataTypeName(t);
    std::vector<std::string> ids;
    for (const auto& m : *metas) ids.push_back(m.id);
    auto recs = f.provider->FetchPayloads(f.ctx, t, ids);
    ASSERT_TRUE(recs.ok()) << DataTypeName(t) << ": " << recs.error().message;
    for (size_t i = 0; i < truth.size(); ++i) {
      EXPECT_EQ((*recs)[i].meta.id, truth[i].meta.id) << DataTypeName(t);
      EXPECT_EQ((*recs)[i].meta.start_ms, truth[i].meta.start_ms) << DataTypeName(t);
      EXPECT_EQ((*recs)[i].meta.end_ms, truth[i].meta.end_ms) << DataTypeName(t);
      EXPECT_EQ(Fingerprint((*recs)[i]), Fingerprint(truth[i])) << DataTypeName(t) << " " << i;
    }
  }
}

// A first sync's 30 day windows go out side by side when the context allows (ctx.fan_out), and
// the result is the one the same pulls give one after another.
TEST(GarminSim, DayWindowsArePulledSideBySide) {
  SimFixture f;
  test_support::MeetingHttp meeting(f.http, 2);
  auto p = MakeGarminProvider(f.settings, meeting, f.clock);
  FanOut pool(8);
  CallContext ctx = f.ctx;
  ctx.fan_out = &pool;
  ctx.max_parallel = 4;
  const TimeRange range{f.Now() - 30 * kDay, f.Now()};
  for (DataType t : {DataType::kSleepSession, DataType::kSteps}) {
    auto one_by_one = f.provider->FetchMetadata(f.ctx, t, range);
    auto side_by_side = p->FetchMetadata(ctx, t, range);
    ASSERT_TRUE(one_by_one.ok()) << one_by_one.error().message;
    ASSERT_TRUE(side_by_side.ok()) << side_by_side.error().message;
    ASSERT_EQ(side_by_side->size(), one_by_one->size()) << DataTypeName(t);
    ASSERT_FALSE(one_by_one->empty());
    for (size_t i = 0; i < one_by_one->size(); ++i) {
      EXPECT_EQ((*side_by_side)[i].id, (*one_by_one)[i].id);
      EXPECT_EQ((*side_by_side)[i].modified_ms, (*one_by_one)[i].modified_ms);
    }
  }
  EXPECT_TRUE(meeting.met());
  EXPECT_LE(meeting.most(), 4);
  // A failing window fails the call (the sim refuses a revoked token on every window).
  ctx.access_token = "not-a-token";
  auto failed = p->FetchMetadata(ctx, DataType::kSleepSession, range);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, Errc::kUnauthenticated);
}

TEST(GarminSim, PingLeadsToTheNewUpload) {
  SimFixture f;
  auto fresh = f.world.AppendNative("garmin", "bob", DataType::kWorkout);
  ASSERT_TRUE(fresh.ok()) << fresh.error().message;
  sim::ModuleSpec spec = sim::GarminModule();
  api::HttpRequest hook = spec.make_webhook("bob", DataType::kWorkout, f.world);
  EXPECT_EQ(hook.path, "/v1/webhooks/garmin");
  auto out =
      f.provider->VerifyWebhook(WebhookRequest{hook.method, hook.query, hook.headers, hook.body});
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->events.size(), 1u);
  EXPECT_EQ(out->events[0].provider_user_id, f.world.ProviderUserId("garmin", "bob"));
  EXPECT_EQ(out->events[0].type, DataType::kWorkout);
  auto metas = f.provider->FetchMetadata(f.ctx, DataType::kWorkout, *out->events[0].range);
  ASSERT_TRUE(metas.ok()) << metas.error().message;
  ASSERT_EQ(metas->size(), 1u);
  EXPECT_EQ((*metas)[0].id, fresh->meta.id);
  // A forged copy (no endpoint token) is refused.
  EXPECT_FALSE(
      f.provider->VerifyWebhook(WebhookRequest{hook.method, "", hook.headers, hook.body}).ok());
}

TEST(GarminSim, EnforcesTheDayWindowAndRevocation) {
  SimFixture f;
  net::HttpCall wide;
  wide.url =
      "http://sim.test/garmin/wellness-api/rest/dailies?uploadStartTimeInSeconds=0&"
      "uploadEndTimeInSeconds=100000";
  wide.headers = {{"Authorization", "Bearer " + f.ctx.access_token}};
  auto r = f.http.Send(wide);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("errorMessage"), std::string::npos);
  ASSERT_TRUE(f.provider->Revoke(f.ctx).ok());
  auto after = f.provider->FetchMetadata(f.ctx, DataType::kSteps, {f.Now() - kDay, f.Now()});
  EXPECT_EQ(after.error().code, Errc::kUnauthenticated);
}
TEST(GarminSim, OverRealSockets) {
  ManualClock clock{FromUnixMillis(1'772'600'000'000)};
  sim::SimServer server{sim::SimSettings{}, SmallServer(), clock};
  ASSERT_TRUE(server.Start().ok());
  auto http = net::MakeHttpClient();
  const sim::ProviderProfile prof = server.world().Profile("garmin");
  ConnectorSettings s;
  s.base_url = server.base_url() + "/garmin";
  s.client_id = prof.client_id;
  s.client_secret = prof.client_secret;
  auto p = MakeGarminProvider(s, *http, clock);
  auto g = p->Authenticate(server.world().IssueAuthCode("garmin", "dan"), "v", "https://cb");
  ASSERT_TRUE(g.ok()) << g.error().message;
  CallContext ctx;
  ctx.access_token = g->access_token;
  const int64_t now = ToUnixMillis(clock.Now());
  auto metas = p->FetchMetadata(ctx, DataType::kSteps, {now - 3 * kDay, now});
  ASSERT_TRUE(metas.ok()) << metas.error().message;
  EXPECT_FALSE(metas->empty());
  auto refreshed = p->Refresh(g->refresh_token);
  ASSERT_TRUE(refreshed.ok()) << refreshed.error().message;
  EXPECT_NE(refreshed->refresh_token, g->refresh_token);  // rotation
  server.Stop();
}
TEST(GarminSim, AppQuotaIsA429WithRetryAfter) {
  SimFixture f;
  sim::ProviderProfile prof = f.world.Profile("garmin");
  prof.app_limit = 2;
  prof.app_window = 60s;
  f.world.SetProfile("garmin", prof);
  // Two windows use the quota; the third call is refused.
  auto r = f.provider->FetchMetadata(f.ctx, DataType::kWeight, {f.Now() - 3 * kDay, f.Now()});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kRateLimited);
  EXPECT_GT(r.error().retry_after.count(), 0);
  EXPECT_LE(r.error().retry_after, 60s);
}
#endif  // SYNCWELL_HAVE_SIM

}  // namespace
}  // namespace syncwell::providers
