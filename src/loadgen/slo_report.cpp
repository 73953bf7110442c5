#include "loadgen/slo_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>

#include "core/log.hpp"

namespace syncwell::loadgen {

namespace {

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}
std::string Pct(double share) { return Fixed(share * 100.0, 3) + "%"; }
double Ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }
const char* Verdict(bool ok) { return ok ? "PASS" : "FAIL"; }

std::optional<double> MaxOpt(std::optional<double> a, std::optional<double> b) {
  if (!a) return b;
  if (!b) return a;
  return std::max(*a, *b);
}

// Counter increase over the window, summed over every URL; nullopt when no URL has both scrapes.
template <class Field>
std::optional<double> Delta(const std::vector<MetricsWindow>& ws, Field f) {
  std::optional<double> sum;
  for (const auto& w : ws) {
    if (!w.before || !w.after) continue;
    const auto a = f(*w.before);
    const auto b = f(*w.after);
    if (a && b) sum = sum.value_or(0) + std::max(0.0, *b - *a);
  }
  return sum;
}

// Highest gauge value seen over the window (before, samples, after), over every URL.
template <class Field>
std::optional<double> Peak(const std::vector<MetricsWindow>& ws, Field f,
                           std::optional<double> MetricsWindow::*sampled) {
  std::optional<double> m;
  for (const auto& w : ws) {
    if (w.before) m = MaxOpt(m, f(*w.before));
    if (w.after) m = MaxOpt(m, f(*w.after));
    m = MaxOpt(m, w.*sampled);
  }
  return m;
}

std::optional<double> Ratio(std::optional<double> hits, std::optional<double> misses) {
  if (!hits || !misses || *hits + *misses <= 0) return std::nullopt;
  return *hits / (*hits + *misses);
}

// Nearest-rank percentile of `v` (sorted in place); nullopt when empty.
std::optional<double> PercentileOf(std::vector<double>& v, double p) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

}  // namespace

BudgetUse BudgetUseOf(const MetricsWindow& w) {
  BudgetUse u;
  std::vector<double> cpu, mem;
  const MetricsPoint* prev = nullptr;
  for (const auto& p : w.series) {
    const auto& f = p.f;
    if (f.cpu_budget_cores && *f.cpu_budget_cores > 0) u.cpu_budget_cores = *f.cpu_budget_cores;
    if (f.rss_bytes && f.memory_budget_bytes && *f.memory_budget_bytes > 0)
      mem.push_back(*f.rss_bytes / *f.memory_budget_bytes);
    if (prev != nullptr && prev->f.cpu_seconds && f.cpu_seconds && f.cpu_budget_cores &&
        *f.cpu_budget_cores > 0) {
      const double dt = p.t_s - prev->t_s;
      // A restarted process resets its counter: skip that interval rather than go negative.
      if (dt >= 0.25 && *f.cpu_seconds >= *prev->f.cpu_seconds)
        cpu.push_back((*f.cpu_seconds - *prev->f.cpu_seconds) / dt / *f.cpu_budget_cores);
    }
    prev = &p;
  }
  u.cpu_p90 = PercentileOf(cpu, 90);
  u.memory_p90 = PercentileOf(mem, 90);
  return u;
}

void JobFollow::Merge(const JobFollow& o) {
  sampled += o.sampled;
  succeeded += o.succeeded;
  failed += o.failed;
  unfinished += o.unfinished;
  latency.Merge(o.latency);
}

