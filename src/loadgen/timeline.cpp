#include "loadgen/timeline.hpp"

#include <algorithm>
#include <cmath>

namespace syncwell::loadgen {

size_t Timeline::BucketOf(uint64_t latency_ns) {
  const double us = static_cast<double>(latency_ns) / 1000.0;
  if (us < 1.0) return 0;
  const auto b = static_cast<size_t>(std::floor(std::log2(us) * kBucketsPerOctave)) + 1;
  return std::min(b, kBuckets - 1);
}

double Timeline::BucketMidpointNs(size_t bucket) {
  if (bucket == 0) return 500.0;
  // Bucket b covers [2^((b-1)/8), 2^(b/8)) µs: report the geometric midpoint.
  const double lo = std::exp2(static_cast<double>(bucket - 1) / kBucketsPerOctave);
  return 1000.0 * lo * std::exp2(0.5 / kBucketsPerOctave);
}

Timeline::Second* Timeline::At(int64_t offset_ns) {
  const auto s = static_cast<size_t>(std::max<int64_t>(0, offset_ns) / 1'000'000'000);
  if (s >= kMaxSeconds) return nullptr;
  if (s >= seconds_.size()) seconds_.resize(s + 1);
  return &seconds_[s];
}

void Timeline::RecordResponse(int64_t offset_ns, bool is_error, uint64_t latency_ns) {
  Second* s = At(offset_ns);
  if (s == nullptr) return;
  ++s->completed;
  if (is_error) ++s->errors;
  ++s->latency[BucketOf(latency_ns)];
}

void Timeline::RecordError(int64_t offset_ns) {
  if (Second* s = At(offset_ns)) ++s->errors;
}

void Timeline::Merge(const Timeline& other) {
  if (other.seconds_.size() > seconds_.size()) seconds_.resize(other.seconds_.size());
  for (size_t i = 0; i < other.seconds_.size(); ++i) {
    const Second& o = other.seconds_[i];
    Second& s = seconds_[i];
    s.completed += o.completed;
    s.errors += o.errors;
    for (size_t b = 0; b < kBuckets; ++b) s.latency[b] += o.latency[b];
  }
}

std::vector<Timeline::Point> Timeline::Points(double origin_s) const {
  std::vector<Point> out;
  out.reserve(seconds_.size());
  for (size_t i = 0; i < seconds_.size(); ++i) {
    const Second& s = seconds_[i];
    Point p;
    p.t_s = origin_s + static_cast<double>(i);
    p.completed = s.completed;
    p.errors = s.errors;
    uint64_t n = 0;
    for (uint32_t c : s.latency) n += c;
    auto percentile = [&](double q) {
      const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(n)));
      uint64_t seen = 0;
      for (size_t b = 0; b < kBuckets; ++b) {
        seen += s.latency[b];
        if (seen >= std::max<uint64_t>(rank, 1)) return BucketMidpointNs(b) / 1e6;
      }
      return 0.0;
    };
    if (n > 0) {
      p.p50_ms = percentile(0.50);
      p.p99_ms = percentile(0.99);
    }
    out.push_back(p);
  }
  return out;
}

}  // namespace syncwell::loadgen
