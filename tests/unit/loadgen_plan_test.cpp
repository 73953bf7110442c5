// The S14 plan (phases x scale), population file, Zipf picker, the request mix of MixedSource
// (fresh keys, byte-identical retries, GETs of the user's own jobs, reservoir sample), the
// Prometheus text parser and the SLO checks — the Asio-free parts of `loadgen --plan`.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "loadgen/chart.hpp"
#include "loadgen/metrics_scrape.hpp"
#include "loadgen/plan.hpp"
#include "loadgen/slo_report.hpp"
#include "loadgen/timeline.hpp"

namespace syncwell::loadgen {
namespace {

using std::chrono::milliseconds;

std::string TempFile(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << content;
  return path;
}

std::vector<PopUser> Users(size_t n) {
  std::vector<PopUser> u;
  for (size_t i = 0; i < n; ++i)
    u.push_back(
        {"tok" + std::to_string(i), "conn_s" + std::to_string(i), "conn_d" + std::to_string(i)});
  return u;
}

std::string Header(const std::string& req, const std::string& name) {
  const size_t p = req.find(name + ": ");
  if (p == std::string::npos) return {};
  const size_t start = p + name.size() + 2;
  return req.substr(start, req.find("\r\n", start) - start);
}

TEST(LoadgenPlan, BriefPhasesScaleDurationsNotRates) {
  auto full = MakePlan("brief", 1.0);
  ASSERT_TRUE(full.ok());
  ASSERT_GE(full->phases.size(), 4u);
  EXPECT_EQ(full->phases[0].name, "baseline");
  EXPECT_EQ(full->phases[0].rate, 100);
  EXPECT_EQ(full->phases[0].duration, milliseconds(600'000));
  EXPECT_EQ(full->phases[1].name, "soak");
  EXPECT_EQ(full->phases[1].rate, 1000);
  EXPECT_EQ(full->phases[1].duration, milliseconds(1'800'000));
  EXPECT_EQ(full->phases[2].name, "peak");
  EXPECT_EQ(full->phases[2].rate, 3000);
  EXPECT_EQ(full->phases[2].duration, milliseconds(900'000));
  EXPECT_TRUE(full->phases[3].stress);
  EXPECT_GT(full->phases[3].rate, 3000);
  for (size_t i = 4; i < full->phases.size(); ++i)
    EXPECT_GT(full->phases[i].rate, full->phases[i - 1].rate);

  auto short_plan = MakePlan("brief", 0.05);
  ASSERT_TRUE(short_plan.ok());
  ASSERT_EQ(short_plan->phases.size(), full->phases.size());
  for (size_t i = 0; i < full->phases.size(); ++i) {
    EXPECT_EQ(short_plan->phases[i].rate, full->phases[i].rate) << i;
    EXPECT_EQ(short_plan->phases[i].duration.count(), full->phases[i].duration.count() / 20) << i;
  }
}

TEST(LoadgenPlan, SmokeHasTheSamePhasesAtLowRates) {
  auto smoke = MakePlan("smoke", 0.01);
  auto brief = MakePlan("brief", 0.01);
  ASSERT_TRUE(smoke.ok() && brief.ok());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(smoke->phases[i].name, brief->phases[i].name);
    EXPECT_EQ(smoke->phases[i].duration, brief->phases[i].duration);
    EXPECT_LE(smoke->phases[i].rate, 50);
  }
  EXPECT_FALSE(MakePlan("nope", 1).ok());
  EXPECT_FALSE(MakePlan("brief", 0).ok());
  EXPECT_FALSE(MakePlan("brief", -1).ok());
}

TEST(LoadgenPlan, StressErrorShareCountsServerAndTransportFailures) {
  RunStats s;
  s.scheduled = 1000;
  s.status_4xx = 50;  // plain 4xx (not 429) are the client's fault: not counted
  EXPECT_DOUBLE_EQ(StressErrorShare(s, 0), 0.0);
  s.status_5xx = 4;
  s.err_timeout = 3;
  s.not_sent = 2;
  EXPECT_DOUBLE_EQ(StressErrorShare(s, 6), 15.0 / 1000.0);
}

TEST(LoadgenPopulation, ReadsThreeColumnLinesAndRejectsOthers) {
  auto ok = LoadPopulation(TempFile("pop_ok.txt", "# comment\nt1 s1 d1\n\nt2 s2 d2\n"));
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[1].token, "t2");
  EXPECT_EQ((*ok)[1].dst, "d2");
  EXPECT_FALSE(LoadPopulation(TempFile("pop_bad.txt", "t1\n")).ok());
  EXPECT_FALSE(LoadPopulation(TempFile("pop_empty.txt", "# nothing\n")).ok());
  EXPECT_FALSE(LoadPopulation(::testing::TempDir() + "/does-not-exist").ok());
}

TEST(LoadgenZipf, SkewMatchesTheDistribution) {
  ZipfPicker z(1000, 1.1);
  std::mt19937_64 rng(7);
  std::vector<int> hits(1000, 0);
  constexpr int kDraws = 200'000;
  for (int i = 0; i < kDraws; ++i) ++hits[z.Pick(rng)];
  // Rank 0 holds 1/H(1000, 1.1) of the mass (~15%); rank 9 about 10^-1.1 of rank 0.
  EXPECT_NEAR(hits[0] / double(kDraws), z.Probability(0), 0.01);
  EXPECT_NEAR(z.Probability(9) / z.Probability(0), std::pow(10.0, -1.1), 1e-9);
  EXPECT_GT(hits[0], 5 * hits[9]);
  int top10 = 0;
  for (int i = 0; i < 10; ++i) top10 += hits[i];
  EXPECT_GT(top10, kDraws / 3);  // a few users are hot
  EXPECT_GT(hits[999], 0);       // and the tail is still visited
}

TEST(LoadgenMix, FreshKeysRetriesAndOwnJobs) {
  MixOptions o;
  o.retry_share = 0.2;
  o.follow_sample = 5;
  o.keep_all_jobs = true;
  o.seed = 42;
  Target t;
  t.host = "127.0.0.1";
  t.port = "8080";
  MixedSource src(Users(50), {t}, o);
  src.BeginPhase(1);
  std::set<std::string> fresh_keys;
  std::map<std::string, std::string> job_of_key;  // what the "server" answered per key
  int posts = 0, retries = 0, get_jobs = 0, get_configs = 0, job_counter = 0;
  Outgoing out;
  for (int i = 0; i < 2000; ++i) {
    src.Next(0, 0, &out);
    const std::string& req = out.bytes;
    ASSERT_NE(req.find("Host: 127.0.0.1:8080\r\n"), std::string::npos);
    const std::string token = Header(req, "Authorization").substr(7);
    ASSERT_EQ(token, "tok" + std::to_string(out.user));
    const std::string key = Header(req, "Idempotency-Key");
    std::string body;
    int status = 200;
    if (req.starts_with("POST /v1/sync-jobs ")) {
      ASSERT_EQ(key.size(), 36u);
      ASSERT_NE(req.find("\"sourceConnectionId\":\"conn_s" + std::to_string(out.user) + "\""),
                std::string::npos);
      if (fresh_keys.insert(key).second) {
        ++posts;
        job_of_key[key] = "job_" + std::to_string(job_counter++);
      } else {
        ++retries;  // a retry re-sends an earlier request byte for byte
      }
      status = 202;
      body = R"({"jobId":")" + job_of_key[key] + R"(","status":"QUEUED"})";
    } else if (req.starts_with("GET /v1/sync-jobs/")) {
      ++get_jobs;
      ASSERT_TRUE(key.empty());
      const std::string id = req.substr(18, req.find(' ', 18) - 18);
      ASSERT_TRUE(id.starts_with("job_")) << id;
    } else {
      ASSERT_TRUE(req.starts_with("GET /v1/sync-configs ")) << req;
      ++get_configs;
    }
    src.OnResponse(0, out, status, body);
  }
  EXPECT_GT(retries, 200);  // ~20% of 2000
  EXPECT_LT(retries, 600);
  EXPECT_GT(posts, 600);  // ~50% of the rest
  EXPECT_GT(get_jobs, 200);
  EXPECT_GT(get_configs, 200);
  auto phase = src.TakePhase();
  EXPECT_EQ(phase.counts.accepted, static_cast<uint64_t>(posts));
  EXPECT_EQ(phase.counts.sent[static_cast<int>(RequestKind::kRetry)],
            static_cast<uint64_t>(retries));
  EXPECT_EQ(phase.counts.retry_same_id, static_cast<uint64_t>(retries));
  EXPECT_EQ(phase.all.size(), static_cast<size_t>(posts));
  EXPECT_EQ(phase.sample.size(), 5u);
  std::set<std::string> ids;
  for (const auto& j : phase.all) ids.insert(j.job_id);
  for (const auto& j : phase.sample) EXPECT_TRUE(ids.count(j.job_id)) << j.job_id;
}

TEST(LoadgenMix, RoundRobinTargetsGetTheirOwnHostHeader) {
  MixOptions o;
  o.retry_share = 0;
  Target a, b;
  a.host = "10.0.0.1";
  a.port = "8080";
  b.host = "10.0.0.2";
  b.port = "80";
  MixedSource src(Users(3), {a, b}, o);
  src.BeginPhase(2);
  Outgoing out;
  src.Next(0, 0, &out);
  EXPECT_NE(out.bytes.find("Host: 10.0.0.1:8080\r\n"), std::string::npos);
  src.Next(1, 1, &out);
  EXPECT_NE(out.bytes.find("Host: 10.0.0.2\r\n"), std::string::npos);
}

TEST(LoadgenJson, FieldAndTimestamps) {
  EXPECT_EQ(JsonStringField(R"({"jobId":"job_1","status": "SUCCEEDED"})", "status"), "SUCCEEDED");
  EXPECT_EQ(JsonStringField(R"({"jobId":"job_1"})", "status"), "");
  EXPECT_EQ(ParseRfc3339Millis("1970-01-01T00:00:01.250Z"), 1250);
  EXPECT_EQ(
      ParseRfc3339Millis("2026-11-27T14:20:40.5Z") - ParseRfc3339Millis("2026-11-27T14:20:40Z"),
      500);
  EXPECT_EQ(ParseRfc3339Millis("garbage"), -1);
  EXPECT_EQ(ParseRfc3339Millis("2026-11-27T14:20:40"), -1);  // no zone
}

constexpr const char* kMetrics = R"(# HELP syncwell_queue_visible_messages x
# TYPE syncwell_queue_visible_messages gauge
syncwell_queue_visible_messages 12
syncwell_queue_oldest_message_age_seconds 3.5
syncwell_queue_dlq_messages 0
syncwell_auth_decision_cache_hits_total 950
syncwell_auth_decision_cache_misses_total 50
syncwell_cache_requests_total{cache="config",outcome="hit"} 90
syncwell_cache_requests_total{cache="config",outcome="miss"} 8
syncwell_cache_requests_total{cache="config",outcome="error"} 2
syncwell_cache_requests_total{cache="other",outcome="hit"} 1000
syncwell_worker_jobs_total{outcome="succeeded"} 500
syncwell_worker_jobs_total{outcome="deferred_rate_limited"} 4
syncwell_worker_jobs_total{outcome="deferred_provider_rate_limited"} 3
syncwell_http_requests_total{route="a",status="503"} 2
syncwell_http_requests_total{route="a",status="202"} 100
)";

TEST(LoadgenMetrics, ExtractsTheS1Figures) {
  const auto f = ExtractFigures(MetricsText::Parse(kMetrics));
  EXPECT_EQ(f.visible, 12);
  EXPECT_EQ(f.oldest_age_s, 3.5);
  EXPECT_EQ(f.dlq, 0);
  EXPECT_EQ(f.auth_hits, 950);
  EXPECT_EQ(f.auth_misses, 50);
  EXPECT_EQ(f.config_hits, 90);
  EXPECT_EQ(f.config_misses, 10);  // miss + error
  EXPECT_EQ(f.deferrals, 7);
  EXPECT_EQ(f.http_5xx, 2);
  EXPECT_EQ(f.jobs_finished, 500);  // succeeded + failed*, not deferrals
  EXPECT_FALSE(f.rss_bytes.has_value());
  const auto none = ExtractFigures(MetricsText::Parse("syncwell_queue_visible_messages 1\n"));
  EXPECT_FALSE(none.config_hits.has_value());
  EXPECT_FALSE(none.auth_hits.has_value());
}

const Check* Find(const std::vector<Check>& cs, const std::string& name) {
  for (const auto& c : cs)
    if (c.name == name) return &c;
  return nullptr;
}

TEST(LoadgenSlo, ChecksCompareWithS1Targets) {
  PhaseResult r;
  r.phase = {"peak", 100, milliseconds(10'000), false};
  r.stats.scheduled = 1000;
  r.stats.completed = 1000;
  r.stats.completed_in_window = 1000;
  r.stats.status_2xx = 998;
  r.stats.status_5xx = 2;                                                          // 0.2% > 0.1%
  for (int i = 0; i < 1000; ++i) r.stats.latency.Record(uint64_t(i) * 1'000'000);  // up to 999 ms
  MetricsWindow w{"http://x"};
  w.before = ExtractFigures(MetricsText::Parse(
      "syncwell_auth_decision_cache_hits_total 0\nsyncwell_auth_decision_cache_misses_total 0\n"));
  w.after = ExtractFigures(MetricsText::Parse(kMetrics));
  w.max_visible = 1500;
  r.metrics.push_back(w);
  const auto cs = PhaseChecks(r, false);
  ASSERT_NE(Find(cs, "achieved rate"), nullptr);
  EXPECT_EQ(Find(cs, "achieved rate")->verdict, "PASS");
  EXPECT_EQ(Find(cs, "latency P95")->verdict, "FAIL");  // ~950 ms
  EXPECT_EQ(Find(cs, "5xx rate")->verdict, "FAIL");
  EXPECT_EQ(Find(cs, "queue visible backlog (max)")->verdict, "FAIL");  // 1500 sampled
  // 950 hits of 1000 decisions is exactly 95%: S1 wants more than 95%.
  EXPECT_EQ(Find(cs, "auth decision cache hit ratio")->verdict, "FAIL");
  EXPECT_EQ(Find(cs, "auth decision cache hit ratio")->value, "95.000%");
  EXPECT_EQ(Find(cs, "config cache hit ratio")->verdict, "n/a");  // no "before" for config
  EXPECT_EQ(Find(cs, "server RSS (max)")->verdict, "n/a");
  EXPECT_EQ(Find(cs, "DLQ depth (end)")->verdict, "PASS");

  r.phase.stress = true;  // stress steps search for the limit: info, not FAIL
  EXPECT_EQ(Find(PhaseChecks(r, false), "5xx rate")->verdict, "info");

  PhaseResult good;
  good.phase = {"baseline", 10, milliseconds(1000), false};
  good.stats.scheduled = good.stats.completed = good.stats.status_2xx = 10;
  good.stats.completed_in_window = 10;
  good.stats.latency.Record(5'000'000);
  const auto overall = Overall({good});
  EXPECT_TRUE(AllPass({good}, overall));
  EXPECT_FALSE(AllPass({good, r}, Overall({good, r})));
  const std::string json = ReportJson(ReportHeader{"smoke", 0.01}, {good}, overall);
  EXPECT_NE(json.find("\"name\":\"baseline\""), std::string::npos);
  EXPECT_NE(json.find("\"verdict\":\"PASS\"}"), std::string::npos);
}

// Under overload the responses keep arriving after the phase's schedule ended: they are late,
// and the achieved rate counts only what completed within the phase.
TEST(LoadgenSlo, AchievedRateExcludesLateResponses) {
  PhaseResult r;
  r.phase = {"peak", 100, milliseconds(10'000), false};
  r.stats.scheduled = r.stats.completed = r.stats.status_2xx = 1000;
  r.stats.completed_in_window = 600;
  r.stats.latency.Record(1'000'000);
  const auto cs = PhaseChecks(r, false);
  EXPECT_EQ(Find(cs, "achieved rate")->value, "60.0 rps");
  EXPECT_EQ(Find(cs, "achieved rate")->verdict, "FAIL");
  EXPECT_EQ(Find(cs, "late responses (after the phase)")->value, "400");
}

TEST(LoadgenTimeline, BucketsPercentilesAndMerge) {
  // Every bucket's midpoint is within 5% of any latency in it (8 buckets per octave).
  for (uint64_t ns : {1'500ull, 80'000ull, 3'000'000ull, 250'000'000ull, 9'000'000'000ull}) {
    const double mid = Timeline::BucketMidpointNs(Timeline::BucketOf(ns));
    EXPECT_NEAR(mid / static_cast<double>(ns), 1.0, 0.05) << ns;
  }
  Timeline a, b;
  for (int i = 0; i < 99; ++i) a.RecordResponse(200'000'000, false, 2'000'000);  // second 0
  a.RecordResponse(900'000'000, true, 400'000'000);                              // the P99+
  a.RecordError(2'500'000'000);                                                  // second 2
  b.RecordResponse(1'100'000'000, false, 10'000'000);                            // second 1
  b.RecordResponse(-5, false, 1'000);  // before the start: clamped into second 0
  a.Merge(b);
  ASSERT_EQ(a.seconds(), 3u);
  const auto pts = a.Points(10.0);
  ASSERT_EQ(pts.size(), 3u);
  EXPECT_DOUBLE_EQ(pts[0].t_s, 10.0);
  EXPECT_EQ(pts[0].completed, 101u);
  EXPECT_EQ(pts[0].errors, 1u);
  EXPECT_NEAR(pts[0].p50_ms, 2.0, 0.1);
  EXPECT_NEAR(pts[0].p99_ms, 2.0, 0.1);  // rank 100 of 101 is still a 2 ms response
  EXPECT_EQ(pts[1].completed, 1u);
  EXPECT_NEAR(pts[1].p99_ms, 10.0, 0.5);
  EXPECT_EQ(pts[2].completed, 0u);
  EXPECT_EQ(pts[2].errors, 1u);
  EXPECT_EQ(pts[2].p99_ms, 0.0);
}

ServerFigures Fig(double cpu_s, double rss, double cores = 2, double mem = 1000) {
  ServerFigures f;
  f.cpu_seconds = cpu_s;
  f.rss_bytes = rss;
  f.cpu_budget_cores = cores;
  f.memory_budget_bytes = mem;
  return f;
}

TEST(LoadgenSlo, CpuAndMemoryP90AgainstTheBudget) {
  MetricsWindow w{"http://x"};
  // 10 one-second intervals: nine at 0.5 core, one at 1.9 cores, of a 2-core budget.
  double cpu = 0;
  w.series.push_back({0.0, Fig(cpu, 100)});
  for (int i = 1; i <= 10; ++i) {
    cpu += i == 10 ? 1.9 : 0.5;
    w.series.push_back({static_cast<double>(i), Fig(cpu, 100.0 * i)});
  }
  const BudgetUse u = BudgetUseOf(w);
  ASSERT_TRUE(u.cpu_p90.has_value());
  EXPECT_NEAR(*u.cpu_p90, 0.25, 1e-9);    // 9th of 10 sorted intervals: 0.5 / 2 cores
  EXPECT_NEAR(*u.memory_p90, 0.9, 1e-9);  // 100, 100, 200..1000 of 1000: the 10th of 11
  EXPECT_DOUBLE_EQ(u.cpu_budget_cores, 2.0);
  // A restarted process (counter went down) is skipped, not negative.
  MetricsWindow restarted{"http://y"};
  restarted.series = {{0, Fig(50, 1)}, {1, Fig(0.2, 1)}, {2, Fig(0.4, 1)}};
  EXPECT_NEAR(*BudgetUseOf(restarted).cpu_p90, 0.1, 1e-9);

  PhaseResult r;
  r.phase = {"soak", 10, milliseconds(10'000), false};
  r.metrics.push_back(w);
  const auto cs = PhaseChecks(r, false);
  EXPECT_EQ(Find(cs, "server CPU P90")->verdict, "PASS");
  EXPECT_EQ(Find(cs, "server CPU P90")->value, "25.000% of 2.0 cores");
  EXPECT_EQ(Find(cs, "server memory P90")->verdict, "FAIL");
  PhaseResult none;
  none.phase = r.phase;
  EXPECT_EQ(Find(PhaseChecks(none, false), "server CPU P90")->verdict, "n/a");
}

TEST(LoadgenChart, OnePagePerRunWithEveryPanel) {
  PhaseResult a;
  a.phase = {"baseline", 100, milliseconds(2'000), false};
  a.stats.timeline.RecordResponse(100'000'000, false, 3'000'000);
  a.stats.timeline.RecordResponse(1'100'000'000, true, 700'000'000);
  MetricsWindow w{"http://x/metrics"};
  ServerFigures f = Fig(1, 10);
  f.visible = 12;
  w.series = {{0.0, f}, {1.0, f}};
  a.metrics.push_back(w);
  PhaseResult b = a;
  b.phase = {"peak <3k>", 3000, milliseconds(2'000), false};
  b.start_s = 2.0;
  const std::string html = ChartHtml(ReportHeader{"brief", 0.05}, {a, b});
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(html.find("<script"), std::string::npos);  // static: no script, no external asset
  for (const char* s : {"Throughput", "Latency", "Queue visible backlog", "Server CPU",
                        "peak &lt;3k&gt;", "SLO P99 &lt; 500 ms", "<path"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  EXPECT_EQ(html.find("peak <3k>"), std::string::npos);  // names are escaped
  EXPECT_EQ(html.find("nan"), std::string::npos);        // gaps end segments, never plotted
  // Each phase starts a new segment of the per-second lines: no line joins two phases.
  const size_t responses = html.find("<path fill=\"none\" stroke=\"#1f77b4\"");
  ASSERT_NE(responses, std::string::npos);
  const std::string d = html.substr(responses, html.find("/>", responses) - responses);
  EXPECT_EQ(std::count(d.begin(), d.end(), 'M'), 2);  // one segment per phase
}

}  // namespace
}  // namespace syncwell::loadgen
