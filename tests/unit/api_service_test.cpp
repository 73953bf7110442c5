// ApiService against the in-memory store: validation, ownership, capabilities, idempotency,
// optimistic concurrency, rate limits. No sockets, no sleeps (ManualClock).
#include "api/api_service.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <memory>
#include <optional>

#include "fakes/in_memory_store.hpp"

namespace syncwell::api {
namespace {

namespace json = boost::json;

// Accepts "tok:<user>:<tier>"; anything else is rejected.
class FakeAuth final : public Authenticator {
 public:
  Result<Caller> Authenticate(std::string_view t) override {
    if (t.substr(0, 4) != "tok:") return MakeError(Errc::kUnauthenticated, "bad token");
    auto rest = std::string(t.substr(4));
    auto colon = rest.find(':');
    return Caller{UserId(rest.substr(0, colon)),
                  colon == std::string::npos ? "" : rest.substr(colon + 1)};
  }
};

class ApiServiceTest : public ::testing::Test {
 protected:
  ApiServiceTest()
      : store_(clock_),
        service_(Settings(), store_, auth_, clock_, metrics_, "{\"openapi\":\"3.0.3\"}") {
    AddConnection("alice", "conn_a_fitbit", "fitbit");
    AddConnection("alice", "conn_a_strava", "strava");
    AddConnection("alice", "conn_a_garmin", "garmin");
    AddConnection("bob", "conn_b_fitbit", "fitbit");
  }
  static ApiServiceSettings Settings() {
    ApiServiceSettings s;
    s.user_rate_per_second = 5;
    s.user_burst = 20;
    return s;
  }
  void AddConnection(const std::string& user, const std::string& id, const std::string& provider) {
    store::Connection c;
    c.id = ConnectionId(id);
    c.user = UserId(user);
    c.provider = provider;
    c.access_token_sealed = "sealed";
    ASSERT_TRUE(store_.CreateConnection(c).ok());
  }
  HttpResponse Call(const std::string& method, const std::string& path,
                    const std::string& body = "", const std::string& user = "alice:FREE",
                    std::string key = "auto",
                    std::vector<std::pair<std::string, std::string>> extra = {}) {
    return service_.Handle(Request(method, path, body, user, std::move(key), std::move(extra)));
  }
  HttpRequest Request(const std::string& method, const std::string& path,
                      const std::string& body = "", const std::string& user = "alice:FREE",
                      std::string key = "auto",
                      std::vector<std::pair<std::string, std::string>> extra = {}) {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.body = body;
    r.request_id = "test";
    if (!user.empty()) r.headers.emplace_back("authorization", "Bearer tok:" + user);
    if (!body.empty()) r.headers.emplace_back("content-type", "application/json");
    if (key == "auto") key = "k" + std::to_string(++seq_);
    if (!key.empty()) r.headers.emplace_back("idempotency-key", key);
    for (auto& h : extra) r.headers.push_back(h);
    return r;
  }
  static std::string Code(const HttpResponse& r) {
    auto v = json::parse(r.body);
    return std::string(v.as_object().at("code").as_string());
  }
  static json::object Obj(const HttpResponse& r) { return json::parse(r.body).as_object(); }
  size_t Messages() const { return store_.Messages().size(); }
  uint64_t Metric(const std::string& name) { return metrics_.GetCounter(name, "").Value(); }

  static constexpr const char* kJob =
      R"({"sourceConnectionId":"conn_a_fitbit","destinationConnectionId":"conn_a_strava","dataType":"workout","mode":"manual"})";

