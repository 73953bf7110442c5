// SimServer over loopback HTTP with a tiny test module that replaces the built-in "garmin" one:
// bearer checks, admission (faults, 429, fail-after-apply, latency), the /_sim inspection and
// control endpoints, webhooks to a receiver, and a Stop() that does not hang on injected hangs.
#include "providers/sim/sim_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <future>
#include <mutex>
#include <thread>

#include "api/http_server.hpp"
#include "net/http_client.hpp"

namespace syncwell::sim {
namespace {

namespace json = boost::json;
using providers::DataType;
using std::chrono::milliseconds;

std::map<std::string, std::string> Form(const std::string& body) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i < body.size()) {
    size_t amp = body.find('&', i);
    if (amp == std::string::npos) amp = body.size();
    const std::string part = body.substr(i, amp - i);
    const size_t eq = part.find('=');
    if (eq != std::string::npos) out[part.substr(0, eq)] = part.substr(eq + 1);
    i = amp + 1;
  }
  return out;
}

api::HttpResponse JsonResp(int status, const json::value& v) {
  api::HttpResponse r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

api::HttpResponse TokenHandler(const SimRequest& req, World& world) {
  auto f = Form(req.http.body);
  Result<providers::TokenGrant> g = MakeError(Errc::kInvalidArgument, "bad grant_type");
  if (f["grant_type"] == "authorization_code") {
    g = world.ExchangeCode("garmin", f["code"]);
  } else if (f["grant_type"] == "refresh_token") {
    g = world.Refresh("garmin", f["refresh_token"]);
  }
  if (!g.ok()) return JsonResp(400, {{"error", "invalid_grant"}});
  return JsonResp(200, {{"access_token", g->access_token},
                        {"refresh_token", g->refresh_token},
                        {"user_id", g->provider_user_id}});
}

api::HttpResponse ListHandler(const SimRequest& req, World& world) {
  DataType t;
  if (!providers::ParseDataType(req.params.at("type"), &t)) return JsonResp(400, {{"error", "t"}});
  json::array ids;
  for (const auto& r : world.Records("garmin", req.sim_user, t, 0, INT64_MAX))
    ids.push_back(json::value(r.meta.id));
  auto resp = JsonResp(200, {{"ids", std::move(ids)}});
  if (req.admission && !req.admission->limit_scope.empty()) {
    resp.headers.emplace_back("X-Usage", std::to_string(req.admission->used) + "/" +
                                             std::to_string(req.admission->limit));
  }
  return resp;
}

api::HttpResponse WriteHandler(const SimRequest& req, World& world) {
  auto body = json::parse(req.http.body).as_object();
  providers::Record r;
  r.meta.type = DataType::kWorkout;
  r.meta.start_ms = body.at("start_ms").as_int64();
  r.meta.end_ms = r.meta.start_ms + 1'800'000;
  r.meta.activity = "run";
  r.meta.origin = std::string(body.at("origin").as_string());
  r.data = providers::WorkoutData{"Morning Run SWSENT", 5000.4242, 400.4242, 150};
  return JsonResp(201, {{"id", world.Write("garmin", req.sim_user, std::move(r))}});
}

ModuleSpec TestGarmin() {
  ModuleSpec m;
  m.provider = "garmin";
  m.routes.push_back({"POST", "/oauth/token", SimAuth::kNone, false, TokenHandler});
  m.routes.push_back({"GET", "/records/{type}", SimAuth::kBearer, false, ListHandler});
  m.routes.push_back({"POST", "/records", SimAuth::kBearer, true, WriteHandler});
  m.unauthorized = [] {
    api::HttpResponse r;
    r.body = R"({"errors":[{"errorType":"invalid_token"}]})";
    return r;
  };
  m.rate_limited = [](const Admission& a) {
    api::HttpResponse r;
    r.body = R"({"message":"slow down"})";
    r.headers.emplace_back("X-Test-Limit", std::to_string(a.limit));
    return r;
  };
  m.make_webhook = [](const std::string& user, DataType t, World& w) {
    api::HttpRequest r;
    r.method = "POST";
    r.path = "/hooks/garmin";
    r.headers = {{"Content-Type", "application/json"}};
    r.body = json::serialize(json::object{{"userId", w.ProviderUserId("garmin", user)},
                                          {"type", providers::DataTypeName(t)}});
    return r;
  };
  return m;
}

class SimServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(DefaultSimSettings(/*rate_limits=*/false)); }

  void Start(SimSettings settings, int handler_threads = 16) {
    SimServerOptions o;
    o.handler_threads = handler_threads;
    // Only the test module: these tests must not depend on the real provider modules.
    o.builtin_modules = false;
    o.modules = {TestGarmin()};
    o.stop_grace = milliseconds(1000);
    server_ = std::make_unique<SimServer>(std::move(settings), std::move(o), clock_);
    ASSERT_TRUE(server_->Start().ok());
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  net::HttpResult Call(const std::string& method, const std::string& path,
                       const std::string& body = "", const std::string& token = "",
                       milliseconds timeout = milliseconds(10'000)) {
    net::HttpCall c;
    c.method = method;
    c.url = server_->base_url() + path;
    c.body = body;
    c.timeout = timeout;
    if (!token.empty()) c.headers.emplace_back("Authorization", "Bearer " + token);
    if (!body.empty()) c.headers.emplace_back("Content-Type", "application/json");
    auto r = client_->Send(c);
    EXPECT_TRUE(r.ok()) << method << " " << path << ": " << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : net::HttpResult{};
  }

  json::value CallJson(const std::string& method, const std::string& path,
                       const std::string& body = "", int expect_status = 200) {
    auto r = Call(method, path, body);
    EXPECT_EQ(r.status, expect_status) << path << " " << r.body;
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    return ec ? json::value() : v;
  }

  // Consent + token exchange through HTTP, like SyncWell's connect flow.
  std::string Login(const std::string& user) {
    auto code = CallJson("GET", "/_sim/authorize?provider=garmin&user=" + user);
    auto r = Call("POST", "/garmin/oauth/token",
                  "grant_type=authorization_code&code=" + std::string(code.at("code").as_string()));
    EXPECT_EQ(r.status, 200) << r.body;
    auto v = json::parse(r.body);
    refresh_ = std::string(v.at("refresh_token").as_string());
    return std::string(v.at("access_token").as_string());
  }

  void Configure(const std::string& body) {
    auto r = Call("POST", "/_sim/config", body);
    ASSERT_EQ(r.status, 200) << r.body;
  }

  ManualClock clock_;
  std::unique_ptr<SimServer> server_;
  std::unique_ptr<net::HttpClient> client_ = net::MakeHttpClient();
  std::string refresh_;
};

TEST_F(SimServerTest, HealthzAndUnknownPaths) {
  EXPECT_EQ(Call("GET", "/healthz").status, 200);
  EXPECT_EQ(Call("GET", "/nope/x").status, 404);
  EXPECT_EQ(Call("GET", "/garmin/nope").status, 404);
  auto r = Call("DELETE", "/garmin/records");
  EXPECT_EQ(r.status, 405);
  ASSERT_NE(r.Header("allow"), nullptr);
  EXPECT_EQ(*r.Header("allow"), "POST");
  EXPECT_EQ(Call("GET", "/_sim/nope").status, 404);
}

TEST_F(SimServerTest, BearerCheckUsesTheModulesShape) {
  auto r = Call("GET", "/garmin/records/workout");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("invalid_token"), std::string::npos);
  EXPECT_EQ(Call("GET", "/garmin/records/workout", "", "not-a-token").status, 401);
  const std::string token = Login("alice");
  r = Call("GET", "/garmin/records/workout", "", token);
  ASSERT_EQ(r.status, 200) << r.body;
  // The handler saw the sim user behind the token.
  auto ids = json::parse(r.body).at("ids").as_array();
  const auto expected =
      server_->world().Records("garmin", "alice", DataType::kWorkout, 0, INT64_MAX);
  ASSERT_EQ(ids.size(), expected.size());
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(ids[0].as_string(), expected[0].meta.id);
  auto counters = CallJson("GET", "/_sim/stats").at("counters").as_object();
  EXPECT_EQ(counters.at("garmin.unauthorized").as_int64(), 2);
  EXPECT_EQ(counters.at("garmin.ok").as_int64(), 1);
}

