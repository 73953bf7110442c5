#include "loadgen/plan_runner.hpp"

#include <atomic>
#include <fstream>
#include <ostream>
#include <thread>

#include "loadgen/chart.hpp"
#include "loadgen/engine.hpp"
#include "loadgen/metrics_scrape.hpp"
#include "loadgen/plan.hpp"
#include "loadgen/slo_report.hpp"

namespace syncwell::loadgen {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kSampleEvery = 1s;
constexpr auto kScrapeTimeout = 5s;
constexpr auto kPollEvery = 200ms;

// Splits "http://h:p/metrics" into the base URL and the path (default /metrics).
std::pair<std::string, std::string> MetricsEndpoint(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (slash == std::string::npos) return {url, "/metrics"};
  return {url.substr(0, slash), url.substr(slash)};
}

std::optional<ServerFigures> Scrape(const std::string& url) {
  const auto [base, path] = MetricsEndpoint(url);
  auto r = HttpGet(base, path, {}, kScrapeTimeout);
  if (!r || r->status != 200) return std::nullopt;
  return ExtractFigures(MetricsText::Parse(r->body));
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A scrape before or after the phase: kept as the window's end point and in its series.
std::optional<ServerFigures> ScrapeEdge(MetricsWindow& w, Clock::time_point plan_start) {
  auto f = Scrape(w.url);
  if (f)
    w.series.push_back({SecondsSince(plan_start), *f});
  else
    ++w.failed_scrapes;
  return f;
}

void Sample(MetricsWindow& w, Clock::time_point plan_start) {
  auto f = Scrape(w.url);
  if (!f) {
    ++w.failed_scrapes;
    return;
  }
  w.series.push_back({SecondsSince(plan_start), *f});
  ++w.samples;
  auto up = [](std::optional<double>& m, std::optional<double> v) {
    if (v) m = m ? std::max(*m, *v) : *v;
  };
  up(w.max_visible, f->visible);
  up(w.max_oldest_age_s, f->oldest_age_s);
  up(w.max_rss_bytes, f->rss_bytes);
}

// Polls every sampled job until it is SUCCEEDED or FAILED or the deadline passes. Job latency
// is the server's updatedAt - createdAt of the terminal state, so polling cadence adds nothing.
JobFollow Follow(const std::vector<AcceptedJob>& jobs, const std::vector<PopUser>& users,
                 const std::vector<std::string>& targets, std::chrono::milliseconds timeout) {
  JobFollow f;
  f.sampled = jobs.size();
  std::vector<bool> done(jobs.size(), false);
  size_t remaining = jobs.size();
  const auto deadline = Clock::now() + timeout;
  size_t rr = 0;
  while (remaining > 0 && Clock::now() < deadline) {
    for (size_t i = 0; i < jobs.size(); ++i) {
      if (done[i]) continue;
      const auto& job = jobs[i];
      auto r = HttpGet(targets[rr++ % targets.size()], "/v1/sync-jobs/" + job.job_id,
                       {"Authorization: Bearer " + users[job.user].token}, kScrapeTimeout);
      if (!r || r->status != 200) continue;
      const std::string status = JsonStringField(r->body, "status");
      if (status != "SUCCEEDED" && status != "FAILED") continue;
      done[i] = true;
      --remaining;
      (status == "SUCCEEDED" ? f.succeeded : f.failed)++;
      const int64_t created = ParseRfc3339Millis(JsonStringField(r->body, "createdAt"));
      const int64_t updated = ParseRfc3339Millis(JsonStringField(r->body, "updatedAt"));
      if (created >= 0 && updated >= created)
        f.latency.Record(static_cast<uint64_t>(updated - created) * 1'000'000);
    }
    if (remaining > 0) std::this_thread::sleep_for(kPollEvery);
  }
  f.unfinished = remaining;
  return f;
}

// Runs the engine on its own thread while this one samples the metrics every second.
Result<RunStats> RunPhase(const EngineRun& run, MixedSource& source,
                          std::vector<MetricsWindow>& windows, Clock::time_point plan_start) {
  for (auto& w : windows) w.before = ScrapeEdge(w, plan_start);
  std::atomic<bool> finished{false};
  std::optional<Result<RunStats>> result;
  std::thread engine([&] {
    result.emplace(RunEngine(run, source));
    finished = true;
  });
  auto next = Clock::now() + kSampleEvery;
  while (!finished) {
    std::this_thread::sleep_for(50ms);
    if (Clock::now() < next || finished) continue;
    next += kSampleEvery;
    for (auto& w : windows) Sample(w, plan_start);
  }
  engine.join();
  for (auto& w : windows) w.after = ScrapeEdge(w, plan_start);
  return std::move(*result);
}

}  // namespace

int RunPlan(const PlanOptions& o, std::ostream& out) {
  auto fail = [&out](std::string_view m) {
    out << (m.starts_with("loadgen: ") ? "" : "loadgen: ") << m << '\n';
    return 2;
  };
  auto spec = MakePlan(o.plan, o.scale);
  if (!spec) return fail(spec.error().message);
  if (o.targets.empty()) return fail("--targets needs at least one URL");
  if (o.retry_share < 0 || o.retry_share > 0.5) return fail("--retry-share must be in [0, 0.5]");
  if (o.follow_jobs > 100'000) return fail("--follow-jobs must be at most 100000");
  std::vector<Target> targets;
  for (const auto& t : o.targets) {
    auto p = ParseTarget(t);
    if (!p) return fail(p.error().message);
    targets.push_back(*p);
  }
  auto users = LoadPopulation(o.tokens_file);
  if (!users) return fail(users.error().message);
  std::ofstream jobs_out;
  if (!o.jobs_out.empty()) {
    jobs_out.open(o.jobs_out, std::ios::trunc);
    if (!jobs_out) return fail("cannot write --jobs-out " + o.jobs_out);
  }

  MixOptions mix;
  mix.retry_share = o.retry_share;
  mix.follow_sample = o.follow_jobs;
  mix.keep_all_jobs = !o.jobs_out.empty();
  mix.seed = o.seed;
  const size_t n_users = users->size();
  MixedSource source(std::move(*users), targets, mix);

  EngineRun run;
  run.targets = o.targets;
  run.timeout = o.timeout;
  run.connections_per_target = o.connections;
  run.max_connections_per_target = std::max(o.connections, o.max_connections);
  run.threads_per_target = o.threads;

  ReportHeader header;
  header.plan = spec->name;
  header.scale = o.scale;
  header.targets = o.targets;
  header.metrics_urls = o.metrics_urls;
  header.users = n_users;
  header.retry_share = o.retry_share;
  header.stop_reason = "every stress step stayed within the error limit";

  out << "loadgen plan " << spec->name << " x" << o.scale << ": " << n_users << " users, "
      << o.targets.size() << " target(s), retry share " << o.retry_share << '\n';
  std::vector<PhaseResult> results;
  const auto plan_start = Clock::now();
  for (const auto& phase : spec->phases) {
    PhaseResult r;
    r.phase = phase;
    r.start_s = SecondsSince(plan_start);
    for (const auto& url : o.metrics_urls) r.metrics.push_back(MetricsWindow{url});
    run.rate = phase.rate;
    run.duration = phase.duration;
    source.BeginPhase(EngineWorkers(run));
    out << "--- running " << phase.name << ": " << phase.rate << " rps for "
        << static_cast<double>(phase.duration.count()) / 1000.0 << " s" << std::endl;
    auto stats = RunPhase(run, source, r.metrics, plan_start);
    if (!stats) return fail(stats.error().message);
    r.stats = std::move(*stats);
    auto taken = source.TakePhase();
    r.counts = taken.counts;
    for (const auto& j : taken.all) jobs_out << j.job_id << ' ' << j.user << '\n';
    jobs_out.flush();
    if (o.follow_jobs > 0) {
      r.followed = true;
      r.follow = Follow(taken.sample, source.users(), o.targets, o.follow_timeout);
    }
    WritePhaseText(r, false, out);
    const double share = StressErrorShare(r.stats, r.counts.status_429);
    results.push_back(std::move(r));
    if (phase.stress && share > spec->stress_error_limit) {
      header.stop_reason = phase.name + " at " + std::to_string(static_cast<int>(phase.rate)) +
                           " rps: error share " + std::to_string(share * 100) + "% > 1%";
      break;
    }
  }
  const PhaseResult overall = Overall(results);
  WritePhaseText(overall, true, out);
  const bool pass = AllPass(results, overall);
  out << "stress: " << header.stop_reason << '\n'
      << "verdict: " << (pass ? "PASS" : "FAIL") << " (every check of every phase)\n";
  const std::string json = ReportJson(header, results, overall);
  if (!o.report_json.empty()) {
    std::ofstream f(o.report_json, std::ios::trunc);
    f << json << '\n';
    if (!f) return fail("cannot write --report-json " + o.report_json);
  }
  if (!o.chart_html.empty()) {
    std::ofstream f(o.chart_html, std::ios::trunc);
    f << ChartHtml(header, results);
    if (!f) return fail("cannot write --chart " + o.chart_html);
    out << "chart: " << o.chart_html << '\n';
  }
  out.flush();
  return overall.stats.status_2xx > 0 ? 0 : 1;
}

}  // namespace syncwell::loadgen
