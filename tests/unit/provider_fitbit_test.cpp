// The Fitbit connector (Google Health API v4): mapping against fixtures built from the
// documented shapes, the connector against a scripted HttpClient, notification verification,
// and (with the simulator library) the connector against sim/fitbit_api.cpp in process.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>

#include "providers/fitbit/fitbit_provider.hpp"
#include "providers/fitbit/mapping.hpp"

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

json::object FixtureObject(const std::string& name) {
  return json::parse(Fixture(name)).as_object();
}

std::string Decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
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
    out[Decode(kv.substr(0, eq))] = eq == std::string_view::npos ? "" : Decode(kv.substr(eq + 1));
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

// A scripted upstream: each Send pops the next expected step (method + URL fragment) and
// answers with its response or transport error.
class ScriptedHttp : public net::HttpClient {
 public:
  struct Step {
    std::string method;
    std::string url_part;
    int status = 200;
    std::string body;
    net::Headers headers;
    std::optional<Error> transport_error;
  };
  void Expect(std::string method, std::string url_part, int status, std::string body = "{}",
              net::Headers headers = {}) {
    steps_.push_back(Step{std::move(method), std::move(url_part), status, std::move(body),
                          std::move(headers), std::nullopt});
  }
  void ExpectFailure(std::string method, std::string url_part, Error e) {
    steps_.push_back(Step{std::move(method), std::move(url_part), 0, "", {}, std::move(e)});
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
    if (s.transport_error) return *s.transport_error;
    return net::HttpResult{s.status, std::move(s.headers), std::move(s.body)};
  }
  bool Done() const { return steps_.empty(); }
  std::vector<net::HttpCall> calls;

 private:
  std::deque<Step> steps_;
};

ConnectorSettings Settings() {
  ConnectorSettings s;
  s.base_url = "https://health.example/";
  s.client_id = "cid";
  s.client_secret = "abc123";
  s.webhook_secret = "verify-code-1";
  s.timeout = 5000ms;
  s.page_size = 2;
  return s;
}

CallContext Ctx() {
  CallContext c;
  c.access_token = "tok";
  return c;
}

constexpr int64_t kMar4 = 1772582400000;  // 2026-03-04T00:00:00Z
constexpr int64_t kDay = 86'400'000;

// ---- time and types ----------------------------------------------------------------------------

TEST(FitbitTime, ParsesRfc3339WithZonesAndFractions) {
  EXPECT_EQ(fitbit::ParseRfc3339Ms("2026-03-04T07:25:28.123Z"), 1772609128123);
  EXPECT_EQ(fitbit::ParseRfc3339Ms("2026-03-04T08:25:28.123+01:00"), 1772609128123);
  EXPECT_EQ(fitbit::ParseRfc3339Ms("2026-03-04T02:25:28.123456-05:00"), 1772609128123);
  EXPECT_EQ(fitbit::ParseRfc3339Ms("2026-03-04T07:25:28Z"), 1772609128000);
  EXPECT_FALSE(fitbit::ParseRfc3339Ms("2026-03-04 07:25:28Z"));
  EXPECT_FALSE(fitbit::ParseRfc3339Ms("2026-03-04T07:25:28"));
  EXPECT_FALSE(fitbit::ParseRfc3339Ms("2026-13-04T07:25:28Z"));
  EXPECT_EQ(fitbit::FormatRfc3339Ms(1772609128123), "2026-03-04T07:25:28.123Z");
}

TEST(FitbitTime, DurationsAndCivilTimes) {
  EXPECT_EQ(fitbit::ParseDurationSeconds(json::value("3600s")), 3600);
  EXPECT_EQ(fitbit::ParseDurationSeconds(json::value("-18000s")), -18000);
  EXPECT_EQ(fitbit::ParseDurationSeconds(json::value(19800)), 19800);
  EXPECT_FALSE(fitbit::ParseDurationSeconds(json::value("3600")));
  EXPECT_FALSE(fitbit::ParseDurationSeconds(json::value("xs")));
  EXPECT_EQ(fitbit::FormatDurationSeconds(-18000), "-18000s");
  EXPECT_EQ(fitbit::CivilDateTime(kMar4 + 3'600'000, -300), "2026-03-03T20:00:00");
  EXPECT_EQ(fitbit::CivilDate(kMar4, 60), "2026-03-04");
  EXPECT_EQ(fitbit::ParseCivilDate("2026-03-04"), kMar4 / kDay);
  EXPECT_EQ(fitbit::FormatCivilDate(kMar4 / kDay), "2026-03-04");
}

TEST(FitbitMapping, ExerciseTypesMapBothWays) {
  EXPECT_EQ(fitbit::ActivityFromExerciseType("RUNNING"), "run");
  EXPECT_EQ(fitbit::ActivityFromExerciseType("BIKING"), "ride");
  EXPECT_EQ(fitbit::ActivityFromExerciseType("SWIMMING"), "swim");
  EXPECT_EQ(fitbit::ActivityFromExerciseType("WEIGHTLIFTING"), "strength");
  EXPECT_EQ(fitbit::ActivityFromExerciseType("HIIT"), "other");
  EXPECT_EQ(fitbit::ActivityFromExerciseType("UNDERWATER_HOCKEY"), "other");
  EXPECT_EQ(fitbit::ExerciseTypeFromActivity("trail_run"), "RUNNING");
  EXPECT_EQ(fitbit::ExerciseTypeFromActivity("e_bike_ride"), "BIKING");
  EXPECT_EQ(fitbit::ExerciseTypeFromActivity("open_water_swim"), "SWIMMING");
  EXPECT_EQ(fitbit::ExerciseTypeFromActivity("hike"), "HIKING");
  EXPECT_EQ(fitbit::ExerciseTypeFromActivity("rowing"), "OTHER");
}

// ---- decoding ----------------------------------------------------------------------------------

TEST(FitbitMapping, ExerciseFromFixture) {
  auto r = fitbit::DecodeExercise(FixtureObject("exercise.json"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->meta.id, "2f3a9c8e");
  EXPECT_EQ(r->meta.type, DataType::kWorkout);
  EXPECT_EQ(r->meta.start_ms, 1772609128123);
  EXPECT_EQ(r->meta.end_ms, 1772611528123);
  EXPECT_EQ(r->meta.utc_offset_min, 60);
  EXPECT_EQ(r->meta.modified_ms, 1772611800500);  // updateTime
  EXPECT_EQ(r->meta.activity, "run");
  EXPECT_EQ(r->meta.origin, "");
  const auto& w = std::get<WorkoutData>(r->data);
  EXPECT_EQ(w.name, "Running");
  EXPECT_DOUBLE_EQ(w.distance_m, 8012.345);
  EXPECT_DOUBLE_EQ(w.energy_kcal, 412.5);
  EXPECT_EQ(w.avg_heart_rate_bpm, 152);
}

TEST(FitbitMapping, OriginComesFromNotes) {
  json::object dp = FixtureObject("exercise.json");
  dp["exercise"].as_object()["notes"] = "sw1:0123456789abcdef0123456789abcdef copied by SyncWell";
  auto r = fitbit::DecodeExercise(dp);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->meta.origin, "sw1:0123456789abcdef0123456789abcdef");
  dp["exercise"].as_object()["notes"] = "felt great";
  EXPECT_EQ(fitbit::DecodeExercise(dp)->meta.origin, "");
}

