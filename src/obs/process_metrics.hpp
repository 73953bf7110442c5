#pragma once
// Process figures for /metrics, read from /proc at render time (Linux): the standard Prometheus
// process_* names plus this process's CPU and memory budget, so a scraper can judge SPEC S1's
// "workers < 80% CPU / memory of their budget" without knowing the host.
//
//   process_cpu_seconds_total        user + system CPU time
//   process_resident_memory_bytes    RSS
//   process_virtual_memory_bytes     VSZ
//   process_open_fds                 entries in /proc/self/fd
//   process_threads                  threads of this process
//   process_start_time_seconds       start time, Unix seconds
//   syncwell_process_cpu_budget_cores     CPUs this process may use: the affinity mask, lowered
//                                         by a cgroup v2 cpu.max quota when one is set
//   syncwell_process_memory_budget_bytes  cgroup v2 memory.max when set, else MemTotal
#include <cstdint>
#include <optional>
#include <string_view>

#include "obs/metrics.hpp"

namespace syncwell::obs {

struct ProcessSample {
  double cpu_seconds = 0;
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  uint64_t threads = 0;
  double start_time_seconds = 0;  // Unix time
};

// One read of /proc/self/stat; nullopt when /proc is unavailable or unreadable.
std::optional<ProcessSample> ReadProcessSample();

// Parses the text of /proc/<pid>/stat (exposed for tests). `ticks_per_second` = sysconf
// (_SC_CLK_TCK), `page_size` = bytes per page, `boot_time_seconds` = "btime" of /proc/stat.
std::optional<ProcessSample> ParseProcStat(std::string_view stat, double ticks_per_second,
                                           uint64_t page_size, double boot_time_seconds);

// Cores from a cgroup v2 cpu.max line ("max 100000" = no quota -> nullopt; "150000 100000" -> 1.5).
std::optional<double> ParseCpuMax(std::string_view cpu_max);

double CpuBudgetCores();
double MemoryBudgetBytes();

// Registers the figures above as gauges / counters of `registry`.
void AddProcessMetrics(Registry& registry);

}  // namespace syncwell::obs
