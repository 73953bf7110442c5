#include "providers/capabilities.hpp"

#include <algorithm>

namespace syncwell::providers {

const std::vector<ProviderInfo>& AllProviders() {
  // Based on the providers' public APIs (sources per row in docs/providers.md): Strava stores
  // activities only; Withings accepts measurements (weight) but not activities; Garmin's Health
  // API is read-only (its Training API creates *planned* workouts for the watch, not completed
  // activities, so Garmin is no destination); Fitbit (Google Health API) reconciles steps from
  // devices and does not accept them from apps.
  static const std::vector<ProviderInfo> kAll = {
      {"fitbit",
       "Fitbit",
       {"workout", "sleep_session", "steps", "weight"},
       {"workout", "sleep_session", "weight"},
       true},
      {"garmin", "Garmin Connect", {"workout", "sleep_session", "steps", "weight"}, {}, true},
      {"strava", "Strava", {"workout"}, {"workout"}, true},
      {"withings", "Withings", {"workout", "sleep_session", "steps", "weight"}, {"weight"}, true},
      {"google_fit",
       "Google Fit",
       {"workout", "sleep_session", "steps", "weight"},
       {"workout", "sleep_session", "steps", "weight"},
       true},
      {"apple_health",
       "Apple Health",
       {"workout", "sleep_session", "steps", "weight"},
       {"workout", "sleep_session", "steps", "weight"},
       false},
      {"health_connect",
       "Health Connect",
       {"workout", "sleep_session", "steps", "weight"},
       {"workout", "sleep_session", "steps", "weight"},
       false},
  };
  return kAll;
}

const ProviderInfo* FindProvider(std::string_view name) {
  for (const auto& p : AllProviders()) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

bool IsDataType(std::string_view t) {
  return std::find(std::begin(kDataTypes), std::end(kDataTypes), t) != std::end(kDataTypes);
}

bool CanRead(std::string_view provider, std::string_view data_type) {
  const auto* p = FindProvider(provider);
  return p && std::find(p->reads.begin(), p->reads.end(), data_type) != p->reads.end();
}

bool CanWrite(std::string_view provider, std::string_view data_type) {
  const auto* p = FindProvider(provider);
  return p && std::find(p->writes.begin(), p->writes.end(), data_type) != p->writes.end();
}

}  // namespace syncwell::providers
