#pragma once
// `syncwell loadgen --plan brief|smoke`: runs the S14 phases (plan.hpp) with the open-loop engine
// (engine.hpp), scrapes every --metrics-url before, during (every second) and after each phase,
// follows a sample of accepted jobs to their terminal state, and writes the SLO report
// (slo_report.hpp) to `out` and, with --report-json, to a file. No Asio here.
#include <chrono>
#include <iosfwd>
#include <string>
#include <vector>

namespace syncwell::loadgen {

// Each field is the CLI flag in its comment (`syncwell loadgen --plan ...`), same default.
struct PlanOptions {
  std::string plan;                  // --plan brief|smoke
  double scale = 1.0;                // --scale F: every phase duration x F; rates unchanged
  std::vector<std::string> targets;  // --targets URL[,URL...]: round-robin per request
  std::string tokens_file;           // --tokens FILE: lines "TOKEN SRC_CONN DST_CONN"
  std::string report_json;           // --report-json FILE
  std::string chart_html;  // --chart FILE: latency, throughput and backlog over time (HTML+SVG)
  std::vector<std::string> metrics_urls;  // --metrics-url URL[,URL...] (path default /metrics)
  double retry_share = 0.05;              // --retry-share: share of requests that are retries
  size_t follow_jobs = 0;                 // --follow-jobs N: accepted jobs followed per phase
  std::string jobs_out;  // --jobs-out FILE: every accepted job, "JOB_ID TOKEN_LINE_INDEX"
  std::chrono::milliseconds follow_timeout{60'000};  // --follow-timeout D
  std::chrono::milliseconds timeout{10'000};         // --timeout D, per request
  int connections = 32;       // --connections N per target (grows to --max-connections)
  int max_connections = 512;  // --max-connections N per target
  int threads = 1;            // --threads N per target
  uint64_t seed = 0;          // --seed N (0 = random)
};

// Returns 0 when every phase ran and the report was written (the verdict is in the report),
// 1 when no request got a 2xx, 2 on invalid options or setup failure (message on `out`).
int RunPlan(const PlanOptions& options, std::ostream& out);

}  // namespace syncwell::loadgen
