#include "loadgen/chart.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <utility>

#include "core/log.hpp"

namespace syncwell::loadgen {

namespace {

using XY = std::pair<double, double>;
const XY kGap{0, std::numeric_limits<double>::quiet_NaN()};  // ends a line segment

struct Series {
  std::string name;
  std::string color;
  std::vector<XY> points;
  bool dashed = false;
};

struct Limit {
  double value;
  std::string label;
};

constexpr double kWidth = 960, kHeight = 250;
constexpr double kLeft = 70, kRight = 20, kTop = 42, kBottom = 40;
const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"};

std::string Num(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string Escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

// A "nice" upper bound for a linear axis: 1, 2 or 5 times a power of ten.
double NiceCeil(double v) {
  if (v <= 0) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= v) return m * p;
  return 10 * p;
}

// One panel: x in seconds from the plan's start, y linear from 0 or log10.
std::string Panel(const std::string& title, const std::vector<Series>& series,
                  const std::vector<Limit>& limits, const std::vector<PhaseResult>& phases,
                  double x_max, bool log_y) {
  double y_max = 0, y_min_pos = 1e300;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      if (std::isnan(y)) continue;
      y_max = std::max(y_max, y);
      if (y > 0) y_min_pos = std::min(y_min_pos, y);
    }
  for (const auto& l : limits) y_max = std::max(y_max, l.value);
  double lo = 0, hi = NiceCeil(y_max * 1.05);
  if (log_y) {
    lo = std::floor(std::log10(std::min(y_min_pos, y_max > 0 ? y_max : 1)));
    hi = std::ceil(std::log10(std::max(y_max, 1e-9)));
    if (hi <= lo) hi = lo + 1;
  }
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto X = [&](double x) { return kLeft + pw * std::clamp(x / std::max(x_max, 1.0), 0.0, 1.0); };
  auto Y = [&](double y) {
    double v = y;
    if (log_y) v = y > 0 ? std::log10(y) : lo;
    return kTop + ph * (1.0 - std::clamp((v - lo) / (hi - lo), 0.0, 1.0));
  };
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + Num(kWidth, 0) +
                    "\" height=\"" + Num(kHeight, 0) + "\" font-family=\"sans-serif\" " +
                    "font-size=\"11\">\n";
  svg += "<text x=\"" + Num(kLeft, 0) + "\" y=\"16\" font-size=\"13\" font-weight=\"bold\">" +
         Escape(title) + "</text>\n";
  svg += "<rect x=\"" + Num(kLeft) + "\" y=\"" + Num(kTop) + "\" width=\"" + Num(pw) +
         "\" height=\"" + Num(ph) + "\" fill=\"none\" stroke=\"#999\"/>\n";
  // y ticks
  const int ticks = log_y ? static_cast<int>(hi - lo) : 4;
  for (int i = 0; i <= ticks; ++i) {
    const double v = log_y ? std::pow(10.0, lo + i) : hi * i / ticks;
    const double y = Y(v);
    svg += "<line x1=\"" + Num(kLeft) + "\" x2=\"" + Num(kLeft + pw) + "\" y1=\"" + Num(y) +
           "\" y2=\"" + Num(y) + "\" stroke=\"#eee\"/>";
    svg += "<text x=\"" + Num(kLeft - 4) + "\" y=\"" + Num(y + 4) + "\" text-anchor=\"end\">" +
           (v >= 10 || v == 0 ? Num(v, 0) : Num(v, v >= 1 ? 1 : 3)) + "</text>\n";
  }
  // phase boundaries
  for (const auto& p : phases) {
    const double x = X(p.start_s);
    svg += "<line x1=\"" + Num(x) + "\" x2=\"" + Num(x) + "\" y1=\"" + Num(kTop) + "\" y2=\"" +
           Num(kTop + ph) + "\" stroke=\"#ccc\" stroke-dasharray=\"2,3\"/>";
    svg += "<text x=\"" + Num(x + 2) + "\" y=\"" + Num(kTop + ph + 12) + "\" fill=\"#666\">" +
           Escape(p.phase.name) + "</text>\n";
  }
  for (const auto& l : limits) {
    const double y = Y(l.value);
    svg += "<line x1=\"" + Num(kLeft) + "\" x2=\"" + Num(kLeft + pw) + "\" y1=\"" + Num(y) +
           "\" y2=\"" + Num(y) + "\" stroke=\"#d62728\" stroke-dasharray=\"6,3\"/>";
    svg += "<text x=\"" + Num(kLeft + pw - 2) + "\" y=\"" + Num(y - 3) +
           "\" text-anchor=\"end\" fill=\"#d62728\">" + Escape(l.label) + "</text>\n";
  }
  double legend_x = kLeft;
  for (const auto& s : series) {
    if (s.points.empty()) continue;
    // One path; a NaN point (kGap) ends a segment, so phases are not joined across the pauses
    // between them (job following, scrapes).
    svg += "<path fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"1.3\"" +
           (s.dashed ? " stroke-dasharray=\"5,3\"" : "") + " d=\"";
    bool pen_down = false;
    for (const auto& [x, y] : s.points) {
      if (std::isnan(y)) {
        pen_down = false;
        continue;
      }
      svg += (pen_down ? "L" : "M") + Num(X(x)) + "," + Num(Y(y)) + " ";
      pen_down = true;
    }
    svg += "\"/>\n";
    svg += "<rect x=\"" + Num(legend_x) + "\" y=\"23\" width=\"10\" height=\"10\" fill=\"" +
           s.color + "\"/><text x=\"" + Num(legend_x + 14) + "\" y=\"32\">" + Escape(s.name) +
           "</text>\n";
    legend_x += 30 + 6.5 * static_cast<double>(s.name.size());
  }
  svg += "<text x=\"" + Num(kLeft + pw) + "\" y=\"" + Num(kHeight - 4) +
         "\" text-anchor=\"end\" fill=\"#666\">seconds since the plan started (" + Num(x_max, 0) +
         " s)</text>\n</svg>\n";
  return svg;
}

}  // namespace

