// The Strava and Withings connectors against their simulator modules through a real SimServer on
// loopback (port 0): OAuth, metadata and payloads equal to the World's records, pushes whose
// origin round-trips, rotating refresh, revoked grants, rate limits and the webhook each module
// builds, verified by the connector. A mismatch between connector and simulator wire formats
// fails here.
#include <gtest/gtest.h>

#include <set>

#include "core/clock.hpp"
#include "net/http_client.hpp"
#include "providers/sim/sim_server.hpp"
#include "providers/strava/strava_provider.hpp"
#include "providers/withings/withings_provider.hpp"

namespace syncwell::providers {
namespace {

using namespace std::chrono_literals;
using sim::SimServer;

constexpr int64_t kDayMs = 86'400'000;

class SimRoundTrip : public ::testing::Test {
 protected:
  void SetUp() override {
    sim::SimServerOptions o;
    o.handler_threads = 8;
    o.stop_grace = 1000ms;
    server_ =
        std::make_unique<SimServer>(sim::DefaultSimSettings(/*rate_limits=*/false), o, clock_);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override { server_->Stop(); }

  ConnectorSettings Settings(const std::string& provider) {
    ConnectorSettings s;
    s.base_url = server_->base_url() + "/" + provider;
    const auto prof = server_->world().Profile(provider);
    s.client_id = prof.client_id;
    s.client_secret = prof.client_secret;
    s.webhook_secret = prof.webhook_secret;
    s.page_size = 5;
    s.timeout = 5s;
    return s;
  }
  CallContext Ctx(const TokenGrant& g) {
    CallContext c;
    c.access_token = g.access_token;
    c.provider_user_id = g.provider_user_id;
    c.deadline = std::chrono::steady_clock::now() + 10s;
    c.on_rate_limit = [this](const RateLimitObservation& o) { observed_.push_back(o); };
    return c;
  }
  TimeRange History() const {
    const int64_t now = ToUnixMillis(clock_.Now());
    return {now - 31 * kDayMs, now + kDayMs};
  }
  static WebhookRequest ToWebhook(const api::HttpRequest& h) {
    return {h.method, h.query, h.headers, h.body};
  }

  ManualClock clock_;
  std::unique_ptr<SimServer> server_;
  std::unique_ptr<net::HttpClient> http_ = net::MakeHttpClient();
  std::vector<RateLimitObservation> observed_;
};

TEST_F(SimRoundTrip, StravaReadsWritesAndVerifies) {
  auto& world = server_->world();
  auto p = MakeStravaProvider(Settings("strava"), *http_, clock_);
  auto grant = p->Authenticate(world.IssueAuthCode("strava", "alice"), "", "");
  ASSERT_TRUE(grant.ok()) << grant.error().message;
  EXPECT_EQ(grant->provider_user_id, world.ProviderUserId("strava", "alice"));
  const auto ctx = Ctx(*grant);

  // Metadata equals the World's records (several pages of 5).
  const TimeRange range = History();
  auto metas = p->FetchMetadata(ctx, DataType::kWorkout, range);
  ASSERT_TRUE(metas.ok()) << metas.error().message;
  auto truth = world.Records("strava", "alice", DataType::kWorkout, range.start_ms, range.end_ms);
  ASSERT_GT(truth.size(), 5u);
  ASSERT_EQ(metas->size(), truth.size());
  for (size_t i = 0; i < truth.size(); ++i) {
    EXPECT_EQ((*metas)[i].id, truth[i].meta.id);
    EXPECT_EQ((*metas)[i].start_ms, truth[i].meta.start_ms);
    EXPECT_EQ((*metas)[i].end_ms, truth[i].meta.end_ms);
    EXPECT_EQ((*metas)[i].utc_offset_min, truth[i].meta.utc_offset_min);
    EXPECT_EQ((*metas)[i].activity,
              truth[i].meta.activity == "open_water_swim" ? "swim" : truth[i].meta.activity);
  }

  // Payloads equal the World's values.
  auto full = p->FetchPayloads(ctx, DataType::kWorkout, {truth[0].meta.id, truth[1].meta.id});
  ASSERT_TRUE(full.ok()) << full.error().message;
  for (size_t i = 0; i < 2; ++i) {
    const auto& got = std::get<WorkoutData>((*full)[i].data);
    const auto& want = std::get<WorkoutData>(truth[i].data);
    EXPECT_EQ(got.name, want.name);
    EXPECT_DOUBLE_EQ(got.distance_m, want.distance_m);
    EXPECT_DOUBLE_EQ(got.energy_kcal, want.energy_kcal);
    EXPECT_EQ(got.avg_heart_rate_bpm, want.avg_heart_rate_bpm);
  }

  // Push: stored with our origin, offset and type; read back with the origin.
  Record r;
  r.meta.id = "fitbit-77";
  r.meta.type = DataType::kWorkout;
  r.meta.start_ms = range.end_ms - 3 * kDayMs;
  r.meta.end_ms = r.meta.start_ms + 2400 * 1000;
  r.meta.utc_offset_min = -300;
  r.meta.activity = "treadmill_run";
  r.data = WorkoutData{"Tempo", 8000.5, 600, 150};
  r.meta.origin = OriginTag(Fingerprint(r));
  auto pushed = p->PushData(ctx, DataType::kWorkout, {r});
  ASSERT_TRUE(pushed.ok());
  ASSERT_TRUE((*pushed)[0].ok) << (*pushed)[0].error.message;
  auto written = world.Written("strava", "alice");
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].record.meta.origin, r.meta.origin);
  EXPECT_EQ(written[0].record.meta.start_ms, r.meta.start_ms);
  EXPECT_EQ(written[0].record.meta.utc_offset_min, -300);
  EXPECT_EQ(written[0].record.meta.activity, "treadmill_run");
  EXPECT_EQ(written[0].record.meta.id, (*pushed)[0].dest_id);
  auto again = p->FetchMetadata(ctx, DataType::kWorkout, range);
  ASSERT_TRUE(again.ok());
  bool seen = false;
  for (const auto& m : *again) {
    if (m.id == (*pushed)[0].dest_id) {
      seen = true;
      EXPECT_EQ(m.origin, r.meta.origin);
    }
  }
  EXPECT_TRUE(seen);

