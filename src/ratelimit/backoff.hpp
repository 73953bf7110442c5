#pragma once
// Deferral delays for rate-limited jobs (SPEC S6): exponential backoff with FULL jitter, capped,
// and never shorter than what the limiter or the provider asked for.
//
//   ceiling(attempt) = min(cap, base * 2^(attempt - 1))          attempt = 1, 2, 3, ...
//   delay            = max(uniform[0, ceiling(attempt)], retry_after)
//
// Full jitter (rather than "equal" or no jitter) spreads the retries of jobs that were refused
// together over the whole interval, so they do not come back as one burst at the window boundary.
// Defaults: base 1 s, cap 15 min. retry_after (Decision::retry_after or a provider's Retry-After)
// may exceed the cap: the provider's word wins.
// Thread-safety: Backoff is immutable; DefaultRandomSource is thread-safe.
#include <cstdint>
#include <mutex>
#include <random>

#include "core/clock.hpp"

namespace syncwell::ratelimit {

// Uniform random integers; injectable so tests can script the jitter.
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // Uniform in [0, upper] (inclusive).
  virtual uint64_t UniformUpTo(uint64_t upper) = 0;
};

// std::mt19937_64 seeded from std::random_device (jitter needs no cryptographic strength).
class DefaultRandomSource final : public RandomSource {
 public:
  DefaultRandomSource();
  explicit DefaultRandomSource(uint64_t seed) : engine_(seed) {}
  uint64_t UniformUpTo(uint64_t upper) override;

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;
};

struct BackoffSettings {
  Duration base = std::chrono::seconds{1};
  Duration cap = std::chrono::minutes{15};
};

class Backoff {
 public:
  // Throws std::invalid_argument unless 0 < base <= cap (a start-up error).
  explicit Backoff(BackoffSettings settings = {});

  // min(cap, base * 2^(attempt - 1)); attempt < 1 counts as 1.
  Duration Ceiling(int attempt) const;
  // A full-jitter delay for this attempt, at least retry_after.
  Duration Delay(int attempt, RandomSource& random, Duration retry_after = Duration{0}) const;

  const BackoffSettings& settings() const { return settings_; }

 private:
  BackoffSettings settings_;
};

}  // namespace syncwell::ratelimit
