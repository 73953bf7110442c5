#pragma once
// Minimal lock-light Prometheus registry: counters, gauges and fixed-bucket histograms, rendered
// in the text exposition format. Metric objects are created at start-up and live as long as the
// registry; the hot path only touches atomics. Thread-safe.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace syncwell::obs {

class Counter {
 public:
  void Inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  uint64_t BucketCount(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  double Sum() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // non-cumulative; last = +Inf
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

// Latency buckets (seconds) fine enough for P50/P95/P99 from 100 µs up to 10 s.
std::vector<double> LatencyBuckets();

class Registry {
 public:
  // Labels as a rendered label set, e.g. R"(route="x",status="200")". Same name+labels -> same
  // object.
  Counter& GetCounter(const std::string& name, const std::string& help,
                      const std::string& labels = "");
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const std::string& labels, const std::vector<double>& bounds);
  // A gauge read when /metrics is rendered.
  void AddGauge(const std::string& name, const std::string& help, std::function<double()> read,
                const std::string& labels = "");
  // A counter whose value lives elsewhere (e.g. an atomic in another component), read at render.
  void AddCounterFn(const std::string& name, const std::string& help, std::function<double()> read,
                    const std::string& labels = "");
  // The Prometheus text of every family, or only of the families named in `only` (in name
  // order; unknown names render nothing). A family's gauges are read only when it is rendered:
  // some read /proc (process_open_fds lists /proc/self/fd, ~13 ms with 3,000 descriptors).
  std::string Render(const std::vector<std::string>& only = {}) const;

 private:
  struct Family {
    std::string help;
    std::string type;
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
    std::map<std::string, std::function<double()>> gauges;
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

}  // namespace syncwell::obs