std::vector<Check> PhaseChecks(const PhaseResult& r, bool overall) {
  std::vector<Check> c;
  const RunStats& s = r.stats;
  const double dur_s = static_cast<double>(r.phase.duration.count()) / 1000.0;
  // Responses that arrived after the phase's schedule ended are late, not throughput.
  const double achieved = dur_s > 0 ? static_cast<double>(s.completed_in_window) / dur_s : 0;
  const double sched = std::max<double>(1.0, static_cast<double>(s.scheduled));
  const bool judged = !overall && !r.phase.stress;  // stress steps look for the limit: info only
  if (!overall) {
    c.push_back({"achieved rate", Fixed(achieved, 1) + " rps",
                 ">= 95% of " + Fixed(r.phase.rate, 0) + " rps",
                 judged ? Verdict(achieved >= 0.95 * r.phase.rate) : "info"});
    c.push_back({"late responses (after the phase)",
                 std::to_string(s.completed - s.completed_in_window), "-", "info"});
  } else {
    c.push_back({"requests completed",
                 std::to_string(s.completed) + " of " + std::to_string(s.scheduled), "-", "info"});
  }
  const auto& h = s.latency;
  const double p95 = Ms(h.Percentile(95));
  const double p99 = Ms(h.Percentile(99));
  c.push_back({"latency P50", Fixed(Ms(h.Percentile(50)), 2) + " ms", "-", "info"});
  c.push_back({"latency P95", Fixed(p95, 2) + " ms", "< 500 ms",
               judged || overall ? Verdict(h.count() > 0 && p95 < 500) : "info"});
  c.push_back({"latency P99", Fixed(p99, 2) + " ms", "< 500 ms",
               judged || overall ? Verdict(h.count() > 0 && p99 < 500) : "info"});
  c.push_back({"latency max", Fixed(Ms(h.max()), 2) + " ms", "-", "info"});
  const double share_5xx = static_cast<double>(s.status_5xx) / sched;
  c.push_back({"5xx rate", Pct(share_5xx) + " (" + std::to_string(s.status_5xx) + ")", "< 0.1%",
               judged || overall ? Verdict(share_5xx < 0.001) : "info"});
  c.push_back({"4xx rate",
               Pct(static_cast<double>(s.status_4xx) / sched) + " (" +
                   std::to_string(s.status_4xx) + ", 429: " + std::to_string(r.counts.status_429) +
                   ")",
               "-", "info"});
  const uint64_t transport = s.err_connect + s.err_timeout + s.err_io + s.not_sent;
  c.push_back({"transport errors",
               std::to_string(transport) + " (timeout " + std::to_string(s.err_timeout) +
                   ", not sent " + std::to_string(s.not_sent) + ")",
               "-", "info"});

  const bool have_metrics = !r.metrics.empty();
  auto na = [&](const std::string& name, const std::string& target) {
    c.push_back({name, have_metrics ? "not exported" : "no --metrics-url", target, "n/a"});
  };
  const auto visible = Peak(
      r.metrics, [](const ServerFigures& f) { return f.visible; }, &MetricsWindow::max_visible);
  if (visible)
    c.push_back(
        {"queue visible backlog (max)", Fixed(*visible, 0), "< 1,000", Verdict(*visible < 1000)});
  else
    na("queue visible backlog (max)", "< 1,000");
  const auto age = Peak(
      r.metrics, [](const ServerFigures& f) { return f.oldest_age_s; },
      &MetricsWindow::max_oldest_age_s);
  if (age)
    c.push_back(
        {"oldest message age (max)", Fixed(*age, 1) + " s", "< 600 s", Verdict(*age < 600)});
  else
    na("oldest message age (max)", "< 600 s");
  const auto auth = Ratio(Delta(r.metrics, [](const ServerFigures& f) { return f.auth_hits; }),
                          Delta(r.metrics, [](const ServerFigures& f) { return f.auth_misses; }));
  if (auth)
    c.push_back({"auth decision cache hit ratio", Pct(*auth), "> 95%", Verdict(*auth > 0.95)});
  else
    na("auth decision cache hit ratio", "> 95%");
  const auto cfg = Ratio(Delta(r.metrics, [](const ServerFigures& f) { return f.config_hits; }),
                         Delta(r.metrics, [](const ServerFigures& f) { return f.config_misses; }));
  if (cfg)
    c.push_back({"config cache hit ratio", Pct(*cfg), "> 90%", Verdict(*cfg > 0.90)});
  else
    na("config cache hit ratio", "> 90%");
  std::optional<double> dlq;
  for (const auto& w : r.metrics)
    if (w.after) dlq = MaxOpt(dlq, w.after->dlq);
  if (dlq)
    c.push_back({"DLQ depth (end)", Fixed(*dlq, 0), "0 (S12 alarm)", Verdict(*dlq == 0)});
  else
    na("DLQ depth (end)", "0 (S12 alarm)");
  // Worker drain next to intake: a backlog that grows means the workers finish fewer jobs per
  // second than the API accepts.
  const auto finished = Delta(r.metrics, [](const ServerFigures& f) { return f.jobs_finished; });
  if (finished && dur_s > 0)
    c.push_back({"jobs finished by workers",
                 Fixed(*finished / dur_s, 1) + "/s (" + Fixed(*finished, 0) + ")",
                 "accepted: " + Fixed(static_cast<double>(r.counts.accepted) / dur_s, 1) + "/s",
                 "info"});
  else
    na("jobs finished by workers", "-");
  const auto deferrals = Delta(r.metrics, [](const ServerFigures& f) { return f.deferrals; });
  if (deferrals)
    c.push_back({"limiter deferrals", Fixed(*deferrals, 0), "-", "info"});
  else
    na("limiter deferrals", "-");
  // The busiest process decides (in a fleet every --metrics-url is one process).
  std::optional<double> cpu, mem;
  std::string cpu_at, mem_at;
  double cores = 0;
  for (const auto& w : r.metrics) {
    const BudgetUse u = BudgetUseOf(w);
    if (u.cpu_p90 && (!cpu || *u.cpu_p90 > *cpu)) {
      cpu = u.cpu_p90;
      cpu_at = w.url;
      cores = u.cpu_budget_cores;
    }
    if (u.memory_p90 && (!mem || *u.memory_p90 > *mem)) {
      mem = u.memory_p90;
      mem_at = w.url;
    }
  }
  const std::string where = r.metrics.size() > 1 ? " at " : "";
  if (cpu)
    c.push_back(
        {"server CPU P90",
         Pct(*cpu) + " of " + Fixed(cores, 1) + " cores" + (where.empty() ? "" : where + cpu_at),
         "< 80% of budget", Verdict(*cpu < 0.80)});
  else
    na("server CPU P90", "< 80% of budget");
  if (mem)
    c.push_back({"server memory P90", Pct(*mem) + (where.empty() ? "" : where + mem_at),
                 "< 80% of budget", Verdict(*mem < 0.80)});
  else
    na("server memory P90", "< 80% of budget");
  const auto rss = Peak(
      r.metrics, [](const ServerFigures& f) { return f.rss_bytes; }, &MetricsWindow::max_rss_bytes);
  if (rss)
    c.push_back({"server RSS (max)", Fixed(*rss / 1048576.0, 1) + " MB", "-", "info"});
  else
    na("server RSS (max)", "-");

  if (r.followed) {
    const auto& f = r.follow;
    const auto& jl = f.latency;
    c.push_back({"jobs followed",
                 std::to_string(f.sampled) + " (succeeded " + std::to_string(f.succeeded) +
                     ", failed " + std::to_string(f.failed) + ")",
                 "-", "info"});
    c.push_back({"jobs not terminal", std::to_string(f.unfinished), "0 (no job lost)",
                 Verdict(f.unfinished == 0)});
    c.push_back({"job latency P50",
                 jl.count() ? Fixed(Ms(jl.Percentile(50)) / 1000, 2) + " s" : "no terminal job",
                 "-", "info"});
    const double jp95 = Ms(jl.Percentile(95)) / 1000;
    c.push_back({"job latency P95", jl.count() ? Fixed(jp95, 2) + " s" : "no terminal job",
                 "< 15 s", jl.count() ? Verdict(jp95 < 15) : "n/a"});
    c.push_back({"job latency P99",
                 jl.count() ? Fixed(Ms(jl.Percentile(99)) / 1000, 2) + " s" : "no terminal job",
                 "-", "info"});
  }
  return c;
}

