#include "loadgen/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace syncwell::loadgen {

namespace {
constexpr uint64_t kSubCount = uint64_t{1} << LatencyHistogram::kSubBits;
}  // namespace

size_t LatencyHistogram::IndexOf(uint64_t v) {
  if (v < kSubCount) return static_cast<size_t>(v);
  const int e = std::bit_width(v) - 1;  // >= kSubBits
  const int shift = e - kSubBits;
  const uint64_t sub = (v >> shift) - kSubCount;  // in [0, kSubCount)
  return static_cast<size_t>(kSubCount + uint64_t(shift) * kSubCount + sub);
}

uint64_t LatencyHistogram::LowerBound(size_t index) {
  if (index < kSubCount) return index;
  const uint64_t shift = (index - kSubCount) / kSubCount;
  const uint64_t sub = (index - kSubCount) % kSubCount;
  return (kSubCount + sub) << shift;
}

uint64_t LatencyHistogram::UpperBound(size_t index) {
  if (index < kSubCount) return index;
  const uint64_t shift = (index - kSubCount) / kSubCount;
  return LowerBound(index) + (uint64_t{1} << shift) - 1;
}

void LatencyHistogram::Record(uint64_t v) {
  if (v > kMaxTrackable) {
    v = kMaxTrackable;
    ++clamped_;
  }
  ++buckets_[IndexOf(v)];
  ++count_;
  sum_ += static_cast<double>(v);
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
}

void LatencyHistogram::Merge(const LatencyHistogram& o) {
  for (size_t i = 0; i < kBucketCount; ++i) buckets_[i] += o.buckets_[i];
  count_ += o.count_;
  clamped_ += o.clamped_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

uint64_t LatencyHistogram::Percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBucketCount; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      const uint64_t mid = LowerBound(i) + (UpperBound(i) - LowerBound(i)) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace syncwell::loadgen