TEST(FitbitMapping, SleepSummaryWinsOverStages) {
  auto r = fitbit::DecodeSleep(FixtureObject("sleep.json"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->meta.id, "s-20260304");
  EXPECT_EQ(r->meta.start_ms, 1772577000000);
  EXPECT_EQ(r->meta.end_ms, 1772604000000);
  EXPECT_EQ(r->meta.utc_offset_min, 60);
  EXPECT_EQ(r->meta.origin, "sw1:fedcba9876543210fedcba9876543210");
  const auto& s = std::get<SleepData>(r->data);
  EXPECT_EQ(s.deep_min, 91);  // the summary, not the stages (90)
  EXPECT_EQ(s.light_min, 134);
  EXPECT_EQ(s.rem_min, 209);
  EXPECT_EQ(s.awake_min, 16);
}

TEST(FitbitMapping, SleepStagesWhenThereIsNoSummary) {
  json::object dp = FixtureObject("sleep.json");
  dp["sleep"].as_object().erase("summary");
  auto s = std::get<SleepData>(fitbit::DecodeSleep(dp)->data);
  EXPECT_EQ(s.awake_min, 15);
  EXPECT_EQ(s.light_min, 135);
  EXPECT_EQ(s.deep_min, 90);
  EXPECT_EQ(s.rem_min, 210);
  // Classic sleep: ASLEEP counts as light, RESTLESS as awake.
  auto& stages = dp["sleep"].as_object()["stages"].as_array();
  stages[0].as_object()["type"] = "RESTLESS";
  stages[1].as_object()["type"] = "ASLEEP";
  s = std::get<SleepData>(fitbit::DecodeSleep(dp)->data);
  EXPECT_EQ(s.awake_min, 15);
  EXPECT_EQ(s.light_min, 135);
}

TEST(FitbitMapping, WeightFromFixture) {
  auto r = fitbit::DecodeWeight(FixtureObject("weight.json"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->meta.id, "w77");
  EXPECT_EQ(r->meta.start_ms, 1772606710000);
  EXPECT_EQ(r->meta.end_ms, r->meta.start_ms);
  EXPECT_EQ(r->meta.utc_offset_min, -300);
  EXPECT_EQ(r->meta.origin, "");  // "after run" is not ours
  EXPECT_DOUBLE_EQ(std::get<WeightData>(r->data).kg, 72.3505);
  EXPECT_FALSE(std::get<WeightData>(r->data).fat_ratio);
  auto bf = fitbit::DecodeBodyFat(
      FixtureObject("body_fat_list.json")["dataPoints"].as_array()[0].as_object());
  ASSERT_TRUE(bf.ok());
  EXPECT_EQ(bf->time_ms, 1772606710000);
  EXPECT_DOUBLE_EQ(bf->percentage, 21.5);
}

TEST(FitbitMapping, StepsAreSummedPerLocalDay) {
  std::vector<fitbit::StepsInterval> ivs;
  const json::object fixture = FixtureObject("steps_reconcile.json");
  for (const auto& p : fixture.at("dataPoints").as_array()) {
    auto iv = fitbit::DecodeStepsPoint(p.as_object());
    ASSERT_TRUE(iv.ok()) << iv.error().message;
    ivs.push_back(*iv);
  }
  const int64_t now = 1772605500000;  // 2026-03-04T06:25Z, inside the local day 2026-03-04
  auto days = fitbit::AggregateDailySteps(ivs, now);
  ASSERT_EQ(days.size(), 2u);
  EXPECT_EQ(days[0].meta.id, "2026-03-03");  // 23:58 and 23:59 local (UTC-5)
  EXPECT_EQ(days[0].meta.start_ms, 1772514000000);
  EXPECT_EQ(days[0].meta.end_ms, 1772600400000);
  EXPECT_EQ(days[0].meta.modified_ms, 1772600400000);
  EXPECT_EQ(std::get<StepsData>(days[0].data).count, 42);
  EXPECT_EQ(days[1].meta.id, "2026-03-04");
  EXPECT_EQ(days[1].meta.start_ms, 1772600400000);  // local midnight = 05:00Z
  EXPECT_EQ(days[1].meta.end_ms, 1772600400000 + kDay);
  EXPECT_EQ(days[1].meta.utc_offset_min, -300);
  EXPECT_EQ(days[1].meta.modified_ms, now);
  EXPECT_EQ(std::get<StepsData>(days[1].data).count, 242);
}

TEST(FitbitMapping, ErrorsNameTheFieldButNoValue) {
  json::object dp = FixtureObject("exercise.json");
  dp["exercise"].as_object()["metricsSummary"].as_object()["distanceMillimeters"] = -123456;
  auto r = fitbit::DecodeExercise(dp);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kPermanent);
  EXPECT_NE(r.error().message.find("distanceMillimeters"), std::string::npos);
  EXPECT_EQ(r.error().message.find("123456"), std::string::npos);
  json::object w = FixtureObject("weight.json");
  w["weight"].as_object()["weightGrams"] = "heavy";
  EXPECT_EQ(fitbit::DecodeWeight(w).error().code, Errc::kPermanent);
  json::object no_name = FixtureObject("exercise.json");
  no_name.erase("name");
  EXPECT_FALSE(fitbit::DecodeExercise(no_name).ok());
}

// ---- encoding ----------------------------------------------------------------------------------

Record Workout() {
  Record r;
  r.meta.id = "src-1";
  r.meta.type = DataType::kWorkout;
  r.meta.start_ms = kMar4 + 7 * 3'600'000;
  r.meta.end_ms = r.meta.start_ms + 45 * 60'000;
  r.meta.utc_offset_min = 330;
  r.meta.activity = "trail_run";
  r.meta.origin = "sw1:00112233445566778899aabbccddeeff";
  r.data = WorkoutData{"Evening Trail", 7512.4242, 530.4242, 149};
  return r;
}

TEST(FitbitMapping, EncodeExerciseCarriesOriginAndUnits) {
  auto body = fitbit::EncodeForCreate(DataType::kWorkout, Workout());
  ASSERT_TRUE(body.ok());
  const json::object& ex = body->at("exercise").as_object();
  EXPECT_EQ(ex.at("exerciseType"), "RUNNING");
  EXPECT_EQ(ex.at("notes"), "sw1:00112233445566778899aabbccddeeff");
  EXPECT_EQ(ex.at("interval").at("startUtcOffset"), "19800s");
  EXPECT_EQ(ex.at("interval").at("startTime"), "2026-03-04T07:00:00.000Z");
  EXPECT_DOUBLE_EQ(ex.at("metricsSummary").at("distanceMillimeters").as_double(), 7512424.2);
  EXPECT_EQ(ex.at("metricsSummary").at("averageHeartRateBeatsPerMinute"), "149");
  // Round trip through the decoder (as the API would echo it, with a name).
  json::object dp = *body;
  dp["name"] = "users/me/dataTypes/exercise/dataPoints/x";
  auto back = fitbit::DecodeExercise(dp);
  ASSERT_TRUE(back.ok());
  Record expect = Workout();
  EXPECT_EQ(back->meta.start_ms, expect.meta.start_ms);
  EXPECT_EQ(back->meta.end_ms, expect.meta.end_ms);
  EXPECT_EQ(back->meta.utc_offset_min, 330);
  EXPECT_EQ(back->meta.origin, expect.meta.origin);
  EXPECT_EQ(back->meta.activity, "run");  // the exercise type is coarser than trail_run
  EXPECT_NEAR(std::get<WorkoutData>(back->data).distance_m, 7512.4242, 1e-6);
  EXPECT_NEAR(std::get<WorkoutData>(back->data).energy_kcal, 530.4242, 1e-9);
}

TEST(FitbitMapping, EncodeSleepLaysStagesOutInsideTheSession) {
  Record r;
  r.meta.type = DataType::kSleepSession;
  r.meta.start_ms = kMar4 - 2 * 3'600'000;
  r.meta.end_ms = r.meta.start_ms + 450 * 60'000;
  r.meta.origin = "sw1:aa";
  r.data = SleepData{90, 240, 100, 20};
  auto body = fitbit::EncodeForCreate(DataType::kSleepSession, r);
  ASSERT_TRUE(body.ok());
  const json::object& sl = body->at("sleep").as_object();
  EXPECT_EQ(sl.at("metadata").at("externalId"), "sw1:aa");
  const auto& stages = sl.at("stages").as_array();
  ASSERT_EQ(stages.size(), 4u);
  EXPECT_EQ(stages[0].at("type"), "DEEP");
  EXPECT_EQ(stages[0].at("startTime"), sl.at("interval").at("startTime"));
  EXPECT_EQ(stages[3].at("endTime"), sl.at("interval").at("endTime"));
  json::object dp = *body;
  dp["name"] = "users/me/dataTypes/sleep/dataPoints/y";
  auto back = fitbit::DecodeSleep(dp);
  ASSERT_TRUE(back.ok());
  const auto& s = std::get<SleepData>(back->data);
  EXPECT_EQ(s.deep_min, 90);
  EXPECT_EQ(s.light_min, 240);
  EXPECT_EQ(s.rem_min, 100);
  EXPECT_EQ(s.awake_min, 20);
}

TEST(FitbitMapping, EncodeWeightAndBodyFat) {
  Record r;
  r.meta.type = DataType::kWeight;
  r.meta.start_ms = r.meta.end_ms = kMar4 + 3'600'000;
  r.meta.utc_offset_min = -300;
  r.meta.origin = "sw1:bb";
  r.data = WeightData{72.35042, 0.2310042};
  auto body = fitbit::EncodeForCreate(DataType::kWeight, r);
  ASSERT_TRUE(body.ok());
  EXPECT_NEAR(body->at("weight").at("weightGrams").as_double(), 72350.42, 1e-6);
  EXPECT_EQ(body->at("weight").at("notes"), "sw1:bb");
  EXPECT_EQ(body->at("weight").at("sampleTime").at("utcOffset"), "-18000s");
  auto fat = fitbit::EncodeBodyFat(r);
  ASSERT_TRUE(fat);
  EXPECT_NEAR(fat->at("bodyFat").at("percentage").as_double(), 23.10042, 1e-9);
  r.data = WeightData{70, std::nullopt};
  EXPECT_FALSE(fitbit::EncodeBodyFat(r));
}

TEST(FitbitMapping, StepsAreNotWritable) {
  Record r;
  r.meta.type = DataType::kSteps;
  r.data = StepsData{100};
  auto body = fitbit::EncodeForCreate(DataType::kSteps, r);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.error().code, Errc::kPermanent);
}

