#pragma once
// The S14 load-test plan (`syncwell loadgen --plan brief|smoke`): its phases, the simulated
// population and the request mix. No Asio here (cheap to compile and unit-test).
//
// Phases (SPEC S14), every duration multiplied by --scale, rates never scaled:
//   brief: baseline 100 rps 10 min, soak 1,000 rps 30 min, peak 3,000 rps 15 min, then stress
//          steps of 5 min from 3,750 rps, x1.25 per step, until the step's error share exceeds 1%
//          (or after kMaxStressSteps steps).
//   smoke: the same phases and durations at CI rates: 5, 10, 20 rps, stress from 25 rps x1.5,
//          at most 3 steps.
// Request mix per scheduled request (a mobile client): with probability --retry-share a client
// retry (one of this worker's last 256 answered POSTs re-sent byte for byte, same
// Idempotency-Key: the server must return the same jobId); else
// 50% POST /v1/sync-jobs (fresh Idempotency-Key, fitbit -> strava workout, manual), 30% GET
// /v1/sync-jobs/{id} of the user's most recent job (GET /v1/sync-configs while it has none),
// 20% GET /v1/sync-configs. Users are drawn Zipf(s = 1.1) over the token file (rank order
// shuffled with a fixed seed), so a few users are hot and caches see realistic hit rates.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "loadgen/engine.hpp"
#include "loadgen/request_plan.hpp"

namespace syncwell::loadgen {

struct Phase {
  std::string name;  // baseline, soak, peak, stress-1, stress-2, ...
  double rate = 0;   // requests/s
  std::chrono::milliseconds duration{0};
  bool stress = false;  // part of the ramp: the plan stops after the first step over the limit
};

struct PlanSpec {
  std::string name;
  std::vector<Phase> phases;  // fixed phases then every possible stress step, in order
  double stress_error_limit = 0.01;
};

inline constexpr int kMaxStressSteps = 8;

// "brief" or "smoke"; scale in (0, 10]. Durations are rounded to whole milliseconds (>= 1 s).
Result<PlanSpec> MakePlan(std::string_view name, double scale);

// Error share that stops the stress ramp: 5xx, 429 and transport failures over scheduled.
double StressErrorShare(const RunStats& s, uint64_t status_429);

// One line of the token file: "TOKEN SRC_CONN_ID DST_CONN_ID".
struct PopUser {
  std::string token;
  std::string src;
  std::string dst;
};
Result<std::vector<PopUser>> LoadPopulation(const std::string& path);

// Zipf(s) over ranks 0..n-1 by inverse CDF (binary search); Pick() costs O(log n).
class ZipfPicker {
 public:
  ZipfPicker(size_t n, double s);
  size_t Pick(std::mt19937_64& rng) const;
  double Probability(size_t rank) const;

 private:
  std::vector<double> cdf_;
};

enum class RequestKind : uint32_t { kPost = 0, kRetry = 1, kGetJob = 2, kGetConfigs = 3 };
inline constexpr int kRequestKinds = 4;
const char* RequestKindName(RequestKind k);

struct MixOptions {
  double retry_share = 0.05;
  double zipf_s = 1.1;
  size_t follow_sample = 0;  // accepted jobs kept per phase for following (reservoir sample)
  bool keep_all_jobs = false;
  uint64_t seed = 0;  // 0 = random
};

// An accepted job (202 with a jobId) as seen by the driver.
struct AcceptedJob {
  std::string job_id;
  uint32_t user = 0;  // index into the population
};

// Per-kind outcome counts for the report.
struct KindCounts {
  uint64_t sent[kRequestKinds] = {};
  uint64_t s2xx[kRequestKinds] = {};
  uint64_t s4xx[kRequestKinds] = {};
  uint64_t s5xx[kRequestKinds] = {};
  uint64_t status_429 = 0;
  uint64_t accepted = 0;       // 202 with a jobId from a fresh POST
  uint64_t retry_same_id = 0;  // retries answered with the original jobId
  uint64_t retry_other = 0;    // retries answered with any other status or id
  void Merge(const KindCounts& o);
};

// The RequestSource of the plan. Per-worker state (RNG, recent POSTs, each user's last job,
// the job sample) is touched only from that worker's thread, as RunEngine guarantees; BeginPhase()
// and TakePhase() are called between engine runs, when no worker runs.
class MixedSource : public RequestSource {
 public:
  MixedSource(std::vector<PopUser> users, const std::vector<Target>& targets, MixOptions options);

  // Resets the per-phase counters and samples for `workers` workers.
  void BeginPhase(int workers);
  struct PhaseOutcome {
    KindCounts counts;
    std::vector<AcceptedJob> sample;  // at most follow_sample, uniformly drawn
    std::vector<AcceptedJob> all;     // every accepted job (keep_all_jobs only)
  };
  PhaseOutcome TakePhase();

  void Next(int worker, int target, Outgoing* out) override;
  void OnResponse(int worker, const Outgoing& req, int status, std::string_view body) override;

  const std::vector<PopUser>& users() const { return users_; }

 private:
  struct Recent {
    std::string rest;  // the POST from just after its Host header line (same key and body)
    uint32_t user = 0;
    uint32_t seq = 0;    // tells a reused ring slot from the POST that answers late
    std::string job_id;  // filled when its first answer arrives
  };
  struct WorkerState {
    std::mt19937_64 rng;
    UuidGenerator uuid;
    std::vector<Recent> recent;  // ring of recent POSTs, for retries
    size_t recent_next = 0;
    uint32_t seq = 0;
    std::vector<std::string> last_job;  // per user
    KindCounts counts;
    std::vector<AcceptedJob> sample;
    uint64_t seen = 0;  // accepted jobs offered to the reservoir
    std::vector<AcceptedJob> all;
  };

  std::vector<PopUser> users_;
  std::vector<std::string> host_lines_;  // per target: "Host: h:p\r\n"
  MixOptions options_;
  ZipfPicker zipf_;
  std::vector<uint32_t> rank_to_user_;
  std::vector<WorkerState> workers_;
  uint64_t seed_base_;
  size_t post_recent_capacity_ = 256;
};

// Extracts the string value of "key" from a flat JSON object (no unescaping; "" if absent).
std::string JsonStringField(std::string_view body, std::string_view key);

// Parses "YYYY-MM-DDTHH:MM:SS[.mmm]Z" to Unix milliseconds; -1 when malformed.
int64_t ParseRfc3339Millis(std::string_view s);

}  // namespace syncwell::loadgen
