#pragma once
// Reads the server's Prometheus text exposition (/metrics) into the few figures the S14 report
// compares with SPEC S1. Parsing only (no I/O, no Asio): the runner fetches the text.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace syncwell::loadgen {

// Every sample line "name{labels} value" of one scrape.
class MetricsText {
 public:
  static MetricsText Parse(std::string_view text);
  // Sum of the samples named `name` whose label set contains every `label_parts` substring
  // (e.g. {"cache=\"config\"", "outcome=\"hit\""}); nullopt when no sample matched.
  std::optional<double> Sum(std::string_view name,
                            const std::vector<std::string_view>& label_parts = {}) const;
  // Like Sum() for labels whose value starts with a prefix: label `key` = "prefix...".
  std::optional<double> SumPrefix(std::string_view name, std::string_view key,
                                  std::string_view prefix) const;

 private:
  struct Sample {
    std::string name;
    std::string labels;  // inside the braces, "" when none
    double value = 0;
  };
  std::vector<Sample> samples_;
};

// The figures of one scrape; nullopt = the server does not export it.
struct ServerFigures {
  std::optional<double> visible;              // syncwell_queue_visible_messages
  std::optional<double> oldest_age_s;         // syncwell_queue_oldest_message_age_seconds
  std::optional<double> dlq;                  // syncwell_queue_dlq_messages
  std::optional<double> auth_hits;            // syncwell_auth_decision_cache_hits_total
  std::optional<double> auth_misses;          // syncwell_auth_decision_cache_misses_total
  std::optional<double> config_hits;          // syncwell_cache_requests_total{cache="config",...}
  std::optional<double> config_misses;        //   outcome="miss" + outcome="error"
  std::optional<double> deferrals;            // syncwell_worker_jobs_total{outcome=~"deferred.*"}
  std::optional<double> rss_bytes;            // process_resident_memory_bytes
  std::optional<double> cpu_seconds;          // process_cpu_seconds_total
  std::optional<double> http_5xx;             // syncwell_http_requests_total{status=~"5.."}
  std::optional<double> jobs_finished;        // syncwell_worker_jobs_total, outcomes that end a job
  std::optional<double> cpu_budget_cores;     // syncwell_process_cpu_budget_cores
  std::optional<double> memory_budget_bytes;  // syncwell_process_memory_budget_bytes
};
ServerFigures ExtractFigures(const MetricsText& m);

}  // namespace syncwell::loadgen
