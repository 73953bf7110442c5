#include "ratelimit/limits.hpp"

#include <chrono>
#include <set>

#include "ratelimit/rate_limiter.hpp"

namespace syncwell::ratelimit {

using std::chrono::hours;
using std::chrono::minutes;

std::vector<ProviderLimits> DefaultProviderLimits() {
  return {
      {"fitbit", {{Scope::kUser, hours{1}, 150}}},
      {"strava", {{Scope::kApp, minutes{15}, 600}, {Scope::kApp, hours{24}, 30'000}}},
      {"google_fit", {{Scope::kUser, hours{24}, 10'000}}},
      {"garmin", {{Scope::kApp, minutes{1}, 100}}},
  };
}

Status ValidateLimits(const std::vector<ProviderLimits>& providers,
                      const ReserveSettings& reserve) {
  std::set<std::string> seen;
  for (const auto& p : providers) {
    if (p.provider.empty()) return MakeError(Errc::kInvalidArgument, "rate limit: empty provider");
    if (!seen.insert(p.provider).second) {
      return MakeError(Errc::kInvalidArgument, "rate limit: duplicate provider " + p.provider);
    }
    for (const auto& w : p.windows) {
      if (w.window <= Duration{0} || w.limit <= 0) {
        return MakeError(Errc::kInvalidArgument,
                         "rate limit: window and limit must be positive for " + p.provider);
      }
    }
  }
  const bool ok = reserve.medium_floor >= 0 && reserve.medium_floor <= reserve.low_floor &&
                  reserve.low_floor < 1 && reserve.release_fraction >= 0 &&
                  reserve.release_fraction < 1;
  if (!ok) {
    return MakeError(Errc::kInvalidArgument,
                     "rate limit: need 0 <= medium_floor <= low_floor < 1 and "
                     "0 <= release_fraction < 1");
  }
  return {};
}

}  // namespace syncwell::ratelimit