PhaseResult Overall(const std::vector<PhaseResult>& phases) {
  PhaseResult o;
  o.phase.name = "overall";
  for (const auto& p : phases) {
    o.stats.Merge(p.stats);
    o.counts.Merge(p.counts);
    o.phase.duration += p.phase.duration;
    o.followed = o.followed || p.followed;
    o.follow.Merge(p.follow);
  }
  if (!phases.empty()) {
    o.metrics = phases.front().metrics;
    for (size_t i = 0; i < o.metrics.size(); ++i) {
      auto& w = o.metrics[i];
      w.after = phases.back().metrics.size() > i ? phases.back().metrics[i].after : std::nullopt;
      for (const auto& p : phases) {
        if (p.metrics.size() <= i) continue;
        const auto& pw = p.metrics[i];
        w.max_visible = MaxOpt(w.max_visible, pw.max_visible);
        w.max_oldest_age_s = MaxOpt(w.max_oldest_age_s, pw.max_oldest_age_s);
        w.max_rss_bytes = MaxOpt(w.max_rss_bytes, pw.max_rss_bytes);
        if (pw.before) {
          w.max_visible = MaxOpt(w.max_visible, pw.before->visible);
          w.max_oldest_age_s = MaxOpt(w.max_oldest_age_s, pw.before->oldest_age_s);
          w.max_rss_bytes = MaxOpt(w.max_rss_bytes, pw.before->rss_bytes);
        }
        if (pw.after) {
          w.max_visible = MaxOpt(w.max_visible, pw.after->visible);
          w.max_oldest_age_s = MaxOpt(w.max_oldest_age_s, pw.after->oldest_age_s);
          w.max_rss_bytes = MaxOpt(w.max_rss_bytes, pw.after->rss_bytes);
        }
        if (&p != &phases.front()) {
          w.series.insert(w.series.end(), pw.series.begin(), pw.series.end());
          w.samples += pw.samples;
          w.failed_scrapes += pw.failed_scrapes;
        }
      }
    }
  }
  return o;
}

