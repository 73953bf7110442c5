#include "loadgen/report.hpp"

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <string>

#include "core/log.hpp"

namespace syncwell::loadgen {

void RunStats::Merge(const RunStats& o) {
  scheduled += o.scheduled;
  sent += o.sent;
  completed += o.completed;
  completed_in_window += o.completed_in_window;
  status_2xx += o.status_2xx;
  status_1xx += o.status_1xx;
  status_3xx += o.status_3xx;
  status_4xx += o.status_4xx;
  status_5xx += o.status_5xx;
  status_other += o.status_other;
  err_connect += o.err_connect;
  err_timeout += o.err_timeout;
  err_io += o.err_io;
  not_sent += o.not_sent;
  connect_failures += o.connect_failures;
  connections_opened += o.connections_opened;
  max_queue = std::max(max_queue, o.max_queue);
  internal_errors += o.internal_errors;
  elapsed_ns = std::max(elapsed_ns, o.elapsed_ns);
  latency.Merge(o.latency);
  service.Merge(o.service);
  timeline.Merge(o.timeline);
}

uint64_t RunStats::Errors() const {
  return status_1xx + status_3xx + status_4xx + status_5xx + status_other + err_connect +
         err_timeout + err_io + not_sent;
}

namespace {

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

double Ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

}  // namespace

void WriteReport(const LoadgenOptions& o, const RunStats& s, std::ostream& out) {
  const double elapsed_s = std::max(1e-9, static_cast<double>(s.elapsed_ns) / 1e9);
  const double achieved = static_cast<double>(s.completed) / elapsed_s;
  const double achieved_2xx = static_cast<double>(s.status_2xx) / elapsed_s;
  const auto& h = s.latency;
  struct P {
    const char* name;
    double p;
  };
  static constexpr P kPercentiles[] = {
      {"p50", 50}, {"p90", 90}, {"p95", 95}, {"p99", 99}, {"p99.9", 99.9}};

  out << "loadgen " << o.method << ' ' << o.target << " path " << o.path << '\n'
      << "  mode            "
      << (o.rate > 0 ? "fixed rate " + Fixed(o.rate, 1) + " req/s" : "saturation (closed loop)")
      << ", " << Fixed(o.duration.count() / 1000.0, 1) << " s, " << o.connections
      << " connections, " << o.threads << " thread(s)\n"
      << "  achieved        " << Fixed(achieved, 1) << " req/s (2xx " << Fixed(achieved_2xx, 1)
      << " req/s) over " << Fixed(elapsed_s, 2) << " s\n"
      << "  requests        scheduled " << s.scheduled << ", sent " << s.sent << ", completed "
      << s.completed << ", 2xx " << s.status_2xx << '\n'
      << "  errors          " << s.Errors() << " (connect " << s.err_connect << ", timeout "
      << s.err_timeout << ", io " << s.err_io << ", not-sent " << s.not_sent << ", 1xx "
      << s.status_1xx << ", 3xx " << s.status_3xx << ", 4xx " << s.status_4xx << ", 5xx "
      << s.status_5xx << ", other " << s.status_other << ")\n"
      << "  connections     opened " << s.connections_opened << ", failed attempts "
      << s.connect_failures << (o.rate > 0 ? ", deepest queue " + std::to_string(s.max_queue) : "")
      << '\n'
      << "  latency (ms)    " << (o.rate > 0 ? "from scheduled send time" : "from actual send time")
      << ", all completed responses\n   ";
  for (const auto& p : kPercentiles) out << ' ' << p.name << ' ' << Fixed(Ms(h.Percentile(p.p)), 3);
  out << " max " << Fixed(Ms(h.max()), 3) << " mean " << Fixed(h.mean() / 1e6, 3) << '\n';
  if (o.rate > 0) {
    out << "  service (ms)    from actual send time (uncorrected, excludes queueing)\n   ";
    for (const auto& p : kPercentiles)
      out << ' ' << p.name << ' ' << Fixed(Ms(s.service.Percentile(p.p)), 3);
    out << " max " << Fixed(Ms(s.service.max()), 3) << '\n';
  }

  std::string j = "{\"kind\":\"loadgen_result\",\"method\":\"";
  log::AppendJsonEscaped(j, o.method);
  j += "\",\"target\":\"";
  log::AppendJsonEscaped(j, o.target);
  j += "\",\"path\":\"";
  log::AppendJsonEscaped(j, o.path);
  j += "\",\"mode\":\"" + std::string(o.rate > 0 ? "fixed" : "saturation") + "\"";
  j += ",\"target_rate\":" + Fixed(o.rate, 3);
  j += ",\"achieved_rate\":" + Fixed(achieved, 3);
  j += ",\"achieved_rate_2xx\":" + Fixed(achieved_2xx, 3);
  j += ",\"duration_s\":" + Fixed(o.duration.count() / 1000.0, 3);
  j += ",\"elapsed_s\":" + Fixed(elapsed_s, 3);
  j += ",\"connections\":" + std::to_string(o.connections);
  j += ",\"max_connections\":" + std::to_string(o.max_connections);
  j += ",\"threads\":" + std::to_string(o.threads);
  j += ",\"scheduled\":" + std::to_string(s.scheduled);
  j += ",\"sent\":" + std::to_string(s.sent);
  j += ",\"completed\":" + std::to_string(s.completed);
  j += ",\"status_2xx\":" + std::to_string(s.status_2xx);
  j += ",\"errors_total\":" + std::to_string(s.Errors());
  j += ",\"errors\":{\"connect\":" + std::to_string(s.err_connect) +
       ",\"timeout\":" + std::to_string(s.err_timeout) + ",\"io\":" + std::to_string(s.err_io) +
       ",\"not_sent\":" + std::to_string(s.not_sent) +
       ",\"status_1xx\":" + std::to_string(s.status_1xx) +
       ",\"status_3xx\":" + std::to_string(s.status_3xx) +
       ",\"status_4xx\":" + std::to_string(s.status_4xx) +
       ",\"status_5xx\":" + std::to_string(s.status_5xx) +
       ",\"status_other\":" + std::to_string(s.status_other) + "}";
  j += ",\"connect_failures\":" + std::to_string(s.connect_failures);
  j += ",\"connections_opened\":" + std::to_string(s.connections_opened);
  j += ",\"max_queue\":" + std::to_string(s.max_queue);
  j += ",\"internal_errors\":" + std::to_string(s.internal_errors);
  j += ",\"latency_ms\":{";
  for (const auto& p : kPercentiles) {
    j += "\"";
    j += p.name;
    j += "\":" + Fixed(Ms(h.Percentile(p.p)), 3) + ",";
  }
  j += "\"max\":" + Fixed(Ms(h.max()), 3) + ",\"mean\":" + Fixed(h.mean() / 1e6, 3) +
       ",\"count\":" + std::to_string(h.count()) + "}";
  j += ",\"service_ms\":{";
  for (const auto& p : kPercentiles) {
    j += "\"";
    j += p.name;
    j += "\":" + Fixed(Ms(s.service.Percentile(p.p)), 3) + ",";
  }
  j += "\"max\":" + Fixed(Ms(s.service.max()), 3) + "}}";
  out << j << '\n';
  out.flush();
}

}  // namespace syncwell::loadgen
