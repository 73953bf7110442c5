# Tests of src/sim (see tests/CMakeLists.txt for the tiers).
if(TARGET syncwell_sim)
  syncwell_add_test(NAME sim_world_test SOURCES unit/sim_world_test.cpp
                    LIBS syncwell_sim LABELS unit)
  syncwell_add_test(NAME sim_server_test SOURCES unit/sim_server_test.cpp
                    LIBS syncwell_sim LABELS unit)
endif()