  // The webhook the simulator sends verifies and names the athlete.
  auto spec = sim::StravaModule();
  auto hook = p->VerifyWebhook(ToWebhook(spec.make_webhook("alice", DataType::kWorkout, world)));
  ASSERT_TRUE(hook.ok()) << hook.error().message;
  ASSERT_EQ(hook->events.size(), 1u);
  EXPECT_EQ(hook->events[0].provider_user_id, grant->provider_user_id);

  // Rotating refresh; a made-up refresh token is a revoked grant.
  auto refreshed = p->Refresh(grant->refresh_token);
  ASSERT_TRUE(refreshed.ok()) << refreshed.error().message;
  EXPECT_NE(refreshed->refresh_token, grant->refresh_token);
  auto bad = p->Refresh("not-a-refresh-token");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::kAuthRevoked);

  // Rate limits: usage headers, then 429 with a wait.
  auto prof = world.Profile("strava");
  prof.app_limit = 2;
  world.SetProfile("strava", prof);
  auto ctx2 = Ctx(*refreshed);
  observed_.clear();
  Result<std::optional<bool>> last = std::optional<bool>{};
  for (int i = 0; i < 3 && last.ok(); ++i) last = p->HasNewData(ctx2, DataType::kWorkout, range);
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.error().code, Errc::kRateLimited);
  EXPECT_GT(last.error().retry_after.count(), 0);
  ASSERT_FALSE(observed_.empty());
  EXPECT_EQ(observed_[0].limit, 2);
  prof.app_limit = 0;
  world.SetProfile("strava", prof);

  // Revocation: the token stops working.
  ASSERT_TRUE(p->Revoke(ctx2).ok());
  auto after = p->FetchMetadata(ctx2, DataType::kWorkout, range);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code, Errc::kUnauthenticated);
}

