#pragma once
// SwitchableLimiter: wraps a RateLimiter and can be switched "unavailable", simulating a limiter
// whose backing state is unreachable (the Redis adapter's outage) to exercise safe mode: while
// unavailable, Available() is false and TryAcquire / RecordRetryAfter return kUnavailable without
// touching the wrapped limiter. Used by tests (worker, e2e) and usable as an operator kill switch.
// Thread-safe (atomic flag; the wrapped limiter must itself be thread-safe).
#include <atomic>

#include "ratelimit/rate_limiter.hpp"

namespace syncwell::ratelimit {

class SwitchableLimiter final : public RateLimiter {
 public:
  explicit SwitchableLimiter(RateLimiter& inner) : inner_(inner) {}

  void SetAvailable(bool available) { available_.store(available); }

  bool Available() const override { return available_.load() && inner_.Available(); }

  Result<Decision> TryAcquire(std::string_view provider, std::string_view provider_user,
                              Priority priority, int64_t n = 1) override {
    if (!available_.load()) return Unavailable();
    return inner_.TryAcquire(provider, provider_user, priority, n);
  }

  Status RecordRetryAfter(std::string_view provider, std::string_view provider_user,
                          Duration retry_after) override {
    if (!available_.load()) return Unavailable();
    return inner_.RecordRetryAfter(provider, provider_user, retry_after);
  }

 private:
  static Error Unavailable() {
    return MakeError(Errc::kUnavailable, "rate limiter state unavailable (safe mode)");
  }

  RateLimiter& inner_;
  std::atomic<bool> available_{true};
};

}  // namespace syncwell::ratelimit
