#pragma once
// The S14 report: per phase and overall, the driver's own figures and the server's /metrics,
// each next to its SPEC S1 target with PASS / FAIL (or n/a when the server does not export the
// figure, info when S1 sets no target). A readable table and one JSON document. No Asio.
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "loadgen/histogram.hpp"
#include "loadgen/metrics_scrape.hpp"
#include "loadgen/plan.hpp"
#include "loadgen/report.hpp"

namespace syncwell::loadgen {

// One successful scrape, `t_s` seconds after the plan started.
struct MetricsPoint {
  double t_s = 0;
  ServerFigures f;
};

// One --metrics-url over one phase: scrapes before and after, and samples taken while it ran.
struct MetricsWindow {
  std::string url;
  std::optional<ServerFigures> before, after;
  std::optional<double> max_visible, max_oldest_age_s, max_rss_bytes;
  std::vector<MetricsPoint> series;  // every successful scrape (before, samples, after) in order
  int samples = 0;
  int failed_scrapes = 0;
};

// SPEC S1 "workers: CPU P90 < 80%, memory P90 < 80% of their budget", per --metrics-url: CPU
// from process_cpu_seconds_total between consecutive scrapes over
// syncwell_process_cpu_budget_cores, memory from process_resident_memory_bytes over
// syncwell_process_memory_budget_bytes.
struct BudgetUse {
  std::optional<double> cpu_p90;     // share of the CPU budget, 0..1+
  std::optional<double> memory_p90;  // share of the memory budget
  double cpu_budget_cores = 0;
};
BudgetUse BudgetUseOf(const MetricsWindow& w);

// --follow-jobs: a sample of accepted jobs polled to their terminal state.
struct JobFollow {
  uint64_t sampled = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t unfinished = 0;   // not terminal when following gave up
  LatencyHistogram latency;  // accepted (createdAt) -> terminal (updatedAt), server clock, ns
  void Merge(const JobFollow& o);
};

struct PhaseResult {
  Phase phase;
  double start_s = 0;  // when the phase started, seconds after the plan started
  RunStats stats;
  KindCounts counts;
  std::vector<MetricsWindow> metrics;  // one per --metrics-url
  bool followed = false;
  JobFollow follow;
};

struct Check {
  std::string name;
  std::string value;
  std::string target;
  std::string verdict;  // PASS, FAIL, n/a, info
};

// The checks of one phase (or of the overall run when `overall`).
std::vector<Check> PhaseChecks(const PhaseResult& r, bool overall);

// Merges the phases into one "overall" result (metrics windows: first before, last after).
PhaseResult Overall(const std::vector<PhaseResult>& phases);

struct ReportHeader {
  std::string plan;
  double scale = 1;
  std::vector<std::string> targets;
  std::vector<std::string> metrics_urls;
  size_t users = 0;
  double retry_share = 0;
  std::string stop_reason;  // why the stress ramp ended
};

void WritePhaseText(const PhaseResult& r, bool overall, std::ostream& out);
std::string ReportJson(const ReportHeader& h, const std::vector<PhaseResult>& phases,
                       const PhaseResult& overall);
// true when no check of any phase nor of the overall run is FAIL.
bool AllPass(const std::vector<PhaseResult>& phases, const PhaseResult& overall);

}  // namespace syncwell::loadgen