TEST_F(SimRoundTrip, WithingsReadsWritesAndVerifies) {
  auto& world = server_->world();
  auto p = MakeWithingsProvider(Settings("withings"), *http_, clock_);
  auto grant = p->Authenticate(world.IssueAuthCode("withings", "bob"), "", "https://cb");
  ASSERT_TRUE(grant.ok()) << grant.error().message;
  EXPECT_EQ(grant->provider_user_id, world.ProviderUserId("withings", "bob"));
  const auto ctx = Ctx(*grant);
  const TimeRange range = History();

  for (DataType t : {DataType::kWeight, DataType::kSleepSession}) {
    auto metas = p->FetchMetadata(ctx, t, range);
    ASSERT_TRUE(metas.ok()) << metas.error().message;
    auto truth = world.Records("withings", "bob", t, range.start_ms, range.end_ms);
    ASSERT_FALSE(truth.empty());
    ASSERT_EQ(metas->size(), truth.size()) << DataTypeName(t);
    std::vector<std::string> ids;
    for (size_t i = 0; i < truth.size(); ++i) {
      EXPECT_EQ((*metas)[i].start_ms, truth[i].meta.start_ms);
      EXPECT_EQ((*metas)[i].end_ms, truth[i].meta.end_ms);
      EXPECT_EQ((*metas)[i].utc_offset_min, truth[i].meta.utc_offset_min);
      EXPECT_EQ((*metas)[i].modified_ms / 1000, truth[i].meta.modified_ms / 1000);
      ids.push_back((*metas)[i].id);
    }
    auto full = p->FetchPayloads(ctx, t, {ids.front(), ids.back()});
    ASSERT_TRUE(full.ok()) << full.error().message;
    const Record& got = (*full)[1];
    const Record& want = truth.back();
    if (t == DataType::kWeight) {
      EXPECT_NEAR(std::get<WeightData>(got.data).kg, std::get<WeightData>(want.data).kg, 1e-6);
      EXPECT_EQ(std::get<WeightData>(got.data).fat_ratio.has_value(),
                std::get<WeightData>(want.data).fat_ratio.has_value());
      // Sentinel digits survive the wire (unit -5).
      EXPECT_TRUE(sim::HasSentinel(got)) << std::get<WeightData>(got.data).kg;
    } else {
      EXPECT_EQ(std::get<SleepData>(got.data).deep_min, std::get<SleepData>(want.data).deep_min);
      EXPECT_EQ(std::get<SleepData>(got.data).awake_min, std::get<SleepData>(want.data).awake_min);
    }
  }

  // Push a weight: origin and offset round-trip through setmeas/getmeas.
  Record w;
  w.meta.id = "garmin-5";
  w.meta.type = DataType::kWeight;
  w.meta.start_ms = w.meta.end_ms = (range.end_ms - 2 * kDayMs) / 1000 * 1000;
  w.meta.utc_offset_min = 120;
  w.data = WeightData{71.25, 0.1875};
  w.meta.origin = OriginTag(Fingerprint(w));
  auto pushed = p->PushData(ctx, DataType::kWeight, {w});
  ASSERT_TRUE(pushed.ok());
  ASSERT_TRUE((*pushed)[0].ok) << (*pushed)[0].error.message;
  auto written = world.Written("withings", "bob");
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].record.meta.origin, w.meta.origin);
  EXPECT_EQ(written[0].record.meta.utc_offset_min, 120);
  auto back = p->FetchPayloads(ctx, DataType::kWeight, {(*pushed)[0].dest_id});
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ((*back)[0].meta.origin, w.meta.origin);
  EXPECT_EQ((*back)[0].meta.start_ms, w.meta.start_ms);
  EXPECT_EQ((*back)[0].meta.utc_offset_min, 120);
  EXPECT_NEAR(std::get<WeightData>((*back)[0].data).kg, 71.25, 1e-9);
  EXPECT_NEAR(*std::get<WeightData>((*back)[0].data).fat_ratio, 0.1875, 1e-9);
  EXPECT_EQ(Fingerprint((*back)[0]), Fingerprint(w));

  // The notification the simulator sends verifies with the shared secret.
  auto spec = sim::WithingsModule();
  auto hook = p->VerifyWebhook(ToWebhook(spec.make_webhook("bob", DataType::kWeight, world)));
  ASSERT_TRUE(hook.ok()) << hook.error().message;
  ASSERT_EQ(hook->events.size(), 1u);
  EXPECT_EQ(hook->events[0].provider_user_id, grant->provider_user_id);
  EXPECT_EQ(hook->events[0].type, DataType::kWeight);

  // Rotating refresh; an unknown refresh token is a revoked grant.
  auto refreshed = p->Refresh(grant->refresh_token);
  ASSERT_TRUE(refreshed.ok()) << refreshed.error().message;
  EXPECT_EQ(p->Refresh("nope").error().code, Errc::kAuthRevoked);

  // Rate limited (HTTP 429 from the SimServer with the 601 envelope).
  auto prof = world.Profile("withings");
  prof.app_limit = 1;
  world.SetProfile("withings", prof);
  auto ctx2 = Ctx(*refreshed);
  Result<std::vector<RecordMeta>> last = std::vector<RecordMeta>{};
  for (int i = 0; i < 2 && last.ok(); ++i) last = p->FetchMetadata(ctx2, DataType::kWeight, range);
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.error().code, Errc::kRateLimited);
  prof.app_limit = 0;
  world.SetProfile("withings", prof);

  // Signed revoke: the tokens stop working.
  ASSERT_TRUE(p->Revoke(ctx2).ok());
  auto after = p->FetchMetadata(ctx2, DataType::kWeight, range);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code, Errc::kUnauthenticated);
}

// Every user's weights keep their UTC offset through the zone names (whole-hour and half-hour).
TEST_F(SimRoundTrip, WithingsOffsetsSurviveForManyUsers) {
  auto& world = server_->world();
  auto p = MakeWithingsProvider(Settings("withings"), *http_, clock_);
  std::set<int32_t> offsets;
  for (int i = 0; i < 12; ++i) {
    const std::string user = "user" + std::to_string(i);
    auto grant = p->Authenticate(world.IssueAuthCode("withings", user), "", "");
    ASSERT_TRUE(grant.ok()) << grant.error().message;
    auto metas = p->FetchMetadata(Ctx(*grant), DataType::kWeight, History());
    ASSERT_TRUE(metas.ok()) << metas.error().message;
    auto truth =
        world.Records("withings", user, DataType::kWeight, History().start_ms, History().end_ms);
    ASSERT_EQ(metas->size(), truth.size());
    for (size_t j = 0; j < truth.size(); ++j) {
      EXPECT_EQ((*metas)[j].utc_offset_min, truth[j].meta.utc_offset_min) << user;
      offsets.insert(truth[j].meta.utc_offset_min);
    }
  }
  EXPECT_GE(offsets.size(), 4u);  // the users really live in different zones
}

}  // namespace
}  // namespace syncwell::providers