void WritePhaseText(const PhaseResult& r, bool overall, std::ostream& out) {
  if (overall)
    out << "=== overall (" << Fixed(static_cast<double>(r.phase.duration.count()) / 1000.0, 1)
        << " s of load)\n";
  else
    out << "=== phase " << r.phase.name << ": target " << Fixed(r.phase.rate, 0) << " rps for "
        << Fixed(static_cast<double>(r.phase.duration.count()) / 1000.0, 1) << " s\n";
  out << "  requests: ";
  for (int k = 0; k < kRequestKinds; ++k)
    out << (k ? ", " : "") << RequestKindName(static_cast<RequestKind>(k)) << ' '
        << r.counts.sent[k] << " (5xx " << r.counts.s5xx[k] << ')';
  out << "\n  accepted jobs " << r.counts.accepted << "; retries answered with the original jobId "
      << r.counts.retry_same_id << ", otherwise " << r.counts.retry_other << '\n';
  char line[256];
  std::snprintf(line, sizeof line, "  %-32s %-34s %-18s %s\n", "check", "value", "target (S1)",
                "verdict");
  out << line;
  for (const auto& c : PhaseChecks(r, overall)) {
    std::snprintf(line, sizeof line, "  %-32s %-34s %-18s %s\n", c.name.c_str(), c.value.c_str(),
                  c.target.c_str(), c.verdict.c_str());
    out << line;
  }
  for (const auto& w : r.metrics)
    if (w.failed_scrapes > 0)
      out << "  note: " << w.failed_scrapes << " failed scrape(s) of " << w.url << '\n';
  out.flush();
}

