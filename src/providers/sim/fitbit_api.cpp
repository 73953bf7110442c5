// PLACEHOLDER until the Fitbit simulator module lands: no routes yet.
#include "providers/sim/world.hpp"

namespace syncwell::sim {

ModuleSpec FitbitModule() {
  ModuleSpec spec;
  spec.provider = "fitbit";
  return spec;
}

}  // namespace syncwell::sim
