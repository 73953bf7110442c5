#include "obs/process_metrics.hpp"

#include <sched.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace syncwell::obs {

namespace {

std::optional<std::string> ReadSmallFile(const char* path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

template <class T>
bool ToNumber(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// "btime <unix seconds>" of /proc/stat; read once (the boot time does not change).
double BootTimeSeconds() {
  static const double boot = [] {
    auto text = ReadSmallFile("/proc/stat");
    if (!text) return 0.0;
    std::istringstream in(*text);
    uint64_t value = 0;
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("btime ", 0) == 0 && ToNumber(std::string_view(line).substr(6), value))
        return static_cast<double>(value);
    }
    return 0.0;
  }();
  return boot;
}

double OpenFds() {
  std::error_code ec;
  double n = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++n;
  return n;
}

}  // namespace

std::optional<ProcessSample> ParseProcStat(std::string_view stat, double ticks_per_second,
                                           uint64_t page_size, double boot_time_seconds) {
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string_view::npos || ticks_per_second <= 0) return std::nullopt;
  std::vector<std::string_view> f;  // f[0] is field 3 (state) of proc(5)
  for (size_t i = close + 1; i < stat.size();) {
    while (i < stat.size() && (stat[i] == ' ' || stat[i] == '\n')) ++i;
    size_t j = i;
    while (j < stat.size() && stat[j] != ' ' && stat[j] != '\n') ++j;
    if (j > i) f.push_back(stat.substr(i, j - i));
    i = j;
  }
  // proc(5) field numbers: utime 14, stime 15, num_threads 20, starttime 22, vsize 23, rss 24.
  auto field = [&f](int n) { return f[static_cast<size_t>(n - 3)]; };
  if (f.size() < 22) return std::nullopt;
  uint64_t utime = 0, stime = 0, threads = 0, start = 0, vsize = 0;
  int64_t rss_pages = 0;
  if (!ToNumber(field(14), utime) || !ToNumber(field(15), stime) || !ToNumber(field(20), threads) ||
      !ToNumber(field(22), start) || !ToNumber(field(23), vsize) || !ToNumber(field(24), rss_pages))
    return std::nullopt;
  ProcessSample s;
  s.cpu_seconds = static_cast<double>(utime + stime) / ticks_per_second;
  s.resident_bytes = rss_pages > 0 ? static_cast<uint64_t>(rss_pages) * page_size : 0;
  s.virtual_bytes = vsize;
  s.threads = threads;
  s.start_time_seconds = boot_time_seconds + static_cast<double>(start) / ticks_per_second;
  return s;
}

std::optional<ProcessSample> ReadProcessSample() {
  auto stat = ReadSmallFile("/proc/self/stat");
  if (!stat) return std::nullopt;
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  if (ticks <= 0 || page <= 0) return std::nullopt;
  return ParseProcStat(*stat, static_cast<double>(ticks), static_cast<uint64_t>(page),
                       BootTimeSeconds());
}

std::optional<double> ParseCpuMax(std::string_view cpu_max) {
  while (!cpu_max.empty() && (cpu_max.back() == '\n' || cpu_max.back() == ' '))
    cpu_max.remove_suffix(1);
  const size_t sp = cpu_max.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  uint64_t quota = 0, period = 0;
  if (!ToNumber(cpu_max.substr(0, sp), quota) || !ToNumber(cpu_max.substr(sp + 1), period) ||
      period == 0)
    return std::nullopt;  // "max <period>" = no quota
  return static_cast<double>(quota) / static_cast<double>(period);
}

double CpuBudgetCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  double cores = sched_getaffinity(0, sizeof set, &set) == 0
                     ? CPU_COUNT(&set)
                     : static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN));
  if (auto cpu_max = ReadSmallFile("/sys/fs/cgroup/cpu.max")) {
    if (auto quota = ParseCpuMax(*cpu_max); quota && *quota < cores) cores = *quota;
  }
  return cores > 0 ? cores : 1;
}

double MemoryBudgetBytes() {
  if (auto max = ReadSmallFile("/sys/fs/cgroup/memory.max")) {
    std::string_view v(*max);
    while (!v.empty() && v.back() == '\n') v.remove_suffix(1);
    uint64_t bytes = 0;
    if (ToNumber(v, bytes) && bytes > 0) return static_cast<double>(bytes);
  }
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0;
}

void AddProcessMetrics(Registry& registry) {
  auto read = [](auto field) {
    return [field] {
      auto s = ReadProcessSample();
      return s ? static_cast<double>(field(*s)) : 0.0;
    };
  };
  registry.AddCounterFn("process_cpu_seconds_total", "Total user and system CPU time, seconds",
                        read([](const ProcessSample& s) { return s.cpu_seconds; }));
  registry.AddGauge("process_resident_memory_bytes", "Resident memory size, bytes",
                    read([](const ProcessSample& s) { return s.resident_bytes; }));
  registry.AddGauge("process_virtual_memory_bytes", "Virtual memory size, bytes",
                    read([](const ProcessSample& s) { return s.virtual_bytes; }));
  registry.AddGauge("process_threads", "Threads of this process",
                    read([](const ProcessSample& s) { return s.threads; }));
  registry.AddGauge("process_start_time_seconds", "Start time of the process, Unix seconds",
                    read([](const ProcessSample& s) { return s.start_time_seconds; }));
  registry.AddGauge("process_open_fds", "Open file descriptors", [] { return OpenFds(); });
  const double cores = CpuBudgetCores();
  registry.AddGauge("syncwell_process_cpu_budget_cores",
                    "CPUs this process may use (affinity mask, cgroup cpu.max quota)",
                    [cores] { return cores; });
  const double memory = MemoryBudgetBytes();
  registry.AddGauge("syncwell_process_memory_budget_bytes",
                    "Memory this process may use (cgroup memory.max, else physical memory)",
                    [memory] { return memory; });
}

}  // namespace syncwell::obs
