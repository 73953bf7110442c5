// Runs the RateLimiter contract (rate_limiter_suite.hpp) against the in-process adapter. The Redis
// adapter runs the same suite in tests/redis/rate_limiter_redis_test.cpp (label redis).
#include "conformance/rate_limiter_suite.hpp"
#include "ratelimit/in_process_limiter.hpp"

namespace syncwell::conformance {
namespace {

class InProcessHarness {
 public:
  InProcessHarness(ManualClock& clock, const LimiterSpec& spec) : l_(clock, Settings(spec)) {}
  ratelimit::RateLimiter& limiter() { return l_; }

 private:
  static ratelimit::InProcessLimiterSettings Settings(const LimiterSpec& spec) {
    ratelimit::InProcessLimiterSettings s;
    s.providers = spec.providers;
    s.reserve = spec.reserve;
    s.max_retry_after = spec.max_retry_after;
    return s;
  }
  ratelimit::InProcessLimiter l_;
};

INSTANTIATE_TYPED_TEST_SUITE_P(InProcess, RateLimiterConformance, InProcessHarness);

}  // namespace
}  // namespace syncwell::conformance