  ManualClock clock_;
  fakes::InMemoryStore store_;
  FakeAuth auth_;
  obs::Registry metrics_;
  ApiService service_;
  int seq_ = 0;
};

TEST_F(ApiServiceTest, AcceptsAJobAndQueuesIt) {
  auto r = Call("POST", "/v1/sync-jobs", kJob);
  ASSERT_EQ(r.status, 202) << r.body;
  auto o = Obj(r);
  std::string id(o.at("jobId").as_string());
  EXPECT_EQ(id.rfind("job_", 0), 0u);
  EXPECT_EQ(id.size(), 4u + 36u);
  EXPECT_EQ(o.at("status").as_string(), "QUEUED");
  EXPECT_EQ(Messages(), 1u);
  auto g = Call("GET", "/v1/sync-jobs/" + id);
  ASSERT_EQ(g.status, 200);
  EXPECT_EQ(Obj(g).at("status").as_string(), "QUEUED");
  EXPECT_EQ(Obj(g).at("priority").as_string(), "medium");
  // Another user cannot see it.
  EXPECT_EQ(Call("GET", "/v1/sync-jobs/" + id, "", "bob:FREE").status, 404);
}

// Intake reads a key's stored record only when it needs it: a fresh key is written straight
// away (the write refuses a stored key), and a request that fails before writing looks it up.
TEST_F(ApiServiceTest, AJobWithAFreshKeyDoesNotLookUpTheKeyFirst) {
  ASSERT_EQ(Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "fresh").status, 202);
  EXPECT_EQ(store_.idempotency_reads(), 0);
  // The replay is found through the refused write.
  auto again = Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "fresh");
  EXPECT_EQ(again.status, 202);
  EXPECT_EQ(again.body, Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "fresh").body);
  EXPECT_EQ(Messages(), 1u);
}

TEST_F(ApiServiceTest, AReplayIsAnsweredEvenWhenTheRequestWouldNowFail) {
  auto a = Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k-gone");
  ASSERT_EQ(a.status, 202);
  ASSERT_TRUE(
      store_.DeleteConnection(UserId("alice"), ConnectionId("conn_a_strava"), nullptr).ok());
  ASSERT_EQ(Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k-new").status, 404);
  // The same key and body: the original answer, not the 404 a new request gets now.
  auto b = Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k-gone");
  EXPECT_EQ(b.status, 202);
  EXPECT_EQ(b.body, a.body);
  // The same key with an invalid body: 422 for the key, not 400 for the body.
  auto c = Call("POST", "/v1/sync-jobs", R"({"mode":"manual"})", "alice:FREE", "k-gone");
  EXPECT_EQ(c.status, 422);
  EXPECT_EQ(Code(c), "IDEMPOTENCY_KEY_REUSED");
}

TEST_F(ApiServiceTest, AReplayIsAnsweredWhileTheUsersDeletionIsPending) {
  auto a = Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "before");
  ASSERT_EQ(a.status, 202);
  ASSERT_EQ(Call("DELETE", "/v1/users/me", "", "alice:FREE", "del").status, 202);
  EXPECT_EQ(Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "after").status, 409);
  EXPECT_EQ(Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "before").body, a.body);
}

TEST_F(ApiServiceTest, IdempotencyKeyRequiredOnMutations) {
  auto r = Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Code(r), "IDEMPOTENCY_KEY_MISSING");
  EXPECT_EQ(Messages(), 0u);
  EXPECT_EQ(Call("DELETE", "/v1/users/me", "", "alice:FREE", "").status, 400);
}

TEST_F(ApiServiceTest, ReplaysTheOriginalResponseForTheSameKeyAndBody) {
  auto a = Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "same");
  auto b = Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "same");
  ASSERT_EQ(a.status, 202);
  ASSERT_EQ(b.status, 202);
  EXPECT_EQ(a.body, b.body);
  EXPECT_EQ(Messages(), 1u);
  // Still replayed just before 24 h; re-executed after.
  clock_.Advance(std::chrono::hours(23));
  EXPECT_EQ(Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "same").body, a.body);
  EXPECT_EQ(Metric("syncwell_idempotency_replays_total"), 2u);
}

