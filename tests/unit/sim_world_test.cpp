// The simulator's World without sockets: deterministic synthetic data (realistic bounds,
// sentinels, provider subsets and cross-provider copies), OAuth (codes, rotation with grace,
// expiry, revocation), written records with visible duplicates, and admission (faults, rate
// limits, fail_next_writes). Time is a ManualClock; nothing sleeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "providers/sim/sim_server.hpp"
#include "providers/sim/world.hpp"

namespace syncwell::sim {
namespace {

using providers::DataType;
using providers::Record;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kDay = 86'400'000;
constexpr int64_t kAll = std::numeric_limits<int64_t>::max();
const std::vector<std::string> kProviders = {"strava", "withings", "garmin", "fitbit"};
const std::vector<DataType> kTypes = {DataType::kWorkout, DataType::kSleepSession, DataType::kSteps,
                                      DataType::kWeight};

SimSettings Unlimited(uint64_t seed = 42) {
  SimSettings s = DefaultSimSettings(/*rate_limits=*/false);
  s.seed = seed;
  return s;
}

std::vector<std::string> Ids(const std::vector<Record>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) out.push_back(r.meta.id + "/" + providers::Fingerprint(r));
  return out;
}

class SimWorldTest : public ::testing::Test {
 protected:
  int64_t Now() const { return ToUnixMillis(clock_.Now()); }
  std::vector<Record> All(const World& w, const std::string& provider, const std::string& user,
                          DataType t) {
    return w.Records(provider, user, t, 0, kAll);
  }
  ManualClock clock_;
};

// --- synthetic data ------------------------------------------------------------------------

TEST_F(SimWorldTest, SameSeedSameRecordsDifferentUsersAndSeedsDiffer) {
  World a(Unlimited(), clock_), b(Unlimited(), clock_), c(Unlimited(7), clock_);
  for (const auto& p : kProviders) {
    for (DataType t : kTypes) {
      EXPECT_EQ(Ids(All(a, p, "u1", t)), Ids(All(b, p, "u1", t)));
    }
  }
  auto u1 = All(a, "garmin", "u1", DataType::kSteps);
  auto u2 = All(a, "garmin", "u2", DataType::kSteps);
  ASSERT_FALSE(u1.empty());
  ASSERT_FALSE(u2.empty());
  EXPECT_NE(Ids(u1), Ids(u2));
  EXPECT_NE(Ids(u1), Ids(All(c, "garmin", "u1", DataType::kSteps)));
}

TEST_F(SimWorldTest, RecordsAreStableAsTimePassesAndNewOnesAppear) {
  World w(Unlimited(), clock_);
  const auto before = All(w, "fitbit", "u3", DataType::kWorkout);
  const int64_t t0 = Now();
  clock_.Advance(std::chrono::hours(72));
  const auto after = All(w, "fitbit", "u3", DataType::kWorkout);
  const auto after_ids = Ids(after);
  const std::set<std::string> later(after_ids.begin(), after_ids.end());
  for (const auto& r : before) {
    if (r.meta.start_ms >= t0 - 27 * kDay) {  // still inside the 30-day window
      EXPECT_TRUE(later.contains(r.meta.id + "/" + providers::Fingerprint(r))) << r.meta.id;
    }
  }
  for (const auto& r : after) EXPECT_LE(r.meta.modified_ms, Now());
  // Three more days of steps became visible at garmin/fitbit for some user.
  EXPECT_GT(w.Records("garmin", "u3", DataType::kSteps, t0 - kDay, kAll).size() +
                w.Records("fitbit", "u3", DataType::kSteps, t0 - kDay, kAll).size(),
            1u);
}

TEST_F(SimWorldTest, ProvidersHoldTheirSubsets) {
  World w(Unlimited(), clock_);
  size_t strava = 0, withings_weight = 0, withings_sleep = 0;
  for (int i = 0; i < 20; ++i) {
    const std::string u = "u" + std::to_string(i);
    strava += All(w, "strava", u, DataType::kWorkout).size();
    EXPECT_TRUE(All(w, "strava", u, DataType::kSteps).empty());
    EXPECT_TRUE(All(w, "strava", u, DataType::kWeight).empty());
    EXPECT_TRUE(All(w, "strava", u, DataType::kSleepSession).empty());
    EXPECT_TRUE(All(w, "withings", u, DataType::kWorkout).empty());
    EXPECT_TRUE(All(w, "withings", u, DataType::kSteps).empty());
    withings_weight += All(w, "withings", u, DataType::kWeight).size();
    withings_sleep += All(w, "withings", u, DataType::kSleepSession).size();
    EXPECT_TRUE(All(w, "google_fit", u, DataType::kWorkout).empty());
  }
  EXPECT_GT(strava, 20u);
  EXPECT_GT(withings_weight, 20u);
  EXPECT_GT(withings_sleep, 20u);
}

// The union over providers is one person's timeline; check it is realistic.
TEST_F(SimWorldTest, TimelineIsRealistic) {
  World w(Unlimited(), clock_);
  const int64_t now = Now();
  for (int i = 0; i < 40; ++i) {
    const std::string u = "person" + std::to_string(i);
    std::map<int64_t, std::pair<Record, int>> workouts;  // by start (second copies merged)
    std::map<int64_t, Record> steps, sleep, weight;      // by local day
    int32_t offset = 0;
    for (const auto& p : kProviders) {
      for (DataType t : kTypes) {
        std::set<std::string> ids;
        for (const auto& r : All(w, p, u, t)) {
          EXPECT_TRUE(ids.insert(r.meta.id).second) << "duplicate id " << r.meta.id;
          EXPECT_TRUE(std::all_of(r.meta.id.begin(), r.meta.id.end(), ::isdigit)) << r.meta.id;
          EXPECT_LE(r.meta.modified_ms, now);
          EXPECT_GE(r.meta.start_ms, now - 30 * kDay);
          if (t != DataType::kSleepSession) {  // stage minutes carry no sentinel
            EXPECT_TRUE(HasSentinel(r)) << p << " " << providers::DataTypeName(t);
          }
          offset = r.meta.utc_offset_min;
          const int64_t local_day = (r.meta.start_ms + offset * 60'000LL) / kDay;
          if (t == DataType::kWorkout) {
            auto it = workouts.lower_bound(r.meta.start_ms - 30'000);
            if (it != workouts.end() && it->first < r.meta.start_ms + 30'000) {
              ++it->second.second;  // a second provider's copy: < 30 s apart
              EXPECT_NE(it->first, r.meta.start_ms);
              EXPECT_EQ(it->second.first.meta.activity, r.meta.activity);
            } else {
              workouts[r.meta.start_ms] = {r, 1};
            }
          } else if (t == DataType::kSteps) {
            steps[local_day] = r;
          } else if (t == DataType::kSleepSession) {
            sleep[r.meta.start_ms] = r;
          } else {
            weight[local_day] = r;
          }
        }
      }
    }
    // Steps: daily totals 2k-18k from local midnight to local midnight.
    ASSERT_GE(steps.size(), 25u) << u;
    for (const auto& [day, r] : steps) {
      const auto& s = std::get<providers::StepsData>(r.data);
      EXPECT_GE(s.count, 2000);
      EXPECT_LE(s.count, 18000);
      EXPECT_EQ((r.meta.start_ms + offset * 60'000LL) % kDay, 0);
      EXPECT_EQ(r.meta.end_ms - r.meta.start_ms, kDay);
    }
    // Workouts: 3-6 per full week, 20-120 min, plausible values.
    ASSERT_GE(workouts.size(), 10u) << u;
    std::map<int64_t, int> per_week;
    for (const auto& [start, entry] : workouts) {
      const Record& r = entry.first;
      const auto& d = std::get<providers::WorkoutData>(r.data);
      const double minutes = static_cast<double>(r.meta.end_ms - r.meta.start_ms) / 60'000.0;
      EXPECT_GE(minutes, 20);
      EXPECT_LE(minutes, 120);
      EXPECT_NE(d.name.find(kSentinelTag), std::string::npos) << d.name;
      EXPECT_TRUE(HasSentinelFraction(d.energy_kcal));
      EXPECT_GT(d.energy_kcal, 80);
      EXPECT_LT(d.energy_kcal, 1700);
      EXPECT_GE(d.avg_heart_rate_bpm, 90);
      EXPECT_LE(d.avg_heart_rate_bpm, 180);
      const double speed = d.distance_m / (minutes * 60);
      const std::string& a = r.meta.activity;
      if (a == "strength") {
        EXPECT_EQ(d.distance_m, 0);
      } else {
        EXPECT_TRUE(HasSentinelFraction(d.distance_m));
        const double lo = a == "run" ? 2.3 : a == "ride" ? 5.4 : a == "walk" ? 1.1 : 0.4;
        const double hi = a == "run" ? 4.1 : a == "ride" ? 9.1 : a == "walk" ? 1.7 : 1.0;
        EXPECT_GE(speed, lo) << a;
        EXPECT_LE(speed, hi) << a;
      }
      const int64_t local_day = (r.meta.start_ms + offset * 60'000LL) / kDay;
      ++per_week[(local_day + 3) / 7];  // ISO weeks (1970-01-01 was a Thursday)
    }
    const int64_t first_full_week = ((now - 30 * kDay + offset * 60'000LL) / kDay + 3) / 7 + 1;
    const int64_t last_full_week = ((now + offset * 60'000LL) / kDay + 3) / 7 - 1;
    for (int64_t wk = first_full_week; wk <= last_full_week; ++wk) {
      EXPECT_GE(per_week[wk], 3) << u << " week " << wk;
      EXPECT_LE(per_week[wk], 6) << u << " week " << wk;
    }
    // Sleep: one session a night, 5-9 h, stages add up.
    ASSERT_GE(sleep.size(), 25u);
    int64_t prev_end = 0;
    for (const auto& [start, r] : sleep) {
      const auto& z = std::get<providers::SleepData>(r.data);
      const int64_t minutes = (r.meta.end_ms - r.meta.start_ms) / 60'000;
      EXPECT_GE(minutes, 300);
      EXPECT_LE(minutes, 540);
      EXPECT_EQ(z.deep_min + z.light_min + z.rem_min + z.awake_min, minutes);
      EXPECT_GT(z.light_min, 0);
      EXPECT_GT(r.meta.start_ms, prev_end);  // no overlapping nights
      prev_end = r.meta.end_ms;
    }
    // Weight: every 1-3 days around a stable base.
    ASSERT_GE(weight.size(), 8u);
    double lo = 1e9, hi = 0;
    int64_t prev_day = -1;
    for (const auto& [day, r] : weight) {
      const auto& k = std::get<providers::WeightData>(r.data);
      lo = std::min(lo, k.kg);
      hi = std::max(hi, k.kg);
      EXPECT_EQ(r.meta.start_ms, r.meta.end_ms);
      ASSERT_TRUE(k.fat_ratio.has_value());
      EXPECT_GT(*k.fat_ratio, 0.1);
      EXPECT_LT(*k.fat_ratio, 0.35);
      if (prev_day >= 0) {
        EXPECT_LE(day - prev_day, 3);
      }
      prev_day = day;
    }
    EXPECT_GE(lo, 50);
    EXPECT_LE(hi, 110);
    EXPECT_LT(hi - lo, 5);
  }
}

TEST_F(SimWorldTest, AboutOneInFiveWorkoutsIsAtTwoProviders) {
  World w(Unlimited(), clock_);
  int total = 0, doubled = 0;
  for (int i = 0; i < 150; ++i) {
    const std::string u = "u" + std::to_string(i);
    std::vector<Record> all;
    for (const char* p : {"strava", "garmin", "fitbit"}) {
      auto rs = All(w, p, u, DataType::kWorkout);
      all.insert(all.end(), rs.begin(), rs.end());
    }
    std::sort(all.begin(), all.end(),
              [](const Record& a, const Record& b) { return a.meta.start_ms < b.meta.start_ms; });
    for (size_t j = 0; j < all.size(); ++j) {
      ++total;
      if (j + 1 < all.size() && all[j + 1].meta.start_ms - all[j].meta.start_ms < 30'000) {
        ++doubled;
        EXPECT_EQ(all[j + 1].meta.end_ms - all[j + 1].meta.start_ms,
                  all[j].meta.end_ms - all[j].meta.start_ms);
        EXPECT_NE(all[j].meta.id, all[j + 1].meta.id);
        ++j;
      }
    }
  }
  const double share = static_cast<double>(doubled) / total;
  EXPECT_GT(share, 0.12) << doubled << "/" << total;
  EXPECT_LT(share, 0.28) << doubled << "/" << total;
}

TEST_F(SimWorldTest, RangeFilterAndFindById) {
  World w(Unlimited(), clock_);
  const auto all = All(w, "garmin", "u5", DataType::kSleepSession);
  ASSERT_GE(all.size(), 10u);
  const int64_t from = all[3].meta.start_ms, to = all[7].meta.start_ms;
  const auto some = w.Records("garmin", "u5", DataType::kSleepSession, from, to);
  ASSERT_EQ(some.size(), 4u);
  EXPECT_EQ(some.front().meta.id, all[3].meta.id);
  for (const auto& r : all) {
    auto found = w.Find("garmin", "u5", DataType::kSleepSession, r.meta.id);
    ASSERT_TRUE(found.has_value()) << r.meta.id;
    EXPECT_EQ(providers::Fingerprint(*found), providers::Fingerprint(r));
  }
  EXPECT_FALSE(w.Find("garmin", "u5", DataType::kWorkout, all[0].meta.id).has_value());
  EXPECT_FALSE(w.Find("garmin", "u6", DataType::kSleepSession, all[0].meta.id).has_value());
  EXPECT_FALSE(w.Find("fitbit", "u5", DataType::kSleepSession, all[0].meta.id).has_value());
  EXPECT_FALSE(w.Find("garmin", "u5", DataType::kSleepSession, "nope").has_value());
  EXPECT_FALSE(w.Find("garmin", "u5", DataType::kSleepSession, "").has_value());
}

TEST(SimSentinelTest, Helpers) {
  EXPECT_DOUBLE_EQ(SentinelValue(12.9), 12.4242);
  EXPECT_TRUE(HasSentinelFraction(10234.4242));
  EXPECT_FALSE(HasSentinelFraction(10234.4243));
  Record r;
  r.data = providers::WeightData{72.35042, std::nullopt};
  EXPECT_TRUE(HasSentinel(r));
  r.data = providers::WeightData{72.35, std::nullopt};
  EXPECT_FALSE(HasSentinel(r));
  r.data = providers::WorkoutData{"Lunch Ride", 1000.0, 300.0, 120};
  EXPECT_FALSE(HasSentinel(r));
  r.data = providers::WorkoutData{"Lunch Ride SWSENT", 1000.0, 300.0, 120};
  EXPECT_TRUE(HasSentinel(r));
}

TEST_F(SimWorldTest, AppendNativeIsVisibleAtOnce) {
  World w(Unlimited(), clock_);
  const auto before = All(w, "strava", "u1", DataType::kWorkout).size();
  auto r = w.AppendNative("strava", "u1", DataType::kWorkout);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(HasSentinel(*r));
  EXPECT_EQ(r->meta.modified_ms, Now());
  EXPECT_LE(r->meta.end_ms, Now());
  const auto after = All(w, "strava", "u1", DataType::kWorkout);
  EXPECT_EQ(after.size(), before + 1);
  EXPECT_EQ(after.back().meta.id, r->meta.id);
  EXPECT_TRUE(w.Find("strava", "u1", DataType::kWorkout, r->meta.id).has_value());
  auto bad = w.AppendNative("strava", "u1", DataType::kSteps);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
}

// --- OAuth -----------------------------------------------------------------------------------

TEST_F(SimWorldTest, CodeExchangeAndBearerAuthorization) {
  World w(Unlimited(), clock_);
  const std::string code = w.IssueAuthCode("strava", "alice");
  auto g = w.ExchangeCode("strava", code);
  ASSERT_TRUE(g.ok());
  EXPECT_GE(g->access_token.size(), 32u);
  EXPECT_NE(g->access_token, g->refresh_token);
  EXPECT_EQ(g->expires_at, clock_.Now() + seconds(6 * 3600));
  EXPECT_EQ(g->provider_user_id, w.ProviderUserId("strava", "alice"));
  auto who = w.Authorize("strava", g->access_token);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(*who, "alice");
  EXPECT_EQ(w.Authorize("fitbit", g->access_token).error().code, Errc::kUnauthenticated);
  EXPECT_EQ(w.Authorize("strava", "garbage").error().code, Errc::kUnauthenticated);
  // Codes are one-time and per provider.
  EXPECT_EQ(w.ExchangeCode("strava", code).error().code, Errc::kAuthRevoked);
  EXPECT_EQ(w.ExchangeCode("fitbit", w.IssueAuthCode("strava", "bob")).error().code,
            Errc::kAuthRevoked);
  // Access tokens expire after token_ttl.
  clock_.Advance(seconds(6 * 3600));
  EXPECT_EQ(w.Authorize("strava", g->access_token).error().code, Errc::kUnauthenticated);
}

TEST_F(SimWorldTest, RefreshRotatesWithAGracePeriod) {
  World w(Unlimited(), clock_);
  auto g = w.ExchangeCode("fitbit", w.IssueAuthCode("fitbit", "alice"));
  ASSERT_TRUE(g.ok());
  auto r1 = w.Refresh("fitbit", g->refresh_token);
  ASSERT_TRUE(r1.ok());
  EXPECT_NE(r1->refresh_token, g->refresh_token);
  EXPECT_NE(r1->access_token, g->access_token);
  EXPECT_TRUE(w.Authorize("fitbit", r1->access_token).ok());
  // A racing refresh with the old token within 60 s also succeeds.
  clock_.Advance(seconds(59));
  auto r2 = w.Refresh("fitbit", g->refresh_token);
  ASSERT_TRUE(r2.ok());
  EXPECT_TRUE(w.Authorize("fitbit", r2->access_token).ok());
  // After the grace period the old one is dead; the newest still works.
  clock_.Advance(seconds(2));
  auto late = w.Refresh("fitbit", g->refresh_token);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, Errc::kAuthRevoked);
  EXPECT_TRUE(w.Refresh("fitbit", r2->refresh_token).ok());
  EXPECT_EQ(w.Refresh("fitbit", "unknown").error().code, Errc::kAuthRevoked);
  EXPECT_EQ(w.Refresh("strava", r1->refresh_token).error().code, Errc::kAuthRevoked);
}

TEST_F(SimWorldTest, ExpireAndRevoke) {
  World w(Unlimited(), clock_);
  auto g = w.ExchangeCode("garmin", w.IssueAuthCode("garmin", "alice"));
  auto other = w.ExchangeCode("garmin", w.IssueAuthCode("garmin", "bob"));
  ASSERT_TRUE(g.ok() && other.ok());
  w.ExpireTokens("garmin", "alice");
  EXPECT_EQ(w.Authorize("garmin", g->access_token).error().code, Errc::kUnauthenticated);
  EXPECT_TRUE(w.Authorize("garmin", other->access_token).ok());
  auto fresh = w.Refresh("garmin", g->refresh_token);
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(w.Authorize("garmin", fresh->access_token).ok());

  // Revoking one token kills its grant (access + refresh), not the user's other grants.
  auto second = w.ExchangeCode("garmin", w.IssueAuthCode("garmin", "alice"));
  ASSERT_TRUE(second.ok());
  w.RevokeToken("garmin", fresh->access_token);
  EXPECT_FALSE(w.Authorize("garmin", fresh->access_token).ok());
  EXPECT_EQ(w.Refresh("garmin", fresh->refresh_token).error().code, Errc::kAuthRevoked);
  EXPECT_TRUE(w.Authorize("garmin", second->access_token).ok());

  w.RevokeUser("garmin", "alice");
  EXPECT_FALSE(w.Authorize("garmin", second->access_token).ok());
  EXPECT_EQ(w.Refresh("garmin", second->refresh_token).error().code, Errc::kAuthRevoked);
  EXPECT_TRUE(w.Authorize("garmin", other->access_token).ok());
}

TEST_F(SimWorldTest, ProviderUserIdsLookNativeAndMapBack) {
  World w(Unlimited(), clock_);
  const std::string strava = w.ProviderUserId("strava", "alice");
  EXPECT_TRUE(std::all_of(strava.begin(), strava.end(), ::isdigit)) << strava;
  EXPECT_EQ(w.ProviderUserId("fitbit", "alice").size(), 7u);
  const std::string garmin = w.ProviderUserId("garmin", "alice");
  EXPECT_EQ(garmin.size(), 36u);
  EXPECT_EQ(garmin[8], '-');
  EXPECT_EQ(w.ProviderUserId("strava", "alice"), strava);
  EXPECT_EQ(w.SimUserFor("strava", strava), "alice");
  EXPECT_FALSE(w.SimUserFor("strava", "12345").has_value());
  EXPECT_FALSE(w.SimUserFor("fitbit", strava).has_value());
  std::set<std::string> ids;
  for (int i = 0; i < 2000; ++i) ids.insert(w.ProviderUserId("fitbit", "u" + std::to_string(i)));
  EXPECT_EQ(ids.size(), 2000u);
  // Deterministic per seed.
  World again(Unlimited(), clock_);
  EXPECT_EQ(again.ProviderUserId("strava", "alice"), strava);
}

// --- written records ---------------------------------------------------------------------------

Record AWorkout(int64_t start_ms, std::string origin) {
  Record r;
  r.meta.type = DataType::kWorkout;
  r.meta.start_ms = start_ms;
  r.meta.end_ms = start_ms + 1'800'000;
  r.meta.activity = "run";
  r.meta.origin = std::move(origin);
  r.data = providers::WorkoutData{"Morning Run SWSENT", 5000.4242, 400.4242, 150};
  return r;
}

TEST_F(SimWorldTest, WritesAreStoredAndDuplicatesCounted) {
  World w(Unlimited(), clock_);
  const int64_t t = Now() - 3 * kDay;
  const std::string id1 = w.Write("fitbit", "alice", AWorkout(t, "sw1:aaa"));
  const std::string id2 = w.Write("fitbit", "alice", AWorkout(t, "sw1:aaa"));  // retried push
  w.Write("fitbit", "alice", AWorkout(t + kDay, "sw1:bbb"));
  w.Write("fitbit", "bob", AWorkout(t, "sw1:aaa"));        // another user: not a duplicate
  w.Write("garmin", "alice", AWorkout(t, "sw1:aaa"));      // another provider: not a duplicate
  w.Write("fitbit", "alice", AWorkout(t + 2 * kDay, ""));  // no origin: keyed by fingerprint
  w.Write("fitbit", "alice", AWorkout(t + 2 * kDay, ""));
  EXPECT_NE(id1, id2);

  const auto written = w.Written("fitbit", "alice");
  ASSERT_EQ(written.size(), 5u);
  EXPECT_EQ(written[0].write_count, 2);
  EXPECT_EQ(written[1].write_count, 2);
  EXPECT_EQ(written[2].write_count, 1);
  EXPECT_EQ(written[3].write_count, 2);
  EXPECT_EQ(written[0].record.meta.origin, "sw1:aaa");
  EXPECT_EQ(written[0].written_at_ms, Now());
  const auto totals = w.Totals();
  EXPECT_EQ(totals.writes, 7);
  EXPECT_EQ(totals.records, 5);
  EXPECT_EQ(totals.duplicates, 2);

  // Written records are part of what the provider holds.
  const auto held = w.Records("fitbit", "alice", DataType::kWorkout, t - 1, t + 1);
  EXPECT_EQ(std::count_if(held.begin(), held.end(),
                          [](const Record& r) { return r.meta.origin == "sw1:aaa"; }),
            2);
  auto found = w.Find("fitbit", "alice", DataType::kWorkout, id2);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->meta.modified_ms, Now());
  EXPECT_TRUE(w.Written("strava", "alice").empty());
}

// --- admission ---------------------------------------------------------------------------------

TEST_F(SimWorldTest, ErrorAndTimeoutRatesFollowTheProfileDeterministically) {
  auto run = [&](uint64_t seed) {
    World w(Unlimited(seed), clock_);
    ProviderProfile p = w.Profile("strava");
    p.error_rate = 0.2;
    p.timeout_rate = 0.1;
    p.latency_min = milliseconds(10);
    p.latency_max = milliseconds(50);
    w.SetProfile("strava", p);
    std::vector<int> kinds;
    std::set<int64_t> latencies;
    for (int i = 0; i < 4000; ++i) {
      Admission a = w.Admit("strava", "u1", false);
      kinds.push_back(static_cast<int>(a.kind));
      EXPECT_GE(a.latency, milliseconds(10));
      EXPECT_LE(a.latency, milliseconds(50));
      latencies.insert(a.latency.count());
    }
    EXPECT_GT(latencies.size(), 30u);
    auto counters = w.Counters();
    EXPECT_EQ(counters["strava.error_5xx"] + counters["strava.timeout"] + counters["strava.ok"],
              4000);
    return std::make_pair(kinds, counters);
  };
  auto [kinds, counters] = run(42);
  EXPECT_NEAR(counters["strava.error_5xx"] / 4000.0, 0.2, 0.03);
  EXPECT_NEAR(counters["strava.timeout"] / 4000.0, 0.1, 0.03);
  EXPECT_EQ(run(42).first, kinds);  // same seed, same sequence
  EXPECT_NE(run(43).first, kinds);
}

TEST_F(SimWorldTest, RateLimitsPerAppAndPerUserWithRetryAfter) {
  World w(Unlimited(), clock_);
  ProviderProfile p = w.Profile("strava");
  p.app_limit = 5;
  p.app_window = seconds(900);
  w.SetProfile("strava", p);
  ProviderProfile f = w.Profile("fitbit");
  f.user_limit = 3;
  f.user_window = seconds(3600);
  w.SetProfile("fitbit", f);

  const int64_t now_s = Now() / 1000;
  const int64_t to_window_end = 900 - now_s % 900;
  for (int i = 0; i < 5; ++i) {
    Admission a = w.Admit("strava", "u" + std::to_string(i), false);
    ASSERT_EQ(a.kind, Admission::Kind::kOk) << i;
    EXPECT_EQ(a.limit_scope, "app");
    EXPECT_EQ(a.used, i + 1);
  }
  Admission limited = w.Admit("strava", "someone-else", false);
  ASSERT_EQ(limited.kind, Admission::Kind::kRateLimited);
  EXPECT_EQ(limited.limit_scope, "app");
  EXPECT_EQ(limited.limit, 5);
  EXPECT_EQ(limited.retry_after, seconds(to_window_end));
  clock_.Advance(seconds(to_window_end));
  EXPECT_EQ(w.Admit("strava", "u1", false).kind, Admission::Kind::kOk);

  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(w.Admit("fitbit", "alice", false).kind, Admission::Kind::kOk);
  Admission user_limited = w.Admit("fitbit", "alice", false);
  EXPECT_EQ(user_limited.kind, Admission::Kind::kRateLimited);
  EXPECT_EQ(user_limited.limit_scope, "user");
  EXPECT_GT(user_limited.retry_after, seconds(0));
  EXPECT_LE(user_limited.retry_after, seconds(3600));
  EXPECT_EQ(w.Admit("fitbit", "bob", false).kind, Admission::Kind::kOk);
  EXPECT_EQ(w.Counters()["strava.rate_limited_app"], 1);
  EXPECT_EQ(w.Counters()["fitbit.rate_limited_user"], 1);
}

TEST_F(SimWorldTest, DefaultProfilesCarryTheProvidersLimits) {
  const SimSettings on = DefaultSimSettings();
  EXPECT_EQ(on.profiles.at("strava").app_limit, 600);
  EXPECT_EQ(on.profiles.at("strava").app_window, seconds(900));
  EXPECT_EQ(on.profiles.at("fitbit").user_limit, 150);
  EXPECT_EQ(on.profiles.at("fitbit").user_window, seconds(3600));
  EXPECT_EQ(on.profiles.at("garmin").app_limit, 100);
  EXPECT_EQ(on.profiles.at("garmin").app_window, seconds(60));
  EXPECT_GT(on.profiles.at("withings").app_limit, 0);
  World w(on, clock_);
  int limited = 0;
  for (int i = 0; i < 160; ++i) {
    if (w.Admit("fitbit", "alice", false).kind == Admission::Kind::kRateLimited) ++limited;
  }
  EXPECT_EQ(limited, 10);
  for (const auto& [name, p] : DefaultSimSettings(false).profiles) {
    EXPECT_EQ(p.app_limit, 0) << name;
    EXPECT_EQ(p.user_limit, 0) << name;
  }
}

TEST_F(SimWorldTest, FailNextWritesOnlyHitsWrites) {
  World w(Unlimited(), clock_);
  ProviderProfile p = w.Profile("fitbit");
  p.fail_next_writes = 2;
  w.SetProfile("fitbit", p);
  EXPECT_EQ(w.Admit("fitbit", "u1", false).kind, Admission::Kind::kOk);
  EXPECT_EQ(w.Admit("fitbit", "u1", true).kind, Admission::Kind::kError5xx);
  EXPECT_EQ(w.Admit("fitbit", "u1", false).kind, Admission::Kind::kOk);
  EXPECT_EQ(w.Admit("fitbit", "u1", true).kind, Admission::Kind::kError5xx);
  Admission ok = w.Admit("fitbit", "u1", true);
  EXPECT_EQ(ok.kind, Admission::Kind::kOk);
  EXPECT_FALSE(ok.fail_after_apply);
  EXPECT_EQ(w.Profile("fitbit").fail_next_writes, 0);

  p.fail_next_writes = 1;
  p.fail_after_apply = true;
  w.SetProfile("fitbit", p);
  Admission after = w.Admit("fitbit", "u1", true);
  EXPECT_EQ(after.kind, Admission::Kind::kOk);
  EXPECT_TRUE(after.fail_after_apply);
  EXPECT_FALSE(w.Admit("fitbit", "u1", true).fail_after_apply);
  EXPECT_EQ(w.Counters()["fitbit.write_failed"], 3);
}

}  // namespace
}  // namespace syncwell::sim
