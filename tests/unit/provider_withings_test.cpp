// Withings connector: the wire mapping against the documentation fixtures
// (tests/fixtures/withings/, README there), time zones, and the connector against a scripted
// fake HttpClient: offset/more pagination, body status codes (401, 601, 2554), HTTP 5xx,
// rotating refresh, invalid refresh token, per-record push results, signed revoke, deadlines,
// notification verification.
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
#include "providers/withings/mapping.hpp"
#include "providers/withings/timezones.hpp"
#include "providers/withings/withings_provider.hpp"

namespace syncwell::providers {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
namespace wi = withings;

std::string Fixture(const std::string& name) {
  std::ifstream in(std::string(SW_FIXTURE_DIR) + "/withings/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// A scripted upstream: each Send() must match the next expected (method, URL fragment) and gets
// its canned answer. Every call is recorded for assertions on URL, headers and body.
class ScriptedHttp final : public net::HttpClient {
 public:
  void Expect(std::string url_part, int status, std::string body, net::Headers headers = {}) {
    net::HttpResult r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    steps_.push_back({std::move(url_part), r});
  }
  Result<net::HttpResult> Send(const net::HttpCall& call) override {
    calls.push_back(call);
    if (steps_.empty()) {
      ADD_FAILURE() << "unexpected call " << call.method << " " << call.url;
      return MakeError(Errc::kInternal, "unexpected call");
    }
    Step s = std::move(steps_.front());
    steps_.pop_front();
    EXPECT_EQ(call.method, "POST");
    EXPECT_NE(call.url.find(s.url_part), std::string::npos) << call.url << " vs " << s.url_part;
    return s.answer;
  }
  bool AllConsumed() const { return steps_.empty(); }
  std::vector<net::HttpCall> calls;

 private:
  struct Step {
    std::string url_part;
    Result<net::HttpResult> answer;
  };
  std::deque<Step> steps_;
};

std::string Field(const std::string& form, const std::string& key) {
  for (auto& [k, v] : wi::ParseForm(form)) {
    if (k == key) return v;
  }
  return "<absent>";
}

std::string HeaderOf(const net::HttpCall& c, std::string_view name) {
  for (const auto& [k, v] : c.headers) {
    if (k == name) return v;
  }
  return {};
}

constexpr int64_t S = 1000;

// --- Time zones -------------------------------------------------------------------------------

TEST(WithingsTimezones, OffsetsFollowDaylightSavingRules) {
  // Europe/Paris: CET; CEST from the last Sunday of March 01:00 UTC (2020-03-29).
  EXPECT_EQ(wi::UtcOffsetMinutes("Europe/Paris", 1578060000 * S), 60);       // 2020-01-03
  EXPECT_EQ(wi::UtcOffsetMinutes("Europe/Paris", 1594245600 * S), 120);      // 2020-07-08
  EXPECT_EQ(wi::UtcOffsetMinutes("Europe/Paris", 1585443600 * S - 1), 60);   // 00:59:59Z
  EXPECT_EQ(wi::UtcOffsetMinutes("Europe/Paris", 1585443600 * S), 120);      // 01:00:00Z
  EXPECT_EQ(wi::UtcOffsetMinutes("Europe/London", 1603587600 * S - 1), 60);  // 2020-10-25
  EXPECT_EQ(wi::UtcOffsetMinutes("Europe/London", 1603587600 * S), 0);
  // America/New_York: EDT from 2020-03-08 07:00Z (02:00 EST), EST from 2020-11-01 06:00Z.
  EXPECT_EQ(wi::UtcOffsetMinutes("America/New_York", 1583650800 * S - 1), -300);
  EXPECT_EQ(wi::UtcOffsetMinutes("America/New_York", 1583650800 * S), -240);
  EXPECT_EQ(wi::UtcOffsetMinutes("America/New_York", 1604210400 * S - 1), -240);
  EXPECT_EQ(wi::UtcOffsetMinutes("America/New_York", 1604210400 * S), -300);
  // Southern hemisphere: Sydney AEDT in January, AEST in July; Auckland NZDT in January.
  EXPECT_EQ(wi::UtcOffsetMinutes("Australia/Sydney", 1578060000 * S), 660);
  EXPECT_EQ(wi::UtcOffsetMinutes("Australia/Sydney", 1594245600 * S), 600);
  EXPECT_EQ(wi::UtcOffsetMinutes("Pacific/Auckland", 1578060000 * S), 780);
  EXPECT_EQ(wi::UtcOffsetMinutes("Pacific/Auckland", 1594245600 * S), 720);
  // Fixed zones.
  EXPECT_EQ(wi::UtcOffsetMinutes("Asia/Tokyo", 0), 540);
  EXPECT_EQ(wi::UtcOffsetMinutes("Asia/Kolkata", 0), 330);
  EXPECT_EQ(wi::UtcOffsetMinutes("America/Phoenix", 1594245600 * S), -420);
  EXPECT_EQ(wi::UtcOffsetMinutes("UTC", 0), 0);
  EXPECT_EQ(wi::UtcOffsetMinutes("Etc/GMT-1", 0), 60);  // POSIX sign
  EXPECT_EQ(wi::UtcOffsetMinutes("Etc/GMT+5", 0), -300);
  EXPECT_EQ(wi::UtcOffsetMinutes("Etc/GMT", 0), 0);
  EXPECT_FALSE(wi::UtcOffsetMinutes("Mars/Olympus_Mons", 0).has_value());
  EXPECT_FALSE(wi::UtcOffsetMinutes("Etc/GMT+99", 0).has_value());
  EXPECT_FALSE(wi::UtcOffsetMinutes("", 0).has_value());
}

TEST(WithingsTimezones, NamesForOffsetsRoundTrip) {
  for (int32_t off : {0, 60, 120, -300, -480, 540, 330, 345, -600, 840, -720}) {
    std::string name = wi::ZoneNameForOffset(off);
    ASSERT_FALSE(name.empty()) << off;
    EXPECT_EQ(wi::UtcOffsetMinutes(name, 1594245600 * S), off) << name;
  }
  EXPECT_EQ(wi::ZoneNameForOffset(60), "Etc/GMT-1");
  EXPECT_EQ(wi::ZoneNameForOffset(17), "");
}

TEST(WithingsTimezones, DatesAndLocalMidnight) {
  EXPECT_EQ(wi::ParseYmd("1970-01-02"), 1);
  EXPECT_EQ(wi::FormatYmd(18402), "2020-05-20");
  EXPECT_EQ(wi::ParseYmd("2020-05-20"), 18402);
  EXPECT_FALSE(wi::ParseYmd("2020-5-20").has_value());
  EXPECT_FALSE(wi::ParseYmd("2020-13-01").has_value());
  EXPECT_EQ(wi::LocalMidnightUtcMs("Europe/Paris", 18402), 1589925600 * S);  // 22:00Z before
  EXPECT_EQ(wi::LocalMidnightUtcMs("America/Los_Angeles", 18276), 1579075200 * S);
  EXPECT_EQ(wi::LocalMidnightUtcMs("Unknown/Zone", 18402), 18402 * 86400 * S);
}

// --- Mapping ----------------------------------------------------------------------------------

TEST(WithingsMapping, MeasuresMapWeightFatTimesAndOrigin) {
  auto page = wi::ParsePage(DataType::kWeight, Fixture("getmeas.json"));
  ASSERT_TRUE(page.ok()) << page.error().message;
  EXPECT_TRUE(page->more);
  EXPECT_EQ(page->offset, 4);
  ASSERT_EQ(page->records.size(), 2u);  // blood pressure group and objective skipped
  const auto& a = page->records[0];
  EXPECT_EQ(a.meta.id, "12@1594245600");
  EXPECT_EQ(a.meta.type, DataType::kWeight);
  EXPECT_EQ(a.meta.start_ms, 1594245600 * S);
  EXPECT_EQ(a.meta.end_ms, a.meta.start_ms);
  EXPECT_EQ(a.meta.utc_offset_min, 120);  // body timezone Europe/Paris, summer
  EXPECT_EQ(a.meta.modified_ms, 1594257200 * S);
  EXPECT_EQ(a.meta.origin, "");
  EXPECT_EQ(a.meta.activity, "");
  const auto& w = std::get<WeightData>(a.data);
  EXPECT_DOUBLE_EQ(w.kg, 65.75);  // 65750 * 10^-3
  ASSERT_TRUE(w.fat_ratio.has_value());
  EXPECT_NEAR(*w.fat_ratio, 0.215, 1e-12);  // 21.50 %
  const auto& b = page->records[1];
  EXPECT_EQ(b.meta.id, "13@1578060000");
  EXPECT_EQ(b.meta.utc_offset_min, 60);  // winter
  EXPECT_EQ(b.meta.origin, "sw1:0123456789abcdef0123456789abcdef");
  EXPECT_DOUBLE_EQ(std::get<WeightData>(b.data).kg, 75.0);
  EXPECT_FALSE(std::get<WeightData>(b.data).fat_ratio.has_value());
}

TEST(WithingsMapping, GroupTimezoneWinsOverBodyTimezone) {
  auto page =
      wi::ParsePage(DataType::kWeight,
                    R"({"status":0,"body":{"timezone":"Europe/Paris","measuregrps":[{"grpid":"g1",
          "date":1594245600,"category":1,"timezone":"Asia/Tokyo",
          "measures":[{"value":70,"type":1,"unit":0}]}]}})");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->records[0].meta.utc_offset_min, 540);
  EXPECT_EQ(page->records[0].meta.modified_ms, 1594245600 * S);  // no modified: the date
}

