// PLACEHOLDER until the Garmin simulator module lands: no routes yet.
#include "providers/sim/world.hpp"

namespace syncwell::sim {

ModuleSpec GarminModule() {
  ModuleSpec spec;
  spec.provider = "garmin";
  return spec;
}

}  // namespace syncwell::sim
