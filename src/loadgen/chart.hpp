#pragma once
// `syncwell loadgen --plan ... --chart FILE`: one self-contained HTML page (inline SVG, no script,
// no external asset) with the plan's phases over time: throughput against the target rate,
// latency P50/P99 (log scale) against the 500 ms SLO, queue backlog against its 1,000 limit, and
// server CPU against 80% of its budget. Built from the same data as the JSON report. No Asio.
#include <string>
#include <vector>

#include "loadgen/slo_report.hpp"

namespace syncwell::loadgen {

std::string ChartHtml(const ReportHeader& header, const std::vector<PhaseResult>& phases);

}  // namespace syncwell::loadgen