TEST_F(SimServerTest, TokenExpiryRefreshAndRevocationOverHttp) {
  const std::string token = Login("alice");
  EXPECT_EQ(Call("GET", "/garmin/records/steps", "", token).status, 200);
  EXPECT_EQ(Call("POST", "/_sim/users/alice/garmin/expire-tokens").status, 200);
  EXPECT_EQ(Call("GET", "/garmin/records/steps", "", token).status, 401);
  auto r =
      Call("POST", "/garmin/oauth/token", "grant_type=refresh_token&refresh_token=" + refresh_);
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string fresh(json::parse(r.body).at("access_token").as_string());
  EXPECT_EQ(Call("GET", "/garmin/records/steps", "", fresh).status, 200);
  EXPECT_EQ(Call("POST", "/_sim/users/alice/garmin/revoke").status, 200);
  EXPECT_EQ(Call("GET", "/garmin/records/steps", "", fresh).status, 401);
  const std::string rotated(json::parse(r.body).at("refresh_token").as_string());
  EXPECT_EQ(Call("POST", "/garmin/oauth/token", "grant_type=refresh_token&refresh_token=" + rotated)
                .status,
            400);
}

TEST_F(SimServerTest, SimRecordsEndpointMatchesTheWorld) {
  const int64_t now = ToUnixMillis(clock_.Now());
  const int64_t from = now - 7 * 86'400'000LL;
  auto v = CallJson("GET", "/_sim/users/bob/garmin/records?type=sleep_session&from=" +
                               std::to_string(from) + "&to=" + std::to_string(now));
  const auto& records = v.at("records").as_array();
  const auto expected =
      server_->world().Records("garmin", "bob", DataType::kSleepSession, from, now);
  ASSERT_EQ(records.size(), expected.size());
  ASSERT_FALSE(expected.empty());
  const auto& first = records[0].as_object();
  EXPECT_EQ(first.at("id").as_string(), expected[0].meta.id);
  EXPECT_EQ(first.at("fingerprint").as_string(), providers::Fingerprint(expected[0]));
  EXPECT_EQ(first.at("type").as_string(), "sleep_session");
  EXPECT_TRUE(first.at("data").as_object().contains("deep_min"));
  // All types when none is given; bad input is a 400.
  auto all = CallJson("GET", "/_sim/users/bob/garmin/records");
  EXPECT_GT(all.at("records").as_array().size(), records.size());
  CallJson("GET", "/_sim/users/bob/garmin/records?type=nap", "", 400);
  CallJson("GET", "/_sim/users/bob/garmin/records?from=yesterday", "", 400);
}

