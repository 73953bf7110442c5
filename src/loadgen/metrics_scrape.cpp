#include "loadgen/metrics_scrape.hpp"

#include <cstdlib>
#include <string>

namespace syncwell::loadgen {

MetricsText MetricsText::Parse(std::string_view text) {
  MetricsText m;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    Sample s;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    if (space == std::string_view::npos) continue;
    size_t value_at = space + 1;
    if (brace != std::string_view::npos && brace < space) {
      const size_t close = line.rfind('}');
      if (close == std::string_view::npos || close < brace) continue;
      s.name = std::string(line.substr(0, brace));
      s.labels = std::string(line.substr(brace + 1, close - brace - 1));
      // A timestamp may follow the value: "name{..} value ts".
      const size_t vstart = line.find_first_not_of(' ', close + 1);
      if (vstart == std::string_view::npos) continue;
      value_at = vstart;
    } else {
      const size_t first_space = line.find(' ');
      s.name = std::string(line.substr(0, first_space));
      value_at = first_space + 1;
    }
    const std::string value(line.substr(value_at));
    char* end = nullptr;
    s.value = std::strtod(value.c_str(), &end);
    if (end == value.c_str()) continue;
    m.samples_.push_back(std::move(s));
  }
  return m;
}

std::optional<double> MetricsText::Sum(std::string_view name,
                                       const std::vector<std::string_view>& label_parts) const {
  std::optional<double> sum;
  for (const auto& s : samples_) {
    if (s.name != name) continue;
    bool match = true;
    for (auto part : label_parts) match = match && s.labels.find(part) != std::string::npos;
    if (match) sum = sum.value_or(0) + s.value;
  }
  return sum;
}

std::optional<double> MetricsText::SumPrefix(std::string_view name, std::string_view key,
                                             std::string_view prefix) const {
  return Sum(name, {std::string(key) + "=\"" + std::string(prefix)});
}

namespace {
std::optional<double> Add(std::optional<double> a, std::optional<double> b) {
  if (!a && !b) return std::nullopt;
  return a.value_or(0) + b.value_or(0);
}
}  // namespace

ServerFigures ExtractFigures(const MetricsText& m) {
  ServerFigures f;
  f.visible = m.Sum("syncwell_queue_visible_messages");
  f.oldest_age_s = m.Sum("syncwell_queue_oldest_message_age_seconds");
  f.dlq = m.Sum("syncwell_queue_dlq_messages");
  f.auth_hits = m.Sum("syncwell_auth_decision_cache_hits_total");
  f.auth_misses = m.Sum("syncwell_auth_decision_cache_misses_total");
  const auto hits = m.Sum("syncwell_cache_requests_total", {"cache=\"config\"", "outcome=\"hit\""});
  const auto misses =
      m.Sum("syncwell_cache_requests_total", {"cache=\"config\"", "outcome=\"miss\""});
  const auto errors =
      m.Sum("syncwell_cache_requests_total", {"cache=\"config\"", "outcome=\"error\""});
  if (hits || misses || errors) {
    f.config_hits = hits.value_or(0);
    f.config_misses = Add(misses, errors);
  }
  f.deferrals = m.SumPrefix("syncwell_worker_jobs_total", "outcome", "deferred");
  f.rss_bytes = m.Sum("process_resident_memory_bytes");
  f.cpu_seconds = m.Sum("process_cpu_seconds_total");
  f.http_5xx = m.SumPrefix("syncwell_http_requests_total", "status", "5");
  // Deliveries that ended their job (SUCCEEDED or FAILED), not deferrals or retries.
  for (const char* o : {"succeeded", "dead_lettered", "auth_failed", "connection_gone"}) {
    const auto v = m.Sum("syncwell_worker_jobs_total", {"outcome=\"" + std::string(o) + "\""});
    if (v) f.jobs_finished = f.jobs_finished.value_or(0) + *v;
  }
  f.cpu_budget_cores = m.Sum("syncwell_process_cpu_budget_cores");
  f.memory_budget_bytes = m.Sum("syncwell_process_memory_budget_bytes");
  return f;
}

}  // namespace syncwell::loadgen
