#pragma once
// The load engine's programmatic face, used by the S14 plan runner (plan.hpp). No Asio here:
// the engine itself lives in loadgen.cpp, the only loadgen translation unit that includes Asio.
//
// RunEngine() is the same open-loop, coordinated-omission-free engine as `syncwell loadgen
// --rate`, but every request comes from a RequestSource instead of a pre-rendered plan, and it
// can spread the schedule over several targets: request k of the run goes to target
// k % targets.size() (round-robin per request), because the schedule is split over
// targets x threads workers that interleave exactly.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "loadgen/report.hpp"

namespace syncwell::loadgen {

// One request as the source renders it. The engine writes `bytes` unchanged and, when
// `capture_body` is set, hands the first kMaxCapturedBody bytes of the response body back.
struct Outgoing {
  std::string bytes;  // request line, headers, blank line, body
  uint32_t tag = 0;   // opaque to the engine (the source's request kind)
  uint32_t user = 0;  // opaque to the engine (the source's user index)
  bool capture_body = false;
};
inline constexpr size_t kMaxCapturedBody = size_t{16} * 1024;

// Produces requests and sees their responses. Threading: for one `worker`, Next() and
// OnResponse() are only ever called from that worker's thread, one at a time; different workers
// run concurrently, so per-worker state needs no lock and shared state does.
class RequestSource {
 public:
  virtual ~RequestSource() = default;
  // Fills `out` (reused between calls) with the next request for `target`.
  virtual void Next(int worker, int target, Outgoing* out) = 0;
  // A complete response to `req` (any status). Not called for transport errors.
  virtual void OnResponse(int worker, const Outgoing& req, int status, std::string_view body) = 0;
};

struct EngineRun {
  std::vector<std::string> targets;  // http://host[:port]
  double rate = 0;                   // requests/s over all targets; must be > 0
  std::chrono::milliseconds duration{10'000};
  std::chrono::milliseconds timeout{10'000};
  int connections_per_target = 16;
  int max_connections_per_target = 256;
  int threads_per_target = 1;
};

// Number of workers RunEngine() creates (the `worker` range given to the source).
inline int EngineWorkers(const EngineRun& r) {
  return static_cast<int>(r.targets.size()) * r.threads_per_target;
}

// Blocks for duration + drain. Errors only for invalid settings or unresolvable targets.
Result<RunStats> RunEngine(const EngineRun& run, RequestSource& source);

// A blocking one-shot HTTP/1.1 GET (Connection: close) for scrapes and job polling.
struct SimpleResponse {
  int status = 0;
  std::string body;
};
Result<SimpleResponse> HttpGet(const std::string& base_url, const std::string& path,
                               const std::vector<std::string>& headers,
                               std::chrono::milliseconds timeout);

}  // namespace syncwell::loadgen
