#include "sync/circuit_breaker.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <utility>

namespace syncwell::sync {

std::string_view CircuitStateName(CircuitState s) {
  switch (s) {
    case CircuitState::kClosed:
      return "closed";
    case CircuitState::kOpen:
      return "open";
    case CircuitState::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

// State machine, all under one mutex (calls are per provider request, so contention is low):
//   closed    --(>= min_calls in window and failures/calls >= failure_ratio)--> open
//   open      --(open_for elapsed, noticed lazily by Allow/Record/state)-----> half-open
//   half-open --(a probe succeeds)--> closed (window cleared)
//   half-open --(a probe fails)-----> open (open_for starts again)
// Outcomes recorded while open, or while half-open with no probe in flight, belong to calls
// admitted before the circuit opened and are ignored: only probes decide in half-open.
struct CircuitBreaker::Impl {
  Impl(CircuitBreakerSettings s, const Clock& c) : settings(s), clock(c) {
    settings.min_calls = std::max(1, settings.min_calls);
    settings.half_open_probes = std::max(1, settings.half_open_probes);
  }

  // Open -> half-open once open_for has elapsed. A probe round whose probes have not all
  // reported after open_for is presumed lost (a cancelled caller never calls Record), so a new
  // round starts instead of rejecting forever.
  void Advance(TimePoint now) {
    if (state == CircuitState::kOpen && now - opened_at >= settings.open_for) {
      state = CircuitState::kHalfOpen;
      probes_in_flight = 0;
    }
    if (state == CircuitState::kHalfOpen && probes_in_flight >= settings.half_open_probes &&
        now - round_started >= settings.open_for) {
      probes_in_flight = 0;
    }
  }

  void Trim(TimePoint now) {
    const TimePoint horizon = now - settings.window;
    while (!window.empty() && window.front().first <= horizon) {
      if (window.front().second) --failures;
      window.pop_front();
    }
  }

  void ClearWindow() {
    window.clear();
    failures = 0;
    probes_in_flight = 0;
  }

  void Open(TimePoint now) {
    state = CircuitState::kOpen;
    opened_at = now;
    ClearWindow();
    if (opened != nullptr) opened->Inc();
  }

  bool Allow() {
    std::lock_guard lock(mu);
    const TimePoint now = clock.Now();
    Advance(now);
    if (state == CircuitState::kClosed) return true;
    if (state == CircuitState::kHalfOpen && probes_in_flight < settings.half_open_probes) {
      if (probes_in_flight == 0) round_started = now;
      ++probes_in_flight;
      return true;
    }
    if (rejected != nullptr) rejected->Inc();
    return false;
  }

  void Record(bool failure, std::chrono::milliseconds duration) {
    std::lock_guard lock(mu);
    const TimePoint now = clock.Now();
    Advance(now);
    const bool failed = failure || duration > settings.slow_call;
    switch (state) {
      case CircuitState::kOpen:
        return;
      case CircuitState::kHalfOpen:
        if (probes_in_flight == 0) return;
        --probes_in_flight;
        if (failed) {
          Open(now);
        } else {
          state = CircuitState::kClosed;
          ClearWindow();
        }
        return;
      case CircuitState::kClosed:
        break;
    }
    window.emplace_back(now, failed);
    if (failed) ++failures;
    Trim(now);
    const auto calls = static_cast<int>(window.size());
    if (calls >= settings.min_calls && failures > 0 &&
        static_cast<double>(failures) / calls >= settings.failure_ratio) {
      Open(now);
    }
  }

  CircuitState State() {
    std::lock_guard lock(mu);
    Advance(clock.Now());
    return state;
  }

  CircuitBreakerSettings settings;
  const Clock& clock;
  std::mutex mu;
  CircuitState state = CircuitState::kClosed;
  TimePoint opened_at{};
  TimePoint round_started{};
  int probes_in_flight = 0;
  std::deque<std::pair<TimePoint, bool>> window;  // (when, failed), oldest first
  int failures = 0;                               // failed entries in window
  // Set by CircuitBreakers before the breaker is shared; counters live as long as the registry.
  obs::Counter* rejected = nullptr;
  obs::Counter* opened = nullptr;
};

CircuitBreaker::CircuitBreaker(CircuitBreakerSettings settings, const Clock& clock)
    : impl_(std::make_shared<Impl>(settings, clock)) {}

bool CircuitBreaker::Allow() { return impl_->Allow(); }

void CircuitBreaker::Record(bool failure, std::chrono::milliseconds duration) {
  impl_->Record(failure, duration);
}

CircuitState CircuitBreaker::state() const { return impl_->State(); }

namespace {

// Prometheus label value escaping (backslash, double quote, newline).
std::string LabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

double StateGaugeValue(CircuitState s) {
  switch (s) {
    case CircuitState::kClosed:
      return 0;
    case CircuitState::kHalfOpen:
      return 1;
    case CircuitState::kOpen:
      return 2;
  }
  return 0;
}

}  // namespace

struct CircuitBreakers::Impl {
  Impl(CircuitBreakerSettings s, const Clock& c, obs::Registry& m)
      : settings(s), clock(c), metrics(m) {}

  CircuitBreakerSettings settings;
  const Clock& clock;
  obs::Registry& metrics;
  std::mutex mu;
  // unique_ptr: references handed out by For() stay valid while the map grows.
  std::map<std::string, std::unique_ptr<CircuitBreaker>, std::less<>> breakers;
};

CircuitBreakers::CircuitBreakers(CircuitBreakerSettings settings, const Clock& clock,
                                 obs::Registry& metrics)
    : impl_(std::make_shared<Impl>(settings, clock, metrics)) {}

CircuitBreaker& CircuitBreakers::For(std::string_view provider) {
  std::lock_guard lock(impl_->mu);
  if (auto it = impl_->breakers.find(provider); it != impl_->breakers.end()) return *it->second;

  auto breaker = std::make_unique<CircuitBreaker>(impl_->settings, impl_->clock);
  const std::string labels = "provider=\"" + LabelValue(provider) + "\"";
  auto& cb = *breaker->impl_;
  cb.rejected = &impl_->metrics.GetCounter("syncwell_circuit_rejected_total",
                                           "Calls failed fast by an open circuit", labels);
  cb.opened = &impl_->metrics.GetCounter("syncwell_circuit_opened_total",
                                         "Circuit transitions to open", labels);
  // The registry may outlive this object: the gauge holds the breaker weakly.
  std::weak_ptr<CircuitBreaker::Impl> weak = breaker->impl_;
  impl_->metrics.AddGauge(
      "syncwell_circuit_state", "Circuit state: 0 closed, 1 half-open, 2 open",
      [weak] {
        const auto strong = weak.lock();
        return strong ? StateGaugeValue(strong->State()) : 0.0;
      },
      labels);
  return *impl_->breakers.emplace(std::string(provider), std::move(breaker)).first->second;
}

}  // namespace syncwell::sync
