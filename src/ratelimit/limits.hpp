#pragma once
// Provider quota table (SPEC S6) and the priority-reserve settings: plain data that the composition
// root fills from configuration. DefaultProviderLimits() is the spec's table.
//
// Windows are FIXED and aligned to the Unix epoch plus align_offset: a bucket refills to its full
// capacity at each window boundary. That is how the providers count (Fitbit resets at the top of
// the hour; Strava at :00/:15/:30/:45 and at midnight UTC), so spending the whole bucket never
// exceeds the provider's count. A continuously refilling bucket of the same capacity could spend up
// to twice the limit inside one provider window, which is why it is not used here.
#include <cstdint>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"

namespace syncwell::ratelimit {

enum class Scope {
  kApp,   // one budget shared by all requests our client app makes to the provider
  kUser,  // one budget per provider user
};

// At most `limit` requests per `window` in `scope`.
struct WindowLimit {
  Scope scope = Scope::kApp;
  Duration window{0};
  int64_t limit = 0;
  Duration align_offset{0};  // window boundaries at epoch + align_offset + k * window
};

struct ProviderLimits {
  std::string provider;              // same ids as providers/capabilities.hpp ("fitbit")
  std::vector<WindowLimit> windows;  // empty: the provider is not limited
};

// Priority reserve. Floors are fractions of each bucket's capacity (rounded up to whole tokens):
// a request at priority p is granted only if every bucket still holds at least floor(p) tokens
// AFTER the take. high: 0 (may empty the bucket); medium: medium_floor; low: low_floor.
// Defaults: medium stops below 10% left, low (backfill) stops first, below 30% left, and the
// last 10% of the bucket is kept for high (manual) jobs.
//
// release_fraction: in the last release_fraction of each window the floors drop to 0 for every
// priority, because tokens not spent before the boundary are lost when the window refills. This
// keeps the reserve for most of the window yet still spends the whole quota (e.g. the last 6 min of
// an hourly window, the last 90 s of a 15-min window). 0 keeps the reserve until the boundary.
struct ReserveSettings {
  double medium_floor = 0.10;
  double low_floor = 0.30;
  double release_fraction = 0.10;
};

// SPEC S6 defaults: Fitbit 150/user/hour; Strava 600/15 min and 30,000/day per app (no per-user
// limit); Google Fit 10,000/user/day; Garmin 100/min per app. All aligned to UTC.
std::vector<ProviderLimits> DefaultProviderLimits();

// Rejects empty provider ids, non-positive windows or limits, duplicate providers, and reserve
// fractions outside 0 <= medium <= low < 1, 0 <= release < 1.
Status ValidateLimits(const std::vector<ProviderLimits>& providers, const ReserveSettings& reserve);

}  // namespace syncwell::ratelimit