TEST(WithingsMapping, SleepSummaryMapsStagesInMinutes) {
  auto page = wi::ParsePage(DataType::kSleepSession, Fixture("sleep_getsummary.json"));
  ASSERT_TRUE(page.ok()) << page.error().message;
  EXPECT_FALSE(page->more);
  ASSERT_EQ(page->records.size(), 2u);
  const auto& a = page->records[0];
  EXPECT_EQ(a.meta.id, "987654321@1589932800");
  EXPECT_EQ(a.meta.type, DataType::kSleepSession);
  EXPECT_EQ(a.meta.start_ms, 1589932800 * S);
  EXPECT_EQ(a.meta.end_ms, 1589961600 * S);
  EXPECT_EQ(a.meta.utc_offset_min, 120);
  EXPECT_EQ(a.meta.modified_ms, 1589961700 * S);
  const auto& d = std::get<SleepData>(a.data);
  EXPECT_EQ(d.deep_min, 90);
  EXPECT_EQ(d.light_min, 180);
  EXPECT_EQ(d.rem_min, 120);
  EXPECT_EQ(d.awake_min, 31);  // 1830 s rounds to 31 min
  const auto& b = page->records[1];
  EXPECT_EQ(b.meta.utc_offset_min, -300);  // New York in January
  EXPECT_EQ(b.meta.modified_ms, 1579260000 * S);
  EXPECT_EQ(std::get<SleepData>(b.data).light_min, 240);
}