namespace {

void AppendString(std::string& j, std::string_view s) {
  j += '"';
  log::AppendJsonEscaped(j, s);
  j += '"';
}

void AppendPhase(std::string& j, const PhaseResult& r, bool overall) {
  const RunStats& s = r.stats;
  j += "{\"name\":";
  AppendString(j, r.phase.name);
  j += ",\"target_rate\":" + Fixed(r.phase.rate, 3);
  j += ",\"duration_s\":" + Fixed(static_cast<double>(r.phase.duration.count()) / 1000.0, 3);
  j += ",\"stress\":" + std::string(r.phase.stress ? "true" : "false");
  const double dur_s = std::max(1e-9, static_cast<double>(r.phase.duration.count()) / 1000.0);
  j += ",\"achieved_rate\":" + Fixed(static_cast<double>(s.completed_in_window) / dur_s, 3);
  j += ",\"start_s\":" + Fixed(r.start_s, 3);
  j += ",\"scheduled\":" + std::to_string(s.scheduled);
  j += ",\"sent\":" + std::to_string(s.sent);
  j += ",\"completed\":" + std::to_string(s.completed);
  j += ",\"completed_in_window\":" + std::to_string(s.completed_in_window);
  j += ",\"status_2xx\":" + std::to_string(s.status_2xx);
  j += ",\"status_4xx\":" + std::to_string(s.status_4xx);
  j += ",\"status_5xx\":" + std::to_string(s.status_5xx);
  j += ",\"status_429\":" + std::to_string(r.counts.status_429);
  j += ",\"errors\":{\"connect\":" + std::to_string(s.err_connect) +
       ",\"timeout\":" + std::to_string(s.err_timeout) + ",\"io\":" + std::to_string(s.err_io) +
       ",\"not_sent\":" + std::to_string(s.not_sent) + "}";
  j += ",\"latency_ms\":{\"p50\":" + Fixed(Ms(s.latency.Percentile(50)), 3) +
       ",\"p95\":" + Fixed(Ms(s.latency.Percentile(95)), 3) +
       ",\"p99\":" + Fixed(Ms(s.latency.Percentile(99)), 3) +
       ",\"max\":" + Fixed(Ms(s.latency.max()), 3) + "}";
  j += ",\"requests\":{";
  for (int k = 0; k < kRequestKinds; ++k) {
    if (k) j += ',';
    AppendString(j, RequestKindName(static_cast<RequestKind>(k)));
    j += ":{\"sent\":" + std::to_string(r.counts.sent[k]) +
         ",\"2xx\":" + std::to_string(r.counts.s2xx[k]) +
         ",\"4xx\":" + std::to_string(r.counts.s4xx[k]) +
         ",\"5xx\":" + std::to_string(r.counts.s5xx[k]) + "}";
  }
  j += "},\"accepted_jobs\":" + std::to_string(r.counts.accepted);
  j += ",\"retry_same_job_id\":" + std::to_string(r.counts.retry_same_id);
  j += ",\"retry_other\":" + std::to_string(r.counts.retry_other);
  if (r.followed) {
    const auto& f = r.follow;
    j += ",\"follow\":{\"sampled\":" + std::to_string(f.sampled) +
         ",\"succeeded\":" + std::to_string(f.succeeded) +
         ",\"failed\":" + std::to_string(f.failed) +
         ",\"unfinished\":" + std::to_string(f.unfinished) +
         ",\"latency_s\":{\"p50\":" + Fixed(Ms(f.latency.Percentile(50)) / 1000, 3) +
         ",\"p95\":" + Fixed(Ms(f.latency.Percentile(95)) / 1000, 3) +
         ",\"p99\":" + Fixed(Ms(f.latency.Percentile(99)) / 1000, 3) +
         ",\"max\":" + Fixed(Ms(f.latency.max()) / 1000, 3) + "}}";
  }
  if (!overall) {
    // Per second of the phase (t_s from the plan's start): for charts and later analysis.
    j += ",\"timeline\":[";
    bool first_point = true;
    for (const auto& p : s.timeline.Points(r.start_s)) {
      if (!first_point) j += ',';
      first_point = false;
      j += "{\"t_s\":" + Fixed(p.t_s, 1) + ",\"completed\":" + std::to_string(p.completed) +
           ",\"errors\":" + std::to_string(p.errors) + ",\"p50_ms\":" + Fixed(p.p50_ms, 3) +
           ",\"p99_ms\":" + Fixed(p.p99_ms, 3) + "}";
    }
    j += "],\"server_series\":[";
    for (size_t i = 0; i < r.metrics.size(); ++i) {
      if (i) j += ',';
      j += "{\"url\":";
      AppendString(j, r.metrics[i].url);
      j += ",\"points\":[";
      bool first_sample = true;
      for (const auto& m : r.metrics[i].series) {
        if (!first_sample) j += ',';
        first_sample = false;
        j += "{\"t_s\":" + Fixed(m.t_s, 2);
        auto field = [&j](const char* name, std::optional<double> v) {
          if (v) j += std::string(",\"") + name + "\":" + Fixed(*v, 3);
        };
        field("visible", m.f.visible);
        field("oldest_age_s", m.f.oldest_age_s);
        field("rss_bytes", m.f.rss_bytes);
        field("cpu_seconds", m.f.cpu_seconds);
        j += '}';
      }
      j += "]}";
    }
    j += ']';
  }
  j += ",\"checks\":[";
  bool first = true;
  for (const auto& c : PhaseChecks(r, overall)) {
    if (!first) j += ',';
    first = false;
    j += "{\"name\":";
    AppendString(j, c.name);
    j += ",\"value\":";
    AppendString(j, c.value);
    j += ",\"target\":";
    AppendString(j, c.target);
    j += ",\"verdict\":";
    AppendString(j, c.verdict);
    j += '}';
  }
  j += "]}";
}

bool NoFail(const PhaseResult& r, bool overall) {
  for (const auto& c : PhaseChecks(r, overall))
    if (c.verdict == "FAIL") return false;
  return true;
}

}  // namespace