TEST_F(ApiServiceTest, SameKeyOtherBodyIs422AndChangesNothing) {
  ASSERT_EQ(Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k1").status, 202);
  std::string other =
      R"({"sourceConnectionId":"conn_a_fitbit","destinationConnectionId":"conn_a_strava","dataType":"workout","mode":"manual","priority":"high"})";
  auto r = Call("POST", "/v1/sync-jobs", other, "alice:FREE", "k1");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(Code(r), "IDEMPOTENCY_KEY_REUSED");
  EXPECT_EQ(Messages(), 1u);
  // Keys are per user: bob may use "k1" too.
  std::string bobs =
      R"({"sourceConnectionId":"conn_b_fitbit","destinationConnectionId":"conn_a_strava","dataType":"workout","mode":"manual"})";
  EXPECT_EQ(Call("POST", "/v1/sync-jobs", bobs, "bob:FREE", "k1").status,
            404);  // not his connection
}

TEST_F(ApiServiceTest, BadInputIsRejectedWithStableCodesAndWritesNothing) {
  struct Case {
    std::string body;
    int status;
    std::string code;
  } cases[] = {
      {"{not json", 400, "MALFORMED_JSON"},
      {"[1,2]", 400, "MALFORMED_JSON"},
      {std::string(40, '[') + std::string(40, ']'), 400, "MALFORMED_JSON"},
      {R"({"sourceConnectionId":1,"destinationConnectionId":"conn_a_strava","dataType":"workout","mode":"manual"})",
       400, "VALIDATION_FAILED"},
      {R"({"destinationConnectionId":"conn_a_strava","dataType":"workout","mode":"manual"})", 400,
       "VALIDATION_FAILED"},
      {R"({"sourceConnectionId":"conn_a_fitbit","destinationConnectionId":"conn_a_strava","dataType":"calories","mode":"manual"})",
       400, "VALIDATION_FAILED"},
      {R"({"sourceConnectionId":"conn_a_fitbit","destinationConnectionId":"conn_a_strava","dataType":"workout","mode":"manual","extra":1})",
       400, "VALIDATION_FAILED"},
      {R"({"sourceConnectionId":"conn_a_fitbit","destinationConnectionId":"conn_a_strava","dataType":"workout","mode":"historical"})",
       400, "VALIDATION_FAILED"},
      {R"({"sourceConnectionId":"conn_a_fitbit","destinationConnectionId":"conn_a_strava","dataType":"workout","mode":"manual","priority":"urgent"})",
       400, "VALIDATION_FAILED"},
      {R"({"sourceConnectionId":"conn_a_fitbit","destinationConnectionId":"conn_a_fitbit","dataType":"workout","mode":"manual"})",
       400, "VALIDATION_FAILED"},
      {R"({"sourceConnectionId":"conn_a_fitbit","destinationConnectionId":"conn_a_strava","dataType":"steps","mode":"manual"})",
       422, "CAPABILITY_MISMATCH"},
      {R"({"sourceConnectionId":"conn_b_fitbit","destinationConnectionId":"conn_a_strava","dataType":"workout","mode":"manual"})",
       404, "NOT_FOUND"},
      {R"({"sourceConnectionId":"conn_a_fitbit","destinationConnectionId":"conn_a_strava","dataType":"workout","mode":"historical","dateRange":{"startDate":"2025-01-01","endDate":"2025-06-30"}})",
       403, "PRO_TIER_REQUIRED"},
      {R"({"sourceConnectionId":"conn_a_fitbit","destinationConnectionId":"conn_a_strava","dataType":"workout","mode":"historical","dateRange":{"startDate":"2025-02-30","endDate":"2025-06-30"}})",
       400, "VALIDATION_FAILED"},
  };
  for (const auto& c : cases) {
    auto r = Call("POST", "/v1/sync-jobs", c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
    EXPECT_EQ(Code(r), c.code) << c.body;
  }
  EXPECT_EQ(Messages(), 0u);
  HttpRequest wrong_type;
  wrong_type.method = "POST";
  wrong_type.path = "/v1/sync-jobs";
  wrong_type.body = kJob;
  wrong_type.headers = {{"authorization", "Bearer tok:alice"},
                        {"idempotency-key", "x"},
                        {"content-type", "text/plain"}};
  auto r = service_.Handle(wrong_type);
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(Code(r), "UNSUPPORTED_MEDIA_TYPE");
  EXPECT_EQ(Messages(), 0u);
}

TEST_F(ApiServiceTest, HistoricalIsForPro) {
  std::string body =
      R"({"sourceConnectionId":"conn_a_garmin","destinationConnectionId":"conn_a_fitbit","dataType":"steps","mode":"historical","dateRange":{"startDate":"2025-01-01","endDate":"2025-12-31T23:59:59Z"}})";
  EXPECT_EQ(Call("POST", "/v1/sync-jobs", body, "alice:FREE").status,
            422);  // fitbit cannot store steps
  body =
      R"({"sourceConnectionId":"conn_a_garmin","destinationConnectionId":"conn_a_fitbit","dataType":"weight","mode":"historical","dateRange":{"startDate":"2025-01-01","endDate":"2025-12-31T23:59:59+02:00"}})";
  EXPECT_EQ(Call("POST", "/v1/sync-jobs", body, "alice:FREE").status, 403);
  auto r = Call("POST", "/v1/sync-jobs", body, "alice:PRO");
  ASSERT_EQ(r.status, 202) << r.body;
  auto g = Obj(Call("GET", "/v1/sync-jobs/" + std::string(Obj(r).at("jobId").as_string())));
  EXPECT_EQ(g.at("priority").as_string(), "low");
}

TEST_F(ApiServiceTest, AuthenticationIsRequired) {
  auto r = Call("GET", "/v1/connections", "", "");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Code(r), "UNAUTHENTICATED");
  HttpRequest bad;
  bad.method = "GET";
  bad.path = "/v1/connections";
  bad.headers = {{"authorization", "Bearer forged"}};
  EXPECT_EQ(service_.Handle(bad).status, 401);
}

TEST_F(ApiServiceTest, RoutesAnswer404And405) {
  EXPECT_EQ(Call("GET", "/v1/nope").status, 404);
  auto r = Call("PATCH", "/v1/sync-jobs", kJob);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Code(r), "METHOD_NOT_ALLOWED");
}