TEST(WithingsMapping, WorkoutsMapCategoryAndManualFallbacks) {
  auto page = wi::ParsePage(DataType::kWorkout, Fixture("getworkouts.json"));
  ASSERT_TRUE(page.ok()) << page.error().message;
  EXPECT_TRUE(page->more);
  EXPECT_EQ(page->offset, 3);
  ASSERT_EQ(page->records.size(), 3u);
  const auto& run = page->records[0];
  EXPECT_EQ(run.meta.id, "12345@1594245600");
  EXPECT_EQ(run.meta.activity, "run");
  EXPECT_EQ(run.meta.start_ms, 1594245600 * S);
  EXPECT_EQ(run.meta.end_ms, 1594249200 * S);
  EXPECT_EQ(run.meta.utc_offset_min, 120);
  EXPECT_EQ(run.meta.modified_ms, 1594250000 * S);
  const auto& w = std::get<WorkoutData>(run.data);
  EXPECT_DOUBLE_EQ(w.distance_m, 10234.5);
  EXPECT_DOUBLE_EQ(w.energy_kcal, 512.5);
  EXPECT_EQ(w.avg_heart_rate_bpm, 151);
  EXPECT_EQ(w.name, "");
  const auto& indoor = page->records[1];
  EXPECT_EQ(indoor.meta.activity, "treadmill_run");
  EXPECT_EQ(indoor.meta.utc_offset_min, 540);
  EXPECT_DOUBLE_EQ(std::get<WorkoutData>(indoor.data).distance_m, 5000);  // manual_distance
  EXPECT_DOUBLE_EQ(std::get<WorkoutData>(indoor.data).energy_kcal, 250);  // manual_calories
  EXPECT_EQ(page->records[2].meta.activity, "other");                     // kitesurfing
  EXPECT_EQ(page->records[2].meta.utc_offset_min, 0);
}

TEST(WithingsMapping, WorkoutCategories) {
  EXPECT_EQ(wi::CanonicalWorkout(1), "walk");
  EXPECT_EQ(wi::CanonicalWorkout(306), "walk");
  EXPECT_EQ(wi::CanonicalWorkout(3), "hike");
  EXPECT_EQ(wi::CanonicalWorkout(6), "ride");
  EXPECT_EQ(wi::CanonicalWorkout(308), "ride");
  EXPECT_EQ(wi::CanonicalWorkout(7), "swim");
  EXPECT_EQ(wi::CanonicalWorkout(16), "strength");
  EXPECT_EQ(wi::CanonicalWorkout(18), "elliptical");
  EXPECT_EQ(wi::CanonicalWorkout(28), "yoga");
  EXPECT_EQ(wi::CanonicalWorkout(187), "rowing");
  EXPECT_EQ(wi::CanonicalWorkout(498), "trail_run");
  EXPECT_EQ(wi::CanonicalWorkout(36), "other");
  EXPECT_EQ(wi::CanonicalWorkout(-1), "other");
}

TEST(WithingsMapping, DailyActivityBecomesLocalDaySteps) {
  auto page = wi::ParsePage(DataType::kSteps, Fixture("getactivity.json"));
  ASSERT_TRUE(page.ok()) << page.error().message;
  ASSERT_EQ(page->records.size(), 2u);
  const auto& a = page->records[0];
  EXPECT_EQ(a.meta.id, "2020-05-20");
  EXPECT_EQ(a.meta.type, DataType::kSteps);
  EXPECT_EQ(a.meta.start_ms, 1589925600 * S);  // local midnight in Paris (CEST)
  EXPECT_EQ(a.meta.end_ms, 1590012000 * S);
  EXPECT_EQ(a.meta.utc_offset_min, 120);
  EXPECT_EQ(a.meta.modified_ms, a.meta.end_ms);  // no modified field: end of day
  EXPECT_EQ(std::get<StepsData>(a.data).count, 8543);
  const auto& b = page->records[1];
  EXPECT_EQ(b.meta.start_ms, 1579075200 * S);
  EXPECT_EQ(b.meta.end_ms, 1579161600 * S);
  EXPECT_EQ(b.meta.utc_offset_min, -480);
  EXPECT_EQ(b.meta.modified_ms, 1579161600 * S);
  EXPECT_EQ(std::get<StepsData>(b.data).count, 12001);
}