std::string ChartHtml(const ReportHeader& header, const std::vector<PhaseResult>& phases) {
  double x_max = 1;
  Series target{"target rps", "#7f7f7f", {}, true};
  Series done{"responses/s", kPalette[0], {}, false};
  Series errors{"5xx + transport errors/s", "#d62728", {}, false};
  Series p50{"P50 ms", kPalette[2], {}, false};
  Series p99{"P99 ms", kPalette[1], {}, false};
  for (const auto& p : phases) {
    const double end = p.start_s + static_cast<double>(p.phase.duration.count()) / 1000.0;
    target.points.push_back({p.start_s, p.phase.rate});
    target.points.push_back({end, p.phase.rate});
    for (const auto& pt : p.stats.timeline.Points(p.start_s)) {
      // The drain after a phase overlaps the next phase's first second: plot from the phase only.
      const double x = pt.t_s + 0.5;
      x_max = std::max(x_max, x);
      done.points.push_back({x, static_cast<double>(pt.completed)});
      errors.points.push_back({x, static_cast<double>(pt.errors)});
      if (pt.completed > 0) {
        p50.points.push_back({x, pt.p50_ms});
        p99.points.push_back({x, pt.p99_ms});
      }
    }
    x_max = std::max(x_max, end);
    for (Series* series : {&target, &done, &errors, &p50, &p99}) series->points.push_back(kGap);
  }
  // Server series per --metrics-url, over every phase (continuous: the backlog keeps changing
  // between phases).
  std::vector<Series> backlog, cpu;
  const size_t urls = phases.empty() ? 0 : phases.front().metrics.size();
  for (size_t i = 0; i < urls; ++i) {
    const char* color = kPalette[i % std::size(kPalette)];
    const std::string name = urls > 1 ? "#" + std::to_string(i + 1) : "server";
    Series b{name + " visible", color, {}, false};
    Series c{name + " CPU %", color, {}, false};
    std::optional<MetricsPoint> prev;
    for (const auto& p : phases) {
      if (p.metrics.size() <= i) continue;
      for (const auto& m : p.metrics[i].series) {
        x_max = std::max(x_max, m.t_s);
        if (m.f.visible) b.points.push_back({m.t_s, *m.f.visible});
        if (prev && prev->f.cpu_seconds && m.f.cpu_seconds && m.f.cpu_budget_cores &&
            *m.f.cpu_budget_cores > 0 && m.t_s - prev->t_s >= 0.25 &&
            *m.f.cpu_seconds >= *prev->f.cpu_seconds)
          c.points.push_back({m.t_s, 100.0 * (*m.f.cpu_seconds - *prev->f.cpu_seconds) /
                                         (m.t_s - prev->t_s) / *m.f.cpu_budget_cores});
        prev = m;
      }
    }
    backlog.push_back(std::move(b));
    cpu.push_back(std::move(c));
  }

  std::string html =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>syncwell loadgen: " +
      Escape(header.plan) + "</title></head>\n<body style=\"font-family:sans-serif\">\n";
  html += "<h2>syncwell loadgen --plan " + Escape(header.plan) + " --scale " +
          Num(header.scale, 3) + "</h2>\n<p>" + std::to_string(header.users) + " users; targets:";
  for (const auto& t : header.targets) html += " " + Escape(t);
  html += "; stress: " + Escape(header.stop_reason) + "</p>\n";
  html += Panel("Throughput (requests/s): responses per second vs the phase's target",
                {target, done, errors}, {}, phases, x_max, false);
  html += Panel("Latency per second (ms, log scale, from the scheduled send time)", {p50, p99},
                {{500, "SLO P99 < 500 ms"}}, phases, x_max, true);
  if (urls > 0) {
    html += Panel("Queue visible backlog (messages)", backlog, {{1000, "SLO < 1,000"}}, phases,
                  x_max, false);
    html += Panel("Server CPU (% of its budget, between scrapes)", cpu, {{80, "SLO P90 < 80%"}},
                  phases, x_max, false);
  }
  if (urls > 1) {
    html += "<p>";
    for (size_t i = 0; i < urls; ++i)
      html += "#" + std::to_string(i + 1) + " = " + Escape(phases.front().metrics[i].url) + " ";
    html += "</p>\n";
  }
  html += "</body></html>\n";
  return html;
}

}  // namespace syncwell::loadgen
