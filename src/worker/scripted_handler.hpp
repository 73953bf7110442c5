#pragma once
// ScriptedHandler: a TEST-ONLY JobHandler whose behaviour comes from a JSON script, selected with
// `worker.handler = "script:<path>"`. It never calls a provider. It exists so end-to-end tests can
// make jobs slow, fail, be rate limited or have their grant revoked, and can audit every
// execution afterwards.
//
// Script:
//   {"default": {"outcomes": ["retryable", "ok"], "sleep_ms": 20, "sleep_ms_max": 50},
//    "jobs":    {"<job id>":  {...same fields...}},
//    "users":   {"<user id>": {...}},
//    "priorities": {"high": {...}, "low": {...}}}
// The first of jobs / users / priorities that names the job wins, else "default". Outcome i is used
// for the job's i-th execution in THIS process (the last one repeats; default ["ok"]): "ok",
// "retryable", "permanent", "auth_revoked", "rate_limited" or "rate_limited:<retry-after ms>".
// Each execution sleeps uniformly in [sleep_ms, sleep_ms_max] (real time, cancellable).
//
// Audit log: one JSON line per event appended to `<log path>` (the data directory's
// executions.log in `syncwell serve`), written with a single write(2) on an O_APPEND descriptor and
// fdatasync'ed, so the lines survive kill -9 and never interleave:
//   {"ev":"start","job":..,"attempt":..,"pid":..,"t_us":..,"granted_us":..,"provider":..}
//   {"ev":"end","job":..,"attempt":..,"pid":..,"t_us":..,"outcome":"ok"|...|"cancelled"}
//   {"ev":"committed","job":..,"attempt":..,"pid":..,"t_us":..}   (after SUCCEEDED was recorded)
// An "end" with outcome "ok" is the "applied" point: the work is done, the status commit follows.
// Thread-safe.
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "worker/job_handler.hpp"

namespace syncwell::worker {

class ScriptedHandler final : public JobHandler {
 public:
  struct Behaviour {
    std::vector<std::string> outcomes{"ok"};
    int sleep_ms = 0;
    int sleep_ms_max = 0;
  };

  // Reads and validates the script; kInvalidArgument with the reason when it is unusable.
  static Result<std::unique_ptr<ScriptedHandler>> Load(const std::string& script_path,
                                                       const std::string& log_path);
  ~ScriptedHandler() override;

  Result<void> Handle(const store::Job& job, JobContext& ctx) override;
  void OnSucceededCommitted(const store::Job& job, const JobContext& ctx) override;

 private:
  ScriptedHandler(int log_fd, Behaviour def) : log_fd_(log_fd), default_(std::move(def)) {}
  const Behaviour& BehaviourFor(const store::Job& job) const;
  void Append(const std::string& line);

  int log_fd_;
  Behaviour default_;
  std::map<std::string, Behaviour> jobs_, users_, priorities_;
  std::mutex mu_;  // guards executions_, rng_
  std::map<std::string, int> executions_;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace syncwell::worker