TEST(WithingsMapping, MalformedPagesArePermanentWithoutValues) {
  auto bad = wi::ParsePage(DataType::kWeight,
                           R"({"status":0,"body":{"measuregrps":[{"grpid":1,"date":5,"category":1,
          "measures":[{"value":123456,"type":1,"unit":99}]}]}})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::kPermanent);
  EXPECT_EQ(bad.error().message.find("123456"), std::string::npos);
  EXPECT_FALSE(wi::ParsePage(DataType::kSleepSession, "not json").ok());
  EXPECT_FALSE(wi::ParsePage(DataType::kSleepSession, R"({"body":{}})").ok());
  EXPECT_FALSE(
      wi::ParsePage(DataType::kSteps, R"({"status":0,"body":{"activities":[{"date":"x"}]}})").ok());
}

TEST(WithingsMapping, StatusCodesAreClassified) {
  auto code = [](const std::string& body, DataType t = DataType::kWeight) {
    auto p = wi::ParsePage(t, body);
    return p.ok() ? Errc::kInternal : p.error().code;
  };
  EXPECT_EQ(code(Fixture("error_invalid_token.json")), Errc::kUnauthenticated);
  auto limited = wi::ParsePage(DataType::kWeight, Fixture("error_too_many_requests.json"));
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.error().code, Errc::kRateLimited);
  EXPECT_EQ(limited.error().retry_after, 60s);
  EXPECT_EQ(code(Fixture("error_not_implemented.json")), Errc::kPermanent);
  EXPECT_EQ(code(R"({"status":503,"body":{},"error":"Invalid Params"})"), Errc::kPermanent);
  EXPECT_EQ(code(R"({"status":522,"body":{}})"), Errc::kRetryable);
  EXPECT_EQ(code(R"({"status":2555,"body":{}})"), Errc::kPermanent);
  EXPECT_EQ(code(R"({"status":9000,"body":{}})"), Errc::kRetryable);
  EXPECT_EQ(wi::StatusError(100, "x", true).code, Errc::kAuthRevoked);
  EXPECT_EQ(wi::StatusError(503, "x", true).code, Errc::kAuthRevoked);
  EXPECT_EQ(wi::StatusError(601, "x", true).code, Errc::kRateLimited);
  // The envelope's error text never reaches our message.
  auto e = wi::ParsePage(DataType::kWeight, Fixture("error_invalid_token.json"));
  EXPECT_EQ(e.error().message.find("invalid_token"), std::string::npos);
  EXPECT_NE(e.error().message.find("status 401"), std::string::npos);
}

TEST(WithingsMapping, TokenAnswer) {
  const TimePoint now = FromUnixMillis(1'700'000'000 * S);
  auto g = wi::ParseTokenResponse(Fixture("token.json"), now);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->provider_user_id, "363");
  EXPECT_EQ(g->access_token, "a075f8c14fb8df40b08ebc8508533dc332a6910a");
  EXPECT_EQ(g->refresh_token, "f631236f02b991810feb774765b6ae8e6c6839ca");
  EXPECT_EQ(g->expires_at, now + 10800s);
  EXPECT_EQ(g->scope, "user.info,user.metrics");
  auto revoked = wi::ParseTokenResponse(Fixture("error_invalid_refresh_token.json"), now);
  ASSERT_FALSE(revoked.ok());
  EXPECT_EQ(revoked.error().code, Errc::kAuthRevoked);
}

Record Weight(std::string id, int64_t date_s, double kg, std::optional<double> fat, int32_t offset,
              std::string origin) {
  Record r;
  r.meta.id = std::move(id);
  r.meta.type = DataType::kWeight;
  r.meta.start_ms = r.meta.end_ms = date_s * S;
  r.meta.utc_offset_min = offset;
  r.meta.origin = std::move(origin);
  r.data = WeightData{kg, fat};
  return r;
}

TEST(WithingsMapping, SetMeasFieldsAndAnswer) {
  auto f = wi::SetMeasFields(Weight("src", 1594245600, 72.345, 0.2153, 120, "sw1:abcd"));
  auto get = [&](const std::string& k) {
    for (auto& [key, v] : f)
      if (key == k) return v;
    return std::string("<absent>");
  };
  EXPECT_EQ(get("action"), "setmeas");
  EXPECT_EQ(get("category"), "1");
  EXPECT_EQ(get("date"), "1594245600");
  EXPECT_EQ(get("timezone"), "Etc/GMT-2");
  EXPECT_EQ(get("comment"), "sw1:abcd");
  json::value m = json::parse(get("measures"));
  ASSERT_EQ(m.as_array().size(), 2u);
  EXPECT_EQ(m.as_array()[0].as_object().at("value").as_int64(), 72345);
  EXPECT_EQ(m.as_array()[0].as_object().at("unit").as_int64(), -3);
  EXPECT_EQ(m.as_array()[0].as_object().at("type").as_int64(), 1);
  EXPECT_EQ(m.as_array()[1].as_object().at("value").as_int64(), 2153);  // 21.53 %
  EXPECT_EQ(m.as_array()[1].as_object().at("unit").as_int64(), -2);
  EXPECT_EQ(m.as_array()[1].as_object().at("type").as_int64(), 6);

  auto plain = wi::SetMeasFields(Weight("src", 1594245600, 80, std::nullopt, 17, ""));
  for (auto& [k, v] : plain) {
    EXPECT_NE(k, "comment");
    EXPECT_NE(k, "timezone");  // no zone has a +00:17 offset
  }

  auto id = wi::ParseSetMeasAnswer(Fixture("setmeas.json"), 1594245600);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, "4716596700@1594245600");
  EXPECT_EQ(wi::ParseSetMeasAnswer(Fixture("error_not_implemented.json"), 1).error().code,
            Errc::kPermanent);
}

