// PLACEHOLDER until the Withings simulator module lands: no routes yet.
#include "providers/sim/world.hpp"

namespace syncwell::sim {

ModuleSpec WithingsModule() {
  ModuleSpec spec;
  spec.provider = "withings";
  return spec;
}

}  // namespace syncwell::sim
