#pragma once
// Timeline: the run second by second (responses, errors, coarse latency percentiles) for the
// report's time series and chart. One per engine worker thread, merged second by second.
// Memory: ~1 KB per second of run; seconds beyond kMaxSeconds are not kept. No Asio.
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace syncwell::loadgen {

class Timeline {
 public:
  // Latency buckets: 8 per power of two from 1 µs (≤ 9% from any value in it) up to ~268 s.
  static constexpr int kBucketsPerOctave = 8;
  static constexpr int kOctaves = 28;
  static constexpr size_t kBuckets = size_t{kBucketsPerOctave} * kOctaves + 1;
  static constexpr size_t kMaxSeconds = 86'400;

  struct Second {
    uint64_t completed = 0;  // full responses, any status
    uint64_t errors = 0;     // 5xx responses and transport errors (connect, timeout, io)
    std::array<uint32_t, kBuckets> latency{};
  };
  struct Point {
    double t_s = 0;  // start of the second, from the timeline's origin
    uint64_t completed = 0;
    uint64_t errors = 0;
    double p50_ms = 0, p99_ms = 0;  // 0 when no response completed in that second
  };

  // `offset_ns` = time since the run's start (negative is clamped to second 0).
  void RecordResponse(int64_t offset_ns, bool is_error, uint64_t latency_ns);
  void RecordError(int64_t offset_ns);
  void Merge(const Timeline& other);

  size_t seconds() const { return seconds_.size(); }
  // One point per second; `origin_s` is added to every t_s (the phase's start within the plan).
  std::vector<Point> Points(double origin_s) const;

  static size_t BucketOf(uint64_t latency_ns);
  static double BucketMidpointNs(size_t bucket);

 private:
  Second* At(int64_t offset_ns);
  std::vector<Second> seconds_;
};

}  // namespace syncwell::loadgen
