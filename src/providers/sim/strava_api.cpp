// PLACEHOLDER until the Strava simulator module lands: no routes yet.
#include "providers/sim/world.hpp"

namespace syncwell::sim {

ModuleSpec StravaModule() {
  ModuleSpec spec;
  spec.provider = "strava";
  return spec;
}

}  // namespace syncwell::sim