TEST(WithingsMapping, IdsCarryStartTimes) {
  EXPECT_EQ(wi::MakeId("12", 1594245600), "12@1594245600");
  EXPECT_EQ(wi::IdStartSeconds(DataType::kWeight, "12@1594245600"), 1594245600);
  EXPECT_EQ(wi::IdStartSeconds(DataType::kSteps, "2020-05-20"), 18402 * 86400);
  EXPECT_FALSE(wi::IdStartSeconds(DataType::kWeight, "12").has_value());
  EXPECT_FALSE(wi::IdStartSeconds(DataType::kWeight, "@5").has_value());
  EXPECT_FALSE(wi::IdStartSeconds(DataType::kWeight, "12@x").has_value());
  EXPECT_FALSE(wi::IdStartSeconds(DataType::kSteps, "12@5").has_value());
}

TEST(WithingsMapping, SignatureIsHmacSha256OfSortedValues) {
  // Reference: python3 hmac.new(b'sim-client-secret', b'getnonce,syncwell,1700000000', sha256)
  EXPECT_EQ(wi::Signature("sim-client-secret", "getnonce", "syncwell", "1700000000"),
            "991f974c26ae1c005548e02b3819727cc45db269c1e6e2df21b3ef446373efb1");
  auto nonce = wi::ParseNonce(Fixture("getnonce.json"));
  ASSERT_TRUE(nonce.ok());
  EXPECT_EQ(*nonce, "c455541b8f9111689adb647d32fac07a6ffe462d");
}

// --- Notifications ------------------------------------------------------------------------------

WebhookRequest Notify(std::string query, std::string body) {
  return {"POST",
          std::move(query),
          {{"content-type", "application/x-www-form-urlencoded"}},
          std::move(body)};
}

TEST(WithingsWebhook, WeightNotificationWithTheRightTokenIsParsed) {
  auto out = wi::ParseWebhook(Notify("token=s3cret", Fixture("notification_weight.txt")), "s3cret");
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_FALSE(out->challenge_response.has_value());
  ASSERT_EQ(out->events.size(), 1u);
  const auto& e = out->events[0];
  EXPECT_EQ(e.provider_user_id, "12345");
  EXPECT_EQ(e.type, DataType::kWeight);
  EXPECT_EQ(e.kind, "update");
  ASSERT_TRUE(e.range.has_value());
  EXPECT_EQ(e.range->start_ms, 1530576000 * S);
  EXPECT_EQ(e.range->end_ms, 1530698754 * S);  // enddate inclusive
}

TEST(WithingsWebhook, CategoriesMapToDataTypes) {
  auto types = [](int appli) {
    auto out = wi::ParseWebhook(
        Notify("token=k", "userid=7&appli=" + std::to_string(appli) + "&startdate=1&enddate=2"),
        "k");
    std::vector<DataType> t;
    if (out.ok())
      for (auto& e : out->events) t.push_back(*e.type);
    return t;
  };
  EXPECT_EQ(types(16), (std::vector<DataType>{DataType::kWorkout, DataType::kSteps}));
  EXPECT_EQ(types(44), (std::vector<DataType>{DataType::kSleepSession}));
  EXPECT_TRUE(types(4).empty());  // blood pressure: acknowledged, nothing to sync
  auto unknown = wi::ParseWebhook(Notify("token=k", "userid=7&appli=999"), "k");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Errc::kInvalidArgument);
}

TEST(WithingsWebhook, ForgedOrMalformedNotificationsAreRejected) {
  const std::string body = "userid=12345&appli=1&startdate=1530576000&enddate=1530698753";
  for (const auto& [query, form] : std::vector<std::pair<std::string, std::string>>{
           {"token=wrong", body},
           {"", body},
           {"token=s3cre", body},
           {"token=s3cret", "appli=1"},
           {"token=s3cret", "userid=abc&appli=1"},
           {"token=s3cret", "userid=1&appli=one"},
       }) {
    auto out = wi::ParseWebhook(Notify(query, form), "s3cret");
    ASSERT_FALSE(out.ok()) << query << " " << form;
    EXPECT_EQ(out.error().code, Errc::kInvalidArgument);
    EXPECT_EQ(out.error().message.find("s3cret"), std::string::npos);
  }
  // No secret configured: every notification is refused (fail closed).
  EXPECT_FALSE(wi::ParseWebhook(Notify("token=", body), "").ok());
  EXPECT_FALSE(wi::ParseWebhook({"DELETE", "", {}, ""}, "s3cret").ok());
}

TEST(WithingsWebhook, ReachabilityCheckIsAnswered) {
  auto out = wi::ParseWebhook({"HEAD", "", {}, ""}, "s3cret");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->challenge_response.has_value());
  EXPECT_EQ(out->challenge_response->first, 200);
}