// ---- notifications -----------------------------------------------------------------------------

TEST(FitbitWebhook, KnownSignatureVector) {
  // printf '%s' BODY | openssl dgst -sha1 -hmac 'abc123&' -binary | base64
  const std::string body =
      R"([{"collectionType":"activities","date":"2020-06-01","ownerId":"228S74","ownerType":"user","subscriptionId":"1234"}])";
  EXPECT_EQ(fitbit::NotificationSignature(body, "abc123"), "Urj2t1rrahEx0k6ZMIeg6cUOXjA=");
}

TEST(FitbitWebhook, VerificationCodeAnswers204Or404) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  auto ok = p->VerifyWebhook(WebhookRequest{"GET", "verify=verify-code-1", {}, ""});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->challenge_response->first, 204);
  auto wrong = p->VerifyWebhook(WebhookRequest{"GET", "verify=guess", {}, ""});
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->challenge_response->first, 404);
  EXPECT_EQ(p->VerifyWebhook(WebhookRequest{"GET", "", {}, ""}).error().code,
            Errc::kInvalidArgument);
  EXPECT_TRUE(http.calls.empty());
}

TEST(FitbitWebhook, SignedNotificationBecomesEvents) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  const std::string body = Fixture("notification.json");
  auto out = p->VerifyWebhook(WebhookRequest{
      "POST", "", {{"x-fitbit-signature", fitbit::NotificationSignature(body, "abc123")}}, body});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_FALSE(out->challenge_response);
  ASSERT_EQ(out->events.size(), 4u);  // activities -> workout + steps, body -> weight, revoke
  const int64_t jun1 = 1590969600000;
  EXPECT_EQ(out->events[0].provider_user_id, "228S74");
  EXPECT_EQ(out->events[0].type, DataType::kWorkout);
  EXPECT_EQ(out->events[1].type, DataType::kSteps);
  ASSERT_TRUE(out->events[0].range);
  EXPECT_LE(out->events[0].range->start_ms, jun1 - 12 * 3'600'000);
  EXPECT_GE(out->events[0].range->end_ms, jun1 + kDay + 12 * 3'600'000);
  EXPECT_EQ(out->events[2].type, DataType::kWeight);
  EXPECT_EQ(out->events[3].kind, "deauthorize");
  EXPECT_EQ(out->events[3].provider_user_id, "184X36");
  EXPECT_FALSE(out->events[3].type);
}

TEST(FitbitWebhook, ForgedOrUnsignedNotificationIsRejected) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  const std::string body = Fixture("notification.json");
  auto forged = p->VerifyWebhook(WebhookRequest{
      "POST",
      "",
      {{"x-fitbit-signature", fitbit::NotificationSignature(body, "not-the-secret")}},
      body});
  EXPECT_EQ(forged.error().code, Errc::kInvalidArgument);
  auto tampered = p->VerifyWebhook(
      WebhookRequest{"POST",
                     "",
                     {{"x-fitbit-signature", fitbit::NotificationSignature(body, "abc123")}},
                     body + " "});
  EXPECT_EQ(tampered.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(p->VerifyWebhook(WebhookRequest{"POST", "", {}, body}).error().code,
            Errc::kInvalidArgument);
  const std::string junk = "{\"not\":\"a list\"}";
  auto malformed = p->VerifyWebhook(WebhookRequest{
      "POST", "", {{"x-fitbit-signature", fitbit::NotificationSignature(junk, "abc123")}}, junk});
  EXPECT_EQ(malformed.error().code, Errc::kInvalidArgument);
}