TEST_F(ApiServiceTest, ListsOnlyTheCallersConnections) {
  auto r = Call("GET", "/v1/connections");
  ASSERT_EQ(r.status, 200);
  auto arr = Obj(r).at("connections").as_array();
  EXPECT_EQ(arr.size(), 3u);
  EXPECT_EQ(Obj(Call("GET", "/v1/connections", "", "bob:FREE")).at("connections").as_array().size(),
            1u);
  EXPECT_EQ(
      Obj(Call("GET", "/v1/connections", "", "carol:FREE")).at("connections").as_array().size(),
      0u);
}

TEST_F(ApiServiceTest, SyncConfigOptimisticConcurrency) {
  auto c = Call(
      "POST", "/v1/sync-configs",
      R"({"sourceConnectionId":"conn_a_fitbit","destinationConnectionId":"conn_a_strava","dataType":"workout"})");
  ASSERT_EQ(c.status, 201) << c.body;
  std::string id(Obj(c).at("configId").as_string());
  EXPECT_EQ(Obj(c).at("version").as_int64(), 1);
  std::string upd = R"({"conflictStrategy":"newest_wins","enabled":false})";
  EXPECT_EQ(Call("PUT", "/v1/sync-configs/" + id, upd).status, 428);
  auto u =
      Call("PUT", "/v1/sync-configs/" + id, upd, "alice:FREE", "auto", {{"if-match", "\"1\""}});
  ASSERT_EQ(u.status, 200) << u.body;
  EXPECT_EQ(Obj(u).at("version").as_int64(), 2);
  auto stale =
      Call("PUT", "/v1/sync-configs/" + id, upd, "alice:FREE", "auto", {{"if-match", "\"1\""}});
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(Code(stale), "VERSION_CONFLICT");
  EXPECT_EQ(Call("GET", "/v1/sync-configs/" + id, "", "bob:FREE").status, 404);
  // Deleting the connection removes the config that uses it.
  EXPECT_EQ(Call("DELETE", "/v1/connections/conn_a_strava").status, 204);
  EXPECT_EQ(Call("GET", "/v1/sync-configs/" + id).status, 404);
  EXPECT_EQ(Call("DELETE", "/v1/connections/conn_b_fitbit").status, 404);  // bob's
}