bool AllPass(const std::vector<PhaseResult>& phases, const PhaseResult& overall) {
  for (const auto& p : phases)
    if (!NoFail(p, false)) return false;
  return NoFail(overall, true);
}

std::string ReportJson(const ReportHeader& h, const std::vector<PhaseResult>& phases,
                       const PhaseResult& overall) {
  std::string j = "{\"kind\":\"loadgen_plan_report\",\"plan\":";
  AppendString(j, h.plan);
  j += ",\"scale\":" + Fixed(h.scale, 4);
  j += ",\"users\":" + std::to_string(h.users);
  j += ",\"retry_share\":" + Fixed(h.retry_share, 4);
  j += ",\"targets\":[";
  for (size_t i = 0; i < h.targets.size(); ++i) {
    if (i) j += ',';
    AppendString(j, h.targets[i]);
  }
  j += "],\"metrics_urls\":[";
  for (size_t i = 0; i < h.metrics_urls.size(); ++i) {
    if (i) j += ',';
    AppendString(j, h.metrics_urls[i]);
  }
  j += "],\"stress_stop\":";
  AppendString(j, h.stop_reason);
  j += ",\"phases\":[";
  for (size_t i = 0; i < phases.size(); ++i) {
    if (i) j += ',';
    AppendPhase(j, phases[i], false);
  }
  j += "],\"overall\":";
  AppendPhase(j, overall, true);
  j += ",\"verdict\":";
  AppendString(j, AllPass(phases, overall) ? "PASS" : "FAIL");
  j += "}";
  return j;
}

}  // namespace syncwell::loadgen