// ---- connector against a scripted upstream ------------------------------------------------------

TEST(FitbitConnector, FetchMetadataFollowsPagesFiltersTheRangeAndReportsLimits) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  net::Headers limits = {{"fitbit-rate-limit-limit", "150"},
                         {"fitbit-rate-limit-remaining", "140"},
                         {"fitbit-rate-limit-reset", "1200"}};
  http.Expect("GET", "https://health.example/v4/users/me/dataTypes/exercise/dataPoints?", 200,
              Fixture("exercise_list_page1.json"), limits);
  http.Expect("GET", "pageToken=CgwIgICAgICAgA", 200, Fixture("exercise_list_page2.json"), limits);
  std::vector<RateLimitObservation> seen;
  CallContext ctx = Ctx();
  ctx.on_rate_limit = [&](const RateLimitObservation& o) { seen.push_back(o); };
  auto metas = p->FetchMetadata(ctx, DataType::kWorkout, {kMar4 + kDay, kMar4 + 3 * kDay});
  ASSERT_TRUE(metas.ok()) << metas.error().message;
  EXPECT_TRUE(http.Done());
  ASSERT_EQ(metas->size(), 3u);  // d4 (Mar 9) is outside the range
  EXPECT_EQ((*metas)[0].id, "a1");
  EXPECT_EQ((*metas)[1].id, "b2");
  EXPECT_EQ((*metas)[1].activity, "ride");
  EXPECT_EQ((*metas)[1].utc_offset_min, -300);
  EXPECT_EQ((*metas)[2].id, "c3");
  EXPECT_EQ((*metas)[2].origin, "sw1:0123456789abcdef0123456789abcdef");
  auto q = Form(http.calls[0].url);
  EXPECT_EQ(q["pageSize"], "2");
  EXPECT_EQ(q["filter"],
            "exercise.interval.civil_start_time >= \"2026-03-04T10:00:00\" AND "
            "exercise.interval.civil_start_time < \"2026-03-07T14:00:00\"");
  ASSERT_NE(CallHeader(http.calls[0], "Authorization"), nullptr);
  EXPECT_EQ(*CallHeader(http.calls[0], "Authorization"), "Bearer tok");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].scope, "user");
  EXPECT_EQ(seen[0].limit, 150);
  EXPECT_EQ(seen[0].used, 10);
  EXPECT_EQ(seen[0].window, 3600s);
  EXPECT_EQ(seen[0].reset_in, 1200s);
}

TEST(FitbitConnector, StatusesAreClassified) {
  struct Case {
    int status;
    Errc code;
  } cases[] = {{401, Errc::kUnauthenticated}, {403, Errc::kPermanent}, {404, Errc::kPermanent},
               {400, Errc::kPermanent},       {500, Errc::kRetryable}, {503, Errc::kRetryable}};
  for (const auto& c : cases) {
    ScriptedHttp http;
    ManualClock clock;
    auto p = MakeFitbitProvider(Settings(), http, clock);
    http.Expect(
        "GET", "/dataTypes/sleep/dataPoints", c.status,
        R"({"error":{"code":1,"message":"weightGrams 72350.5 is bad","status":"SOMETHING"}})");
    auto r = p->FetchMetadata(Ctx(), DataType::kSleepSession, {kMar4, kMar4 + kDay});
    ASSERT_FALSE(r.ok()) << c.status;
    EXPECT_EQ(r.error().code, c.code) << c.status;
    EXPECT_EQ(r.error().message.find("72350"), std::string::npos);  // provider text is not kept
    EXPECT_NE(r.error().message.find("SOMETHING"), std::string::npos);
  }
}

TEST(FitbitConnector, RateLimitedCarriesRetryAfter) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  http.Expect("GET", "/dataTypes/weight/dataPoints", 429, Fixture("error_429.json"),
              {{"retry-after", "120"}, {"fitbit-rate-limit-reset", "900"}});
  auto r = p->FetchMetadata(Ctx(), DataType::kWeight, {kMar4, kMar4 + kDay});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kRateLimited);
  EXPECT_EQ(r.error().retry_after, 120s);
  http.Expect("GET", "/dataTypes/weight/dataPoints", 429, Fixture("error_429.json"),
              {{"fitbit-rate-limit-limit", "150"},
               {"fitbit-rate-limit-remaining", "0"},
               {"fitbit-rate-limit-reset", "900"}});
  r = p->FetchMetadata(Ctx(), DataType::kWeight, {kMar4, kMar4 + kDay});
  EXPECT_EQ(r.error().code, Errc::kRateLimited);
  EXPECT_EQ(r.error().retry_after, 900s);
}

TEST(FitbitConnector, TransportFailuresAreRetryable) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  http.ExpectFailure("GET", "/dataTypes/steps/dataPoints:reconcile",
                     MakeError(Errc::kRetryable, "connection reset"));
  auto r = p->FetchMetadata(Ctx(), DataType::kSteps, {kMar4, kMar4 + kDay});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kRetryable);
}

TEST(FitbitConnector, DeadlineBoundsEveryCall) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  CallContext ctx = Ctx();
  ctx.deadline = std::chrono::steady_clock::now() - 1ms;
  auto late = p->FetchMetadata(ctx, DataType::kWeight, {kMar4, kMar4 + kDay});
  EXPECT_EQ(late.error().code, Errc::kRetryable);
  EXPECT_TRUE(http.calls.empty());
  ctx.deadline = std::chrono::steady_clock::now() + 1500ms;
  http.Expect("GET", "/dataTypes/weight/dataPoints", 200, R"({"dataPoints":[]})");
  ASSERT_TRUE(p->FetchMetadata(ctx, DataType::kWeight, {kMar4, kMar4 + kDay}).ok());
  EXPECT_LE(http.calls.back().timeout, 1500ms);
  EXPECT_GT(http.calls.back().timeout, 0ms);
  http.Expect("GET", "/dataTypes/weight/dataPoints", 200, R"({"dataPoints":[]})");
  ASSERT_TRUE(p->FetchMetadata(Ctx(), DataType::kWeight, {kMar4, kMar4 + kDay}).ok());
  EXPECT_EQ(http.calls.back().timeout, 5000ms);
}

