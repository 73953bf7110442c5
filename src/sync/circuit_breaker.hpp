#pragma once
// Per-provider circuit breaker (SPEC S4): opens when, over a rolling window, at least min_calls
// calls were made and >= failure_ratio of them failed (a call slower than slow_call counts as a
// failure); while open every call fails fast (kUnavailable-like, see Allow); after open_for it
// goes half-open and lets `half_open_probes` calls through: a success closes it, a failure opens
// it again. Only provider-side trouble counts as failure (5xx, timeouts, connection errors);
// 4xx, 401 and 429 are the caller's or the quota's business and count as successes.
// Thread-safe.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "obs/metrics.hpp"

namespace syncwell::sync {

struct CircuitBreakerSettings {
  double failure_ratio = 0.5;
  int min_calls = 20;
  std::chrono::seconds window{30};
  std::chrono::milliseconds slow_call{5'000};
  std::chrono::seconds open_for{30};
  int half_open_probes = 1;
};

enum class CircuitState { kClosed, kOpen, kHalfOpen };
std::string_view CircuitStateName(CircuitState s);  // "closed", "open", "half_open"

class CircuitBreaker {
 public:
  CircuitBreaker(CircuitBreakerSettings settings, const Clock& clock);
  // True: make the call, then Record() its outcome. False: fail fast (do not call).
  bool Allow();
  void Record(bool failure, std::chrono::milliseconds duration);
  CircuitState state() const;

 private:
  // CircuitBreakers attaches the per-provider metrics to the breakers it creates.
  friend class CircuitBreakers;
  // (implementation-defined members)
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// One breaker per provider, created on first use, with metrics:
//   syncwell_circuit_state{provider}            0 closed, 1 half-open, 2 open
//   syncwell_circuit_rejected_total{provider}   calls failed fast
//   syncwell_circuit_opened_total{provider}     transitions to open
class CircuitBreakers {
 public:
  CircuitBreakers(CircuitBreakerSettings settings, const Clock& clock, obs::Registry& metrics);
  CircuitBreaker& For(std::string_view provider);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace syncwell::sync