TEST_F(SimServerTest, DuplicateWritesAreVisible) {
  const std::string token = Login("alice");
  const int64_t start = ToUnixMillis(clock_.Now()) - 86'400'000;
  const std::string body =
      R"({"start_ms":)" + std::to_string(start) + R"(,"origin":"sw1:0123456789abcdef"})";
  EXPECT_EQ(Call("POST", "/garmin/records", body, token).status, 201);
  EXPECT_EQ(Call("POST", "/garmin/records", body, token).status, 201);
  auto written = CallJson("GET", "/_sim/users/alice/garmin/written");
  const auto& recs = written.at("records").as_array();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].at("write_count").as_int64(), 2);
  EXPECT_EQ(recs[0].at("origin").as_string(), "sw1:0123456789abcdef");
  EXPECT_EQ(recs[0].at("data").at("name").as_string(), "Morning Run SWSENT");
  auto totals = CallJson("GET", "/_sim/stats").at("totals");
  EXPECT_EQ(totals.at("writes").as_int64(), 2);
  EXPECT_EQ(totals.at("records").as_int64(), 1);
  EXPECT_EQ(totals.at("duplicates").as_int64(), 1);
}

TEST_F(SimServerTest, ConfigDrivesFaultsAndRejectsBadFields) {
  const std::string token = Login("alice");
  Configure(R"({"provider":"garmin","error_rate":1})");
  EXPECT_EQ(Call("GET", "/garmin/records/workout", "", token).status, 503);
  // A bad field changes nothing.
  EXPECT_EQ(Call("POST", "/_sim/config", R"({"provider":"garmin","error_rate":0,"typo":1})").status,
            400);
  EXPECT_EQ(Call("GET", "/garmin/records/workout", "", token).status, 503);
  Configure(R"({"provider":"*","error_rate":0})");
  EXPECT_EQ(Call("GET", "/garmin/records/workout", "", token).status, 200);
  auto cfg = CallJson("GET", "/_sim/config");
  EXPECT_EQ(cfg.at("profiles").at("garmin").at("error_rate").as_double(), 0.0);
  EXPECT_FALSE(cfg.at("profiles").at("garmin").as_object().contains("client_secret"));
  EXPECT_EQ(Call("POST", "/_sim/config", "not json").status, 400);
}