TEST_F(ApiServiceTest, SettingsAndAccountDeletion) {
  auto s = Call(
      "PUT", "/v1/users/me/settings",
      R"({"settings":{"conflictResolutionStrategy":"dest_wins","notificationsEnabled":true}})");
  ASSERT_EQ(s.status, 200) << s.body;
  auto me = Obj(Call("GET", "/v1/users/me"));
  EXPECT_EQ(me.at("settings").as_object().at("conflictResolutionStrategy").as_string(),
            "dest_wins");
  EXPECT_EQ(Call("PUT", "/v1/users/me/settings",
                 R"({"settings":{"conflictResolutionStrategy":"x","notificationsEnabled":true}})")
                .status,
            400);
  ASSERT_EQ(Call("POST", "/v1/sync-jobs", kJob).status, 202);
  EXPECT_EQ(Call("GET", "/v1/users/me/deletion").status, 404);
  auto d = Call("DELETE", "/v1/users/me", "", "alice:FREE", "del");
  ASSERT_EQ(d.status, 202) << d.body;
  EXPECT_EQ(Obj(Call("GET", "/v1/users/me/deletion")).at("status").as_string(), "pending");
  // Writes are refused while the deletion is pending.
  auto w = Call("POST", "/v1/sync-jobs", kJob);
  EXPECT_EQ(w.status, 409);
  EXPECT_EQ(Code(w), "USER_DELETION_PENDING");
  ASSERT_TRUE(store_.PurgeUser(UserId("alice")).ok());
  EXPECT_EQ(Obj(Call("GET", "/v1/users/me/deletion")).at("status").as_string(), "completed");
  EXPECT_EQ(Obj(Call("GET", "/v1/connections")).at("connections").as_array().size(), 0u);
  EXPECT_EQ(Obj(Call("GET", "/v1/connections", "", "bob:FREE")).at("connections").as_array().size(),
            1u);
}

TEST_F(ApiServiceTest, PerUserRateLimit) {
  int limited = 0;
  for (int i = 0; i < 25; ++i) {
    auto r = Call("GET", "/v1/connections");
    if (r.status == 429) {
      ++limited;
      EXPECT_EQ(Code(r), "RATE_LIMITED");
      bool has_retry = false;
      for (auto& [k, v] : r.headers) has_retry |= k == "Retry-After";
      EXPECT_TRUE(has_retry);
    }
  }
  EXPECT_EQ(limited, 5);                                                  // burst 20
  EXPECT_EQ(Call("GET", "/v1/connections", "", "bob:FREE").status, 200);  // per user
  clock_.Advance(std::chrono::seconds(1));                                // 5 tokens/s
  EXPECT_EQ(Call("GET", "/v1/connections").status, 200);
}

TEST_F(ApiServiceTest, HealthAndReadiness) {
  EXPECT_EQ(Call("GET", "/healthz", "", "").status, 200);
  EXPECT_EQ(Call("GET", "/readyz", "", "").status, 200);
  service_.SetDraining(true);
  EXPECT_EQ(Call("GET", "/readyz", "", "").status, 503);
  auto m = Call("GET", "/metrics", "", "");
  EXPECT_NE(m.body.find("syncwell_sync_jobs_accepted_total"), std::string::npos);
}

TEST_F(ApiServiceTest, StoreFailureWritesNoIdempotencyRecord) {
  store_.FailNextWrite(MakeError(Errc::kUnavailable, "disk gone"));
  auto r = Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "retry-me");
  EXPECT_EQ(r.status, 503);
  // The retry with the same key executes (nothing was recorded) and succeeds.
  EXPECT_EQ(Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "retry-me").status, 202);
  EXPECT_EQ(Messages(), 1u);
}

// ---- inline intake (TryInline): POST /v1/sync-jobs answered by the write's completion ----

class ApiServiceInlineTest : public ApiServiceTest {
 protected:
  ApiServiceInlineTest()
      : inline_(InlineSettings(), store_, auth_, clock_, metrics_, "{\"openapi\":\"3.0.3\"}") {
    store_.SetAsyncWrites(true);
  }
  static ApiServiceSettings InlineSettings() {
    ApiServiceSettings s = Settings();
    s.inline_intake = true;
    return s;
  }
  struct Outcome {
    bool taken = false;
    HttpResponse now;
    DeferredResponse later;
  };
  Outcome Try(const HttpRequest& r) {
    Outcome o;
    o.taken = inline_.TryInline(r, o.now, o.later);
    return o;
  }
  // Starts the deferred write; the answer exists once the store ran the parked write.
  std::shared_ptr<std::optional<HttpResponse>> Start(Outcome& o) {
    auto out = std::make_shared<std::optional<HttpResponse>>();
    o.later([out](HttpResponse r) { *out = std::move(r); });
    return out;
  }
  static bool HasHeader(const HttpResponse& r, const std::string& name) {
    return std::any_of(r.headers.begin(), r.headers.end(),
                       [&](const auto& h) { return h.first == name; });
  }

