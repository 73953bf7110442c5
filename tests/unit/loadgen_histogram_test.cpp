// LatencyHistogram: percentiles within 1% of the exact nearest-rank value on known distributions
// over 1 µs – 60 s, bucket geometry, clamping, merging.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "loadgen/histogram.hpp"

namespace syncwell::loadgen {
namespace {

constexpr double kPercentiles[] = {0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100};

uint64_t ExactPercentile(std::vector<uint64_t> sorted, double p) {
  std::sort(sorted.begin(), sorted.end());
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void ExpectWithinOnePercent(const std::vector<uint64_t>& values) {
  LatencyHistogram h;
  for (uint64_t v : values) h.Record(v);
  ASSERT_EQ(h.count(), values.size());
  for (double p : kPercentiles) {
    const double exact = static_cast<double>(ExactPercentile(values, p));
    const double got = static_cast<double>(h.Percentile(p));
    EXPECT_LE(std::abs(got - exact), 0.01 * exact)
        << "p" << p << " exact " << exact << " got " << got;
  }
}

TEST(LoadgenHistogram, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(99), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.min(), 0u);
}

TEST(LoadgenHistogram, BucketWidthIsUnderOnePercentAcrossRange) {
  // Every bucket from 1 µs to 60 s is narrower than 1% of its lower bound, and buckets tile the
  // value line without gaps.
  for (size_t i = LatencyHistogram::IndexOf(1'000); i <= LatencyHistogram::IndexOf(60'000'000'000);
       ++i) {
    const double lo = static_cast<double>(LatencyHistogram::LowerBound(i));
    const double hi = static_cast<double>(LatencyHistogram::UpperBound(i));
    ASSERT_LT((hi - lo + 1) / lo, 0.01) << "bucket " << i;
    ASSERT_EQ(LatencyHistogram::UpperBound(i) + 1, LatencyHistogram::LowerBound(i + 1));
  }
  for (uint64_t v : {0ull, 1ull, 255ull, 256ull, 257ull, 1'000ull, 999'999ull, 60'000'000'000ull}) {
    const size_t i = LatencyHistogram::IndexOf(v);
    EXPECT_LE(LatencyHistogram::LowerBound(i), v);
    EXPECT_GE(LatencyHistogram::UpperBound(i), v);
  }
}

TEST(LoadgenHistogram, ConstantValue) {
  ExpectWithinOnePercent(std::vector<uint64_t>(1000, 1'234'567));
}

TEST(LoadgenHistogram, UniformOneToTenMs) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<uint64_t> d(1'000'000, 10'000'000);
  std::vector<uint64_t> v(200'000);
  for (auto& x : v) x = d(rng);
  ExpectWithinOnePercent(v);
}

TEST(LoadgenHistogram, LogUniformOneMicrosecondToSixtySeconds) {
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> d(std::log(1e3), std::log(60e9));
  std::vector<uint64_t> v(200'000);
  for (auto& x : v) x = static_cast<uint64_t>(std::exp(d(rng)));
  ExpectWithinOnePercent(v);
}

TEST(LoadgenHistogram, ExponentialTail) {
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> d(1.0 / 2e6);  // mean 2 ms
  std::vector<uint64_t> v(200'000);
  for (auto& x : v) x = 1'000 + static_cast<uint64_t>(d(rng));
  ExpectWithinOnePercent(v);
}

TEST(LoadgenHistogram, BimodalStallShowsInTail) {
  // 99% at ~1 ms and 1% at ~1 s (a stalled server): p99 is still fast, p99.9 is the stall.
  std::vector<uint64_t> v;
  for (int i = 0; i < 99'000; ++i) v.push_back(1'000'000 + i % 1000);
  for (int i = 0; i < 1'000; ++i) v.push_back(1'000'000'000 + i * 1000);
  ExpectWithinOnePercent(v);
  LatencyHistogram h;
  for (uint64_t x : v) h.Record(x);
  EXPECT_LT(h.Percentile(99), 2'000'000u);
  EXPECT_GT(h.Percentile(99.9), 990'000'000u);
}

TEST(LoadgenHistogram, MinMaxMeanAreExact) {
  LatencyHistogram h;
  h.Record(1'000);
  h.Record(3'000);
  h.Record(5'000'000'000);
  EXPECT_EQ(h.min(), 1'000u);
  EXPECT_EQ(h.max(), 5'000'000'000u);
  EXPECT_DOUBLE_EQ(h.mean(), (1'000.0 + 3'000.0 + 5e9) / 3);
  EXPECT_EQ(h.Percentile(100), 5'000'000'000u);
  EXPECT_EQ(h.Percentile(0), 1'000u);
}

TEST(LoadgenHistogram, ClampsHugeValues) {
  LatencyHistogram h;
  h.Record(UINT64_MAX);
  EXPECT_EQ(h.clamped(), 1u);
  EXPECT_EQ(h.max(), LatencyHistogram::kMaxTrackable);
}

TEST(LoadgenHistogram, MergeEqualsRecordingEverything) {
  std::mt19937_64 rng(4);
  std::uniform_int_distribution<uint64_t> d(1'000, 100'000'000);
  LatencyHistogram a, b, all;
  for (int i = 0; i < 50'000; ++i) {
    const uint64_t x = d(rng);
    (i % 2 ? a : b).Record(x);
    all.Record(x);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  for (double p : kPercentiles) EXPECT_EQ(a.Percentile(p), all.Percentile(p)) << p;
}

}  // namespace
}  // namespace syncwell::loadgen