TEST_F(SimServerTest, RateLimitAnswers429WithRetryAfter) {
  const std::string token = Login("alice");
  Configure(R"({"provider":"garmin","app_limit":2,"app_window_s":60})");
  auto first = Call("GET", "/garmin/records/workout", "", token);
  ASSERT_EQ(first.status, 200);
  ASSERT_NE(first.Header("x-usage"), nullptr);
  EXPECT_EQ(*first.Header("x-usage"), "1/2");
  EXPECT_EQ(Call("GET", "/garmin/records/workout", "", token).status, 200);
  auto limited = Call("GET", "/garmin/records/workout", "", token);
  EXPECT_EQ(limited.status, 429);
  ASSERT_NE(limited.Header("retry-after"), nullptr);
  const int64_t now_s = ToUnixMillis(clock_.Now()) / 1000;
  EXPECT_EQ(*limited.Header("retry-after"), std::to_string(60 - now_s % 60));
  ASSERT_NE(limited.Header("x-test-limit"), nullptr);
  EXPECT_EQ(*limited.Header("x-test-limit"), "2");
  // "rate_limits": true restores the provider's real limit (Garmin: 100/min per app).
  Configure(R"({"provider":"garmin","rate_limits":true})");
  EXPECT_EQ(CallJson("GET", "/_sim/config").at("profiles").at("garmin").at("app_limit").as_int64(),
            100);
}

TEST_F(SimServerTest, FailAfterApplyStoresTheWriteButAnswers503) {
  const std::string token = Login("alice");
  Configure(R"({"provider":"garmin","fail_next_writes":1,"fail_after_apply":true})");
  const std::string body = R"({"start_ms":1799900000000,"origin":"sw1:ffff"})";
  EXPECT_EQ(Call("POST", "/garmin/records", body, token).status, 503);
  EXPECT_EQ(CallJson("GET", "/_sim/users/alice/garmin/written").at("records").as_array().size(),
            1u);
  EXPECT_EQ(Call("POST", "/garmin/records", body, token).status, 201);
  EXPECT_EQ(CallJson("GET", "/_sim/stats").at("totals").at("duplicates").as_int64(), 1);
}

TEST_F(SimServerTest, LatencyIsInjected) {
  const std::string token = Login("alice");
  Configure(R"({"provider":"garmin","latency_min_ms":200,"latency_max_ms":200})");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Call("GET", "/garmin/records/weight", "", token).status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(200));
}

