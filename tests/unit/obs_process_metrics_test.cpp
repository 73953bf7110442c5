// Process metrics: /proc/self/stat parsing, cgroup cpu.max parsing, and the rendered families.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "obs/process_metrics.hpp"

namespace syncwell::obs {
namespace {

// A real /proc/<pid>/stat line with a comm holding a space and a parenthesis.
constexpr std::string_view kStat =
    "4242 (sync (well) 1) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 50 0 0 20 0 7 0 1000 "
    "123456789 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";

TEST(ProcessMetricsTest, ParsesProcStatFields) {
  auto s = ParseProcStat(kStat, 100.0, 4096, 1'700'000'000.0);
  ASSERT_TRUE(s.has_value());
  EXPECT_DOUBLE_EQ(s->cpu_seconds, 3.0);  // (250 + 50) ticks / 100
  EXPECT_EQ(s->resident_bytes, 2048u * 4096u);
  EXPECT_EQ(s->virtual_bytes, 123456789u);
  EXPECT_EQ(s->threads, 7u);
  EXPECT_DOUBLE_EQ(s->start_time_seconds, 1'700'000'010.0);  // btime + 1000 / 100
}

TEST(ProcessMetricsTest, RejectsTruncatedOrMalformedStat) {
  EXPECT_FALSE(ParseProcStat("4242 (x) S 1 2 3", 100.0, 4096, 0).has_value());
  EXPECT_FALSE(ParseProcStat("no parenthesis at all", 100.0, 4096, 0).has_value());
  std::string bad(kStat);
  bad.replace(bad.find(" 250 "), 5, " 2x0 ");
  EXPECT_FALSE(ParseProcStat(bad, 100.0, 4096, 0).has_value());
  EXPECT_FALSE(ParseProcStat(kStat, 0.0, 4096, 0).has_value());
}

TEST(ProcessMetricsTest, ParsesCgroupCpuMax) {
  EXPECT_FALSE(ParseCpuMax("max 100000\n").has_value());
  EXPECT_DOUBLE_EQ(*ParseCpuMax("150000 100000\n"), 1.5);
  EXPECT_DOUBLE_EQ(*ParseCpuMax("50000 100000"), 0.5);
  EXPECT_FALSE(ParseCpuMax("").has_value());
  EXPECT_FALSE(ParseCpuMax("100 0").has_value());
}

TEST(ProcessMetricsTest, ReadsThisProcessAndCpuTimeGrows) {
  auto before = ReadProcessSample();
  ASSERT_TRUE(before.has_value());
  EXPECT_GT(before->resident_bytes, 0u);
  EXPECT_GE(before->threads, 1u);
  EXPECT_GT(before->start_time_seconds, 1'000'000'000.0);
  // Burn CPU until the kernel's tick accounting moves (bounded by a generous deadline).
  volatile uint64_t sink = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::optional<ProcessSample> after;
  do {
    for (int i = 0; i < 10'000'000; ++i) sink = sink + static_cast<uint64_t>(i);
    after = ReadProcessSample();
  } while (after && after->cpu_seconds <= before->cpu_seconds &&
           std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(after.has_value());
  EXPECT_GT(after->cpu_seconds, before->cpu_seconds);
}

TEST(ProcessMetricsTest, RendersEveryFamilyWithABudget) {
  Registry r;
  AddProcessMetrics(r);
  const std::string text = r.Render();
  for (const char* name :
       {"process_cpu_seconds_total", "process_resident_memory_bytes",
        "process_virtual_memory_bytes", "process_threads", "process_start_time_seconds",
        "process_open_fds", "syncwell_process_cpu_budget_cores",
        "syncwell_process_memory_budget_bytes"})
    EXPECT_NE(text.find(std::string("\n") + name + " "), std::string::npos) << name;
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter"), std::string::npos);
  EXPECT_GE(CpuBudgetCores(), 0.01);
  EXPECT_GT(MemoryBudgetBytes(), 0.0);
}

}  // namespace
}  // namespace syncwell::obs