TEST(FitbitConnector, AuthenticateExchangesTheCodeAndReadsTheIdentity) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  http.Expect("POST", "https://health.example/oauth2/token", 200, Fixture("token.json"));
  http.Expect("GET", "https://health.example/v4/users/me/identity", 200, Fixture("identity.json"));
  auto g = p->Authenticate("code-1", "verifier-1", "https://app.example/cb");
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->access_token, "ya29.a0AfB_byC-example-access-token");
  EXPECT_EQ(g->refresh_token, "1//0gexample-refresh-token");
  EXPECT_EQ(g->provider_user_id, "1234567890");
  EXPECT_EQ(g->expires_at, clock.Now() + 3599s);
  auto form = Form(http.calls[0].body);
  EXPECT_EQ(form["grant_type"], "authorization_code");
  EXPECT_EQ(form["code"], "code-1");
  EXPECT_EQ(form["code_verifier"], "verifier-1");
  EXPECT_EQ(form["redirect_uri"], "https://app.example/cb");
  EXPECT_EQ(form["client_id"], "cid");
  EXPECT_EQ(form["client_secret"], "abc123");
  EXPECT_EQ(*CallHeader(http.calls[1], "Authorization"),
            "Bearer ya29.a0AfB_byC-example-access-token");
}

TEST(FitbitConnector, RefreshTakesARotatedTokenOrKeepsTheOldOne) {
  ScriptedHttp http;
  ManualClock clock;
  ConnectorSettings s = Settings();
  s.token_url = "https://oauth.example/token";
  auto p = MakeFitbitProvider(s, http, clock);
  http.Expect(
      "POST", "https://oauth.example/token", 200,
      R"({"access_token":"a2","expires_in":3600,"refresh_token":"r2","token_type":"Bearer"})");
  auto g = p->Refresh("r1");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->refresh_token, "r2");
  EXPECT_EQ(Form(http.calls[0].body)["grant_type"], "refresh_token");
  EXPECT_EQ(Form(http.calls[0].body)["refresh_token"], "r1");
  http.Expect("POST", "https://oauth.example/token", 200,
              R"({"access_token":"a3","expires_in":3600,"token_type":"Bearer"})");
  g = p->Refresh("r2");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->access_token, "a3");
  EXPECT_EQ(g->refresh_token, "r2");
  http.Expect(
      "POST", "https://oauth.example/token", 400,
      R"({"error":"invalid_grant","error_description":"Token has been expired or revoked."})");
  auto revoked = p->Refresh("r2");
  EXPECT_EQ(revoked.error().code, Errc::kAuthRevoked);
  EXPECT_EQ(revoked.error().message.find("r2"), std::string::npos);
  http.Expect("POST", "https://oauth.example/token", 401, R"({"error":"invalid_client"})");
  EXPECT_EQ(p->Refresh("r2").error().code, Errc::kPermanent);  // our client credentials
  http.Expect("POST", "https://oauth.example/token", 503, "");
  EXPECT_EQ(p->Refresh("r2").error().code, Errc::kRetryable);
  // Revocation goes to the sibling endpoint.
  http.Expect("POST", "https://oauth.example/revoke", 200, "{}");
  EXPECT_TRUE(p->Revoke(Ctx()).ok());
  EXPECT_EQ(Form(http.calls.back().body)["token"], "tok");
}

TEST(FitbitConnector, FetchPayloadsGetsEachPointAndJoinsBodyFat) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  http.Expect("GET", "/v4/users/me/dataTypes/weight/dataPoints/w77", 200, Fixture("weight.json"));
  http.Expect("GET", "/v4/users/me/dataTypes/body-fat/dataPoints?", 200,
              Fixture("body_fat_list.json"));
  auto recs = p->FetchPayloads(Ctx(), DataType::kWeight, {"w77"});
  ASSERT_TRUE(recs.ok()) << recs.error().message;
  ASSERT_EQ(recs->size(), 1u);
  EXPECT_DOUBLE_EQ(*std::get<WeightData>((*recs)[0].data).fat_ratio, 0.215);
  EXPECT_EQ(Form(http.calls[1].url)["filter"],
            "body_fat.sample_time.physical_time >= \"2026-03-04T06:45:10.000Z\" AND "
            "body_fat.sample_time.physical_time < \"2026-03-04T06:45:10.001Z\"");
  http.Expect("GET", "/dataTypes/exercise/dataPoints/gone", 404,
              R"({"error":{"code":404,"message":"Data point not found.","status":"NOT_FOUND"}})");
  // 404: deleted at Fitbit since the list; left out (the engine skips it), not an error.
  auto missing = p->FetchPayloads(Ctx(), DataType::kWorkout, {"gone"});
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_TRUE(missing->empty());
  http.Expect("GET", "/dataTypes/exercise/dataPoints/broken", 500, "{}");
  auto failed = p->FetchPayloads(Ctx(), DataType::kWorkout, {"broken"});
  ASSERT_FALSE(failed.ok());  // any other failure still fails the call
}

// Within one job (CallContext::fetched) the data points listed by the metadata step answer the
// payload step: no GET per point.
TEST(FitbitConnector, FetchPayloadsReusesThePointsTheJobsMetadataStepListed) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  http.Expect("GET", "/v4/users/me/dataTypes/exercise/dataPoints?", 200,
              Fixture("exercise_list_page1.json"));
  http.Expect("GET", "pageToken=CgwIgICAgICAgA", 200, Fixture("exercise_list_page2.json"));
  FetchedRecords fetched;
  CallContext ctx = Ctx();
  ctx.fetched = &fetched;
  auto metas = p->FetchMetadata(ctx, DataType::kWorkout, {kMar4 + kDay, kMar4 + 3 * kDay});
  ASSERT_TRUE(metas.ok()) << metas.error().message;
  ASSERT_EQ(metas->size(), 3u);
  const size_t calls = http.calls.size();
  auto recs = p->FetchPayloads(ctx, DataType::kWorkout, {"c3", "a1"});
  ASSERT_TRUE(recs.ok()) << recs.error().message;
  EXPECT_EQ(http.calls.size(), calls);
  ASSERT_EQ(recs->size(), 2u);
  EXPECT_EQ((*recs)[0].meta.id, "c3");
  EXPECT_EQ((*recs)[0].meta.origin, "sw1:0123456789abcdef0123456789abcdef");
  EXPECT_EQ((*recs)[1].meta.id, "a1");
  EXPECT_TRUE(http.Done());
}

TEST(FitbitConnector, FetchPayloadsOfStepsReadsTheDays) {
  ScriptedHttp http;
  ManualClock clock{FromUnixMillis(1772605500000)};
  auto p = MakeFitbitProvider(Settings(), http, clock);
  http.Expect("GET", "/dataTypes/steps/dataPoints:reconcile?", 200,
              Fixture("steps_reconcile.json"));
  auto recs = p->FetchPayloads(Ctx(), DataType::kSteps, {"2026-03-04", "2026-03-03"});
  ASSERT_TRUE(recs.ok()) << recs.error().message;
  ASSERT_EQ(recs->size(), 2u);
  EXPECT_EQ((*recs)[0].meta.id, "2026-03-04");
  EXPECT_EQ(std::get<StepsData>((*recs)[0].data).count, 242);
  EXPECT_EQ(std::get<StepsData>((*recs)[1].data).count, 42);
  EXPECT_EQ(Form(http.calls[0].url)["filter"],
            "steps.interval.civil_start_time >= \"2026-03-03T00:00:00\" AND "
            "steps.interval.civil_start_time < \"2026-03-05T00:00:00\"");
  http.Expect("GET", "dataPoints:reconcile?", 200, R"({"dataPoints":[]})");
  EXPECT_EQ(p->FetchPayloads(Ctx(), DataType::kSteps, {"2026-03-10"}).error().code,
            Errc::kPermanent);
  EXPECT_EQ(p->FetchPayloads(Ctx(), DataType::kSteps, {"yesterday"}).error().code,
            Errc::kPermanent);
}

