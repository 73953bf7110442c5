#include "ratelimit/backoff.hpp"

#include <algorithm>
#include <stdexcept>

namespace syncwell::ratelimit {

DefaultRandomSource::DefaultRandomSource() : engine_(std::random_device{}()) {}

uint64_t DefaultRandomSource::UniformUpTo(uint64_t upper) {
  std::uniform_int_distribution<uint64_t> dist(0, upper);
  std::lock_guard<std::mutex> lock(mu_);
  return dist(engine_);
}

Backoff::Backoff(BackoffSettings settings) : settings_(settings) {
  if (settings_.base <= Duration{0} || settings_.cap < settings_.base) {
    throw std::invalid_argument("backoff: need 0 < base <= cap");
  }
}

Duration Backoff::Ceiling(int attempt) const {
  Duration c = settings_.base;
  // Doubling stops at the cap, so no overflow however large the attempt number.
  for (int i = 1; i < attempt; ++i) {
    if (c >= settings_.cap / 2) return settings_.cap;
    c *= 2;
  }
  return std::min(c, settings_.cap);
}

Duration Backoff::Delay(int attempt, RandomSource& random, Duration retry_after) const {
  const auto ceiling = static_cast<uint64_t>(Ceiling(attempt).count());
  const Duration jittered{static_cast<Duration::rep>(random.UniformUpTo(ceiling))};
  return std::max(std::min(jittered, Duration{static_cast<Duration::rep>(ceiling)}), retry_after);
}

}  // namespace syncwell::ratelimit