// --- Connector against a scripted upstream ------------------------------------------------------

class WithingsConnector : public ::testing::Test {
 protected:
  WithingsConnector() : clock_(FromUnixMillis(1'700'000'000 * S)) {
    settings_.base_url = "http://sim.test:9100/withings";
    settings_.client_id = "syncwell";
    settings_.client_secret = "sim-client-secret";
    settings_.webhook_secret = "s3cret";
    settings_.timeout = 10s;
  }
  std::unique_ptr<Provider> Make() { return MakeWithingsProvider(settings_, http_, clock_); }
  CallContext Ctx() {
    CallContext c;
    c.access_token = "tok-w";
    c.provider_user_id = "363";
    return c;
  }

  ManualClock clock_;
  ConnectorSettings settings_;
  ScriptedHttp http_;
};

TEST_F(WithingsConnector, FetchMetadataPaginatesAndFiltersByStartOrModified) {
  http_.Expect("/withings/measure", 200, Fixture("getmeas.json"));  // more=1, offset=4
  http_.Expect("/withings/measure", 200,
               R"({"status":0,"body":{"timezone":"UTC","measuregrps":[
                   {"grpid":20,"date":1590000000,"modified":1594300000,"category":1,
                    "measures":[{"value":70000,"type":1,"unit":-3}]},
                   {"grpid":21,"date":1590000000,"modified":1590000000,"category":1,
                    "measures":[{"value":70000,"type":1,"unit":-3}]}],
                   "more":0,"offset":0}})");
  TimeRange july{1593561600 * S, 1596240000 * S};  // 2020-07-01 .. 2020-08-01
  auto out = Make()->FetchMetadata(Ctx(), DataType::kWeight, july);
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].id, "20@1590000000");  // started in May, modified in July
  EXPECT_EQ((*out)[1].id, "12@1594245600");  // started in July
  EXPECT_TRUE(http_.AllConsumed());
  ASSERT_EQ(http_.calls.size(), 2u);
  const auto& first = http_.calls[0].body;
  EXPECT_EQ(Field(first, "action"), "getmeas");
  EXPECT_EQ(Field(first, "meastypes"), "1,6");
  EXPECT_EQ(Field(first, "category"), "1");
  EXPECT_EQ(Field(first, "lastupdate"), "1593561600");
  EXPECT_EQ(Field(first, "offset"), "<absent>");
  EXPECT_EQ(Field(http_.calls[1].body, "offset"), "4");
  EXPECT_EQ(HeaderOf(http_.calls[0], "Authorization"), "Bearer tok-w");
  EXPECT_EQ(HeaderOf(http_.calls[0], "Content-Type"), "application/x-www-form-urlencoded");
}

TEST_F(WithingsConnector, EachTypeUsesItsEndpoint) {
  http_.Expect("/withings/v2/sleep", 200, Fixture("sleep_getsummary.json"));
  http_.Expect("/withings/v2/measure", 200,
               R"({"status":0,"body":{"series":[],"more":false,"offset":0}})");
  http_.Expect("/withings/v2/measure", 200, Fixture("getactivity.json"));
  auto p = Make();
  TimeRange all{0, 2'000'000'000 * S};
  auto sleep = p->FetchMetadata(Ctx(), DataType::kSleepSession, all);
  ASSERT_TRUE(sleep.ok());
  EXPECT_EQ(sleep->size(), 2u);
  EXPECT_EQ((*sleep)[0].id, "987654322@1579230000");  // sorted by start
  EXPECT_TRUE(p->FetchMetadata(Ctx(), DataType::kWorkout, all).ok());
  auto steps = p->FetchMetadata(Ctx(), DataType::kSteps, all);
  ASSERT_TRUE(steps.ok());
  EXPECT_EQ(steps->size(), 2u);
  EXPECT_EQ(Field(http_.calls[0].body, "action"), "getsummary");
  EXPECT_EQ(Field(http_.calls[1].body, "action"), "getworkouts");
  EXPECT_EQ(Field(http_.calls[2].body, "action"), "getactivity");
  EXPECT_EQ(Field(http_.calls[2].body, "data_fields"), "steps");
}

TEST_F(WithingsConnector, BodyStatusErrorsAreClassified) {
  http_.Expect("/measure", 200, Fixture("error_invalid_token.json"));
  http_.Expect("/measure", 200, Fixture("error_too_many_requests.json"));
  http_.Expect("/measure", 503, "Service Unavailable");
  http_.Expect("/measure", 429, "", {{"retry-after", "7"}});
  http_.Expect("/measure", 401, "");
  auto p = Make();
  auto fetch = [&] { return p->FetchMetadata(Ctx(), DataType::kWeight, {0, 1000 * S}); };
  auto a = fetch();
  EXPECT_EQ(a.error().code, Errc::kUnauthenticated);
  EXPECT_EQ(a.error().message.find("tok-w"), std::string::npos);
  auto b = fetch();
  EXPECT_EQ(b.error().code, Errc::kRateLimited);
  EXPECT_EQ(b.error().retry_after, 60s);
  EXPECT_EQ(fetch().error().code, Errc::kRetryable);
  auto d = fetch();
  EXPECT_EQ(d.error().code, Errc::kRateLimited);
  EXPECT_EQ(d.error().retry_after, 7s);
  EXPECT_EQ(fetch().error().code, Errc::kUnauthenticated);
}

TEST_F(WithingsConnector, PaginationThatDoesNotAdvanceIsAnError) {
  http_.Expect("/v2/sleep", 200, R"({"status":0,"body":{"series":[],"more":true,"offset":0}})");
  auto out = Make()->FetchMetadata(Ctx(), DataType::kSleepSession, {0, 1000 * S});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::kPermanent);
}