TEST(FitbitConnector, PushWorkoutsReportsEachRecord) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  http.Expect("POST", "/v4/users/me/dataTypes/exercise/dataPoints", 200,
              Fixture("create_operation.json"));
  http.Expect("POST", "/v4/users/me/dataTypes/exercise/dataPoints", 400,
              R"({"error":{"code":400,"message":"Invalid","status":"INVALID_ARGUMENT"}})");
  Record second = Workout();
  second.meta.id = "src-2";
  auto res = p->PushData(Ctx(), DataType::kWorkout, {Workout(), second});
  ASSERT_TRUE(res.ok()) << res.error().message;
  ASSERT_EQ(res->size(), 2u);
  EXPECT_TRUE((*res)[0].ok);
  EXPECT_EQ((*res)[0].source_id, "src-1");
  EXPECT_EQ((*res)[0].dest_id, "n3w1d");
  EXPECT_FALSE((*res)[1].ok);
  EXPECT_EQ((*res)[1].source_id, "src-2");
  EXPECT_EQ((*res)[1].error.code, Errc::kPermanent);
  json::value sent = json::parse(http.calls[0].body);
  EXPECT_EQ(sent.at("exercise").at("notes"), "sw1:00112233445566778899aabbccddeeff");
  EXPECT_EQ(*CallHeader(http.calls[0], "Content-Type"), "application/json");
}

TEST(FitbitConnector, PushStopsAtACallLevelFailure) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  // Nothing written yet: the call as a whole is rate limited.
  http.Expect("POST", "/exercise/dataPoints", 429, Fixture("error_429.json"),
              {{"retry-after", "30"}});
  auto whole = p->PushData(Ctx(), DataType::kWorkout, {Workout(), Workout()});
  ASSERT_FALSE(whole.ok());
  EXPECT_EQ(whole.error().code, Errc::kRateLimited);
  EXPECT_EQ(whole.error().retry_after, 30s);
  // After a success: per-record results, and the rest is not attempted.
  http.Expect("POST", "/exercise/dataPoints", 200, Fixture("create_operation.json"));
  http.Expect("POST", "/exercise/dataPoints", 401, "{}");
  auto part = p->PushData(Ctx(), DataType::kWorkout, {Workout(), Workout(), Workout()});
  ASSERT_TRUE(part.ok());
  EXPECT_TRUE((*part)[0].ok);
  EXPECT_EQ((*part)[1].error.code, Errc::kUnauthenticated);
  EXPECT_EQ((*part)[2].error.code, Errc::kUnauthenticated);
  EXPECT_TRUE(http.Done());
  EXPECT_EQ(http.calls.size(), 3u);
}

// PushEach (provider.hpp), which every writing connector uses, side by side: results stay in the
// records' order, a call-level failure stops what has not started, and nothing written + such a
// failure fails the whole call.
TEST(PushEachTest, KeepsOrderAndStopsAtACallLevelFailure) {
  FanOut pool(8);
  CallContext ctx;
  ctx.fan_out = &pool;
  ctx.max_parallel = 4;
  std::vector<Record> records(16, Workout());
  for (size_t i = 0; i < records.size(); ++i) records[i].meta.id = "r" + std::to_string(i);
  std::atomic<int> pushed{0};
  auto res = PushEach(ctx, records, [&](const Record& r) {
    pushed.fetch_add(1);
    PushResult pr;
    pr.source_id = r.meta.id;
    if (r.meta.id == "r5") {
      pr.error = MakeError(Errc::kRateLimited, "429");
    } else {
      pr.ok = true;
      pr.dest_id = "d-" + r.meta.id;
    }
    return pr;
  });
  ASSERT_TRUE(res.ok()) << res.error().message;
  ASSERT_EQ(res->size(), records.size());
  int ok = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const PushResult& pr = (*res)[i];
    EXPECT_EQ(pr.source_id, records[i].meta.id);
    if (pr.ok) {
      EXPECT_EQ(pr.dest_id, "d-" + records[i].meta.id);
      ++ok;
    } else {
      EXPECT_EQ(pr.error.code, Errc::kRateLimited) << i;  // r5's own, or stopped by it
    }
  }
  EXPECT_FALSE((*res)[5].ok);
  // Every record pushed but r5 was written; the rest were stopped without a request. (How many
  // were stopped depends on timing; the sequential case is PushStopsAtACallLevelFailure.)
  EXPECT_EQ(ok + 1, pushed.load());

  // Nothing written and a call-level failure: the call fails as a whole.
  auto all_401 = PushEach(ctx, records, [&](const Record& r) {
    PushResult pr;
    pr.source_id = r.meta.id;
    pr.error = MakeError(Errc::kUnauthenticated, "401");
    return pr;
  });
  ASSERT_FALSE(all_401.ok());
  EXPECT_EQ(all_401.error().code, Errc::kUnauthenticated);
  // Only record-level failures: per-record results, every record tried.
  auto permanent = PushEach(ctx, records, [&](const Record& r) {
    PushResult pr;
    pr.source_id = r.meta.id;
    pr.error = MakeError(Errc::kPermanent, "400");
    return pr;
  });
  ASSERT_TRUE(permanent.ok());
  for (const auto& pr : *permanent) EXPECT_EQ(pr.error.code, Errc::kPermanent);
}

TEST(FitbitConnector, PushWeightWritesBodyFatFirst) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  Record r;
  r.meta.id = "src-w";
  r.meta.type = DataType::kWeight;
  r.meta.start_ms = r.meta.end_ms = kMar4;
  r.data = WeightData{70.5, 0.2};
  http.Expect(
      "POST", "/dataTypes/body-fat/dataPoints", 200,
      R"({"name":"operations/1","done":true,"response":{"name":"users/me/dataTypes/body-fat/dataPoints/f1"}})");
  http.Expect(
      "POST", "/dataTypes/weight/dataPoints", 200,
      R"({"name":"operations/2","done":true,"response":{"name":"users/me/dataTypes/weight/dataPoints/w9"}})");
  auto res = p->PushData(Ctx(), DataType::kWeight, {r});
  ASSERT_TRUE(res.ok());
  EXPECT_TRUE((*res)[0].ok);
  EXPECT_EQ((*res)[0].dest_id, "w9");
  // A failed body fat: the weight is not written.
  http.Expect("POST", "/dataTypes/body-fat/dataPoints", 500, "{}");
  res = p->PushData(Ctx(), DataType::kWeight, {r});
  ASSERT_TRUE(res.ok());
  EXPECT_FALSE((*res)[0].ok);
  EXPECT_EQ((*res)[0].error.code, Errc::kRetryable);
  EXPECT_TRUE(http.Done());
}