  ApiService inline_;
};

TEST_F(ApiServiceInlineTest, AnswersOnlyOnceTheWriteCompletedAndHoldsTheKeyMeanwhile) {
  auto o = Try(Request("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k-inline"));
  ASSERT_TRUE(o.taken);
  ASSERT_TRUE(o.later) << o.now.status << " " << o.now.body;
  auto answer = Start(o);
  EXPECT_FALSE(answer->has_value());
  EXPECT_EQ(Messages(), 0u);
  // The same key while the write is pending: 409 in progress (the slot is held by the write).
  auto busy = Try(Request("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k-inline"));
  ASSERT_TRUE(busy.taken);
  EXPECT_FALSE(busy.later);
  EXPECT_EQ(busy.now.status, 409);
  EXPECT_EQ(Code(busy.now), "IDEMPOTENCY_REQUEST_IN_PROGRESS");

  EXPECT_EQ(store_.RunParkedWrites(), 1u);
  ASSERT_TRUE(answer->has_value());
  const HttpResponse& r = **answer;
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.route, "POST /v1/sync-jobs");
  EXPECT_FALSE(r.user_hash.empty());
  EXPECT_TRUE(HasHeader(r, "Location"));
  EXPECT_EQ(Messages(), 1u);
  EXPECT_EQ(Metric("syncwell_sync_jobs_accepted_total"), 1u);

  // Now a replay: the key is not looked up first, so its write is refused and the stored
  // answer replayed; the job is the same.
  auto again = Try(Request("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k-inline"));
  ASSERT_TRUE(again.taken);
  ASSERT_TRUE(again.later);
  auto replayed = Start(again);
  store_.RunParkedWrites();
  ASSERT_TRUE(replayed->has_value());
  EXPECT_EQ((*replayed)->status, 202);
  EXPECT_EQ((*replayed)->body, r.body);
  EXPECT_TRUE(HasHeader(**replayed, "Idempotent-Replayed"));
  EXPECT_EQ(Messages(), 1u);
}

TEST_F(ApiServiceInlineTest, OnlyJobIntakeAndJobReadsAreTakenAndOnlyWithAnAsyncStore) {
  EXPECT_FALSE(Try(Request("GET", "/v1/connections")).taken);
  EXPECT_FALSE(Try(Request("POST", "/v1/sync-configs", "{}")).taken);
  EXPECT_FALSE(Try(Request("GET", "/v1/sync-jobs")).taken);
  EXPECT_FALSE(Try(Request("DELETE", "/v1/sync-jobs/job_x")).taken);
  EXPECT_TRUE(Try(Request("GET", "/v1/sync-jobs/job_x")).taken);
  store_.SetAsyncWrites(false);
  EXPECT_FALSE(Try(Request("POST", "/v1/sync-jobs", kJob)).taken);
  EXPECT_FALSE(Try(Request("GET", "/v1/sync-jobs/job_x")).taken);
  store_.SetAsyncWrites(true);
  ApiService off(Settings(), store_, auth_, clock_, metrics_, "{}");
  HttpResponse now;
  DeferredResponse later;
  EXPECT_FALSE(off.TryInline(Request("POST", "/v1/sync-jobs", kJob), now, later));
  EXPECT_FALSE(off.TryInline(Request("GET", "/v1/sync-jobs/job_x"), now, later));
}