TEST_F(WithingsConnector, FetchPayloadsListsTheWindowAroundTheIds) {
  http_.Expect("/measure", 200, Fixture("getmeas.json"));
  http_.Expect("/measure", 200, R"({"status":0,"body":{"measuregrps":[],"more":0}})");
  auto out = Make()->FetchPayloads(Ctx(), DataType::kWeight, {"13@1578060000", "12@1594245600"});
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].meta.id, "13@1578060000");  // in the order asked
  EXPECT_DOUBLE_EQ(std::get<WeightData>((*out)[1].data).kg, 65.75);
  EXPECT_EQ(Field(http_.calls[0].body, "startdate"), std::to_string(1578060000 - 86400));
  EXPECT_EQ(Field(http_.calls[0].body, "enddate"), std::to_string(1594245600 + 86400));
  EXPECT_EQ(Field(http_.calls[0].body, "lastupdate"), "<absent>");
}

// Within one job (CallContext::fetched) the measures listed by the metadata step answer the
// payload step without a second listing.
TEST_F(WithingsConnector, FetchPayloadsReusesWhatTheJobsMetadataStepListed) {
  http_.Expect("/measure", 200, Fixture("getmeas.json"));
  http_.Expect("/measure", 200, R"({"status":0,"body":{"measuregrps":[],"more":0}})");
  FetchedRecords fetched;
  CallContext ctx = Ctx();
  ctx.fetched = &fetched;
  auto p = Make();
  auto metas = p->FetchMetadata(ctx, DataType::kWeight, {0, 2'000'000'000'000});
  ASSERT_TRUE(metas.ok()) << metas.error().message;
  ASSERT_GE(metas->size(), 2u);
  const size_t calls = http_.calls.size();
  auto out = p->FetchPayloads(ctx, DataType::kWeight, {"12@1594245600", "13@1578060000"});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(http_.calls.size(), calls);  // no second listing
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].meta.id, "12@1594245600");
  EXPECT_DOUBLE_EQ(std::get<WeightData>((*out)[0].data).kg, 65.75);
  EXPECT_EQ((*out)[1].meta.id, "13@1578060000");
}

TEST_F(WithingsConnector, FetchPayloadsUsesDatesForSleepAndLeavesOutMissingIds) {
  http_.Expect("/v2/sleep", 200, Fixture("sleep_getsummary.json"));
  auto out = Make()->FetchPayloads(Ctx(), DataType::kSleepSession,
                                   {"987654321@1589932800", "555@1589932800"});
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->size(), 1u);  // 555 is not in Withings' answer: gone, left out
  EXPECT_EQ((*out)[0].meta.id, "987654321@1589932800");
  EXPECT_EQ(Field(http_.calls[0].body, "startdateymd"), "2020-05-19");
  EXPECT_EQ(Field(http_.calls[0].body, "enddateymd"), "2020-05-22");
  auto malformed = Make()->FetchPayloads(Ctx(), DataType::kSleepSession, {"no-at-sign"});
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.error().code, Errc::kPermanent);
  EXPECT_EQ(http_.calls.size(), 1u);
}

TEST_F(WithingsConnector, AuthenticateAndRotatingRefresh) {
  http_.Expect("/withings/v2/oauth2", 200, Fixture("token.json"));
  http_.Expect("/withings/v2/oauth2", 200,
               R"({"status":0,"body":{"userid":"363","access_token":"a2","refresh_token":"r2",
                   "expires_in":10800,"scope":"user.metrics","token_type":"Bearer"}})");
  http_.Expect("/withings/v2/oauth2", 200,
               R"({"status":0,"body":{"userid":363,"access_token":"a3","refresh_token":"r3",
                   "expires_in":10800}})");
  auto p = Make();
  auto g = p->Authenticate("code-1", "", "https://app.example/cb");
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->provider_user_id, "363");
  const auto& b0 = http_.calls[0].body;
  EXPECT_EQ(Field(b0, "action"), "requesttoken");
  EXPECT_EQ(Field(b0, "grant_type"), "authorization_code");
  EXPECT_EQ(Field(b0, "code"), "code-1");
  EXPECT_EQ(Field(b0, "redirect_uri"), "https://app.example/cb");
  EXPECT_EQ(Field(b0, "client_secret"), "sim-client-secret");
  auto r2 = p->Refresh(g->refresh_token);
  ASSERT_TRUE(r2.ok());
  auto r3 = p->Refresh(r2->refresh_token);
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->access_token, "a3");
  EXPECT_EQ(r3->expires_at, clock_.Now() + 10800s);
  EXPECT_EQ(Field(http_.calls[1].body, "refresh_token"),
            "f631236f02b991810feb774765b6ae8e6c6839ca");
  EXPECT_EQ(Field(http_.calls[2].body, "refresh_token"), "r2");
  EXPECT_EQ(Field(http_.calls[2].body, "grant_type"), "refresh_token");
}