TEST(FitbitConnector, PushOfStepsIsACapabilityError) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  Record r;
  r.meta.id = "d1";
  r.meta.type = DataType::kSteps;
  r.data = StepsData{1000};
  auto res = p->PushData(Ctx(), DataType::kSteps, {r});
  ASSERT_TRUE(res.ok());
  EXPECT_FALSE((*res)[0].ok);
  EXPECT_EQ((*res)[0].error.code, Errc::kPermanent);
  EXPECT_NE((*res)[0].error.message.find("capability"), std::string::npos);
  EXPECT_TRUE(http.calls.empty());
}

TEST(FitbitConnector, PendingOperationIsPolledOnce) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  http.Expect("POST", "/exercise/dataPoints", 200, R"({"name":"operations/op7","done":false})");
  http.Expect(
      "GET", "https://health.example/v4/operations/op7", 200,
      R"({"name":"operations/op7","done":true,"response":{"name":"users/me/dataTypes/exercise/dataPoints/e7"}})");
  auto res = p->PushData(Ctx(), DataType::kWorkout, {Workout()});
  ASSERT_TRUE(res.ok());
  EXPECT_EQ((*res)[0].dest_id, "e7");
}

TEST(FitbitConnector, HasNewDataAsksForOnePoint) {
  ScriptedHttp http;
  ManualClock clock;
  auto p = MakeFitbitProvider(Settings(), http, clock);
  http.Expect("GET", "/dataTypes/sleep/dataPoints?pageSize=1&", 200,
              Fixture("exercise_list_page2.json"));
  auto yes = p->HasNewData(Ctx(), DataType::kSleepSession, {kMar4, kMar4 + kDay});
  ASSERT_TRUE(yes.ok());
  EXPECT_EQ(*yes, std::optional<bool>(true));
  http.Expect("GET", "/dataTypes/sleep/dataPoints?pageSize=1&", 200, "{}");
  auto no = p->HasNewData(Ctx(), DataType::kSleepSession, {kMar4, kMar4 + kDay});
  EXPECT_EQ(*no, std::optional<bool>(false));
  EXPECT_EQ(Form(http.calls[0].url)["filter"],
            "sleep.interval.end_time >= \"2026-03-04T00:00:00.000Z\" AND "
            "sleep.interval.end_time < \"2026-03-06T00:00:00.000Z\"");
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
  TokenGrant grant;
  CallContext ctx;
  SimFixture() {
    const sim::ProviderProfile prof = world.Profile("fitbit");
    ConnectorSettings s;
    s.base_url = "http://sim.test/fitbit";
    s.client_id = prof.client_id;
    s.client_secret = prof.client_secret;
    s.webhook_secret = prof.webhook_secret;
    s.page_size = 7;
    provider = MakeFitbitProvider(s, http, clock);
    auto g = provider->Authenticate(world.IssueAuthCode("fitbit", "alice"), "v", "https://cb");
    EXPECT_TRUE(g.ok()) << g.error().message;
    EXPECT_EQ(g->provider_user_id, world.ProviderUserId("fitbit", "alice"));
    grant = *g;
    ctx.access_token = g->access_token;
    ctx.provider_user_id = g->provider_user_id;
  }
  TimeRange Last(int days) const {
    const int64_t now = ToUnixMillis(clock.Now());
    return {now - days * kDay, now};
  }
};

TEST(FitbitSim, ReadsWhatTheSimulatorHolds) {
  SimFixture f;
  for (DataType t :
       {DataType::kWorkout, DataType::kSleepSession, DataType::kSteps, DataType::kWeight}) {
    const TimeRange range = f.Last(20);
    auto metas = f.provider->FetchMetadata(f.ctx, t, range);
    ASSERT_TRUE(metas.ok()) << DataTypeName(t) << ": " << metas.error().message;
    auto truth = f.world.Records("fitbit", "alice", t, range.start_ms, range.end_ms);
    ASSERT_FALSE(truth.empty()) << DataTypeName(t);
    ASSERT_EQ(metas->size(), truth.size()) << DataTypeName(t);
    std::vector<std::string> ids;
    for (const auto& m : *metas) ids.push_back(m.id);
    auto recs = f.provider->FetchPayloads(f.ctx, t, ids);
    ASSERT_TRUE(recs.ok()) << DataTypeName(t) << ": " << recs.error().message;
    for (size_t i = 0; i < truth.size(); ++i) {
      const Record& got = (*recs)[i];
      const Record& want = truth[i];
      EXPECT_EQ(got.meta.start_ms, want.meta.start_ms) << DataTypeName(t);
      EXPECT_EQ(got.meta.end_ms, want.meta.end_ms) << DataTypeName(t);
      EXPECT_EQ(got.meta.utc_offset_min, want.meta.utc_offset_min) << DataTypeName(t);
      EXPECT_EQ(Fingerprint(got), Fingerprint(want)) << DataTypeName(t) << " " << i;
      if (t != DataType::kSteps) {
        EXPECT_EQ(got.meta.id, want.meta.id);
      }
    }
  }
}

// Per-record creates and per-point reads go out side by side when the context allows, each
// result in its record's place.
TEST(FitbitSim, PushesAndReadsSideBySide) {
  SimFixture f;
  test_support::MeetingHttp meeting(f.http, 2);
  const sim::ProviderProfile prof = f.world.Profile("fitbit");
  ConnectorSettings s;
  s.base_url = "http://sim.test/fitbit";
  s.client_id = prof.client_id;
  s.client_secret = prof.client_secret;
  auto p = MakeFitbitProvider(s, meeting, f.clock);
  FanOut pool(8);
  CallContext ctx = f.ctx;
  ctx.fan_out = &pool;
  ctx.max_parallel = 4;
  const int64_t now = ToUnixMillis(f.clock.Now());
  std::vector<Record> records;
  for (int i = 0; i < 6; ++i) {
    Record w = Workout();
    w.meta.id = "src-" + std::to_string(i);
    w.meta.start_ms = now - (i + 2) * 3'600'000;
    w.meta.end_ms = w.meta.start_ms + 1'800'000;
    w.meta.origin = OriginTag(Fingerprint(w));
    records.push_back(std::move(w));
  }
  auto res = p->PushData(ctx, DataType::kWorkout, records);
  ASSERT_TRUE(res.ok()) << res.error().message;
  ASSERT_EQ(res->size(), records.size());
  std::vector<std::string> dest_ids;
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_TRUE((*res)[i].ok) << (*res)[i].error.message;
    EXPECT_EQ((*res)[i].source_id, records[i].meta.id);
    dest_ids.push_back((*res)[i].dest_id);
  }
  EXPECT_TRUE(meeting.met());
  EXPECT_LE(meeting.most(), 4);
  auto back = p->FetchPayloads(ctx, DataType::kWorkout, dest_ids);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->size(), records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ((*back)[i].meta.id, dest_ids[i]);
    EXPECT_EQ((*back)[i].meta.origin, records[i].meta.origin);
  }
  EXPECT_EQ(f.world.Written("fitbit", "alice").size(), records.size());
}

