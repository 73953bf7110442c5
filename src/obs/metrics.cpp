#include "obs/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace syncwell::obs {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(std::llround(v * 1e6)), std::memory_order_relaxed);
}

double Histogram::Sum() const { return static_cast<double>(sum_micros_.load()) / 1e6; }

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01,
          0.015,  0.025,   0.05,   0.075,   0.1,   0.25,   0.5,   1,     2.5,   5,      10};
}

Counter& Registry::GetCounter(const std::string& name, const std::string& help,
                              const std::string& labels) {
  std::lock_guard lock(mu_);
  auto& f = families_[name];
  f.help = help;
  f.type = "counter";
  auto& c = f.counters[labels];
  if (!c) c = std::make_unique<Counter>();
  return *c;
}

Histogram& Registry::GetHistogram(const std::string& name, const std::string& help,
                                  const std::string& labels, const std::vector<double>& bounds) {
  std::lock_guard lock(mu_);
  auto& f = families_[name];
  f.help = help;
  f.type = "histogram";
  auto& h = f.histograms[labels];
  if (!h) h = std::make_unique<Histogram>(bounds);
  return *h;
}

void Registry::AddGauge(const std::string& name, const std::string& help,
                        std::function<double()> read, const std::string& labels) {
  std::lock_guard lock(mu_);
  auto& f = families_[name];
  f.help = help;
  f.type = "gauge";
  f.gauges[labels] = std::move(read);
}

void Registry::AddCounterFn(const std::string& name, const std::string& help,
                            std::function<double()> read, const std::string& labels) {
  std::lock_guard lock(mu_);
  auto& f = families_[name];
  f.help = help;
  f.type = "counter";
  f.gauges[labels] = std::move(read);
}

static std::string Num(double v) {
  if (std::isinf(v)) return "+Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

static std::string Braced(const std::string& labels, const std::string& extra = "") {
  std::string all = labels;
  if (!extra.empty()) all += (all.empty() ? "" : ",") + extra;
  return all.empty() ? "" : "{" + all + "}";
}

std::string Registry::Render(const std::vector<std::string>& only) const {
  std::lock_guard lock(mu_);
  std::string out;
  out.reserve(only.empty() ? 16384 : 1024);
  const auto render = [&out](const std::string& name, const Family& f) {
    out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.type + "\n";
    for (const auto& [labels, c] : f.counters) {
      out += name + Braced(labels) + " " + std::to_string(c->Value()) + "\n";
    }
    for (const auto& [labels, g] : f.gauges) out += name + Braced(labels) + " " + Num(g()) + "\n";
    for (const auto& [labels, h] : f.histograms) {
      uint64_t cum = 0;
      for (size_t i = 0; i <= h->bounds().size(); ++i) {
        cum += h->BucketCount(i);
        std::string le = i < h->bounds().size() ? Num(h->bounds()[i]) : "+Inf";
        out += name + "_bucket" + Braced(labels, "le=\"" + le + "\"") + " " + std::to_string(cum) +
               "\n";
      }
      out += name + "_sum" + Braced(labels) + " " + Num(h->Sum()) + "\n";
      out += name + "_count" + Braced(labels) + " " + std::to_string(h->Count()) + "\n";
    }
  };
  if (only.empty()) {
    for (const auto& [name, f] : families_) render(name, f);
    return out;
  }
  std::vector<std::string> names = only;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (const auto& name : names) {
    if (auto it = families_.find(name); it != families_.end()) render(name, it->second);
  }
  return out;
}

}  // namespace syncwell::obs