TEST_F(SimServerTest, HangingRequestsTimeOutAndStopDoesNotWaitForThem) {
  const std::string token = Login("alice");
  Configure(R"({"provider":"garmin","timeout_rate":1,"timeout_hang_ms":60000})");
  net::HttpCall c;
  c.url = server_->base_url() + "/garmin/records/workout";
  c.headers = {{"Authorization", "Bearer " + token}};
  c.timeout = milliseconds(300);
  auto r = client_->Send(c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kRetryable);

  // A patient client is still waiting when the simulator stops.
  c.timeout = milliseconds(30'000);
  auto pending = std::async(std::launch::async, [&] { return client_->Send(c); });
  std::this_thread::sleep_for(milliseconds(200));
  const auto t0 = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  ASSERT_EQ(pending.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto late = pending.get();
  if (late.ok()) {
    EXPECT_GE(late->status, 500);
  }
}

// Injected waits hold no thread: with one handler thread and one response lane, many requests
// wait at once (as at a real provider) and /_sim still answers meanwhile; Stop() answers them all.
TEST_F(SimServerTest, WaitingRequestsHoldNoThread) {
  server_->Stop();
  Start(DefaultSimSettings(/*rate_limits=*/false), /*handler_threads=*/1);
  const std::string token = Login("alice");
  Configure(R"({"provider":"garmin","timeout_rate":1,"timeout_hang_ms":60000})");
  constexpr int kClients = 12;
  std::vector<std::future<Result<net::HttpResult>>> pending;
  for (int i = 0; i < kClients; ++i) {
    pending.push_back(std::async(std::launch::async, [&] {
      net::HttpCall c;
      c.url = server_->base_url() + "/garmin/records/workout";
      c.headers = {{"Authorization", "Bearer " + token}};
      c.timeout = milliseconds(30'000);
      return client_->Send(c);
    }));
  }
  int64_t waiting = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (waiting < kClients && std::chrono::steady_clock::now() < deadline) {
    auto stats = Call("GET", "/_sim/stats", "", "", milliseconds(2'000));
    ASSERT_EQ(stats.status, 200) << stats.body;
    waiting = json::parse(stats.body).at("waiting").as_int64();
    if (waiting < kClients) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(waiting, kClients);
  server_->Stop();
  for (auto& f : pending) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 503);
    EXPECT_NE(r->body.find("simulator stopping"), std::string::npos) << r->body;
  }
}

// A stand-in for SyncWell's webhook endpoint.
class Receiver {
 public:
  Receiver() {
    api::HttpServerSettings s;
    s.port = 0;
    s.access_log = false;
    s.handler_threads = 2;
    server_ = std::make_unique<api::HttpServer>(
        s,
        [this](const api::HttpRequest& r) {
          std::lock_guard lock(mu_);
          bodies_.push_back(r.path + " " + r.body);
          api::HttpResponse resp;
          resp.status = 204;
          resp.content_type.clear();
          return resp;
        },
        metrics_);
    EXPECT_TRUE(server_->Start().ok());
  }
  ~Receiver() { server_->Stop(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mu_);
    return bodies_;
  }

 private:
  obs::Registry metrics_;
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::unique_ptr<api::HttpServer> server_;
};

TEST_F(SimServerTest, WebhooksAndNewData) {
  Receiver receiver;
  // No target yet: 409; a provider without webhooks: 404.
  EXPECT_EQ(Call("POST", "/_sim/webhooks/garmin?user=alice&type=workout").status, 409);
  Configure(R"({"webhook_target":")" + receiver.url() + R"("})");
  EXPECT_EQ(Call("POST", "/_sim/webhooks/strava?user=alice").status, 404);

  auto sent = CallJson("POST", "/_sim/webhooks/garmin?user=alice&type=sleep_session");
  EXPECT_EQ(sent.at("status").as_int64(), 204);
  const std::string pid = server_->world().ProviderUserId("garmin", "alice");
  ASSERT_EQ(receiver.bodies().size(), 1u);
  EXPECT_NE(receiver.bodies()[0].find("/hooks/garmin"), std::string::npos);
  EXPECT_NE(receiver.bodies()[0].find(pid), std::string::npos);
  EXPECT_NE(receiver.bodies()[0].find("sleep_session"), std::string::npos);
  EXPECT_EQ(server_->world().SimUserFor("garmin", pid), "alice");

  auto before = server_->world().Records("garmin", "alice", DataType::kWorkout, 0, INT64_MAX);
  auto added = CallJson("POST", "/_sim/users/alice/garmin/new-data?type=workout");
  EXPECT_EQ(added.at("webhook_status").as_int64(), 204);
  const std::string id(added.at("record").at("id").as_string());
  auto after = server_->world().Records("garmin", "alice", DataType::kWorkout, 0, INT64_MAX);
  ASSERT_EQ(after.size(), before.size() + 1);
  EXPECT_EQ(after.back().meta.id, id);
  EXPECT_EQ(receiver.bodies().size(), 2u);
  // webhook=0: the record, no webhook (found by the next sync, as with polling).
  auto quiet = CallJson("POST", "/_sim/users/alice/garmin/new-data?type=workout&webhook=0");
  EXPECT_TRUE(quiet.at("webhook_status").is_null());
  EXPECT_EQ(server_->world().Records("garmin", "alice", DataType::kWorkout, 0, INT64_MAX).size(),
            before.size() + 2);
  EXPECT_EQ(receiver.bodies().size(), 2u);
  // Strava (no module here, so no webhooks) still gets the record, just no webhook.
  auto strava = CallJson("POST", "/_sim/users/alice/strava/new-data?type=workout");
  EXPECT_TRUE(strava.at("webhook_status").is_null());
  CallJson("POST", "/_sim/users/alice/strava/new-data?type=steps", "", 400);
}

TEST_F(SimServerTest, AuthorizeRedirectsWhenAskedTo) {
  auto r = Call("GET",
                "/_sim/authorize?provider=garmin&user=u%2042&redirect_uri=http%3A%2F%2Fapp%2Fcb"
                "&state=xyz");
  EXPECT_EQ(r.status, 302);
  ASSERT_NE(r.Header("location"), nullptr);
  const std::string& loc = *r.Header("location");
  EXPECT_EQ(loc.rfind("http://app/cb?code=", 0), 0u) << loc;
  EXPECT_NE(loc.find("&state=xyz"), std::string::npos);
  const std::string code = loc.substr(19, loc.find('&') - 19);
  auto g = server_->world().ExchangeCode("garmin", code);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*server_->world().Authorize("garmin", g->access_token), "u 42");
  EXPECT_EQ(Call("GET", "/_sim/authorize?provider=garmin").status, 400);
}

TEST(SimSettingsTest, JsonSettings) {
  auto s = ParseSimSettingsJson(R"({"seed": 7, "days_of_history": 10,
      "webhook_target": "http://127.0.0.1:8080",
      "profiles": {"*": {"latency_min_ms": 5, "latency_max_ms": 20},
                   "strava": {"error_rate": 0.1, "app_limit": 50}}})");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->seed, 7u);
  EXPECT_EQ(s->days_of_history, 10);
  EXPECT_EQ(s->webhook_target, "http://127.0.0.1:8080");
  EXPECT_EQ(s->profiles.at("fitbit").latency_max, milliseconds(20));
  EXPECT_EQ(s->profiles.at("fitbit").user_limit, 150);  // defaults keep the real limits
  EXPECT_EQ(s->profiles.at("strava").app_limit, 50);
  EXPECT_DOUBLE_EQ(s->profiles.at("strava").error_rate, 0.1);
  EXPECT_EQ(s->profiles.at("strava").latency_min, milliseconds(5));

  auto off = ParseSimSettingsJson(R"({"rate_limits": false})");
  ASSERT_TRUE(off.ok());
  for (const auto& [name, p] : off->profiles) EXPECT_EQ(p.app_limit + p.user_limit, 0) << name;

  for (const char* bad :
       {R"({"sed": 1})", R"({"profiles": {"strava": {"error_rate": 2}}})",
        R"({"profiles": {"strava": {"latency_min_ms": 50, "latency_max_ms": 10}}})",
        R"({"profiles": {"strava": {"app_limit": -1}}})", R"([1])", "{"}) {
    auto r = ParseSimSettingsJson(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, Errc::kInvalidArgument) << bad;
    }
  }
  auto missing = LoadSimSettings("/nonexistent/sim.json");
  EXPECT_FALSE(missing.ok());
}

TEST(SimServerUnitTest, BuiltinModulesCanBeReplaced) {
  ManualClock clock;
  SimServerOptions o;
  o.modules = {TestGarmin()};
  SimServer server(DefaultSimSettings(false), o, clock);
  api::HttpRequest req;
  req.method = "GET";
  req.path = "/garmin/records/workout";  // a route only the test module has
  auto r = server.Handle(req);
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("invalid_token"), std::string::npos);
}

TEST(SimServerUnitTest, HandleWorksWithoutSockets) {
  ManualClock clock;
  SimServerOptions o;
  o.builtin_modules = false;
  o.modules = {TestGarmin()};
  SimServer server(DefaultSimSettings(false), o, clock);
  api::HttpRequest req;
  req.method = "GET";
  req.path = "/garmin/records/workout";
  EXPECT_EQ(server.Handle(req).status, 401);
  req.path = "/strava/anything";  // built-ins switched off
  EXPECT_EQ(server.Handle(req).status, 404);
  req.path = "/healthz";
  EXPECT_EQ(server.Handle(req).status, 200);
}

}  // namespace
}  // namespace syncwell::sim