TEST(FitbitSim, WritesRoundTripWithTheirOrigin) {
  SimFixture f;
  const int64_t now = ToUnixMillis(f.clock.Now());
  Record w = Workout();
  w.meta.start_ms = now - 3 * 3'600'000;
  w.meta.end_ms = w.meta.start_ms + 1'800'000;
  w.meta.origin = OriginTag(Fingerprint(w));
  Record s;
  s.meta.id = "src-s";
  s.meta.type = DataType::kSleepSession;
  s.meta.start_ms = now - 10 * 3'600'000;
  s.meta.end_ms = s.meta.start_ms + 480 * 60'000;
  s.data = SleepData{80, 250, 110, 40};
  s.meta.origin = OriginTag(Fingerprint(s));
  Record kg;
  kg.meta.id = "src-k";
  kg.meta.type = DataType::kWeight;
  kg.meta.start_ms = kg.meta.end_ms = now - 3'600'000;
  kg.meta.utc_offset_min = 60;
  kg.data = WeightData{80.12042, 0.2210042};
  kg.meta.origin = OriginTag(Fingerprint(kg));
  for (const Record* r : {&w, &s, &kg}) {
    auto res = f.provider->PushData(f.ctx, r->meta.type, {*r});
    ASSERT_TRUE(res.ok()) << res.error().message;
    ASSERT_TRUE((*res)[0].ok) << (*res)[0].error.message;
    auto back = f.provider->FetchPayloads(f.ctx, r->meta.type, {(*res)[0].dest_id});
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ((*back)[0].meta.origin, r->meta.origin);
    Record expect = *r;
    if (r == &w) expect.meta.activity = "run";  // RUNNING is all Fitbit knows of trail_run
    EXPECT_EQ(Fingerprint((*back)[0]), Fingerprint(expect));
    auto metas = f.provider->FetchMetadata(f.ctx, r->meta.type, f.Last(1));
    ASSERT_TRUE(metas.ok());
    bool found = false;
    for (const auto& m : *metas) found = found || m.origin == r->meta.origin;
    EXPECT_TRUE(found) << DataTypeName(r->meta.type);
  }
  auto written = f.world.Written("fitbit", "alice");
  ASSERT_EQ(written.size(), 3u);
  EXPECT_EQ(Fingerprint(written[2].record), Fingerprint(kg));  // body fat merged into the weight
}

TEST(FitbitSim, NotificationsVerifyAndTokensRefresh) {
  SimFixture f;
  sim::ModuleSpec spec = sim::FitbitModule();
  api::HttpRequest hook = spec.make_webhook("alice", DataType::kSleepSession, f.world);
  EXPECT_EQ(hook.path, "/v1/webhooks/fitbit");
  auto out =
      f.provider->VerifyWebhook(WebhookRequest{hook.method, hook.query, hook.headers, hook.body});
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->events.size(), 1u);
  EXPECT_EQ(out->events[0].provider_user_id, f.ctx.provider_user_id);
  EXPECT_EQ(out->events[0].type, DataType::kSleepSession);
  auto verify = f.provider->VerifyWebhook(
      WebhookRequest{"GET", "verify=" + f.world.Profile("fitbit").webhook_secret, {}, ""});
  EXPECT_EQ(verify->challenge_response->first, 204);
  // An expired access token is 401 in Google's format; a refresh brings the user back.
  f.world.ExpireTokens("fitbit", "alice");
  auto denied = f.provider->FetchMetadata(f.ctx, DataType::kWeight, f.Last(2));
  EXPECT_EQ(denied.error().code, Errc::kUnauthenticated);
  auto fresh = f.provider->Refresh(f.grant.refresh_token);
  ASSERT_TRUE(fresh.ok()) << fresh.error().message;
  EXPECT_NE(fresh->access_token, f.grant.access_token);
  f.ctx.access_token = fresh->access_token;
  EXPECT_TRUE(f.provider->FetchMetadata(f.ctx, DataType::kWeight, f.Last(2)).ok());
  EXPECT_EQ(f.provider->Refresh("not-a-token").error().code, Errc::kAuthRevoked);
}
TEST(FitbitSim, OverRealSockets) {
  ManualClock clock{FromUnixMillis(1'772'600'000'000)};
  sim::SimServer server{sim::SimSettings{}, SmallServer(), clock};
  ASSERT_TRUE(server.Start().ok());
  auto http = net::MakeHttpClient();
  const sim::ProviderProfile prof = server.world().Profile("fitbit");
  ConnectorSettings s;
  s.base_url = server.base_url() + "/fitbit";
  s.client_id = prof.client_id;
  s.client_secret = prof.client_secret;
  auto p = MakeFitbitProvider(s, *http, clock);
  auto g = p->Authenticate(server.world().IssueAuthCode("fitbit", "carol"), "v", "https://cb");
  ASSERT_TRUE(g.ok()) << g.error().message;
  CallContext ctx;
  ctx.access_token = g->access_token;
  const int64_t now = ToUnixMillis(clock.Now());
  auto metas = p->FetchMetadata(ctx, DataType::kSleepSession, {now - 14 * kDay, now});
  ASSERT_TRUE(metas.ok()) << metas.error().message;
  EXPECT_EQ(metas->size(),
            server.world()
                .Records("fitbit", "carol", DataType::kSleepSession, now - 14 * kDay, now)
                .size());
  Record kg;
  kg.meta.id = "k";
  kg.meta.type = DataType::kWeight;
  kg.meta.start_ms = kg.meta.end_ms = now - 60'000;
  kg.data = WeightData{64.5, std::nullopt};
  kg.meta.origin = OriginTag(Fingerprint(kg));
  auto res = p->PushData(ctx, DataType::kWeight, {kg});
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_TRUE((*res)[0].ok) << (*res)[0].error.message;
  server.Stop();
}
TEST(FitbitSim, RateLimitHeadersAndQuotaExhaustion) {
  SimFixture f;
  sim::ProviderProfile prof = f.world.Profile("fitbit");
  prof.user_limit = 3;
  prof.user_window = 3600s;
  f.world.SetProfile("fitbit", prof);
  std::vector<RateLimitObservation> seen;
  f.ctx.on_rate_limit = [&](const RateLimitObservation& o) { seen.push_back(o); };
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(f.provider->FetchMetadata(f.ctx, DataType::kWeight, f.Last(1)).ok()) << i;
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[2].limit, 3);
  EXPECT_EQ(seen[2].used, 3);
  EXPECT_GT(seen[2].reset_in.count(), 0);
  auto limited = f.provider->FetchMetadata(f.ctx, DataType::kWeight, f.Last(1));
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.error().code, Errc::kRateLimited);
  EXPECT_EQ(limited.error().retry_after, seen[2].reset_in);
}
#endif  // SYNCWELL_HAVE_SIM

}  // namespace
}  // namespace syncwell::providers