// A job read on the I/O thread answers exactly what the pool would: the job to its owner, 404 to
// anyone else and for an unknown id, 401 without a token; nothing deferred.
TEST_F(ApiServiceInlineTest, JobReadsAreAnsweredAtOnceAsThePoolWould) {
  auto posted = Try(Request("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k-read"));
  ASSERT_TRUE(posted.later);
  auto answer = Start(posted);
  ASSERT_EQ(store_.RunParkedWrites(), 1u);
  ASSERT_TRUE(answer->has_value());
  const std::string id = json::value_to<std::string>(json::parse((*answer)->body).at("jobId"));
  const std::string path = "/v1/sync-jobs/" + id;
  for (const auto& [who, status] : std::vector<std::pair<std::string, int>>{
           {"alice:FREE", 200}, {"bob:FREE", 404}, {"", 401}}) {
    SCOPED_TRACE(who);
    auto o = Try(Request("GET", path, "", who));
    ASSERT_TRUE(o.taken);
    EXPECT_FALSE(o.later);
    EXPECT_EQ(o.now.status, status) << o.now.body;
    const HttpResponse pool = inline_.Handle(Request("GET", path, "", who));
    EXPECT_EQ(pool.status, status);
    EXPECT_EQ(o.now.body, pool.body);
    EXPECT_EQ(o.now.route, pool.route);
  }
  auto missing = Try(Request("GET", "/v1/sync-jobs/job_nope", "", "alice:FREE"));
  ASSERT_TRUE(missing.taken);
  EXPECT_EQ(missing.now.status, 404);
}

TEST_F(ApiServiceInlineTest, BadInputIsAnsweredAtOnceAndWritesNothing) {
  for (const std::string body : {std::string("{"), std::string(R"({"dataType":"workout"})"),
                                 std::string(kJob).replace(0, 1, "[")}) {
    auto o = Try(Request("POST", "/v1/sync-jobs", body));
    ASSERT_TRUE(o.taken);
    EXPECT_FALSE(o.later);
    EXPECT_GE(o.now.status, 400);
    EXPECT_LT(o.now.status, 500);
    EXPECT_EQ(o.now.route, "POST /v1/sync-jobs");
  }
  auto unauth = Try(Request("POST", "/v1/sync-jobs", kJob, ""));
  ASSERT_TRUE(unauth.taken);
  EXPECT_EQ(unauth.now.status, 401);
  EXPECT_EQ(store_.RunParkedWrites(), 0u);
  EXPECT_EQ(Messages(), 0u);
}

TEST_F(ApiServiceInlineTest, AFailedWriteAnswers503WithRetryAfterAndFreesTheKey) {
  store_.FailNextWrite(MakeError(Errc::kUnavailable, "disk gone"));
  auto o = Try(Request("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k-fail"));
  ASSERT_TRUE(o.later);
  auto answer = Start(o);
  store_.RunParkedWrites();
  ASSERT_TRUE(answer->has_value());
  EXPECT_EQ((*answer)->status, 503);
  EXPECT_TRUE(HasHeader(**answer, "Retry-After"));
  EXPECT_EQ((*answer)->route, "POST /v1/sync-jobs");
  // Nothing recorded: the retry runs and succeeds.
  auto retry = Try(Request("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k-fail"));
  ASSERT_TRUE(retry.later);
  auto ok = Start(retry);
  store_.RunParkedWrites();
  EXPECT_EQ((*ok)->status, 202);
  EXPECT_EQ(Messages(), 1u);
}

TEST_F(ApiServiceInlineTest, AKeyStoredMeanwhileByAnotherProcessIsReplayed) {
  auto o = Try(Request("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k-race"));
  ASSERT_TRUE(o.later);
  auto answer = Start(o);
  // Another API process (its own in-flight table) takes the same key while ours is parked.
  auto other = Call("POST", "/v1/sync-jobs", kJob, "alice:FREE", "k-race");
  ASSERT_EQ(other.status, 202);
  store_.RunParkedWrites();
  ASSERT_TRUE(answer->has_value());
  EXPECT_EQ((*answer)->status, 202);
  EXPECT_EQ((*answer)->body, other.body);  // the stored answer, not a second job
  EXPECT_TRUE(HasHeader(**answer, "Idempotent-Replayed"));
  EXPECT_EQ(Messages(), 1u);
}

}  // namespace
}  // namespace syncwell::api
