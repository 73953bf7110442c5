#pragma once
// LatencyHistogram: an HDR-style log-bucket histogram of durations in nanoseconds.
//
// Values below 2^kSubBits ns are counted exactly; above, each power of two is split into
// 2^kSubBits linear sub-buckets, so a bucket's width is at most 1/2^kSubBits (0.39%) of its lower
// bound and the midpoint reported by Percentile() is within 0.2% of any value in it. The range is
// [0, kMaxTrackable] (about 137 s); larger values are clamped to it and counted in clamped().
// Fixed memory (~70 KB), no allocation while recording. Not thread-safe: one per thread, then
// Merge().
#include <cstddef>
#include <cstdint>
#include <vector>

namespace syncwell::loadgen {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 8;
  static constexpr int kMaxExponent = 36;  // values < 2^37 ns (~137 s)
  static constexpr uint64_t kMaxTrackable = (uint64_t{1} << (kMaxExponent + 1)) - 1;

  void Record(uint64_t value_ns);
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  uint64_t clamped() const { return clamped_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_); }

  // Value at percentile p in [0, 100] (nearest-rank): the midpoint of the bucket holding the
  // ceil(p/100 * count)-th smallest value, clamped to [min, max]. 0 when empty.
  uint64_t Percentile(double p) const;

  // Bucket index of a value and the bucket's [lower, upper] bounds; public for tests.
  static size_t IndexOf(uint64_t value_ns);
  static uint64_t LowerBound(size_t index);
  static uint64_t UpperBound(size_t index);
  static constexpr size_t kBucketCount =
      (size_t{1} << kSubBits) + size_t(kMaxExponent - kSubBits + 1) * (size_t{1} << kSubBits);

 private:
  std::vector<uint64_t> buckets_ = std::vector<uint64_t>(kBucketCount, 0);
  uint64_t count_ = 0;
  uint64_t clamped_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  double sum_ = 0;  // double: no overflow, mean needs no more precision
};

}  // namespace syncwell::loadgen