TEST_F(WithingsConnector, InvalidRefreshTokenIsAuthRevoked) {
  http_.Expect("/v2/oauth2", 200, Fixture("error_invalid_refresh_token.json"));
  http_.Expect("/v2/oauth2", 200, R"({"status":401,"body":{}})");
  auto p = Make();
  auto a = p->Refresh("old-refresh-token");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code, Errc::kAuthRevoked);
  EXPECT_EQ(a.error().message.find("old-refresh-token"), std::string::npos);
  EXPECT_EQ(p->Refresh("x").error().code, Errc::kAuthRevoked);
}

TEST_F(WithingsConnector, PushWritesWeightsOneByOne) {
  http_.Expect("/withings/measure", 200, Fixture("setmeas.json"));
  http_.Expect("/withings/measure", 200, Fixture("error_not_implemented.json"));
  http_.Expect("/withings/measure", 200, Fixture("error_too_many_requests.json"));
  Record workout;
  workout.meta.id = "wk";
  workout.meta.type = DataType::kWorkout;
  workout.data = WorkoutData{};
  std::vector<Record> recs = {Weight("a", 1594245600, 72.3, 0.2, 120, "sw1:aa"), workout,
                              Weight("b", 1594245700, 72.4, std::nullopt, 0, ""),
                              Weight("c", 1594245800, 72.5, std::nullopt, 0, ""),
                              Weight("d", 1594245900, 72.6, std::nullopt, 0, "")};
  auto out = Make()->PushData(Ctx(), DataType::kWeight, recs);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->size(), 5u);
  EXPECT_TRUE((*out)[0].ok);
  EXPECT_EQ((*out)[0].dest_id, "4716596700@1594245600");
  EXPECT_EQ((*out)[1].error.code, Errc::kPermanent);  // not a weight: no call
  EXPECT_EQ((*out)[2].error.code, Errc::kPermanent);  // 2554 not implemented
  EXPECT_EQ((*out)[3].error.code, Errc::kRateLimited);
  EXPECT_EQ((*out)[4].error.code, Errc::kRateLimited);  // not attempted
  EXPECT_EQ(http_.calls.size(), 3u);
  EXPECT_EQ(Field(http_.calls[0].body, "action"), "setmeas");
  EXPECT_EQ(Field(http_.calls[0].body, "comment"), "sw1:aa");
  auto wrong = Make()->PushData(Ctx(), DataType::kSleepSession, {});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, Errc::kPermanent);
}

TEST_F(WithingsConnector, RevokeSignsWithANonce) {
  http_.Expect("/withings/v2/signature", 200, Fixture("getnonce.json"));
  http_.Expect("/withings/v2/oauth2", 200, R"({"status":0,"body":{}})");
  ASSERT_TRUE(Make()->Revoke(Ctx()).ok());
  const auto& n = http_.calls[0].body;
  EXPECT_EQ(Field(n, "action"), "getnonce");
  EXPECT_EQ(Field(n, "timestamp"), "1700000000");
  EXPECT_EQ(Field(n, "signature"),
            "991f974c26ae1c005548e02b3819727cc45db269c1e6e2df21b3ef446373efb1");
  const auto& r = http_.calls[1].body;
  EXPECT_EQ(Field(r, "action"), "revoke");
  EXPECT_EQ(Field(r, "userid"), "363");
  EXPECT_EQ(Field(r, "nonce"), "c455541b8f9111689adb647d32fac07a6ffe462d");
  EXPECT_EQ(Field(r, "signature"),
            "95a1bae784c4401ccc521030570bf2b6ab2b0701920bc2553e8146ce016f5203");
}

TEST_F(WithingsConnector, DeadlineBoundsTheCall) {
  auto p = Make();
  CallContext past = Ctx();
  past.deadline = std::chrono::steady_clock::now() - 1ms;
  auto late = p->FetchMetadata(past, DataType::kWeight, {0, 1000 * S});
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, Errc::kRetryable);
  EXPECT_TRUE(http_.calls.empty());
  http_.Expect("/measure", 200, R"({"status":0,"body":{"measuregrps":[]}})");
  CallContext soon = Ctx();
  soon.deadline = std::chrono::steady_clock::now() + 1500ms;
  ASSERT_TRUE(p->FetchMetadata(soon, DataType::kWeight, {0, 1000 * S}).ok());
  EXPECT_LE(http_.calls[0].timeout, 1500ms);
}

TEST_F(WithingsConnector, WebhookVerificationUsesTheConfiguredSecret) {
  auto p = Make();
  EXPECT_EQ(p->name(), "withings");
  EXPECT_TRUE(p->supports_webhooks());
  EXPECT_TRUE(p->VerifyWebhook(Notify("token=s3cret", "userid=1&appli=44")).ok());
  EXPECT_EQ(p->VerifyWebhook(Notify("token=other", "userid=1&appli=44")).error().code,
            Errc::kInvalidArgument);
}

}  // namespace
}  // namespace syncwell::providers
